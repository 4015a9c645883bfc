"""Block caches, one registered class each: `none`, `prefix` and `dual` (Fast-dLLM's prefix and dual cache;
approximate, for bidirectional models) and `exact` (block-causal models: finished blocks' keys/values stored once).

Prefix and dual: at the first forward of a block the whole canvas runs and the cache records every layer's
keys/values. The block's later forwards run only a query span: the block and everything after it (`prefix`) or the
block alone (`dual`). `update` returns the recorded keys/values of the whole canvas with the fresh ones written in
where each row needs them fresh: from the row's own block start to the end of the canvas (prefix) or of the block
(dual). Rows whose block starts later than the span (block 0 of a row with fewer [MASK] in its prompt) read the span's
first positions from the record, so a row gets the same keys alone and in any batch. Keys always span the full
canvas, so the 2-D padding mask of the canvas is the key mask for any batch size and any left padding.

Exact (`ExactBlockCache`): on a block-causal model a token's keys/values depend only on its own block and earlier
ones, so once a row's block is finished they never change. See the class.

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

    def reset(self) -> None:
        """A new run begins (`DiffusionSampler.prepare`): forget everything stored."""

    def begin_block(self) -> None:
        """A new block begins (the canvas left and right of it has changed)."""

    def check_attention(self, block_size: int | None) -> None:
        """Refuse, before any forward, a model whose attention this cache is not made for: `block_size` is the
        block size of a block-causal model, None for a bidirectional one."""

    def check_model_order(self, model_order, sep_token_id) -> None:
        """Refuse a canvas the model sees in another column order (`model_order`): an active cache cannot follow it."""
        if self.active and model_order is not None:
            raise ValueError(
                f"The prompts end with the tokenizer's end marker (sep_token_id={sep_token_id}), which the model sees "
                "after the generated region; the block caches cannot reorder the canvas. Use cache='none', or "
                "tokenize without the end marker (add_special_tokens=False)."
            )

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

    def check_attention(self, block_size):
        if block_size is not None:
            raise ValueError(
                f"cache={self.name!r} approximates a bidirectional model's keys; this model is block-causal "
                f"(block_size={block_size}), where cache='exact' stores every finished block's keys exactly. Use "
                "cache='exact' (its default) or cache='none'."
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


@register_cache("exact")
class ExactBlockCache(BlockCache, LayerlessCache):
    r"""The exact block cache of a block-causal model (`MDMConfig(block_size=B)`), a transformers `Cache`.

    Under block-causal attention the keys/values of column c (every layer) depend only on c's block and earlier ones,
    so once a row has finished the block they are final. The cache stores each layer's keys/values per row and
    canvas column, and `stored[layer][r]` = the columns [0, stored) of row r that hold final keys/values. A forward
    of rows R runs only the query columns [q0, e): e = the greatest block end of R (later blocks are invisible to
    the block), q0 = min over R of `stored` (and of the real token before each row's block for a shifted model,
    whose logits are read there). Its keys are the stored [0, q0) and the fresh query ones; it writes the fresh ones
    in and stores each row's columns before its block start, which are final. So a block's first forward runs the
    columns finished since the row's last forward too and commits them in that same forward, the block's later
    forwards run only the window, and a row absent from a forward (finished, or with nothing to do) keeps its own
    stored keys and catches up at its next forward. The model gets the 2-D padding mask of all keys
    ([0, e)) and the position ids of the query. Keys it would read that no forward stored raise a RuntimeError.
    """

    active = True

    def __init__(self):
        super().__init__()
        self.reset()

    def reset(self):
        self.keys: dict[int, torch.Tensor] = {}
        self.values: dict[int, torch.Tensor] = {}
        self.stored: dict[int, torch.LongTensor] = {}  # per layer, (batch,) on the CPU
        self.query_start = 0
        self.rows: torch.LongTensor | None = None  # the forward's batch rows (None: all of them), on the device
        self.host_rows: torch.LongTensor | None = None  # the same, on the CPU
        self.finished: torch.LongTensor | None = None  # (R,) each row's block start: final columns before it
        self.num_rows = self.canvas_length = 0

    def check_attention(self, block_size):
        if block_size is None:
            raise ValueError(
                "cache='exact' needs a block-causal model (MDMConfig(block_size=B)): on a bidirectional model a "
                "finished block's keys change whenever a later token is revealed. Use cache='none', or 'prefix' / "
                "'dual' (approximate)."
            )

    def model_inputs(self, request, query_starts):
        """The query columns [q0, e) of `request` with this cache, its keys' 2-D padding mask [0, e) and the query's
        position ids (class docstring)."""
        self.num_rows, self.canvas_length = request.batch_size, request.input_ids.shape[1]
        self.host_rows = request.rows.cpu()
        self.rows = None if request.rows.numel() == request.batch_size else request.rows
        stored = [self.stored[layer][self.host_rows] for layer in self.stored] or [torch.zeros(1, dtype=torch.long)]
        query_start = min(int(query_starts(request).min()), int(torch.stack(stored).min()))
        query_end = int(request.block_ends.max())
        self.query_start, self.finished = query_start, request.block_starts.cpu()
        return dict(
            input_ids=request.input_ids[:, query_start:query_end],
            attention_mask=request.attention_mask[:, :query_end],
            position_ids=request.position_ids[:, query_start:query_end],
            cache=self,
            logits_to_keep=request.keep - query_start,
        )

    def update(self, key_states, value_states, layer_idx, *args, **kwargs):
        start, end = self.query_start, self.query_start + key_states.shape[-2]
        if layer_idx not in self.keys:  # the run's first forward through this layer
            shape = (self.num_rows, key_states.shape[1], self.canvas_length, key_states.shape[-1])
            self.keys[layer_idx] = key_states.new_zeros(shape)
            self.values[layer_idx] = value_states.new_zeros(shape)
            self.stored[layer_idx] = torch.zeros(self.num_rows, dtype=torch.long)
        stored = self.stored[layer_idx][self.host_rows]
        if bool((stored < start).any()):
            missing = self.host_rows[stored < start].tolist()
            raise RuntimeError(
                f"The exact block cache holds layer {layer_idx}'s keys of rows {missing} only up to columns "
                f"{stored[stored < start].tolist()}, but this forward reads them up to column {start}: reading on "
                "would attend to keys no forward stored. Build a new sampler (DiffusionSampler.from_config) and "
                "prepare() for each run and model."
            )
        rows = slice(None) if self.rows is None else self.rows
        keys, values = self.keys[layer_idx], self.values[layer_idx]
        keys[rows, :, start:end] = key_states
        values[rows, :, start:end] = value_states
        self.stored[layer_idx][self.host_rows] = torch.maximum(stored, self.finished.clamp(max=end))
        return keys[rows, :, :end], values[rows, :, :end]

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.query_start

    def get_mask_sizes(self, query_length: int, layer_idx: int = 0) -> tuple[int, int]:
        return self.query_start + query_length, 0


__all__ = [
    "CACHES",
    "BlockCache",
    "DiffusionBlockCache",
    "DualBlockCache",
    "ExactBlockCache",
    "NoBlockCache",
    "PrefixBlockCache",
    "register_cache",
]
