"""Reveal strategies: which still-masked positions of the current block one reverse step t -> s reveals.

After every forward pass the decoder computes p(. | x_t) = softmax(processed logits) once, draws a candidate token
x̂_i ~ p (the argmax when not sampling) for each position and asks the strategy for a per-position `score` of p; at
every step it calls `select`, which returns the positions to reveal (they take their candidate and never change again).

* `random`: the exact ancestral sampler. Each masked position is revealed independently with probability
  (alpha(s) - alpha(t)) / (1 - alpha(t)); it draws each position's reveal step once per block (the same law), so the
  sampler visits only the steps where something is revealed.
* ranked (`confidence` p(x̂), `margin` p1 - p2, `entropy` -H(p)): reveal the scheduled count n_k of highest scores,
  optionally after adding `strategy_temperature` x Gumbel noise to the scores.
* `threshold`: reveal every position with confidence >= tau, at least the most confident one; runs until the block
  is complete, so the number of forwards adapts.
* `remdm`: the ancestral sampler with ReMDM remasking: revealed tokens are remasked with a probability sigma derived
  from the schedule ("cap" and "rescale" bound it, "loop" spends the middle of the grid at fixed alpha).
* `editing`: confidence ranking plus token editing: a revealed token whose current probability falls below a threshold
  is replaced by the model's candidate.
* `threshold_editing`: LLaDA 2.1's threshold decoding with token-to-token editing: threshold reveals, and a revealed
  token is replaced where a different candidate is confident; once the block is complete, editing-only steps follow
  (`continues_complete_block`) until one edits nothing.

Only strategies with `revises = True` (`remdm`, `editing`, `threshold_editing`) ever change a revealed token; the
decoder's invariants test holds every other one to "a revealed token never changes".

A strategy is one class registered by name: `@register_strategy("name")` adds one without editing the decoder.
"""

from dataclasses import dataclass

import torch

from ..registry import Registry
from ..schedules import NoiseSchedule
from ..value_checks import check_integer, is_real
from .caches import CACHES
from .sampling import RowRandomness


STRATEGIES = Registry("strategy", "hf_mdm.register_strategy", "strategy_kwargs")
# Steps per position to fill beyond which a run is refused, for strategies that pay for every step: a ranked
# strategy's count rule spends bookkeeping on each step (its extra steps reveal nothing and are skipped), and the
# revising strategies spend a forward on each. `random` draws reveal steps and `threshold` ignores the budget.
MAX_STEPS_PER_POSITION = 16
register_strategy = STRATEGIES.register
get_strategy = STRATEGIES.build


@dataclass
class RevealStep:
    r"""
    What a strategy sees at one step, for the R rows still decoding the current block of width W.

    masked: (R, W) positions still masked. scores: (R, W) `score` of the last forward (None if the strategy has none).
    counts: (R,) scheduled reveals when `uses_counts`. t, s: the step goes from time t to time s < t; it is step
    `index` of the block's K. reveal_steps: (R, W) the step at which each position is revealed, drawn when the block
    began (strategies whose `plan_reveal_steps` draws them, else None).
    rows: (R,) batch indices of these rows, for `randomness`.
    widths, offsets: (R,) each row's block width and its first column in the window: row r's block is window
        columns [offsets[r], offsets[r] + widths[r]) (rows whose prompt holds [MASK] start block 0 earlier; a
        block-causal model's blocks end at each row's own column). None: every row spans the whole window; offsets
        None: each row's block ends at the window's end.
    revealed: (R, W) block positions the decoder filled earlier, which a revising strategy may remask or edit.
        candidates: (R, W) the candidate tokens of the last forward. current_probs: (R, W) p(current token | x_t) at
        revealed positions (1 unless the strategy has `scores_revealed`).
    """

    masked: torch.BoolTensor
    scores: torch.Tensor | None
    counts: torch.LongTensor | None
    t: float
    s: float
    rows: torch.LongTensor
    randomness: RowRandomness
    widths: torch.LongTensor | None = None
    offsets: torch.LongTensor | None = None
    index: int = 0
    reveal_steps: torch.LongTensor | None = None
    revealed: torch.BoolTensor | None = None
    candidates: torch.LongTensor | None = None
    current_probs: torch.Tensor | None = None

    def uniform(self) -> torch.Tensor:
        """(R, W) U(0, 1) noise; with per-row generators a row's draws depend only on its own block."""
        width = self.masked.shape[1]
        if self.widths is None:
            return self.randomness.rand(self.rows, width, self.masked.device)
        offsets = width - self.widths if self.offsets is None else self.offsets
        return self.randomness.rand_in_spans(self.rows, offsets, self.widths, width, self.masked.device)


class RevealStrategy:
    """Base class. The sampler only calls methods; the class attributes below are what those methods read, so a
    strategy declares its kind instead of overriding them:

    * `uses_counts`: reveal the reveal-count rule's scheduled number of positions per step (`plan_counts`);
    * `fixed_steps=False`: run a block until it is complete instead of for its share of `steps`;
    * `revises`: remask or edit revealed tokens (`revise`), and use every step of the block (or the steps
      `continues_complete_block` grants);
    * `scores_revealed`: score revealed positions as well (their current token's probability, for editing);
    * `finishes_block_at_eos`: a row that reveals EOS (and everything before it) stops once its block is done, not
      at once: the block's later steps may still change the EOS or the tokens before it.

    A strategy's constructor takes the schedule and its own parameters. `config_fields` names the
    `DiffusionGenerationConfig` fields passed to it (e.g. `threshold`); any other parameter comes from the config's
    `strategy_kwargs`, so a new strategy needs no edit of the config or the decoder.
    """

    name: str = "base"
    uses_counts: bool = False
    fixed_steps: bool = True
    revises: bool = False
    scores_revealed: bool = False
    finishes_block_at_eos: bool = False
    config_fields: tuple[str, ...] = ()

    def __init__(self, schedule: NoiseSchedule):
        self.schedule = schedule

    @classmethod
    def reads_reveal_counts(cls) -> bool:
        """Whether the config's `reveal_counts` (and its kwargs) change what this strategy does."""
        return cls.uses_counts

    def max_steps(self, fewest_to_fill: int, num_blocks: int) -> int | None:
        """The most steps a run may take when its emptiest row fills `fewest_to_fill` positions in `num_blocks`
        blocks (None: no cap). A strategy that pays for each step (a ranked strategy's count rule, a revising
        strategy's forward) is capped at `MAX_STEPS_PER_POSITION` steps per position."""
        return MAX_STEPS_PER_POSITION * max(fewest_to_fill, num_blocks) if self.fixed_steps else None

    def check_cache(self, cache) -> None:
        """A revising strategy needs a cache that recomputes the block's revealed tokens."""
        if self.revises and not cache.refreshes_revealed:
            recomputing = sorted(name for name, registered in CACHES.items() if registered.refreshes_revealed)
            raise ValueError(
                f"Strategy {self.name!r} remasks or edits revealed tokens, but cache={cache.name!r} keeps the keys "
                f"of revealed tokens of the block and would not see the change. Use a cache that recomputes the "
                f"block ({recomputing}) or a strategy that never revises."
            )

    def plan_counts(self, num_masked, num_steps, count_rule, drop_empty_steps) -> torch.LongTensor | None:
        """(B, K') positions to reveal per step of a block, from the count rule (None unless `uses_counts`). A
        strategy that never revises drops each row's zero-count steps (`drop_empty_steps`): they change nothing."""
        if not self.uses_counts:
            return None
        counts = count_rule(num_masked, num_steps, self.schedule)
        return counts if self.revises else drop_empty_steps(counts)

    def plan_reveal_steps(self, state, randomness: RowRandomness) -> torch.LongTensor | None:
        """(B, W) the step at which each position of the block is revealed, drawn when the block begins (None: the
        strategy picks at each step)."""
        return None

    def positions_to_score(self, state) -> torch.BoolTensor:
        """(B, W) window positions whose candidates and scores the next forward must give: the masked ones (and the
        revealed ones for a strategy that `scores_revealed`)."""
        if self.scores_revealed:
            return state.masked() | state.revealed()  # not in place: masked() is the state's own tensor
        return state.masked()

    def score_current(self, probs: torch.Tensor, state, rows, columns) -> torch.Tensor | None:
        """(R, C) p(current token | x_t) at the scored columns of rows `rows` (None unless `scores_revealed`)."""
        if not self.scores_revealed:
            return None
        current = state.canvas[rows][:, state.window_start + columns]
        return probs.gather(-1, current.unsqueeze(-1)).squeeze(-1)

    def continues_complete_block(self, state) -> torch.BoolTensor:
        """(B,) rows that take another step of their block although it has no [MASK] left: a revising strategy
        uses the block's remaining steps. `state.complete_steps` and `state.revised` tell a strategy how many steps
        each row took in its complete block and whether the last one changed a revealed token."""
        return torch.full_like(state.done, self.revises and state.step < state.num_steps)

    def check_block_end(self, step: int, num_steps: int, rows_left: bool) -> None:
        """A strategy with `fixed_steps` must have revealed every masked position by the block's last step."""
        if self.fixed_steps and step >= num_steps and rows_left:
            raise RuntimeError(
                f"Strategy {self.name!r} left [MASK] tokens after the last step of a block; a strategy must "
                "reveal every masked position by s = 0 (or set `fixed_steps = False`)."
            )

    def transitions(self, step: RevealStep):
        """(reveal, remask, edit) of one step: positions to reveal (a subset of `step.masked`), and for a revising
        strategy revealed positions to set back to [MASK] and to replace by their candidate (else None)."""
        reveal = self.select(step) & step.masked
        if not self.revises:
            return reveal, None, None
        remask, edit = self.revise(step)
        return reveal, remask & step.revealed, edit & step.revealed

    def score(self, probs: torch.Tensor, tokens: torch.LongTensor) -> torch.Tensor | None:
        """Per-position priority from p(. | x_t) after the logits processors (R, W, V) and the candidates (R, W);
        None if the strategy does not rank."""
        return None

    def select(self, step: RevealStep) -> torch.BoolTensor:
        """Positions to reveal at this step, a subset of `step.masked`; all of them when `step.s == 0`."""
        raise NotImplementedError

    def revise(self, step: RevealStep) -> tuple[torch.BoolTensor, torch.BoolTensor]:
        """Strategies with `revises = True`: (remask, edit), subsets of `step.revealed`: positions set back to [MASK]
        and positions that take their new candidate."""
        raise NotImplementedError


@register_strategy("random")
class RandomStrategy(RevealStrategy):
    r"""
    Ancestral sampling: reveal each masked position independently w.p. (alpha(s) - alpha(t)) / (1 - alpha(t)).

    The per-step probabilities telescope: a position masked at t_0 = 1 is still masked after step k (time s_k) with
    probability (1 - alpha(s_k)) / (1 - alpha(1)), independently of every other position and of the tokens. So its
    reveal step is drawn once, by inverting that law at u ~ U(0, 1):

        k(u) = min { k : F(s_k) > u },    F(s) = (alpha(s) - alpha(1)) / (1 - alpha(1)),    F(s_{K-1} = 0) = 1,

    by bisection over k (O(log K) evaluations of alpha per position, none per step). The output has the law of the
    step-by-step sampler, and any budget K costs at most one forward per step where something is revealed.
    """

    def max_steps(self, fewest_to_fill, num_blocks):
        return None  # drawn reveal steps: any budget costs one visit per reveal event

    def plan_reveal_steps(self, state, randomness):
        masked = state.masked()
        rows = (~state.done & masked.any(1)).nonzero().squeeze(1)
        width = masked.shape[1]
        uniform = randomness.rand_in_spans(rows, state.offsets[rows], state.widths[rows], width, masked.device)
        reveal_steps = torch.full_like(state.candidates, state.num_steps)
        reveal_steps[rows] = self.reveal_steps(uniform, state.num_steps)
        return reveal_steps

    def reveal_steps(self, uniform: torch.Tensor, num_steps: int) -> torch.LongTensor:
        """(R, W) reveal steps in [0, num_steps) from (R, W) U(0, 1) noise."""
        u = uniform.double()
        alpha_end = self.schedule.alpha(torch.ones((), dtype=torch.float64, device=u.device))
        low = torch.zeros(u.shape, dtype=torch.long, device=u.device)
        high = torch.full_like(low, num_steps - 1)
        for _ in range((num_steps - 1).bit_length()):
            middle = (low + high) // 2
            s = 1.0 - (middle + 1).double() / num_steps
            revealed = ((self.schedule.alpha(s) - alpha_end) / (1.0 - alpha_end) > u) | (middle == num_steps - 1)
            searching = low < high
            high = torch.where(searching & revealed, middle, high)
            low = torch.where(searching & ~revealed, middle + 1, low)
        return low

    def select(self, step):
        return step.masked & (step.reveal_steps <= step.index)


# Scores closer than this count as equal. A model's forward can differ in the last bits between batch sizes (BLAS
# kernels), which would otherwise reorder scores that are equal in exact arithmetic (an all-[MASK] canvas gives every
# position the same score) and make a row's output depend on its batch mates.
TIE_TOLERANCE = 1e-5


def top_positions(key: torch.Tensor, masked: torch.BoolTensor, counts: torch.LongTensor) -> torch.BoolTensor:
    """The `counts[r]` masked positions of highest `key` per row; keys within `TIE_TOLERANCE` of the cut-off value are
    ties, and ties go to the leftmost positions."""
    key = key.masked_fill(~masked, float("-inf"))
    cutoff = key.sort(dim=-1, descending=True).values.gather(1, (counts - 1).clamp(min=0)[:, None])
    sure = masked & (key > cutoff + TIE_TOLERANCE)
    tied = masked & ~sure & (key >= cutoff - TIE_TOLERANCE)
    room = counts[:, None] - sure.sum(1, keepdim=True)
    return (sure | (tied & (tied.long().cumsum(1) <= room))) & (counts[:, None] > 0)


class RankedStrategy(RevealStrategy):
    """Reveal the `counts` highest-scoring masked positions; ties (within `TIE_TOLERANCE`) go to the leftmost
    position. `strategy_temperature` scales Gumbel noise added to the scores (0: deterministic ranking)."""

    uses_counts = True
    config_fields = ("strategy_temperature",)

    def __init__(self, schedule: NoiseSchedule, strategy_temperature: float = 0.0):
        super().__init__(schedule)
        self.strategy_temperature = strategy_temperature

    def select(self, step):
        key = step.scores.float()
        if self.strategy_temperature > 0:
            uniform = step.uniform()
            gumbel = -torch.log(-torch.log(uniform.clamp(1e-20, 1.0 - 1e-7)))
            key = key + self.strategy_temperature * gumbel
        return top_positions(key, step.masked, step.counts)


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
        scores = step.scores.float()
        reveal = step.masked & (scores >= self.threshold)
        best = top_positions(scores, step.masked, torch.ones_like(step.rows))
        return reveal | (best & ~reveal.any(dim=-1, keepdim=True))


REMASKING_SCHEDULES = ("cap", "rescale", "loop")


@register_strategy("remdm")
class RemaskingStrategy(RevealStrategy):
    r"""
    ReMDM (Wang et al. 2025): the ancestral sampler with remasking. Between t and s < t a revealed token is set back
    to [MASK] with probability sigma, and a masked one is revealed with probability

        (alpha_s - (1 - sigma) alpha_t) / (1 - alpha_t),    0 <= sigma <= sigma_max = min(1, (1 - alpha_s) / alpha_t),

    which keeps the forward process's marginals (sigma = 0 is the `random` strategy). At s = 0, sigma_max = 0 and every
    position is revealed, so the block ends complete. Variants (`remask_schedule`):

    * `cap`: sigma = min(eta, sigma_max);
    * `rescale`: sigma = eta * sigma_max;
    * `loop`: the block's grid u: 1 -> 0 is mapped to model time tau(u) = u above `t_on`, frozen at `t_on` for
      `t_off` <= u < `t_on` (there alpha_s = alpha_t, sigma = min(eta, (1 - alpha_t) / alpha_t), so tokens are
      remasked and revealed at a constant noise level), and tau = u t_on / t_off below `t_off`; sigma = 0 outside
      the loop.

    Args:
        eta (`float`, defaults to 0.02): the remasking strength, in [0, 1].
        remask_schedule (`str`, defaults to `"cap"`): `cap`, `rescale` or `loop`.
        t_on, t_off (`float`, default 0.55 and 0.05): the loop's window of the grid, 0 < t_off < t_on < 1.
    """

    revises = True

    def __init__(self, schedule, eta: float = 0.02, remask_schedule: str = "cap", t_on: float = 0.55,
                 t_off: float = 0.05):  # fmt: skip
        super().__init__(schedule)
        if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not 0.0 <= eta <= 1.0:
            raise ValueError(f"remdm needs a remasking probability eta in [0, 1], got eta={eta!r}; ReMDM uses 0.02.")
        if remask_schedule not in REMASKING_SCHEDULES:
            raise ValueError(f"remdm's remask_schedule must be one of {REMASKING_SCHEDULES}, got {remask_schedule!r}.")
        if not 0.0 < t_off < t_on < 1.0:
            raise ValueError(f"remdm's loop needs 0 < t_off < t_on < 1, got t_off={t_off!r}, t_on={t_on!r}.")
        self.eta, self.remask_schedule, self.t_on, self.t_off = float(eta), remask_schedule, t_on, t_off

    def model_times(self, t: float, s: float) -> tuple[float, float]:
        """The step's (t, s) on the model's time axis: the grid itself, or its `loop` remapping."""
        if self.remask_schedule != "loop":
            return t, s

        def tau(u):
            return u if u >= self.t_on else (self.t_on if u >= self.t_off else u * self.t_on / self.t_off)

        return tau(t), tau(s)

    def probabilities(self, step: RevealStep) -> tuple[float, float]:
        """(reveal probability of a masked token, remask probability sigma of a revealed one) for this step."""
        t, s = self.model_times(step.t, step.s)
        alpha_t, alpha_s = (float(self.schedule.alpha(torch.tensor(x, dtype=torch.float64))) for x in (t, s))
        if s <= 0.0 or alpha_t >= 1.0:
            return 1.0, 0.0
        sigma_max = min(1.0, (1.0 - alpha_s) / alpha_t) if alpha_t > 0.0 else 1.0
        if self.remask_schedule == "rescale":
            sigma = self.eta * sigma_max
        elif self.remask_schedule == "loop" and not self.t_off <= step.t < self.t_on:
            sigma = 0.0
        else:
            sigma = min(self.eta, sigma_max)
        reveal = (alpha_s - (1.0 - sigma) * alpha_t) / (1.0 - alpha_t)
        return min(max(reveal, 0.0), 1.0), sigma

    def select(self, step):
        reveal, _ = self.probabilities(step)
        return step.masked & (step.uniform() < reveal)

    def revise(self, step):
        _, sigma = self.probabilities(step)
        remask = step.revealed & (step.uniform() < sigma) if sigma > 0.0 else torch.zeros_like(step.revealed)
        return remask, torch.zeros_like(step.revealed)


@register_strategy("editing")
class EditingStrategy(ConfidenceStrategy):
    """Confidence ranking plus token editing: after each forward, a revealed token of the block whose current
    probability p(x_i = current | x_t) is below `edit_threshold` is replaced by the model's candidate for that
    position (when the candidate differs). Reveals follow the scheduled counts, so the block ends complete. LLaDA
    2.1's rule (a token replaced where a different candidate is confident) is `threshold_editing`."""

    revises = True
    scores_revealed = True

    def __init__(self, schedule, strategy_temperature: float = 0.0, edit_threshold: float = 0.5):
        super().__init__(schedule, strategy_temperature)
        if isinstance(edit_threshold, bool) or not 0.0 <= edit_threshold <= 1.0:
            raise ValueError(f"editing needs edit_threshold in [0, 1], got {edit_threshold!r}.")
        self.edit_threshold = edit_threshold

    def revise(self, step):
        return torch.zeros_like(step.revealed), step.revealed & (step.current_probs < self.edit_threshold)


@register_strategy("threshold_editing")
class ThresholdEditingStrategy(ConfidenceStrategy):
    r"""
    LLaDA 2.1's threshold decoding with token-to-token editing. After each forward, with x̂_i the candidate and
    p_i = p(x̂_i | x_t), every row of the block at once:

    * reveal: the masked positions with p_i > `threshold` if there are at least n = `num_to_transfer` of them, else
      the n most confident masked ones (all of them if fewer are masked);
    * edit: each position the decoder filled that held a token before this step takes its candidate where
      x̂_i != x_i and p_i > `editing_threshold` (a position is never revealed and edited in the same step);
    * once the block has no [MASK] left, up to `max_post_steps` more steps that only edit, ending after the first
      step that edits nothing; then the next block. A row that reveals EOS finishes its block before it stops.

    Unlike `editing`, which ranks reveals on the step budget and replaces a token whose own probability
    p(x_i | x_t) fell below its `edit_threshold`, a token is replaced here only where a different token is
    confident, and the number of forwards adapts: like `threshold`, this strategy ignores `steps` and
    `steps_per_block`. A block of W positions costs at most ceil(W / n) forwards with [MASK] left plus
    `max_post_steps`; each is counted in `nfe`. Both comparisons are strict, as LLaDA 2.1's (`threshold` reveals
    p >= tau).

    Args:
        threshold (`float`, defaults to 0.9): reveal confidence, the config's `threshold` field (generate()'s
            default 0.9, as for `threshold`; a LLaDA 2.x generation config sets theirs, 0.95 unless it says), in
            (0, 1].
        editing_threshold (`float`, defaults to 0.9): edit confidence, in [0, 1] (1: never edit).
        max_post_steps (`int`, defaults to 16): editing steps after the block is complete, >= 0.
        num_to_transfer (`int`, defaults to 1): the fewest reveals of a step with [MASK] left, >= 1.
    """

    uses_counts = False
    fixed_steps = False
    revises = True
    scores_revealed = True
    finishes_block_at_eos = True
    config_fields = ("threshold",)

    def __init__(self, schedule, threshold: float = 0.9, editing_threshold: float = 0.9, max_post_steps: int = 16,
                 num_to_transfer: int = 1):  # fmt: skip
        super().__init__(schedule)
        if not is_real(threshold) or not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold_editing needs threshold in (0, 1], got {threshold!r}; LLaDA 2.1 uses 0.95.")
        if not is_real(editing_threshold) or not 0.0 <= editing_threshold <= 1.0:
            raise ValueError(
                f"threshold_editing needs editing_threshold in [0, 1], got {editing_threshold!r}; LLaDA 2.1 uses 0.9 "
                "(1 never edits)."
            )
        self.threshold, self.editing_threshold = float(threshold), float(editing_threshold)
        self.max_post_steps = check_integer(max_post_steps, "threshold_editing's max_post_steps", 0)
        self.num_to_transfer = check_integer(num_to_transfer, "threshold_editing's num_to_transfer", 1)

    def select(self, step):
        scores = step.scores.float()
        confident = step.masked & (scores > self.threshold)
        enough = confident.sum(1, keepdim=True) >= self.num_to_transfer
        counts = torch.full_like(step.rows, min(self.num_to_transfer, scores.shape[1]))
        return torch.where(enough, confident, top_positions(scores, step.masked, counts))

    def revise(self, step):
        return torch.zeros_like(step.revealed), step.revealed & (step.scores.float() > self.editing_threshold)

    def continues_complete_block(self, state):
        """Editing steps after the block is complete: the first one, then another while the last one edited, at
        most `max_post_steps` (rows with no position to fill in the block take none)."""
        has_positions = (state.fill[:, state.window] & state.inside).any(1)
        more = (state.complete_steps == 0) | state.revised
        return has_positions & more & (state.complete_steps < self.max_post_steps)


__all__ = [
    "MAX_STEPS_PER_POSITION",
    "STRATEGIES",
    "ConfidenceStrategy",
    "EditingStrategy",
    "RemaskingStrategy",
    "EntropyStrategy",
    "MarginStrategy",
    "RandomStrategy",
    "RankedStrategy",
    "RevealStep",
    "RevealStrategy",
    "TIE_TOLERANCE",
    "ThresholdEditingStrategy",
    "ThresholdStrategy",
    "get_strategy",
    "register_strategy",
]
