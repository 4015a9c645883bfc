"""The Monte Carlo log-likelihood bound against exact probabilities: a formal language's oracle makes the bound tight,
so the estimate must match the true log p(continuation | context) within its standard error."""

import pytest
import torch

from hf_mdm import NGramLanguage
from hf_mdm.evaluation.monte_carlo_loglikelihood import (
    monte_carlo_loglikelihood,
    random_masks,
    stratified_mask_sizes,
)


# Float32 logits of the oracle: its log-probabilities are exact to ~1e-6 per token.
ROUNDING = 1e-4


@pytest.fixture(scope="module")
def language():
    return NGramLanguage(6, n=2, seed=3)


def true_loglikelihood(language, context, continuation) -> float:
    return float(
        language.log_prob(torch.tensor([context + continuation])) - language.log_prob(torch.tensor([context]))
    )


def requests_of(language, lengths, context_length=4, seed=0):
    sequences = language.sample(len(lengths), context_length + max(lengths), torch.Generator().manual_seed(seed))
    return [
        (row[:context_length].tolist(), row[context_length : context_length + length].tolist())
        for row, length in zip(sequences, lengths)
    ]


def test_the_estimate_agrees_with_the_exact_log_probability_within_three_standard_errors(language):
    oracle = language.oracle_model()
    requests = requests_of(language, [1, 3, 6, 10])
    estimates = monte_carlo_loglikelihood(oracle, requests, oracle.config.mask_token_id, num_samples=64)
    for (context, continuation), estimate in zip(requests, estimates):
        truth = true_loglikelihood(language, context, continuation)
        assert abs(estimate.value - truth) <= 3 * estimate.standard_error + ROUNDING, (truth, estimate)
        assert estimate.num_tokens == len(continuation)
    # One token: every draw masks it, so the bound is the exact conditional with no Monte Carlo error.
    assert estimates[0].standard_error < ROUNDING
    assert max(estimate.standard_error for estimate in estimates[1:]) > 0


def test_the_draws_depend_on_the_seed_and_the_request_not_on_the_batch(language):
    oracle = language.oracle_model()
    requests = requests_of(language, [5, 7, 2])
    together = monte_carlo_loglikelihood(oracle, requests, oracle.config.mask_token_id, num_samples=16, batch_size=7)
    alone = monte_carlo_loglikelihood(oracle, requests[1:2], oracle.config.mask_token_id, num_samples=16)
    assert together[1] == alone[0]
    reseeded = monte_carlo_loglikelihood(oracle, requests[1:2], oracle.config.mask_token_id, num_samples=16, seed=1)
    assert reseeded[0].value != alone[0].value


def test_is_greedy_is_whether_one_step_argmax_decoding_reproduces_the_continuation():
    # A deterministic cycle: the continuation of a context is certain, any other token has probability 0.
    language = NGramLanguage(5, n=2, support=1, seed=0)
    oracle = language.oracle_model()
    ((context, continuation),) = requests_of(language, [3])
    wrong = [(continuation[0] + 1) % 5] + continuation[1:]
    right, other = monte_carlo_loglikelihood(
        oracle, [(context, continuation), (context, wrong)], oracle.config.mask_token_id, num_samples=16
    )
    assert right.is_greedy and not other.is_greedy
    assert abs(right.value) < ROUNDING and other.value < -1e6


def test_mask_sizes_are_stratified_and_masks_have_those_sizes():
    generator = torch.Generator().manual_seed(0)
    sizes = stratified_mask_sizes(5, 40, 4, generator)
    # Each group of 10 draws covers the sizes 1..5 twice.
    for group in sizes.view(4, 10):
        assert torch.bincount(group, minlength=6)[1:].tolist() == [2] * 5
    masks = random_masks(sizes, 5, generator)
    assert masks.sum(1).tolist() == sizes.tolist()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_samples": 10, "num_groups": 4}, "multiple of num_groups"),
        ({"num_groups": 1}, "num_groups must be >= 2"),
        ({"batch_size": 0}, "batch_size"),
    ],
)
def test_bad_arguments_fail_before_any_forward(language, kwargs, message):
    with pytest.raises(ValueError, match=message):
        monte_carlo_loglikelihood(language.oracle_model(), [([0], [1])], 6, **kwargs)


def test_an_empty_continuation_is_refused(language):
    with pytest.raises(ValueError, match="empty continuation"):
        monte_carlo_loglikelihood(language.oracle_model(), [([0, 1], [])], 6)


def test_identical_draws_share_one_forward_row(language):
    # A 1-token continuation: all 128 draws (and the fully masked row of is_greedy) mask the same token, one canvas;
    # 2 tokens: three distinct masks ({1}, {2}, {1, 2}). The estimate is that of the 128 draws all the same.
    oracle = language.oracle_model()
    rows = []
    hook = oracle.register_forward_hook(lambda module, args, kwargs, output: rows.append(len(kwargs["input_ids"])),
                                        with_kwargs=True)  # fmt: skip
    try:
        one, two = requests_of(language, [1, 2])
        estimates = monte_carlo_loglikelihood(oracle, [one, two], oracle.config.mask_token_id, num_samples=128)
    finally:
        hook.remove()
    assert sum(rows) == 1 + 3
    assert estimates[0].value == pytest.approx(true_loglikelihood(language, *one), abs=ROUNDING)
    assert abs(estimates[1].value - true_loglikelihood(language, *two)) <= 3 * estimates[1].standard_error + ROUNDING
