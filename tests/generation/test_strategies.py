"""Strategies and reveal-count rules, one step at a time."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chisquare

from hf_mdm.generation import (
    REVEAL_COUNT_RULES,
    RevealStep,
    RowRandomness,
    get_reveal_count_rule,
    get_strategy,
    sample_categorical,
)
from hf_mdm.schedules import SCHEDULES, get_schedule


def make_step(masked, scores=None, counts=None, t=1.0, s=0.5, seed=0):
    rows = torch.arange(masked.shape[0])
    randomness = RowRandomness(torch.Generator().manual_seed(seed), masked.shape[0])
    return RevealStep(masked=masked, scores=scores, counts=counts, t=t, s=s, rows=rows, randomness=randomness)


@settings(max_examples=60, deadline=None)
@given(
    rule=st.sampled_from(sorted(REVEAL_COUNT_RULES)),
    schedule=st.sampled_from(sorted(SCHEDULES)),
    masked=st.lists(st.integers(0, 40), min_size=1, max_size=4),
    steps=st.integers(1, 50),
)
def test_reveal_counts_are_non_negative_and_sum_to_the_masked_count(rule, schedule, masked, steps):
    num_masked = torch.tensor(masked)
    counts = get_reveal_count_rule(rule)(num_masked, steps, get_schedule(schedule))
    assert counts.shape == (len(masked), steps)
    assert (counts >= 0).all()
    assert torch.equal(counts.sum(1), num_masked)


def test_even_rule_puts_the_remainder_first_and_linear_schedule_is_even():
    even = get_reveal_count_rule("even")(torch.tensor([10]), 4, get_schedule("linear"))
    assert even.tolist() == [[3, 3, 2, 2]]
    schedule = get_reveal_count_rule("schedule")(torch.tensor([12]), 4, get_schedule("linear"))
    assert schedule.tolist() == [[3, 3, 3, 3]]
    cosine = get_reveal_count_rule("schedule")(torch.tensor([12]), 4, get_schedule("cosine"))
    assert cosine.tolist() != schedule.tolist() and cosine.sum() == 12


def test_llada_rule_is_the_even_split_of_get_num_transfer_tokens():
    num_masked = torch.tensor([0, 3, 8, 10, 37])
    llada = get_reveal_count_rule("llada")(num_masked, 4, get_schedule("linear"))
    assert torch.equal(llada, get_reveal_count_rule("even")(num_masked, 4, get_schedule("linear")))
    assert llada[3].tolist() == [3, 3, 2, 2]


def test_dream_rule_truncates_the_expected_reveals_of_what_is_still_masked():
    dream = get_reveal_count_rule("dream")
    # 8 * (1 - 0.75025 / 1) = 1.998 -> 1; 7 * (1 - 0.5005 / 0.75025) = 2.33 -> 2; 5 * 0.499 -> 2; the last step: 3.
    assert dream(torch.tensor([8, 9, 0]), 4, get_schedule("cosine")).tolist() == [[1, 2, 2, 3], [2, 2, 2, 3], [0] * 4]
    assert get_reveal_count_rule("dream", eps=0.5)(torch.tensor([8]), 2, get_schedule("linear")).tolist() == [[2, 6]]
    with pytest.raises(ValueError, match="0 <= eps < 1"):
        get_reveal_count_rule("dream", eps=1.0)
    with pytest.raises(ValueError, match="Bad reveal_counts_kwargs .* for the 'even' reveal_counts rule"):
        get_reveal_count_rule("even", eps=0.1)


@pytest.mark.parametrize("name", ["confidence", "margin", "entropy"])
def test_ranked_strategy_reveals_exactly_the_count_of_best_masked_positions(name):
    strategy = get_strategy(name, schedule=get_schedule("linear"))
    probs = torch.tensor([[0.9, 0.1, 0.0], [0.5, 0.5, 0.0], [0.6, 0.3, 0.1], [0.98, 0.01, 0.01]]).expand(2, 4, 3)
    scores = strategy.score(probs, probs.argmax(-1))
    masked = torch.tensor([[True, True, True, False], [True, True, True, True]])
    reveal = strategy.select(make_step(masked, scores, counts=torch.tensor([1, 2])))
    assert reveal.sum(1).tolist() == [1, 2] and not (reveal & ~masked).any()
    assert reveal[0].tolist() == [True, False, False, False]  # position 3 is the best but not masked
    assert reveal[1].tolist() == [True, False, False, True]


def test_threshold_reveals_everything_above_tau_and_at_least_one():
    strategy = get_strategy("threshold", schedule=get_schedule("linear"), threshold=0.7)
    scores = torch.tensor([[0.9, 0.8, 0.2], [0.1, 0.3, 0.2]])
    masked = torch.ones(2, 3, dtype=torch.bool)
    assert strategy.select(make_step(masked, scores)).tolist() == [[True, True, False], [False, True, False]]


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_random_reveal_steps_follow_the_ancestral_step_probabilities(name):
    """Each position's drawn reveal step has the step-by-step sampler's law: revealed at step k w.p.
    (alpha(s_k) - alpha(t_k)) / (1 - alpha(t_k)) given still masked at t_k (the last step reveals the rest)."""
    schedule, steps = get_schedule(name), 5
    strategy = get_strategy("random", schedule=schedule)
    uniform = torch.rand(40000, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    drawn = strategy.reveal_steps(uniform, steps).squeeze(1)
    observed = torch.bincount(drawn, minlength=steps).double()
    survival, expected = 1.0, []
    for k in range(steps):
        t, s = torch.tensor(1 - k / steps, dtype=torch.float64), torch.tensor(1 - (k + 1) / steps, dtype=torch.float64)
        hazard = 1.0 if k == steps - 1 else float(schedule.reveal_probability(t, s))
        expected.append(survival * hazard)
        survival *= 1.0 - hazard
    expected = torch.tensor(expected, dtype=torch.float64)
    assert expected.sum().item() == pytest.approx(1.0)
    assert chisquare(observed.numpy(), (expected / expected.sum() * len(drawn)).numpy()).pvalue > 1e-3
    step = make_step(torch.ones(1, 6, dtype=torch.bool))
    step.index, step.reveal_steps = 2, torch.tensor([[0, 1, 2, 3, 4, 2]])
    assert strategy.select(step).tolist() == [[True, True, True, False, False, True]]


def test_random_reveal_steps_take_any_budget():
    """K = 10**12 steps (bisection: 40 evaluations of alpha per position, nothing per step): by the middle step a
    fraction F(1/2) = (alpha(1/2) - alpha(1)) / (1 - alpha(1)) of the positions is revealed."""
    schedule, steps = get_schedule("cosine"), 10**12
    uniform = torch.rand(20, 1000, generator=torch.Generator().manual_seed(1))
    drawn = get_strategy("random", schedule=schedule).reveal_steps(uniform, steps)
    assert drawn.min() >= 0 and drawn.max() < steps
    expected = float(schedule.alpha(torch.tensor(0.5)))
    assert (drawn < steps // 2).double().mean().item() == pytest.approx(expected, abs=0.015)


def test_categorical_draws_follow_the_distribution_and_never_pick_zero_probability_tokens():
    probs = torch.tensor([0.0, 0.5, 0.0, 0.25, 0.25]).expand(2, 20000, 5)
    uniform = RowRandomness(torch.Generator().manual_seed(0), 2).rand(torch.arange(2), 20000, probs.device)
    draws = sample_categorical(probs, uniform)
    frequencies = torch.bincount(draws.flatten(), minlength=5) / draws.numel()
    assert frequencies[0] == 0 and frequencies[2] == 0
    torch.testing.assert_close(frequencies, probs[0, 0], atol=0.01, rtol=0)
    assert sample_categorical(probs[:1, :3], torch.zeros(1, 3)).tolist() == [[1, 1, 1]]


def test_per_row_generators_make_rows_independent_of_batch_mates():
    together = RowRandomness([torch.Generator().manual_seed(row) for row in range(3)], 3).rand(
        torch.arange(3), 6, "cpu"
    )
    alone = RowRandomness([torch.Generator().manual_seed(2)], 1).rand(torch.arange(1), 6, "cpu")
    assert torch.equal(together[2], alone[0])


def test_ranked_scores_within_the_tie_tolerance_go_to_the_leftmost_position():
    """Scores equal in exact arithmetic but off in the last bits (as between batch sizes) must not reorder."""
    from hf_mdm.generation.strategies import TIE_TOLERANCE, top_positions

    masked = torch.ones(2, 4, dtype=torch.bool)
    near_ties = torch.tensor([[0.3377422, 0.3377424, 0.3377423, 0.1], [0.3377424, 0.3377422, 0.3377423, 0.1]])
    chosen = top_positions(near_ties, masked, torch.tensor([2, 2]))
    assert chosen.tolist() == [[True, True, False, False]] * 2  # the same in both rows despite the last bits
    apart = torch.tensor([[0.2, 0.2 + 3 * TIE_TOLERANCE, 0.9, 0.1]])
    assert top_positions(apart, masked[:1], torch.tensor([2])).tolist() == [[False, True, True, False]]
