"""MDLM's cached ancestral sampler (`sampling.predictor: ddpm_cache`, `diffusion.py:_sample` and
`_ddpm_caching_update` of kuleshov-group/mdlm@c112c52), with its final argmax (`noise_removal`)."""

import torch

from .base import PublishedSampler, check_final_time, register_published_sampler, reverse_time_steps
from .categorical import keep_unmasked, reveal_weights, sample_categorical


def subs_log_probs(logits: torch.Tensor) -> torch.Tensor:
    """log p(x_0 | x_t) = logits - logsumexp(logits), MDLM's SUBS at masked positions (the [MASK] column holds the
    dtype minimum, so it gets probability 0); the carry-over of unmasked tokens is `keep_unmasked`'s."""
    return logits - torch.logsumexp(logits, dim=-1, keepdim=True)


@register_published_sampler("mdlm_ddpm_cache")
class MDLMDDPMCache(PublishedSampler):
    """x_T = all [MASK] (batch_size, length); on the grid linspace(1, eps, steps + 1) each step t -> s = t - dt
    draws every masked position from q_j = p_j (t - s), q_MASK = s, p = SUBS softmax (one float32 uniform tensor
    (B, L, V) per step, cache hits included); p is reused while the canvas is unchanged and the model is not
    time-conditioned. The last forward at t = eps takes the argmax of p at the positions still masked.

    The authors' sampler has no prompt and no padding: it always samples whole sequences from [MASK].
    """

    family = "MDLM"
    output_parametrization = "logits"

    def __init__(self, eps=1e-5):
        self.eps = check_final_time(eps)

    def run(self, model, config, batch_size, length, steps, generator, numpy_random_state):
        mask, schedule = config.mask_token_id, config.noise_schedule
        x = torch.full((batch_size, length), mask, device=model.device)
        probs = None
        for t, s in reverse_time_steps(steps, self.eps, batch_size, model.device):
            if s is None:
                log_probs = subs_log_probs(model(x, schedule.total_noise(t).reshape(-1)))
                return keep_unmasked(x, log_probs.argmax(dim=-1), mask)
            if probs is None:
                probs = subs_log_probs(model(x, schedule.total_noise(t).reshape(-1))).exp()
            weights = reveal_weights(probs, t[..., None], s[..., None], mask, normalized=True)
            x_next = keep_unmasked(x, sample_categorical(weights, generator), mask)
            if config.time_conditioning or not torch.equal(x_next, x):
                probs = None
            x = x_next
