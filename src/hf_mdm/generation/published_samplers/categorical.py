"""The step every published sampler shares: reveal weights of a masked position and the Gumbel-ratio draw.

SEDD, MDLM and BD3-LM all draw x_s ~ Cat(q) at a masked position with

    q_j = p_j (t - s)  (j a token),        q_MASK = t - (t - s) sum_j p_j

(the reverse step t -> s < t of the absorbing process with mask probability proportional to t; for a normalised p,
MDLM's and BD3-LM's SUBS probabilities, q_MASK = s; for SEDD's unnormalised p̂ = s_j (e^sigma - 1) it is Euler's and
the analytic predictor's "stay" weight up to a per-row factor, which the draw ignores). All three draw with

    argmax_j q_j / (1e-10 - log(u_j + 1e-10)),   u ~ U[0, 1) of q's shape and dtype,

the Gumbel-max trick on log q; token identity with their samples needs this formula and the same uniform tensors.
"""

import torch


def sample_categorical(weights: torch.Tensor, generator: torch.Generator) -> torch.LongTensor:
    """One draw per row of `weights` (..., V) from weights / sum(weights), with one `torch.rand` of weights' shape and
    dtype from `generator` (the authors' `torch.rand_like`, which draws the same numbers from the global generator).
    Negative weights (SEDD's stay weight can be) never win against a positive one."""
    uniform = torch.rand(weights.shape, dtype=weights.dtype, device=weights.device, generator=generator)
    return (weights / (1e-10 - (uniform + 1e-10).log())).argmax(dim=-1)


def reveal_weights(probs: torch.Tensor, t, s, mask_token_id: int, normalized: bool) -> torch.Tensor:
    """q of the step t -> s for probabilities `probs` (B, L, V); `t` (a number or a tensor) and `s` (a tensor)
    broadcast against (B, 1, 1).

    `normalized`: sum_j p_j = 1 (SUBS), so q_MASK is written as s itself, MDLM's and BD3-LM's exact float; else
    q_MASK = t - (t - s) sum_j p_j (SEDD's p̂). The [MASK] column of `probs` must be 0 (the model's logits put the
    dtype minimum there). Only masked positions use q; the caller keeps the others (`keep_unmasked`)."""
    step = t - s
    weights = probs * step
    stay = s if normalized else t - step * probs.sum(dim=-1, keepdim=True)
    weights[..., mask_token_id] = stay[..., 0]
    return weights


def keep_unmasked(current: torch.LongTensor, proposal: torch.LongTensor, mask_token_id: int) -> torch.LongTensor:
    """`proposal` at the [MASK] positions of `current`, `current` elsewhere: a revealed token never changes (SUBS's
    carry-over; SEDD's rates are zero there)."""
    return torch.where(current == mask_token_id, proposal, current)
