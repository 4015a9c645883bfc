"""Block caches for semi-autoregressive decoding (Fast-dLLM's prefix and dual cache; approximate).

At the first forward of a block the whole canvas runs and the cache records, per layer, the keys/values left of the
block (prefix cache) and, for the dual cache, right of it. The block's later forwards run only the block (dual) or the
block and everything after it (prefix); `update` returns the recorded keys/values concatenated around the fresh ones,
in canvas order, without storing the fresh ones. Keys then always span the full canvas, so the 2-D padding mask of the
canvas is the right key mask for any batch size and any left padding.
"""

import torch

from ..transformers_compat import LayerlessCache


class DiffusionBlockCache(LayerlessCache):
    """A `Cache` whose `update` returns recorded prefix (and suffix) keys/values around the current query span."""

    def __init__(self, dual: bool = False):
        super().__init__()
        self.dual = dual
        self.recording = False
        self.query_start = 0
        self.query_end = 0
        self.total_length = 0
        self.outside: dict[int, tuple[torch.Tensor, ...]] = {}
        self.slot_of_row: torch.LongTensor | None = None
        self.num_recorded = 0
        self.slots: torch.LongTensor | None = None

    def query_span(self, block_start: int, block_end: int, total_length: int) -> tuple[int, int]:
        """Canvas span [start, end) that later forwards of a block run: the block, plus the suffix without `dual`."""
        return block_start, block_end if self.dual else total_length

    def record(self, query_start: int, query_end: int, total_length: int, rows: torch.LongTensor, batch_size: int):
        """Arm the next (full-canvas) forward of batch rows `rows` to record the keys/values outside [start, end)."""
        self.recording = True
        self.query_start, self.query_end, self.total_length = query_start, query_end, total_length
        self.outside = {}
        self.slot_of_row = torch.full((batch_size,), -1, dtype=torch.long, device=rows.device)
        self.slot_of_row[rows] = torch.arange(rows.numel(), device=rows.device)
        self.num_recorded = rows.numel()
        self.slots = None

    def replay(self, rows: torch.LongTensor):
        """Arm the next forward (of the query span only, batch rows `rows`) to reuse the recorded keys/values."""
        self.recording = False
        # rows are sorted and a subset of the recorded rows: the same count means the same rows, in the same order
        self.slots = None if rows.numel() == self.num_recorded else self.slot_of_row[rows]

    def update(self, key_states, value_states, layer_idx, *args, **kwargs):
        if self.recording:
            start, end = self.query_start, self.query_end
            self.outside[layer_idx] = (
                key_states[:, :, :start],
                value_states[:, :, :start],
                key_states[:, :, end:],
                value_states[:, :, end:],
            )
            return key_states, value_states
        prefix_keys, prefix_values, suffix_keys, suffix_values = self.outside[layer_idx]
        if self.slots is not None:
            prefix_keys, prefix_values = prefix_keys[self.slots], prefix_values[self.slots]
            suffix_keys, suffix_values = suffix_keys[self.slots], suffix_values[self.slots]
        keys = torch.cat([prefix_keys, key_states, suffix_keys], dim=-2)
        values = torch.cat([prefix_values, value_states, suffix_values], dim=-2)
        return keys, values

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return 0 if self.recording else self.query_start

    def get_mask_sizes(self, query_length: int, layer_idx: int = 0) -> tuple[int, int]:
        return self.total_length, 0


__all__ = ["DiffusionBlockCache"]
