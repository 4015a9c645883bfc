"""Reveal strategies: which still-masked positions of the current block one reverse step t -> s reveals.

After every forward pass the decoder computes p(. | x_t) = softmax(processed logits) once, draws a candidate token
x̂_i ~ p (the argmax when not sampling) for each position and asks the strategy for a per-position `score` of p; at
every step it calls `select`, which returns the positions to reveal (they take their candidate and never change again).

* `random`: the exact ancestral sampler. Each masked position is revealed independently with probability
  (alpha(s) - alpha(t)) / (1 - alpha(t)).
* ranked (`confidence` p(x̂), `margin` p1 - p2, `entropy` -H(p)): reveal the scheduled count n_k of highest scores,
  optionally after adding `strategy_temperature` x Gumbel noise to the scores.
* `threshold`: reveal every position with confidence >= tau, at least the most confident one; runs until the block
  is complete, so the number of forwards adapts.

A strategy is one class registered by name: `@register_strategy("name")` adds one without editing the decoder.
"""

from dataclasses import dataclass

import torch

from ..registry import Registry
from ..schedules import NoiseSchedule
from .sampling import RowRandomness


STRATEGIES = Registry("strategy", "hf_mdm.register_strategy", "strategy_kwargs")
register_strategy = STRATEGIES.register
get_strategy = STRATEGIES.build


@dataclass
class RevealStep:
    r"""
    What a strategy sees at one step, for the R rows still decoding the current block of width W.

    masked: (R, W) positions still masked. scores: (R, W) `score` of the last forward (None if the strategy has none).
    counts: (R,) scheduled reveals when `uses_counts`. t, s: the step goes from time t to time s < t.
    rows: (R,) batch indices of these rows, for `randomness`.
    """

    masked: torch.BoolTensor
    scores: torch.Tensor | None
    counts: torch.LongTensor | None
    t: float
    s: float
    rows: torch.LongTensor
    randomness: RowRandomness


class RevealStrategy:
    """Base class. `fixed_steps=False` runs a block until it is complete instead of for its share of `steps`.

    A strategy's constructor takes the schedule and its own parameters. `config_fields` names the
    `DiffusionGenerationConfig` fields passed to it (e.g. `threshold`); any other parameter comes from the config's
    `strategy_kwargs`, so a new strategy needs no edit of the config or the decoder.
    """

    name: str = "base"
    uses_counts: bool = False
    fixed_steps: bool = True
    config_fields: tuple[str, ...] = ()

    def __init__(self, schedule: NoiseSchedule):
        self.schedule = schedule

    def score(self, probs: torch.Tensor, tokens: torch.LongTensor) -> torch.Tensor | None:
        """Per-position priority from p(. | x_t) after the logits processors (R, W, V) and the candidates (R, W);
        None if the strategy does not rank."""
        return None

    def select(self, step: RevealStep) -> torch.BoolTensor:
        """Positions to reveal at this step, a subset of `step.masked`; all of them when `step.s == 0`."""
        raise NotImplementedError


@register_strategy("random")
class RandomStrategy(RevealStrategy):
    """Ancestral sampling: reveal each masked position independently w.p. (alpha(s) - alpha(t)) / (1 - alpha(t))."""

    def select(self, step):
        if step.s <= 0.0:
            return step.masked
        t, s = torch.tensor(step.t, dtype=torch.float64), torch.tensor(step.s, dtype=torch.float64)
        probability = float(self.schedule.reveal_probability(t, s))
        noise = step.randomness.rand(step.rows, step.masked.shape[1], step.masked.device)
        return step.masked & (noise < probability)


class RankedStrategy(RevealStrategy):
    """Reveal the `counts` highest-scoring masked positions; ties go to the leftmost position. `strategy_temperature`
    scales Gumbel noise added to the scores (0: deterministic ranking)."""

    uses_counts = True
    config_fields = ("strategy_temperature",)

    def __init__(self, schedule: NoiseSchedule, strategy_temperature: float = 0.0):
        super().__init__(schedule)
        self.strategy_temperature = strategy_temperature

    def select(self, step):
        key = step.scores.float()
        if self.strategy_temperature > 0:
            uniform = step.randomness.rand(step.rows, key.shape[1], key.device)
            gumbel = -torch.log(-torch.log(uniform.clamp(1e-20, 1.0 - 1e-7)))
            key = key + self.strategy_temperature * gumbel
        key = key.masked_fill(~step.masked, float("-inf"))
        order = key.argsort(dim=-1, descending=True, stable=True)
        ranks = torch.empty_like(order).scatter_(
            1, order, torch.arange(key.shape[1], device=key.device).expand_as(order)
        )
        return step.masked & (ranks < step.counts[:, None])


@register_strategy("confidence")
class ConfidenceStrategy(RankedStrategy):
    """Low-confidence remasking (MaskGIT, LLaDA): score = p(x̂)."""

    def score(self, probs, tokens):
        return probs.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


@register_strategy("margin")
class MarginStrategy(RankedStrategy):
    """score = p1 - p2, the gap between the two most likely tokens."""

    def score(self, probs, tokens):
        top = probs.topk(2, dim=-1).values
        return top[..., 0] - top[..., 1]


@register_strategy("entropy")
class EntropyStrategy(RankedStrategy):
    """Dream's ordering: score = -H(p) = sum_v p_v log p_v (most certain first)."""

    def score(self, probs, tokens):
        return -torch.special.entr(probs).sum(-1)


@register_strategy("threshold")
class ThresholdStrategy(ConfidenceStrategy):
    """Fast-dLLM parallel decoding: reveal every masked position with p(x̂) >= tau, at least the most confident one."""

    uses_counts = False
    fixed_steps = False
    config_fields = ("threshold",)

    def __init__(self, schedule: NoiseSchedule, threshold: float = 0.9):
        super().__init__(schedule)
        self.threshold = threshold

    def select(self, step):
        scores = step.scores.float().masked_fill(~step.masked, float("-inf"))
        reveal = step.masked & (scores >= self.threshold)
        best = torch.zeros_like(reveal).scatter_(1, scores.argmax(dim=-1, keepdim=True), True)
        return reveal | (best & step.masked & ~reveal.any(dim=-1, keepdim=True))


__all__ = [
    "STRATEGIES",
    "ConfidenceStrategy",
    "EntropyStrategy",
    "MarginStrategy",
    "RandomStrategy",
    "RankedStrategy",
    "RevealStep",
    "RevealStrategy",
    "ThresholdStrategy",
    "get_strategy",
    "register_strategy",
]
