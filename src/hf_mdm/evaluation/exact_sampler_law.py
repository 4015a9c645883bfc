r"""The exact law Q of `generate()`'s unconditional samples of `length` tokens, by dynamic programming over the
partially revealed canvases, for the strategies whose law is enumerable.

The decoder's randomness between two forwards is (i) the candidates x̂_i ~ p(. | x_t) (after the logits processors;
the argmax when not sampling), drawn independently per position, and (ii) for `random` the reveal steps. The DP
carries the mass of every reachable canvas after each step of each block and moves it by the step's exact kernel:

* `random`: a position masked at step j of a block of K steps is revealed with the hazard
  h_j = (G_j - G_{j-1}) / (1 - G_{j-1}), G_j = P(reveal step <= j) = F(s_j) = (alpha(s_j) - alpha(1)) / (1 - alpha(1))
  (s_j = 1 - (j + 1) / K, G_{K-1} = 1: the law `RandomStrategy.reveal_steps` inverts), independently of the other
  positions and of the tokens, and then takes its candidate: each masked position goes to [MASK] w.p. 1 - h_j and to
  token v w.p. h_j p_i(v | x_t).
* `remdm`: as `random`, with the strategy's own step probabilities (`RemaskingStrategy.probabilities` at the step's
  t, s): a masked position takes its candidate w.p. r_j, a revealed one goes back to [MASK] w.p. sigma_j, every
  position on its own; the block runs all its K steps, complete or not. (Candidates that a step leaves unused are
  reused while the canvas is unchanged; the step's reveals and remasks do not depend on them, so they are still
  fresh draws from p(. | x_t).)
* a ranked strategy without Gumbel noise (`confidence`, `margin`, `entropy`, `threshold`): every joint draw of the
  masked positions' candidates (w.p. prod_i p_i(x̂_i | x_t)) is enumerated, the strategy's own `score` and `select`
  pick the positions (with the count rule's plan, empty steps dropped, as `begin_block` plans them), and those take
  their candidates.

p(. | x_t) comes from the sampler `generate()` builds from the same keywords (`DiffusionSampler.from_config`), its
model request and the model's denoiser adapter, once per distinct canvas and block. A branch that reveals a token
outside the language's symbols (EOS, a special token) is counted in `outside` and dropped: a strategy that never
revises keeps it, so its sequence is outside the language whatever follows.

Not enumerable (the caller uses Monte Carlo): a model with weights in training mode (dropout), Gumbel noise on the
ranking (`strategy_temperature > 0`), the editing strategies (`editing`, `threshold_editing`: an edit step that
changes nothing reuses candidates its decision looked at), a strategy whose `select` is not a ranked one's,
block-causal or time-conditioned models, and approximate block caches (`prefix`, `dual`), whose logits depend on the
decoding history.
"""

from dataclasses import dataclass

import torch

from ..generation.block_plan import BlockPlan
from ..generation.sampler import DiffusionSampler, skip_empty_steps
from ..generation.strategies import RandomStrategy, RankedStrategy, RemaskingStrategy, RevealStep, ThresholdStrategy


@dataclass(frozen=True)
class SamplerLaw:
    """Q over the V^L symbol sequences (index sum_i x_i V^(L-1-i)), the mass `outside` them, and `scored_states`,
    the canvases whose p(. | x_t) the DP computed (one forward row each)."""

    probabilities: torch.Tensor
    outside: float
    scored_states: int


def diffusion_sampler(model, length: int, generate_kwargs: dict):
    """(sampler, denoiser, plan) that `model.generate(**generate_kwargs)` builds for an unconditional canvas of
    `length` tokens: generate()'s own (`build_diffusion_sampler`) and the block plan (`prepare` refuses a plan
    generate() would refuse)."""
    sampler, denoiser, _ = model.build_diffusion_sampler(generator=torch.Generator(), **generate_kwargs)
    plan = sampler.prepare(torch.zeros((1, 0), dtype=torch.long, device=model.device), None, length)
    return sampler, denoiser, plan


def sequence_index(sequences: torch.LongTensor, num_symbols: int) -> torch.LongTensor:
    """Each row's index among the num_symbols^L sequences of its length L: sum_i x_i num_symbols^(L-1-i)."""
    return sequences @ num_symbols ** torch.arange(sequences.shape[-1] - 1, -1, -1)


def not_enumerable(sampler: DiffusionSampler, denoiser) -> str | None:
    """Why the law of this sampler cannot be enumerated (None when it can): see the module docstring."""
    strategy = sampler.strategy
    if denoiser.model.training and any(True for _ in denoiser.model.parameters()):
        return "the model is in training mode (dropout would draw noise in each forward); call model.eval()"
    if denoiser.block_size() is not None:
        return "the model is block-causal"
    if denoiser.time_conditioned():
        return "the model is time-conditioned"
    if sampler.cache.name != "none":
        return f"cache={sampler.cache.name!r} approximates the logits from earlier forwards"
    if type(strategy) in (RandomStrategy, RemaskingStrategy):
        return None
    ranked_select = isinstance(strategy, RankedStrategy) and type(strategy).select in (
        RankedStrategy.select,
        ThresholdStrategy.select,
    )
    if strategy.revises or not ranked_select:
        return f"strategy {strategy.name!r} edits tokens or selects positions with its own rule"
    if strategy.strategy_temperature > 0:
        return f"strategy_temperature={strategy.strategy_temperature} adds Gumbel noise to the ranking"
    return None


def enumerate_product(laws: torch.Tensor) -> tuple[torch.LongTensor, torch.LongTensor, torch.Tensor]:
    """Every joint draw of N rows of independent categorical laws (N, W, V): (source row (M,), values (M, W),
    probability (M,)), over the values of positive probability only."""
    source = torch.arange(laws.shape[0])
    values = torch.zeros((laws.shape[0], 0), dtype=torch.long)
    weight = torch.ones(laws.shape[0], dtype=laws.dtype)
    for column in range(laws.shape[1]):
        rows, value = laws[source, column].nonzero(as_tuple=True)
        weight = weight[rows] * laws[source[rows], column, value]
        source, values = source[rows], torch.cat([values[rows], value[:, None]], 1)
    return source, values, weight


def merge(canvases: torch.LongTensor, mass: torch.Tensor) -> tuple[torch.LongTensor, torch.Tensor]:
    """The distinct canvases and their summed mass."""
    distinct, inverse = torch.unique(canvases, dim=0, return_inverse=True)
    return distinct, torch.zeros(len(distinct), dtype=mass.dtype).index_add_(0, inverse, mass)


def reveal_hazards(schedule, num_steps: int) -> torch.Tensor:
    """(K,) h_j = P(a position is revealed at step j | masked before it) under `random`'s law (module docstring)."""
    s = 1.0 - torch.arange(1, num_steps + 1, dtype=torch.float64) / num_steps
    alpha_end = schedule.alpha(torch.ones((), dtype=torch.float64))
    revealed_by = ((schedule.alpha(s) - alpha_end) / (1.0 - alpha_end)).clamp(0.0, 1.0)
    revealed_by[-1] = 1.0
    before = torch.cat([revealed_by.new_zeros(1), revealed_by[:-1]])
    return torch.where(before < 1.0, (revealed_by - before) / (1.0 - before).clamp(min=1e-300), 1.0)


class BlockLaws:
    """p(. | x_t) at one block's columns for any canvas, computed by the sampler's own request, denoiser and logits
    processors, batched, once per distinct canvas."""

    def __init__(self, sampler, denoiser, block: BlockPlan, length: int, batch_size: int):
        self.sampler, self.denoiser, self.block = sampler, denoiser, block
        self.length, self.batch_size = length, batch_size
        self.start, self.end = int(block.starts[0]), int(block.ends[0])
        self.known: dict[tuple, torch.Tensor] = {}
        self.vocab_size = sampler.mask_token_id + 1  # until the first forward gives the logits' width

    def __call__(self, canvases: torch.LongTensor) -> torch.Tensor:
        """(N, W, V) float32 processed probabilities at the block's W columns (0 for a canvas whose block has no
        [MASK]: the decoder runs no forward for it)."""
        scored = (canvases[:, self.start : self.end] == self.sampler.mask_token_id).any(1)
        keys = [tuple(row) for row in canvases[scored].tolist()]
        missing = list(dict.fromkeys(key for key in keys if key not in self.known))
        for first in range(0, len(missing), self.batch_size):
            chunk = missing[first : first + self.batch_size]
            for key, probs in zip(chunk, self.forward(torch.tensor(chunk, dtype=torch.long))):
                self.known[key] = probs
        probs = torch.zeros((len(canvases), self.end - self.start, self.vocab_size))
        if keys:
            probs[scored] = torch.stack([self.known[key] for key in keys])
        return probs

    def forward(self, canvases: torch.LongTensor) -> torch.Tensor:
        sampler, rows = self.sampler, canvases.shape[0]
        state = sampler.prepare(canvases.new_zeros((rows, 0)), None, self.length)
        state.canvas.copy_(canvases.to(state.canvas.device))
        block = BlockPlan(self.block.index, self.block.starts.expand(rows), self.block.ends.expand(rows),
                          self.block.end, self.block.num_steps)  # fmt: skip
        sampler.begin_block(state, block)
        request = sampler.model_request(state)
        if request is None or request.rows.numel() != rows:
            raise RuntimeError("The DP scored a canvas with no [MASK] left in the block; this is a bug.")
        scored, bad = sampler.probabilities(state, self.denoiser.logits(request), request.rows)
        if bool(bad.any()):
            raise ValueError(
                "The model or a logits processor gave NaN or infinite logits, or removed every token; generate() "
                "refuses such a run, so its law is undefined. Fix the model or the processors."
            )
        self.vocab_size = scored.shape[-1]
        probs = torch.zeros((rows, self.end - self.start, self.vocab_size))
        probs[:, request.columns + state.window_start - self.start] = scored.cpu()
        return probs


def candidate_laws(sampler, probs: torch.Tensor, canvases: torch.LongTensor, columns: slice) -> torch.Tensor:
    """(N, W, V) float64 law of each block position's candidate: p (one-hot at the argmax when not sampling) where
    masked, the current token with probability 1 elsewhere."""
    if sampler.do_sample:  # `sample_categorical` draws u * (the CDF's last value): p normalised in float64
        law = probs.double() / probs.double().sum(-1, keepdim=True)
    else:
        law = torch.nn.functional.one_hot(probs.argmax(-1), probs.shape[-1]).double()
    block = canvases[:, columns]
    kept = torch.nn.functional.one_hot(block.clamp(max=probs.shape[-1] - 1), probs.shape[-1]).double()
    return torch.where((block == sampler.mask_token_id)[..., None], law, kept)


def independent_step(sampler, laws, canvases, mass, columns, reveal: float, remask: float = 0.0):
    """A step that treats every position alike and apart (`random`, `remdm`): a masked position takes its candidate
    w.p. `reveal` (else stays masked), a revealed one is set back to [MASK] w.p. `remask`."""
    masked = (canvases[:, columns] == sampler.mask_token_id).double()
    outcome = laws * (masked * reveal + (1.0 - masked) * (1.0 - remask))[..., None]
    outcome[..., sampler.mask_token_id] += masked * (1.0 - reveal) + (1.0 - masked) * remask
    source, values, weight = enumerate_product(outcome)
    canvases = canvases[source]
    canvases[:, columns] = values
    return canvases, mass[source] * weight


def remasking_step(sampler, laws, canvases, mass, columns, step: int, num_steps: int, num_symbols: int):
    """`remdm`'s step: its own (reveal, remask) probabilities at this step's (t, s). A revealed non-symbol could be
    remasked (or end the row, EOS), which the DP does not follow: refused."""
    masked = canvases[:, columns] == sampler.mask_token_id
    symbols = torch.ones(laws.shape[-1], dtype=torch.bool)
    symbols[num_symbols:] = False
    if bool((laws[masked][:, ~symbols] > 0).any()):
        raise ValueError(
            "A remasking sampler may draw a token outside the language here (its law after EOS or a remasked special "
            "token is not enumerated). Suppress the special tokens, or use method='monte_carlo'."
        )
    t, s = sampler.timesteps(step, num_steps)
    rows = torch.arange(len(canvases))
    reveal, remask = sampler.strategy.probabilities(
        RevealStep(masked=masked, scores=None, counts=None, t=t, s=s, rows=rows, randomness=sampler.randomness)
    )
    return independent_step(sampler, laws, canvases, mass, columns, reveal, remask)


def ranked_step(sampler, probs, laws, canvases, mass, columns, step: int, num_steps: int, count):
    """A ranked strategy's step: every joint draw of the candidates, scored and selected by the strategy itself."""
    source, candidates, weight = enumerate_product(laws)
    canvases = canvases[source]
    masked = canvases[:, columns] == sampler.mask_token_id
    scores = sampler.strategy.score(probs[source], candidates)
    t, s = sampler.timesteps(step, num_steps)
    rows = torch.arange(len(source))
    view = RevealStep(masked=masked, scores=scores.float(), counts=None if count is None else rows * 0 + count, t=t,
                      s=s, rows=rows, randomness=sampler.randomness, index=step, candidates=candidates)  # fmt: skip
    reveal, _, _ = sampler.strategy.transitions(view)
    canvases[:, columns] = torch.where(reveal, candidates, canvases[:, columns])
    return canvases, mass[source] * weight


@torch.no_grad()
def exact_sampler_law(model, length: int, generate_kwargs: dict, num_symbols: int, batch_size: int) -> SamplerLaw:
    """Q of `model.generate(**generate_kwargs)` over unconditional sequences of `length` tokens (module docstring);
    a ValueError when the law is not enumerable."""
    sampler, denoiser, plan = diffusion_sampler(model, length, generate_kwargs)
    reason = not_enumerable(sampler, denoiser)
    if reason is not None:
        raise ValueError(f"The sampler's law cannot be enumerated: {reason}. Use method='monte_carlo'.")
    canvases, mass = plan.canvas.cpu().clone(), torch.ones(1, dtype=torch.float64)
    outside, scored = 0.0, 0
    for block in sampler.blocks:
        laws_of = BlockLaws(sampler, denoiser, block, length, batch_size)
        columns = slice(laws_of.start, laws_of.end)
        width = laws_of.end - laws_of.start
        remasking = isinstance(sampler.strategy, RemaskingStrategy)  # uses every step, even once complete
        counts = sampler.strategy.plan_counts(
            torch.tensor([width]), block.num_steps, sampler.count_rule, skip_empty_steps
        )
        hazards = reveal_hazards(sampler.schedule, block.num_steps).tolist()
        if counts is not None:
            limit = counts.shape[1]  # the count rule's steps, empty ones dropped
        elif isinstance(sampler.strategy, (RandomStrategy, RemaskingStrategy)):
            limit = block.num_steps
        else:
            limit = width  # `threshold`: at least one reveal per step
        step = 0
        while step < limit if remasking else bool((canvases[:, columns] == sampler.mask_token_id).any()):
            if step >= limit:
                raise RuntimeError(f"The DP left [MASK] after the {limit} steps of block {block.index}; a bug.")
            going = (canvases[:, columns] == sampler.mask_token_id).any(1) | remasking  # complete ones wait
            moving, weight = canvases[going], mass[going]
            probs = laws_of(moving)
            laws = candidate_laws(sampler, probs, moving, columns)
            if remasking:
                moving, weight = remasking_step(sampler, laws, moving, weight, columns, step, limit, num_symbols)
            elif isinstance(sampler.strategy, RandomStrategy):
                moving, weight = independent_step(sampler, laws, moving, weight, columns, hazards[step])
            else:
                count = None if counts is None else int(counts[0, step])
                num_steps = block.num_steps if counts is None else counts.shape[1]
                moving, weight = ranked_step(sampler, probs, laws, moving, weight, columns, step, num_steps, count)
            block_tokens = moving[:, columns]
            lost = ((block_tokens >= num_symbols) & (block_tokens != sampler.mask_token_id)).any(1)
            outside += float(weight[lost].sum())
            canvases = torch.cat([canvases[~going], moving[~lost]])
            canvases, mass = merge(canvases, torch.cat([mass[~going], weight[~lost]]))
            step += 1
        scored += len(laws_of.known)
    probabilities = torch.zeros(num_symbols**length, dtype=torch.float64)
    probabilities.index_add_(0, sequence_index(canvases, num_symbols), mass)
    total = float(probabilities.sum()) + outside
    if abs(total - 1.0) > 1e-9:
        raise RuntimeError(f"The DP's law sums to {total}, not 1; this is a bug.")
    return SamplerLaw(probabilities, outside, scored)


__all__ = [
    "SamplerLaw",
    "diffusion_sampler",
    "exact_sampler_law",
    "not_enumerable",
    "reveal_hazards",
    "sequence_index",
]
