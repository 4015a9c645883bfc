"""BD3-LM's semi-autoregressive block sampler (`algo.sampler: semi_ar`; `diffusion.py:_semi_ar_sampler`,
`_ddpm_caching_update`, `_nucleus_sample`, `_check_stop_conds` of kuleshov-group/bd3lms@1c3e8f4)."""

import numpy as np
import torch

from ...value_checks import is_integer, is_real
from .base import PublishedSampler, check_token, register_published_sampler
from .categorical import keep_unmasked, reveal_weights, sample_categorical
from .mdlm import subs_log_probs


ENTROPY_WINDOW, MIN_ENTROPY, MAX_TRIES = 256, 4.0, 10


def nucleus(probs: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the tokens whose descending cumulative probability is <= top_p (always the top one), renormalise; 1: p."""
    if top_p == 1.0:
        return probs
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    keep = sorted_probs.cumsum(dim=-1) <= top_p
    keep[..., 0] = True
    kept = torch.zeros_like(probs).scatter(-1, order, sorted_probs * keep)
    return kept / kept.sum(dim=-1, keepdim=True)


def low_entropy(x: torch.LongTensor) -> bool:
    """The authors' stop test: entropy (nats) of the token counts of the last 256 columns, all rows together, < 4."""
    _, counts = torch.unique(x[:, -ENTROPY_WINDOW:], return_counts=True)
    return bool(torch.special.entr(counts.float() / counts.sum()).sum() < MIN_ENTROPY)


@register_published_sampler("bd3lm_semi_ar")
class BD3LMSemiAR(PublishedSampler):
    """Blocks of B = config.block_size tokens, left to right; block 0 starts with `bos_token_id` (default
    config.bos_token_id). The model sees the last `context_size` tokens (block-causal forward, positions from 0).
    Inside a block, at most `steps` steps, stopping as soon as no [MASK] is left in the whole canvas:

    * `first_hitting=True` (default; Zheng et al. 2025): t <- t u^(1/n), u = numpy_random_state.rand(), n the [MASK]
      count of the window; one float64 uniform tensor (1, B, V) draws tokens from p, then
      `torch.randint(n_block)` picks the one masked position of the block that takes its token: exactly one token per
      forward. Batch size 1 only, as the authors' (`.item()`), and steps >= block_size (else [MASK] would be left).
    * `first_hitting=False`: t = linspace(1, 0, steps)[i], s = t - 1/steps, q_j = p_j (1 - s/t), q_MASK = s/t, p reused
      while the block is unchanged. Quirk kept: the last step has t = 0, so q = p * inf and every [MASK] still left
      there becomes token 0.

    p = the SUBS probabilities of the block in float64, through `nucleus(p, nucleus_p)`; revealed tokens never change;
    the model is conditioned on sigma = min(-log(1 - t), sigma(1)) (zeroed inside when not time-conditioned).
    Once the canvas is longer than 256 tokens, a sample whose last 256 columns have entropy < 4 nats is discarded
    and the whole sampler reruns, continuing the random streams, up to 10 tries (then ValueError), as the authors'
    `_sample`. `kv_cache`: the authors' flag; every forward here is the uncached prefix forward, which is the same
    float32 math (the fixture's kv and no-kv cases are identical), so it changes neither the ids nor the cost: the
    authors' cached run makes one more forward per block (the clean block's key/value pass).
    """

    family = "BD3-LM"
    output_parametrization = "logits"
    block_causal = True
    uses_numpy_random_state = True

    def __init__(self, first_hitting=True, nucleus_p=1.0, kv_cache=False, bos_token_id=None, context_size=None):
        for name, value in (("first_hitting", first_hitting), ("kv_cache", kv_cache)):
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be True or False, got {value!r}.")
        if not is_real(nucleus_p) or not 0.0 < nucleus_p <= 1.0:
            raise ValueError(f"nucleus_p must be in (0, 1] (1.0: no nucleus filtering), got {nucleus_p!r}.")
        self.first_hitting, self.nucleus_p, self.kv_cache = first_hitting, float(nucleus_p), kv_cache
        self.bos_token_id, self.context_size = bos_token_id, context_size

    def check_run(self, config, batch_size, length, steps, numpy_random_state):
        block = config.block_size
        if length % block:
            raise ValueError(f"length={length} must be a multiple of the model's block_size ({block}).")
        bos_token_id = config.bos_token_id if self.bos_token_id is None else self.bos_token_id
        if bos_token_id is None:
            raise ValueError("BD3-LM's sampler starts with BOS: pass bos_token_id= (GPT-2's 50256 for bd3lm-owt).")
        context_size = config.max_position_embeddings if self.context_size is None else self.context_size
        if (
            not is_integer(context_size)
            or context_size % block
            or not block <= context_size <= config.max_position_embeddings
        ):
            raise ValueError(
                f"context_size must be a multiple of block_size ({block}) up to max_position_embeddings "
                f"({config.max_position_embeddings}) (the window must hold whole blocks), got {context_size!r}."
            )
        if self.first_hitting:
            if batch_size != 1:
                raise ValueError(
                    "The authors' first-hitting sampler is for batch size 1: pass batch_size=1 or first_hitting=False."
                )
            if steps < block:
                raise ValueError(
                    f"first_hitting reveals one token per step: steps={steps} < block_size={block} would leave [MASK] "
                    f"in the sample; pass steps >= {block} (the authors use 5000, an upper bound)."
                )
            if not isinstance(numpy_random_state, np.random.RandomState):
                raise ValueError(
                    "first_hitting draws its times from numpy: pass numpy_random_state=numpy.random.RandomState(seed) "
                    "(the authors' global numpy RNG after numpy.random.seed(seed))."
                )
        return {"bos_token_id": check_token(bos_token_id, "bos_token_id", config), "context_size": int(context_size)}

    def run(self, model, config, batch_size, length, steps, generator, numpy_random_state, **options):
        for _ in range(MAX_TRIES):
            x = self.run_once(model, config, batch_size, length, steps, generator, numpy_random_state, **options)
            if x is not None:
                return x
        raise ValueError(
            f"Sampling failed: {MAX_TRIES} samples in a row had a 256-token window of entropy < {MIN_ENTROPY} nats "
            "(the authors' stop test); the model repeats itself."
        )

    def run_once(
        self, model, config, batch_size, length, steps, generator, numpy_random_state, bos_token_id, context_size
    ):
        """One pass of `_semi_ar_sampler`: the canvas, or None when the entropy test discards it."""
        block, mask = config.block_size, config.mask_token_id
        ones = torch.ones(batch_size, 1, device=model.device)
        x = torch.empty(batch_size, 0, dtype=torch.long, device=model.device)
        for stride in range(length // block):
            new = torch.full((batch_size, block), mask, device=model.device)
            if stride == 0:
                new[:, 0] = bos_token_id
            x = torch.cat([x, new], dim=1)
            window = slice(max(x.shape[1] - context_size, 0), x.shape[1])
            timesteps = torch.linspace(1, 0, steps, device=model.device)
            t, probs = 1.0, None
            for i in range(steps):
                if not (x == mask).any():
                    break
                if self.first_hitting:
                    t *= numpy_random_state.rand() ** (1 / int((x[:, window] == mask).sum()))
                else:
                    t = timesteps[i]
                probs, x[:, window] = self.step(model, config, x[:, window], t * ones, 1 / steps, probs, generator)
            if x.shape[1] > ENTROPY_WINDOW and low_entropy(x):
                return None
        return x

    def step(self, model, config, x, t, dt, probs, generator):
        """`_ddpm_caching_update` on the window x: (probs to reuse or None, the window with the block updated)."""
        block, mask = config.block_size, config.mask_token_id
        if probs is None:
            sigma = torch.minimum(-torch.log(1 - t), config.noise_schedule.total_noise(torch.tensor(1.0)))
            logits = model(x, sigma.reshape(-1))[:, -block:]
            probs = nucleus(subs_log_probs(logits).to(torch.float64).exp(), self.nucleus_p)
        current = x[:, -block:]
        if self.first_hitting:
            proposal = sample_categorical(probs, generator)
            masked = current == mask
            position = torch.randint(0, int(masked.sum()), (1,), generator=generator, device=generator.device)
            chosen = masked.nonzero()[position, 1]
            proposal = torch.where(torch.arange(block, device=x.device) == chosen[:, None], proposal, current)
        else:
            mask_prob = ((t - dt) / t)[..., None]
            proposal = sample_categorical(reveal_weights(probs, 1, mask_prob, mask, normalized=True), generator)
        x_next = torch.cat([x[:, :-block], keep_unmasked(current, proposal, mask)], dim=1)
        return (probs if torch.equal(x_next, x) else None), x_next
