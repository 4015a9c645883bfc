"""Denoiser adapters: how `generate()` runs a masked LM to get the logits of p(x_i | x_t) at some canvas positions.

`generate()` never inspects a model's forward signature. Each model class names its adapter in the class attribute
`denoiser_adapter` (`"masked_lm"` for any model given `generate()` by `enable_diffusion_generation`, `"mdm"` for
`MDMForMaskedGeneration`), and the adapter knows which arguments that forward takes. A new family of models is one
adapter class registered with `@register_denoiser(name)` and named by its model class.
"""

from dataclasses import dataclass

import torch

from ..logits_shift import previous_real_positions
from ..registry import Registry


DENOISERS = Registry("denoiser adapter", "hf_mdm.generation.register_denoiser")
register_denoiser = DENOISERS.register


@dataclass
class DenoiseRequest:
    r"""
    One forward's inputs. input_ids, attention_mask, position_ids: (R, L), canvas rows `rows` of a batch of
    `batch_size`. keep: canvas positions whose logits are needed. block_starts: (R,) each row's start of the current
    block, which ends at `block_end`. cache: the registered block cache; refresh_cache: record it in this forward.
    """

    input_ids: torch.LongTensor
    attention_mask: torch.LongTensor
    position_ids: torch.LongTensor
    keep: torch.LongTensor
    block_starts: torch.LongTensor
    block_end: int
    rows: torch.LongTensor
    batch_size: int
    cache: object
    refresh_cache: bool


class DenoiserAdapter:
    """Base class: `logits(request)` returns (R, len(keep), vocab). `supports_cache`: whether it runs an active
    block cache (`cache="prefix"`/`"dual"`)."""

    name: str
    supports_cache = False

    def __init__(self, model):
        self.model = model

    def logits(self, request: DenoiseRequest) -> torch.Tensor:
        raise NotImplementedError


@register_denoiser("masked_lm")
class MaskedLMDenoiser(DenoiserAdapter):
    """A stock masked LM (BERT, RoBERTa, ModernBERT, ...): `model(input_ids, attention_mask).logits`, full forward.

    Padding is moved to the right first, so that models computing their own position ids number every row's real
    tokens from 0; the logits are gathered back to canvas order.
    """

    def logits(self, request):
        input_ids, attention_mask, keep = request.input_ids, request.attention_mask, request.keep
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
    and with an active block cache the block's first forward records every layer's keys/values and later forwards
    run only the cache's query span (each row's fresh region starts at its own block start, or, for a shifted model,
    at the real token before it).
    """

    supports_cache = True

    def logits(self, request):
        cache = request.cache
        if not cache.active or request.refresh_cache:
            if cache.active:
                query_starts = request.block_starts
                if getattr(self.model.config, "logits_shift", 0):
                    # the block's first token is predicted at its previous real token: that one is in the query too
                    query_starts = previous_real_positions(request.attention_mask, query_starts[:, None])[:, 0]
                length = request.input_ids.shape[1]
                cache.record(query_starts, request.block_end, length, request.rows, request.batch_size)
            return self.model(
                input_ids=request.input_ids,
                attention_mask=request.attention_mask,
                position_ids=request.position_ids,
                cache=cache if cache.active else None,
                logits_to_keep=request.keep,
            ).logits
        query = slice(cache.query_start, cache.query_end)
        cache.replay(request.rows)
        return self.model(
            input_ids=request.input_ids[:, query],
            attention_mask=request.attention_mask,
            position_ids=request.position_ids[:, query],
            cache=cache,
            logits_to_keep=request.keep - cache.query_start,
        ).logits


__all__ = ["DENOISERS", "DenoiseRequest", "DenoiserAdapter", "MDMDenoiser", "MaskedLMDenoiser", "register_denoiser"]
