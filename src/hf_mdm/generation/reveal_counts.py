"""Reveal-count rules: how many masked positions a ranked strategy reveals at each step of a block.

A rule maps the number m_b of masked positions of each row in a block and the block's step count K to counts
n_{b,1..K} >= 0 with sum_k n_{b,k} = m_b, so the block is complete after its last step. A rule is one small class
registered by name; `@register_reveal_counts("name")` adds one without editing the decoder, and the keyword arguments
of its constructor come from `DiffusionGenerationConfig.reveal_counts_kwargs`.

`llada` and `dream` are the count rules of those projects' reference samplers: with the matching strategy they
reproduce the samplers' greedy outputs token for token (see docs/generation.md).
"""

import torch

from ..registry import Registry
from ..schedules import NoiseSchedule


REVEAL_COUNT_RULES = Registry("reveal_counts rule", "hf_mdm.register_reveal_counts", "reveal_counts_kwargs")
register_reveal_counts = REVEAL_COUNT_RULES.register
get_reveal_count_rule = REVEAL_COUNT_RULES.build


class RevealCountRule:
    """Base class: `__call__(num_masked (B,), steps, schedule) -> counts (B, steps)`, rows summing to `num_masked`."""

    name: str = "base"

    def __call__(self, num_masked: torch.LongTensor, steps: int, schedule: NoiseSchedule) -> torch.LongTensor:
        raise NotImplementedError


@register_reveal_counts("even")
class EvenRevealCounts(RevealCountRule):
    """n_k = floor(m / K) + [k <= m mod K]: an equal split, the remainder on the first steps."""

    def __call__(self, num_masked, steps, schedule):
        base, remainder = num_masked // steps, num_masked % steps
        step_index = torch.arange(steps, device=num_masked.device)
        return base[:, None] + (step_index[None, :] < remainder[:, None]).long()


@register_reveal_counts("llada")
class LLaDARevealCounts(EvenRevealCounts):
    """LLaDA's `get_num_transfer_tokens` (ML-GSAI/LLaDA `generate.py`), per block and per row: the `even` split,
    n_k = floor(m / K) + [k <= m mod K]."""


@register_reveal_counts("dream")
class DreamRevealCounts(RevealCountRule):
    r"""
    Dream's `diffusion_generate`: on the float32 grid t_0..t_K = linspace(1, eps, K + 1), step k reveals

        n_k = floor(r_k (1 - t_{k+1} / t_k))   (k < K - 1),      n_{K-1} = r_{K-1},

    of the r_k positions still masked (r_0 = m, r_{k+1} = r_k - n_k), computed in float32 and truncated as Python's
    `int()` does. 1 - s/t is the linear schedule's reveal probability (whatever `schedule` is), so n_k is the expected
    number of reveals rounded down: the early steps reveal less than `even` (m = 8, K = 4: 1, 2, 2, 3), the last step
    the rest.

    Dream uses the batch mean of r_k for every row; each row uses its own r_k here. The two agree whenever the rows
    hold the same number of [MASK] (a left-padded batch whose prompts contain none), and per row a row's output does
    not depend on its batch mates.

    Args:
        eps (`float`, *optional*, defaults to 1e-3):
            End of Dream's time grid (its generation config's `eps`), in [0, 1).
    """

    def __init__(self, eps: float = 1e-3):
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0.0 <= eps < 1.0:
            raise ValueError(
                f"The 'dream' reveal_counts rule needs 0 <= eps < 1, got eps={eps!r}; Dream's default is 1e-3."
            )
        self.eps = float(eps)

    def __call__(self, num_masked, steps, schedule):
        timesteps = torch.linspace(1.0, self.eps, steps + 1, dtype=torch.float32, device=num_masked.device)
        remaining = num_masked.clone()
        counts = []
        for t, s in zip(timesteps[: steps - 1], timesteps[1:steps]):
            count = (remaining.float() * (1 - s / t)).long()
            counts.append(count)
            remaining = remaining - count
        counts.append(remaining)
        return torch.stack(counts, dim=1)


@register_reveal_counts("schedule")
class ScheduleRevealCounts(RevealCountRule):
    """Follow alpha: by the end of step k (time s_k = 1 - k/K), round(m (alpha(s_k) - alpha(1)) / (1 - alpha(1))) are
    revealed.

    The ancestral sampler's expected number of reveals, made deterministic; linear alpha gives an even split.
    """

    def __call__(self, num_masked, steps, schedule):
        s = 1.0 - torch.arange(1, steps + 1, dtype=torch.float64, device=num_masked.device) / steps
        alpha_end = schedule.alpha(torch.ones((), dtype=torch.float64, device=num_masked.device))
        fraction = ((schedule.alpha(s) - alpha_end) / (1.0 - alpha_end)).clamp(0.0, 1.0)
        fraction[-1] = 1.0
        revealed = torch.floor(num_masked[:, None].double() * fraction[None, :] + 0.5).long()
        revealed = torch.cummax(revealed, dim=1).values
        return torch.diff(revealed, dim=1, prepend=torch.zeros_like(revealed[:, :1]))


__all__ = [
    "REVEAL_COUNT_RULES",
    "DreamRevealCounts",
    "EvenRevealCounts",
    "LLaDARevealCounts",
    "RevealCountRule",
    "ScheduleRevealCounts",
    "get_reveal_count_rule",
    "register_reveal_counts",
]
