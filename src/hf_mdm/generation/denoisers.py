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
from .caches import BlockCache


DENOISERS = Registry("denoiser adapter", "hf_mdm.generation.register_denoiser")
register_denoiser = DENOISERS.register


@dataclass
class DenoiseRequest:
    r"""
    One forward's inputs, built by `DiffusionSampler.model_request`. input_ids, attention_mask, position_ids: (R, L),
    canvas rows `rows` of a batch of `batch_size`. keep: canvas positions whose logits are needed (window `columns`
    of the current block). block_starts: (R,) each row's start of the current block, which ends at `block_end`
    (`block_ends` (R,): each row's own end, on a block-causal model; None: all at `block_end`). cache: the registered
    block cache, which turns the request into the forward's arguments (`model_inputs`); refresh_cache: make it record
    in this forward even mid-block. t: the diffusion time of the step the forward serves, or one per row (R,), for a
    time-conditioned model (`DenoiserAdapter.time_conditioned`; None otherwise).
    """

    input_ids: torch.LongTensor
    attention_mask: torch.LongTensor
    position_ids: torch.LongTensor
    keep: torch.LongTensor
    block_starts: torch.LongTensor
    block_end: int
    rows: torch.LongTensor
    batch_size: int
    cache: BlockCache
    refresh_cache: bool = False
    columns: torch.LongTensor | None = None
    block_ends: torch.LongTensor | None = None
    t: "float | torch.Tensor | None" = None


class DenoiserAdapter:
    """Base class: `logits(request)` returns (R, len(keep), vocab). The base runs no active block cache
    (`cache="prefix"`/`"dual"`); an adapter that does overrides `check_cache`."""

    name: str

    def __init__(self, model):
        self.model = model

    def check_cache(self, cache) -> None:
        """Refuse a block cache this adapter cannot run (before any forward)."""
        if cache.active:
            raise ValueError(
                f"cache={cache.name!r} needs a denoiser adapter that runs a block cache (such as "
                f"MDMForMaskedGeneration's); {type(self.model).__name__} uses the {self.name!r} adapter, which "
                "cannot. Use cache='none'."
            )

    def block_size(self) -> int | None:
        """The block size of a block-causal model (its blocks are the decoding plan's), None when bidirectional."""
        return None

    def time_conditioned(self) -> bool:
        """Whether the model's logits depend on the step's time `request.t` (then every step needs a forward)."""
        return False

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
    and the request's block cache decides which span each forward runs (`BlockCache.model_inputs`).
    """

    def check_cache(self, cache):
        pass  # runs every registered cache

    def block_size(self):
        """`MDMConfig.block_size`: an int for a block-causal model."""
        return getattr(self.model.config, "block_size", None)

    def query_starts(self, request) -> torch.LongTensor:
        """(R,) each row's first position a block cache keeps fresh: its block start, or, for a shifted model
        (`logits_shift`), the real token before it, where the block's first token is predicted."""
        if getattr(self.model.config, "logits_shift", 0):
            return previous_real_positions(request.attention_mask, request.block_starts[:, None])[:, 0]
        return request.block_starts

    def logits(self, request):
        return self.model(**request.cache.model_inputs(request, self.query_starts)).logits


@register_denoiser("dit")
class DiTDenoiser(MDMDenoiser):
    """`DiTForMaskedDiffusion` (SEDD, MDLM, BD3-LM): hf-mdm's forward arguments plus the step's time `t`, from which a
    time-conditioned model (SEDD) computes its noise level sigma(t) = -log alpha(t)."""

    def time_conditioned(self):
        return bool(self.model.config.time_conditioning)

    def logits(self, request):
        inputs = request.cache.model_inputs(request, self.query_starts)
        if request.t is not None:
            t = torch.as_tensor(request.t, dtype=torch.float32, device=request.input_ids.device)
            inputs["t"] = t.expand(request.input_ids.shape[0])
        return self.model(**inputs).logits


def model_block_size(model) -> int | None:
    """The block size of a block-causal model, as its denoiser adapter reads it (the `config.block_size` of
    hf-mdm's models, LLaDA 2.x and SDAR); None for a bidirectional one, a stock masked LM (whose config may use the
    name for something else, such as BigBird's sparse-attention blocks) and a model without `generate()` (an
    oracle). Every evaluation that noises or scores blocks asks this one function."""
    adapter = getattr(model, "denoiser_adapter", None)
    return None if adapter is None else DENOISERS.build(adapter, model=model).block_size()


__all__ = [
    "DENOISERS",
    "DenoiseRequest",
    "DenoiserAdapter",
    "DiTDenoiser",
    "MDMDenoiser",
    "MaskedLMDenoiser",
    "model_block_size",
    "register_denoiser",
]
