"""The block plan of a decoding run: which canvas columns each row decodes in block k.

* Bidirectional model (semi-autoregressive blocks over full attention): `block_length` cuts the generated region
  into blocks that end at the same canvas column for every row; block 0 starts at each row's own first position to
  fill (a prompt [MASK], else the first generated position), block k > 0 at the previous block's end. Without
  `block_length` there is one block.
* Block-causal model (`MDMConfig(block_size=B)`): the blocks are the model's own. A token's block is its position
  among its row's real tokens divided by B (`block_positions.block_ids`), so with left padding or mixed prompt
  lengths every row's blocks start and end at its own columns. Block k of row r is the model block `first_r + k`,
  where `first_r` is the first model block holding a position row r fills; it spans the whole model block (prompt
  tokens of that block included: their keys change while the block is decoded). Rows have different numbers of
  blocks; the plan has the most, and a row's extra blocks are empty (start = end = the canvas length).
"""

from dataclasses import dataclass

import torch

from ..block_positions import block_ids


@dataclass
class BlockPlan:
    """Block `index` of a run: row r spans canvas columns [starts[r], ends[r]); `end` is the greatest end; the block
    gets `num_steps` steps of the grid."""

    index: int
    starts: torch.LongTensor
    ends: torch.LongTensor
    end: int
    num_steps: int


def semi_autoregressive_spans(fill: torch.BoolTensor, prompt_length: int, block_length: int | None):
    """[(starts, ends)] per block of a bidirectional model's plan: blocks of `block_length` over the generated region
    (one block without it), ending at the same column for every row."""
    length = fill.shape[1]
    positions = torch.arange(length, device=fill.device)
    first_starts = torch.where(fill, positions, length).min(1).values.clamp(max=prompt_length)
    first_starts = torch.where(fill.any(1), first_starts, length)
    ends = [length]
    if block_length is not None and length > prompt_length:
        ends = list(range(prompt_length + block_length, length + 1, block_length))
    spans = []
    for index, end in enumerate(ends):
        starts = first_starts.clamp(max=end) if index == 0 else torch.full_like(first_starts, ends[index - 1])
        spans.append((starts, torch.full_like(first_starts, end)))
    return spans


def model_block_spans(fill: torch.BoolTensor, attention_mask: torch.Tensor, block_size: int):
    """([(starts, ends)] per block, (B,) each row's number of blocks) of a block-causal model's plan (module doc)."""
    rows, length = fill.shape
    blocks = block_ids(attention_mask, length, block_size)
    running = blocks.cummax(1).values  # the block of the last real token at or before each column (-1 before any)
    first = torch.where(fill, blocks, blocks.new_full((), length)).min(1).values
    last = torch.where(fill, blocks, -1).max(1).values
    counts = torch.where(fill.any(1), last - first + 1, 0)
    spans = []
    for index in range(max(int(counts.max()) if rows else 0, 1)):
        target = (first + index)[:, None]
        empty = counts <= index
        starts = torch.where(empty, length, (running < target).sum(1))
        ends = torch.where(empty, length, (running <= target).sum(1))
        spans.append((starts, ends))
    return spans, counts


__all__ = ["BlockPlan", "model_block_spans", "semi_autoregressive_spans"]
