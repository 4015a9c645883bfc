"""Denoiser adapters: how `generate()` runs a masked LM to get the logits of p(x_i | x_t) at some canvas positions.

`generate()` never inspects a model's forward signature. Each model class names its adapter in the class attribute
`denoiser_adapter` (`"masked_lm"` for any model given `generate()` by `enable_diffusion_generation`, `"mdm"` for
`MDMForMaskedGeneration`), and the adapter knows which arguments that forward takes. A new family of models is one
adapter class registered with `@register_denoiser(name)` and named by its model class.
"""

import torch

from ..registry import Registry


DENOISERS = Registry("denoiser adapter", "register_denoiser")
register_denoiser = DENOISERS.register


class DenoiserAdapter:
    """Base class. `logits(...)` returns (rows, len(keep), vocab) logits at canvas positions `keep`.

    `supports_cache`: whether the adapter can run a block cache (`cache="prefix"`/`"dual"`).
    """

    name: str
    supports_cache = False

    def __init__(self, model):
        self.model = model

    def logits(self, input_ids, attention_mask, position_ids, keep, block, cache, refresh_cache, rows, batch_size):
        """input_ids, attention_mask, position_ids: (len(rows), length), the canvas rows `rows` of a batch of
        `batch_size`; keep: 1-D canvas positions to score; block: the current block's [start, end); cache: the block
        cache or None; refresh_cache: record the cache anew in this forward."""
        raise NotImplementedError


@register_denoiser("masked_lm")
class MaskedLMDenoiser(DenoiserAdapter):
    """A stock masked LM (BERT, RoBERTa, ModernBERT, ...): `model(input_ids, attention_mask).logits`, full forward.

    Padding is moved to the right first, so that models computing their own position ids number every row's real
    tokens from 0; the logits are gathered back to canvas order.
    """

    def logits(self, input_ids, attention_mask, position_ids, keep, block, cache, refresh_cache, rows, batch_size):
        if bool(attention_mask.all()):
            return self.model(input_ids=input_ids, attention_mask=attention_mask).logits[:, keep]
        order = (1 - attention_mask).argsort(dim=1, stable=True)
        logits = self.model(
            input_ids=input_ids.gather(1, order), attention_mask=attention_mask.gather(1, order)
        ).logits
        packed_index = order.argsort(dim=1)[:, keep]
        return logits.gather(1, packed_index.unsqueeze(-1).expand(-1, -1, logits.shape[-1]))


@register_denoiser("mdm")
class MDMDenoiser(DenoiserAdapter):
    """hf-mdm's forward, which takes `position_ids`, `logits_to_keep` and `cache`: the LM head runs on `keep` only,
    and with a block cache only the block (dual) or the block and its suffix (prefix) is recomputed after the block's
    first forward, which records the keys/values outside that span."""

    supports_cache = True

    def logits(self, input_ids, attention_mask, position_ids, keep, block, cache, refresh_cache, rows, batch_size):
        if cache is None or refresh_cache:
            if cache is not None:
                length = input_ids.shape[1]
                query_start = max(block[0] - int(getattr(self.model.config, "logits_shift", 0)), 0)
                query_end = cache.query_span(query_start, block[1], length)[1]
                cache.record(query_start, query_end, length, rows, batch_size)
            return self.model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids,
                cache=cache,
                logits_to_keep=keep,
            ).logits
        query_start, query_end = cache.query_start, cache.query_end
        cache.replay(rows)
        return self.model(
            input_ids=input_ids[:, query_start:query_end],
            attention_mask=attention_mask,
            position_ids=position_ids[:, query_start:query_end],
            cache=cache,
            logits_to_keep=keep - query_start,
        ).logits


__all__ = ["DENOISERS", "DenoiserAdapter", "MDMDenoiser", "MaskedLMDenoiser", "register_denoiser"]
