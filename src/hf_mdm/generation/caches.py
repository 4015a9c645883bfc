"""Block caches for semi-autoregressive decoding, one registered class each: `none`, `prefix` and `dual`
(Fast-dLLM's prefix and dual cache; approximate).

At the first forward of a block the whole canvas runs and the cache records every layer's keys/values. The block's
later forwards run only a query span: the block and everything after it (`prefix`) or the block alone (`dual`).
`update` returns the recorded keys/values of the whole canvas with the fresh ones written in where each row needs them
fresh: from the row's own block start to the end of the canvas (prefix) or of the block (dual). Rows whose block
starts later than the span (block 0 of a row with fewer [MASK] in its prompt) read the span's first positions from
the record, so a row gets the same keys alone and in any batch. Keys always span the full canvas, so the 2-D padding
mask of the canvas is the key mask for any batch size and any left padding.

A new cache is one class registered with `@register_cache(name)`; `refreshes_revealed = False` declares that it
keeps keys of revealed tokens of the current block, which strategies that revise tokens cannot use.
"""

import torch

from ..registry import Registry
from ..transformers_compat import LayerlessCache


CACHES = Registry("cache", "hf_mdm.generation.register_cache", "cache arguments")
register_cache = CACHES.register


class BlockCache:
    """Base class of the registered caches. `active`: whether the model forward gets this object as its cache.

    `refreshes_revealed`: the current block's tokens are recomputed by every forward, so a strategy may remask or
    edit revealed tokens of the block. The cache decides itself when it records: the sampler tells it when a block
    begins (`begin_block`), and `model_inputs` turns each request into the model's forward arguments.
    """

    name: str
    active = False
    refreshes_revealed = True

    def begin_block(self) -> None:
        """A new block begins (the canvas left and right of it has changed)."""

    def check_model_order(self, model_order, sep_token_id) -> None:
        """Refuse a canvas the model sees in another column order (`model_order`), if the cache cannot follow it."""

    def model_inputs(self, request, query_starts) -> dict:
        """The forward's keyword arguments for `request`: the whole canvas, no cache. `query_starts(request)` gives
        each row's first position whose keys/values a block cache must keep fresh."""
        return dict(
            input_ids=request.input_ids,
            attention_mask=request.attention_mask,
            position_ids=request.position_ids,
            cache=None,
            logits_to_keep=request.keep,
        )


@register_cache("none")
class NoBlockCache(BlockCache):
    """Every forward runs the whole canvas."""


class DiffusionBlockCache(BlockCache, LayerlessCache):
    """A transformers `Cache` whose `update` returns recorded keys/values with the query span's fresh ones inside.

    Subclasses set `dual` (the fresh region ends at the block's end instead of the canvas end).
    """

    active = True
    dual = False

    def __init__(self):
        super().__init__()
        self.recording = False
        self.query_start = 0
        self.query_end = 0
        self.total_length = 0
        self.recorded: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self.slot_of_row: torch.LongTensor | None = None
        self.num_recorded = 0
        self.slots: torch.LongTensor | None = None
        self.fresh: torch.BoolTensor | None = None
        self.all_fresh = True
        self.record_next = True

    def begin_block(self):
        """Record at the block's first forward: the keys/values outside the query span are fixed for the block."""
        self.record_next = True

    def check_model_order(self, model_order, sep_token_id):
        if model_order is not None:
            raise ValueError(
                f"The prompts end with the tokenizer's end marker (sep_token_id={sep_token_id}), which the model sees "
                "after the generated region; the block caches cannot reorder the canvas. Use cache='none', or "
                "tokenize without the end marker (add_special_tokens=False)."
            )

    def model_inputs(self, request, query_starts):
        """The block's first forward (or one with `request.refresh_cache`) runs the whole canvas and records it;
        the others run only the query span and replay the record around it."""
        if self.record_next or request.refresh_cache:
            self.record_next = False
            length = request.input_ids.shape[1]
            self.record(query_starts(request), request.block_end, length, request.rows, request.batch_size)
            return {**super().model_inputs(request, query_starts), "cache": self}
        query = slice(self.query_start, self.query_end)
        self.replay(request.rows)
        return dict(
            input_ids=request.input_ids[:, query],
            attention_mask=request.attention_mask,
            position_ids=request.position_ids[:, query],
            cache=self,
            logits_to_keep=request.keep - self.query_start,
        )

    def query_span(self, block_start: int, block_end: int, total_length: int) -> tuple[int, int]:
        """Canvas span [start, end) that later forwards of a block run: the block, plus the suffix without `dual`."""
        return block_start, block_end if self.dual else total_length

    def record(
        self,
        query_starts: torch.LongTensor,
        block_end: int,
        total_length: int,
        rows: torch.LongTensor,
        batch_size: int,
    ):
        """Arm the next (full-canvas) forward of batch rows `rows` to record every layer's keys/values; later
        forwards run [min(query_starts), query end) and take fresh keys from each row's own query start on."""
        query_start = int(query_starts.min())
        self.query_start, self.query_end = self.query_span(query_start, block_end, total_length)
        self.recording, self.total_length = True, total_length
        self.recorded = {}
        self.slot_of_row = torch.full((batch_size,), -1, dtype=torch.long, device=rows.device)
        self.slot_of_row[rows] = torch.arange(rows.numel(), device=rows.device)
        self.num_recorded = rows.numel()
        span = torch.arange(self.query_start, self.query_end, device=rows.device)
        self.fresh = span[None, :] >= query_starts[:, None]  # (recorded rows, span)
        self.all_fresh = bool(self.fresh.all())  # one check per block: then replays splice without a select
        self.slots = None

    def replay(self, rows: torch.LongTensor):
        """Arm the next forward (of the query span only, batch rows `rows`) to reuse the recorded keys/values."""
        self.recording = False
        # rows are sorted and a subset of the recorded rows: the same count means the same rows, in the same order
        self.slots = None if rows.numel() == self.num_recorded else self.slot_of_row[rows]

    def update(self, key_states, value_states, layer_idx, *args, **kwargs):
        if self.recording:
            self.recorded[layer_idx] = (key_states, value_states)
            return key_states, value_states
        keys, values = self.recorded[layer_idx]
        fresh = self.fresh
        if self.slots is not None:
            keys, values, fresh = keys[self.slots], values[self.slots], fresh[self.slots]
        start, end = self.query_start, self.query_end
        if self.all_fresh:
            keys = torch.cat([keys[:, :, :start], key_states, keys[:, :, end:]], dim=-2)
            values = torch.cat([values[:, :, :start], value_states, values[:, :, end:]], dim=-2)
            return keys, values
        span = slice(start, end)
        fresh = fresh[:, None, :, None]
        keys, values = keys.clone(), values.clone()
        keys[:, :, span] = torch.where(fresh, key_states, keys[:, :, span])
        values[:, :, span] = torch.where(fresh, value_states, values[:, :, span])
        return keys, values

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return 0 if self.recording else self.query_start

    def get_mask_sizes(self, query_length: int, layer_idx: int = 0) -> tuple[int, int]:
        return self.total_length, 0


@register_cache("prefix")
class PrefixBlockCache(DiffusionBlockCache):
    """Keys/values left of the block are computed once per block; the block and the suffix are recomputed."""


@register_cache("dual")
class DualBlockCache(DiffusionBlockCache):
    """Keys/values left and right of the block are computed once per block; only the block is recomputed."""

    dual = True


__all__ = [
    "CACHES",
    "BlockCache",
    "DiffusionBlockCache",
    "DualBlockCache",
    "NoBlockCache",
    "PrefixBlockCache",
    "register_cache",
]
