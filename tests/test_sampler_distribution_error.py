"""sampler_distribution_error: the exact law of generate() (DP over partially revealed canvases) against generate()'s
own samples, the known exact cases, the Monte Carlo fallback and its bound, and the refusals."""

import functools
import math
import re
from types import SimpleNamespace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chisquare
from transformers import LogitsProcessor, LogitsProcessorList

from hf_mdm import MDMForMaskedGeneration
from hf_mdm.evaluation.exact_sampler_law import independent_step, reveal_hazards
from hf_mdm.evaluation.sampler_distribution_error import (
    language_distribution,
    monte_carlo_tv_bound,
    sampler_distribution_error,
)
from hf_mdm.generation import enable_diffusion_generation
from hf_mdm.generation.strategies import RandomStrategy
from hf_mdm.languages import HMMLanguage
from hf_mdm.languages.oracle import OracleDenoiser
from hf_mdm.languages.tokenization import special_token_ids
from hf_mdm.schedules import get_schedule

from .conftest import tiny_config, word_tokenizer


LENGTH = 4
SAMPLES = 12000


@functools.cache
def language():
    return HMMLanguage(3, 3, seed=0)


def oracle():
    return enable_diffusion_generation(language().oracle_model(), language().tokenizer())


class Neighbours:
    """A denoiser far from any posterior, so that the sampler's details move its law: at a masked position,
    p(v) ∝ exp(v / 2 + 3 [v = the left neighbour, if shown] + 2 [v = the right neighbour, if shown])."""

    vocab_size = 3

    def _has_exact_posterior(self):
        return True

    def _masked_log_posterior(self, symbols, shown, active, out):
        v = torch.arange(self.vocab_size)
        logits = (v / 2).expand(*symbols.shape, -1).clone()
        for weight, shift, edge in ((3.0, 1, 0), (2.0, -1, -1)):  # left, then right
            neighbour, seen = symbols.roll(shift, 1), shown.roll(shift, 1)
            seen[:, edge] = False  # no wrap-around
            logits += weight * ((v == neighbour[..., None]) & seen[..., None])
        masked = ~shown & active
        out[masked] = logits[masked].to(out.dtype)


def neighbours_model():
    return enable_diffusion_generation(OracleDenoiser(Neighbours()), language().tokenizer())


def tiny_mdm(training=False):
    """A randomly initialised MDMForMaskedGeneration over the language's tokenizer layout (the `mdm` denoiser)."""
    torch.manual_seed(0)
    model = MDMForMaskedGeneration(tiny_config(vocab_size=len(language().tokenizer()), **special_token_ids(3)))
    return model.train(training)


def exact_and_sampled(strategy, steps, model=oracle, **kwargs):
    """(exact result, Monte Carlo result of SAMPLES generate() samples) of one sampler."""
    exact = sampler_distribution_error(model(), language(), LENGTH, steps, strategy, method="exact", **kwargs)
    sampled = sampler_distribution_error(
        model(), language(), LENGTH, steps, strategy, method="monte_carlo", num_samples=SAMPLES, batch_size=2000,
        **kwargs,
    )  # fmt: skip
    return exact, sampled


def goodness_of_fit(q_exact, q_hat, num_samples):
    """Pearson's chi-square p-value of the samples' counts under q_exact, bins of expected count < 5 pooled (0 when
    a sample falls where q_exact is 0)."""
    if bool((q_hat[q_exact == 0] > 0).any()):
        return 0.0
    expected, observed = q_exact * num_samples, q_hat * num_samples
    large, small = expected >= 5, (expected < 5) & (q_exact > 0)
    if bool(small.any()):
        large = large | small.cumsum(0).eq(1) & small  # the first small bin holds the pooled ones
        expected[large & small], observed[large & small] = expected[small].sum(), observed[small].sum()
    expected, observed = expected[large], observed[large]
    return chisquare(observed.numpy(), expected.numpy() * observed.sum().item() / expected.sum().item()).pvalue


CASES = [
    ("random", 2, oracle, {}),
    ("random", 3, neighbours_model, {"schedule": "cosine"}),
    ("random", 4, neighbours_model, {"block_length": 2}),
    ("confidence", 2, oracle, {}),
    ("confidence", 4, neighbours_model, {"block_length": 2}),
    ("margin", 2, neighbours_model, {}),
    ("entropy", 3, oracle, {"reveal_counts": "dream"}),
    ("threshold", 4, neighbours_model, {"threshold": 0.5}),
    ("remdm", 3, oracle, {}),
    ("random", 3, tiny_mdm, {}),
    ("confidence", 3, tiny_mdm, {}),
    ("remdm", 4, neighbours_model, {"strategy_kwargs": {"eta": 1.0, "remask_schedule": "rescale"}}),
    ("remdm", 6, neighbours_model, {"strategy_kwargs": {"eta": 0.5, "remask_schedule": "loop"}, "block_length": 2}),
]


@pytest.mark.parametrize("strategy,steps,model,kwargs", CASES)
def test_exact_law_is_the_law_of_generate_samples(strategy, steps, model, kwargs):
    """The DP's Q is the law generate() samples: its samples fit Q (chi-square) and the Monte Carlo TV lies within
    its stated bound of the exact one. On `Neighbours` a wrong schedule law or a missing remask moves Q by 0.02 to
    0.05 in TV, which the chi-square test sees."""
    exact, sampled = exact_and_sampled(strategy, steps, model, **kwargs)
    assert exact.method == "exact" and sampled.method == "monte_carlo"
    assert exact.distribution.sum() == pytest.approx(1.0, abs=1e-9)
    tv_between = 0.5 * float((exact.distribution - sampled.distribution).abs().sum())
    assert tv_between <= sampled.tv_bound
    assert abs(sampled.tv - exact.tv) <= sampled.tv_bound
    assert goodness_of_fit(exact.distribution, sampled.distribution, SAMPLES) > 1e-3


@settings(max_examples=15, deadline=None)
@given(
    strategy=st.sampled_from(["random", "confidence", "entropy", "remdm"]),
    steps=st.integers(LENGTH, 2 * LENGTH),  # at least one step per block
    block_length=st.sampled_from([None, 1, 2]),
    schedule=st.sampled_from(["linear", "cosine"]),
)
def test_exact_law_is_a_distribution_and_its_distances_agree(strategy, steps, block_length, schedule):
    """Over strategies, budgets, blocks and schedules: Q >= 0 sums to 1, and tv / kl are TV and KL of Q and P."""
    result = sampler_distribution_error(
        oracle(), language(), LENGTH, steps, strategy, block_length=block_length, schedule=schedule
    )
    q, p = result.distribution, language_distribution(language(), LENGTH)
    assert result.method == "exact" and bool((q >= 0).all()) and float(q.sum()) == pytest.approx(1.0, abs=1e-9)
    assert result.tv == pytest.approx(0.5 * float((q - p).abs().sum()), abs=1e-12)
    assert result.kl == pytest.approx(float((q * (q / p).log()).sum()), abs=1e-9)


def test_one_step_is_the_product_of_marginals():
    """S = 1 reveals every position at once from p(. | all masked): Q(x) = prod_i P(x_i), for every strategy."""
    marginals = language().posterior(torch.zeros(1, LENGTH, dtype=torch.long), torch.zeros(1, LENGTH, dtype=bool))[0]
    index = torch.arange(3**LENGTH)
    sequences = index[:, None] // 3 ** torch.arange(LENGTH - 1, -1, -1) % 3
    product = marginals.gather(1, sequences.T).prod(0)
    for strategy in ("random", "confidence", "margin", "entropy", "remdm"):
        result = sampler_distribution_error(oracle(), language(), LENGTH, 1, strategy)
        assert result.method == "exact" and result.tv_bound is None and "exact" in result.describe()
        torch.testing.assert_close(result.distribution, product, atol=1e-6, rtol=0)


def test_one_token_per_step_in_a_draw_independent_order_is_exact():
    """With the exact oracle, margin and entropy at S = L reveal one token per step in an order that depends on the
    canvas only (not on the drawn candidates): each step samples p(x_i | revealed), the chain rule, so Q = P.
    confidence picks the position after seeing its draw (the most probable draw goes first), which biases Q towards
    probable tokens: far from P (TV about 0.49 on this language) however many steps."""
    p = language_distribution(language(), LENGTH)
    for strategy in ("margin", "entropy"):
        result = sampler_distribution_error(oracle(), language(), LENGTH, LENGTH, strategy)
        assert result.tv < 1e-6 and result.kl < 1e-9 and result.kl_language_to_sampler < 1e-9
        torch.testing.assert_close(result.distribution, p, atol=1e-6, rtol=0)
    confidence = [sampler_distribution_error(oracle(), language(), LENGTH, s, "confidence").tv for s in (4, 8)]
    assert min(confidence) > 0.3 and confidence[0] == pytest.approx(confidence[1])


def test_random_tv_decreases_towards_zero_with_steps():
    """The ancestral sampler reveals several positions per step independently; its TV falls with the steps (about
    as 1/S) and is never 0 at finite S (two positions can share a step)."""
    tvs = [sampler_distribution_error(oracle(), language(), LENGTH, s, "random").tv for s in (1, 2, 4, 8, 32)]
    assert all(later < earlier for earlier, later in zip(tvs, tvs[1:]))
    assert 0 < tvs[-1] < tvs[0] / 16


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_reveal_hazards_are_the_law_random_strategy_draws(schedule):
    """P(reveal step <= j) = 1 - prod_{i <= j} (1 - h_i) is the breakpoint at which `RandomStrategy.reveal_steps`
    moves from step j to j + 1."""
    steps = 5
    hazards = reveal_hazards(get_schedule(schedule), steps)
    revealed_by = 1 - torch.cumprod(1 - hazards, 0)
    strategy = RandomStrategy(get_schedule(schedule))
    for j in range(steps - 1):
        around = revealed_by[j] + torch.tensor([[-1e-9, 1e-9]], dtype=torch.float64)
        below, above = strategy.reveal_steps(around, steps)[0].tolist()
        assert below <= j < above
    assert float(revealed_by[-1]) == 1.0


def test_independent_step_by_hand():
    """One canvas [1, MASK] over 3 symbols (MASK = 3): position 0 goes back to [MASK] w.p. sigma = 0.3, position 1
    takes its candidate (law 0.5, 0.25, 0.25) w.p. r = 0.4; every joint outcome's mass is the product."""
    sampler = SimpleNamespace(mask_token_id=3)
    canvas = torch.tensor([[1, 3]])
    laws = torch.tensor([[[0.0, 1.0, 0.0, 0.0], [0.5, 0.25, 0.25, 0.0]]], dtype=torch.float64)
    canvases, mass = independent_step(sampler, laws, canvas, torch.ones(1, dtype=torch.float64), slice(0, 2), 0.4, 0.3)
    got = {tuple(row): float(m) for row, m in zip(canvases.tolist(), mass)}
    first = {1: 0.7, 3: 0.3}
    second = {3: 0.6, 0: 0.4 * 0.5, 1: 0.4 * 0.25, 2: 0.4 * 0.25}
    expected = {(a, b): first[a] * second[b] for a in first for b in second}
    assert got.keys() == expected.keys()
    for outcome, value in expected.items():
        assert got[outcome] == pytest.approx(value, abs=1e-15)


class AllowPad(LogitsProcessor):
    """Gives <pad> (a non-symbol) the logit 0 at every position."""

    def __call__(self, input_ids, scores):
        scores = scores.clone()
        scores[:, language().vocab_size + 1] = 0.0
        return scores


def test_mass_outside_the_language_counts_in_tv_and_makes_kl_infinite():
    """A processor that lets a non-symbol through: Q's mass on sequences holding it is `outside_mass`, the same in the
    DP and in generate()'s samples; KL(Q || P) is infinite."""
    processors = LogitsProcessorList([AllowPad()])
    exact, sampled = exact_and_sampled("random", 2, logits_processor=processors)
    assert exact.outside_mass > 0.1 and math.isinf(exact.kl)
    assert abs(exact.outside_mass - sampled.outside_mass) < 4 * math.sqrt(exact.outside_mass / SAMPLES)
    assert exact.tv >= exact.outside_mass / 2


@pytest.mark.parametrize("strategy,kwargs", [("editing", {}), ("confidence", {"strategy_temperature": 0.5})])
def test_strategies_with_their_own_randomness_fall_back_to_monte_carlo(strategy, kwargs):
    result = sampler_distribution_error(oracle(), language(), LENGTH, 4, strategy, num_samples=500, **kwargs)
    assert result.method == "monte_carlo" and result.num_samples == 500
    assert result.tv_bound == pytest.approx(monte_carlo_tv_bound(3**LENGTH + 1, 500, 0.95))
    assert "Monte Carlo over 500 samples" in result.describe()


def test_monte_carlo_bound_formula():
    """1/2 (sqrt(K / N) + sqrt(2 ln(1 / delta) / N)), computed by hand for K = 82, N = 1000, delta = 0.05."""
    assert monte_carlo_tv_bound(82, 1000, 0.95) == pytest.approx(0.5 * (0.28635642 + 0.07740455), rel=1e-6)


class NoForward(torch.nn.Module):
    def forward(self, *args, **kwargs):
        raise AssertionError("a refused call ran the model")


def model_without_forward():
    model = oracle()
    model.language = language()
    model.forward = NoForward()
    return model


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "arguments,message",
    [
        ({"length": 11}, "max_support"),
        ({"length": 0}, "length"),
        ({"steps": 0}, "steps must be a positive integer"),
        ({"steps": 2.5}, "steps must be a positive integer"),
        ({"strategy": "bogus"}, "bogus"),
        ({"method": "exactly"}, "method must be one of"),
        ({"method": "exact", "strategy": "threshold_editing"}, "Use method='monte_carlo'"),
        ({"method": "exact", "num_samples": 10}, "num_samples is for method='monte_carlo'"),
        ({"num_samples": 0}, "num_samples must be a positive integer"),
        ({"confidence": 1.0}, "confidence must be a probability"),
        ({"do_sample": False}, "sets ['do_sample'] itself"),
        ({"num_return_sequences": 2}, "num_return_sequences"),
        ({"tokenizer": word_tokenizer()}, "language.tokenizer()"),
        ({"max_support": 0}, "max_support must be a positive integer"),
        ({"steps": 1, "block_length": 2}, "steps=1 is fewer than the 2 blocks"),  # generate()'s own plan check
        ({"strategy_kwargs": {"eta": 2.0}, "strategy": "remdm"}, "eta in [0, 1]"),
    ],
)
def test_bad_arguments_are_refused_before_any_forward(arguments, message):
    arguments = {"length": LENGTH, "steps": 2, **arguments}
    with pytest.raises(ValueError, match=re.escape(message)):
        sampler_distribution_error(model_without_forward(), language(), **arguments)


@pytest.mark.bad_input
def test_exact_refuses_a_model_in_training_mode():
    """Dropout draws noise in every forward, which the DP cannot follow: exact is refused (with the fix), and the
    automatic choice falls back to Monte Carlo."""
    with pytest.raises(ValueError, match=re.escape("call model.eval()")):
        sampler_distribution_error(tiny_mdm(training=True), language(), LENGTH, 2, method="exact")
    result = sampler_distribution_error(tiny_mdm(training=True), language(), LENGTH, 2, num_samples=200)
    assert result.method == "monte_carlo"


@pytest.mark.bad_input
def test_a_model_without_diffusion_generate_or_a_non_language_is_refused():
    with pytest.raises(ValueError, match="enable_diffusion_generation"):
        sampler_distribution_error(language().oracle_model(), language(), LENGTH, 2)
    with pytest.raises(ValueError, match="FormalLanguage"):
        sampler_distribution_error(oracle(), "hmm", LENGTH, 2)


@pytest.mark.bad_input
@settings(max_examples=25, deadline=None)
@given(value=st.one_of(st.integers(max_value=0), st.booleans(), st.floats(), st.text(max_size=3), st.none()))
def test_steps_must_be_a_positive_integer(value):
    with pytest.raises(ValueError, match="steps"):
        sampler_distribution_error(model_without_forward(), language(), LENGTH, value)
