r"""The sampler's distributional error: how far the law Q of `generate()`'s samples is from the language's P.

For a formal language with V symbols and sequences of length L small enough to list (V^L <= `max_support`):

    TV(Q, P) = 1/2 sum_x |Q(x) - P(x)|,    KL(Q || P) = sum_x Q(x) log(Q(x) / P(x)),    KL(P || Q),

over every x in V^L, plus Q's mass `outside` them (sequences holding a non-symbol, e.g. EOS), which P gives 0: it
counts in TV in full and makes KL(Q || P) infinite. Tang et al. 2026 ("Is your diffusion sampler actually correct?")
measure this with an exact HMM oracle: few-step samplers are not distributionally correct until steps approach L.

* `method="exact"`: Q itself, by dynamic programming over the partially revealed canvases with the sampler
  `generate()` builds (`exact_sampler_law`), for `random`, `remdm` and the ranked strategies without Gumbel noise
  (`confidence`, `margin`, `entropy`, `threshold`). Exact up to the float32 probabilities the decoder itself draws
  from (about 1e-7 in TV). Cost: at most (V + 1)^L distinct canvases scored (one forward row each), and up to
  (2V + 1)^L enumerated outcomes per step.
* `method="monte_carlo"`: Q_hat, the empirical law of `num_samples` `generate()` samples (per-sample seeds, as a
  sweep's). With probability >= `confidence`,

      |TV(Q_hat, P) - TV(Q, P)| <= TV(Q_hat, Q) <= 1/2 (sqrt(K / N) + sqrt(2 ln(1 / delta) / N)),

  K = V^L + 1 outcomes (the sequences and "outside"), delta = 1 - confidence: E ||Q_hat - Q||_1 <= sqrt(K / N) by
  Cauchy-Schwarz (Canonne, "A short note on learning discrete distributions", 2020, arXiv:2002.11457), and
  ||Q_hat - Q||_1 moves by at most 2 / N per sample, so McDiarmid's inequality adds the second term. The two KLs are
  plug-in values of Q_hat, with no bound (KL(P || Q_hat) is infinite while some x with P(x) > 0 is unseen).
* `method=None`: exact where the law is enumerable, else Monte Carlo.

Every generate() keyword is the one a sweep's cell uses (`sweep.diffusion_generate_kwargs`: sampling at temperature
1, the language's special tokens suppressed), plus the caller's `generation_kwargs`.
"""

import math
from dataclasses import dataclass, field

import torch
from scipy.special import rel_entr

from ..generation.mixin import DiffusionGenerationMixin
from ..generation.strategies import STRATEGIES
from ..languages import FormalLanguage
from ..tokenizer_checks import check_mask_token
from .argument_checks import check_int, check_positive_int
from .exact_sampler_law import diffusion_sampler, exact_sampler_law, not_enumerable, sequence_index
from .sweep import SET_BY_THE_SWEEP, diffusion_generate_kwargs, sample_generators
from .sweep_tasks import LanguageTask


METHODS = ("exact", "monte_carlo")
DEFAULT_MONTE_CARLO_SAMPLES = 10_000


@dataclass(frozen=True)
class SamplerDistributionError:
    """TV and KL between the sampler's law Q (or its Monte Carlo estimate) and the language's P over V^length.

    `tv_bound`: Monte Carlo only, |tv - TV(Q, P)| <= tv_bound with probability >= `confidence` (None when exact).
    `forwards`: exact: distinct canvases scored (one forward row each); Monte Carlo: the samples' forwards (NFE).
    `distribution`: Q (or Q_hat) over the V^length sequences, index sum_i x_i V^(length-1-i).
    """

    strategy: str
    length: int
    steps: int
    method: str
    tv: float
    kl: float
    kl_language_to_sampler: float
    outside_mass: float
    support_size: int
    forwards: int
    num_samples: int | None = None
    tv_bound: float | None = None
    confidence: float | None = None
    distribution: torch.Tensor = field(default=None, repr=False, compare=False)

    def describe(self) -> str:
        how = (
            f"exact ({self.forwards} canvases scored)"
            if self.method == "exact"
            else f"Monte Carlo over {self.num_samples} samples: |TV error| <= {self.tv_bound:.4f} with probability "
            f"{self.confidence:g}; KL plug-in, no bound"
        )
        return (
            f"{self.strategy}, L = {self.length}, S = {self.steps}: TV = {self.tv:.4g}, KL(Q || P) = {self.kl:.4g}, "
            f"KL(P || Q) = {self.kl_language_to_sampler:.4g}, mass outside the language {self.outside_mass:.4g} "
            f"[{how}]"
        )


def language_distribution(language: FormalLanguage, length: int) -> torch.Tensor:
    """P over the V^length sequences, index sum_i x_i V^(length-1-i)."""
    vocab = language.vocab_size
    index = torch.arange(vocab**length)
    sequences = index[:, None] // vocab ** torch.arange(length - 1, -1, -1) % vocab  # the inverse of sequence_index
    return torch.cat([language.log_prob(chunk).exp() for chunk in sequences.split(1 << 14)])


def distances(q: torch.Tensor, outside: float, p: torch.Tensor) -> tuple[float, float, float]:
    """(TV(Q, P), KL(Q || P), KL(P || Q)) with Q's `outside` mass where P is 0 (scipy's `rel_entr` gives inf where
    a side has mass the other has not)."""
    tv = 0.5 * (float((q - p).abs().sum()) + outside)
    kl = math.inf if outside > 0 else float(rel_entr(q.numpy(), p.numpy()).sum())
    return tv, kl, float(rel_entr(p.numpy(), q.numpy()).sum())


def monte_carlo_tv_bound(outcomes: int, num_samples: int, confidence: float) -> float:
    """1/2 (sqrt(K / N) + sqrt(2 ln(1 / delta) / N)), delta = 1 - confidence (module docstring)."""
    delta = 1.0 - confidence
    return 0.5 * (math.sqrt(outcomes / num_samples) + math.sqrt(2.0 * math.log(1.0 / delta) / num_samples))


def monte_carlo_law(model, language, length, generate_kwargs, num_samples, seed, batch_size):
    """(Q_hat over V^length, its mass outside the language, total forwards) from `num_samples` generate() samples."""
    vocab = language.vocab_size
    counts = torch.zeros(vocab**length, dtype=torch.float64)
    outside, forwards = 0, 0
    for start in range(0, num_samples, batch_size):
        indices = list(range(start, min(start + batch_size, num_samples)))
        generators = sample_generators(seed, generate_kwargs["strategy"], length, indices)
        output = model.generate(**generate_kwargs, generator=generators, return_dict_in_generate=True)
        sequences = output.sequences[:, -length:].cpu()
        forwards += int(output.nfe.sum())
        symbols = ((sequences >= 0) & (sequences < vocab)).all(1)
        outside += int((~symbols).sum())
        counts.index_add_(
            0, sequence_index(sequences[symbols], vocab), torch.ones(int(symbols.sum()), dtype=torch.float64)
        )
    return counts / num_samples, outside / num_samples, forwards


def check_arguments(model, language, tokenizer, strategy, method, confidence, generation_kwargs) -> None:
    """The checks that need no length: types, names, the tokenizer's layout, keywords the evaluation sets."""
    if not isinstance(model, DiffusionGenerationMixin):
        raise ValueError(
            f"sampler_distribution_error needs a model with diffusion generate(), got {type(model).__name__}; wrap "
            "a masked LM with enable_diffusion_generation(model, tokenizer) (an oracle: language.oracle_model())."
        )
    if not isinstance(language, FormalLanguage):
        raise ValueError(
            f"language must be a FormalLanguage (its exact P), got {type(language).__name__}; e.g. HMMLanguage(3, 3)."
        )
    if not isinstance(strategy, str):
        raise ValueError(f"strategy must be a strategy name (a string), got {strategy!r}.")
    STRATEGIES.check(strategy)
    if method is not None and method not in METHODS:
        raise ValueError(f"method must be one of {METHODS} or None (exact where possible), got {method!r}.")
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be a probability in (0, 1), e.g. 0.95, got {confidence!r}.")
    fixed = sorted(set(generation_kwargs) & {*SET_BY_THE_SWEEP, "num_return_sequences"})
    if fixed:
        raise ValueError(
            f"sampler_distribution_error sets {fixed} itself (unconditional samples of `length` tokens at "
            "temperature 1 with per-sample seeds, the language's special tokens suppressed, `steps` the budget, one "
            "sequence per seed); drop them from the keyword arguments."
        )
    symbols = [str(symbol) for symbol in range(language.vocab_size)]
    if tokenizer.convert_ids_to_tokens(list(range(language.vocab_size))) != symbols:
        raise ValueError(
            f"The tokenizer's ids 0..{language.vocab_size - 1} are not this language's symbols {symbols[:5]}...; pass "
            "language.tokenizer() (or None), the layout the language's models are trained with."
        )
    check_mask_token(model, tokenizer)


def sampler_distribution_error(
    model,
    language: FormalLanguage,
    length: int,
    steps: int,
    strategy: str = "random",
    tokenizer=None,
    *,
    method: str | None = None,
    max_support: int = 100_000,
    num_samples: int | None = None,
    seed: int = 0,
    batch_size: int = 256,
    confidence: float = 0.95,
    **generation_kwargs,
) -> SamplerDistributionError:
    """TV, KL(Q || P) and KL(P || Q) between generate()'s law Q of unconditional `length`-token samples at `steps`
    steps with `strategy` and the language's P (module docstring).

    Args:
        model: a model with diffusion generate() over the language's tokenizer layout (e.g. `language.oracle_model()`
            wrapped by `enable_diffusion_generation`, or a model trained on the language).
        language: the `FormalLanguage` whose exact P is the reference.
        length, steps, strategy: the generated length, the step budget and the reveal strategy.
        tokenizer: the language's tokenizer (default `language.tokenizer()`): its non-symbols are suppressed.
        method: "exact", "monte_carlo", or None (exact where the law is enumerable, else Monte Carlo).
        max_support: the largest V^length evaluated (P and Q are vectors of that size); larger is refused.
        num_samples: Monte Carlo samples (default 10000), drawn only where Monte Carlo runs (the result's
            `num_samples` is None when the law was exact); refused with method="exact".
        seed, batch_size: Monte Carlo seeds (per sample, as a sweep's) and rows per generate() call; exact: canvases
            per forward.
        confidence: the probability with which the Monte Carlo bound on TV holds.
        **generation_kwargs: further generate() keywords (e.g. `reveal_counts`, `schedule`, `block_length`).
    """
    tokenizer = language.tokenizer() if tokenizer is None and isinstance(language, FormalLanguage) else tokenizer
    check_arguments(model, language, tokenizer, strategy, method, confidence, generation_kwargs)
    length, steps = language.check_length(length), check_positive_int("steps", steps)
    max_support = check_positive_int("max_support", max_support)
    batch_size, seed = check_positive_int("batch_size", batch_size), check_int("seed", seed)
    support = language.vocab_size**length
    if support > max_support:
        raise ValueError(
            f"V^length = {language.vocab_size}^{length} = {support} sequences is more than max_support={max_support}: "
            "P and Q are vectors over all of them. Use a shorter length or a smaller language, or raise max_support "
            "(memory and time grow with it)."
        )
    if num_samples is not None:
        num_samples = check_positive_int("num_samples", num_samples)
        if method == "exact":
            raise ValueError("num_samples is for method='monte_carlo'; the exact law draws no sample. Drop it.")
    generate_kwargs = diffusion_generate_kwargs(
        model, LanguageTask(language), tokenizer, strategy, length, steps, generation_kwargs
    )
    reason = not_enumerable(*diffusion_sampler(model, length, generate_kwargs)[:2])  # generate()'s own checks
    if method == "exact" and reason is not None:
        raise ValueError(f"The sampler's law cannot be enumerated: {reason}. Use method='monte_carlo' (or None).")
    p = language_distribution(language, length)
    result = dict(strategy=strategy, length=length, steps=steps, support_size=support)
    if reason is None and method != "monte_carlo":
        law = exact_sampler_law(model, length, generate_kwargs, language.vocab_size, batch_size)
        tv, kl, kl_reverse = distances(law.probabilities, law.outside, p)
        return SamplerDistributionError(
            **result, method="exact", tv=tv, kl=kl, kl_language_to_sampler=kl_reverse, outside_mass=law.outside,
            forwards=law.scored_states, distribution=law.probabilities,
        )  # fmt: skip
    num_samples = num_samples or DEFAULT_MONTE_CARLO_SAMPLES
    q, outside, forwards = monte_carlo_law(model, language, length, generate_kwargs, num_samples, seed, batch_size)
    tv, kl, kl_reverse = distances(q, outside, p)
    return SamplerDistributionError(
        **result, method="monte_carlo", tv=tv, kl=kl, kl_language_to_sampler=kl_reverse, outside_mass=outside,
        forwards=forwards, num_samples=num_samples, confidence=confidence, distribution=q,
        tv_bound=monte_carlo_tv_bound(support + 1, num_samples, confidence),
    )  # fmt: skip


__all__ = [
    "SamplerDistributionError",
    "language_distribution",
    "monte_carlo_tv_bound",
    "sampler_distribution_error",
]
