"""AUP (accuracy under parallelism, d3LLM): the definition on hand-computed curves, its properties, its bootstrap
uncertainty from sweep rows, and the refusal of inputs it cannot read."""

import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hf_mdm.evaluation.accuracy_under_parallelism import (
    AUP_DEFINITION,
    accuracy_under_parallelism,
    aup,
    aup_report,
    aup_table,
)
from hf_mdm.metrics.sequence_error_rate.sequence_error_rate import wilson_interval


def test_aup_of_a_hand_computed_curve():
    # Sorted by tokens per forward: (1, 80) (2, 80) (4, 78) (8, 60); 60 < 80 - 5 is outside the area. With y_max = 80,
    # W(80) = 1 and W(78) = exp(-3 (1 - 78/80)) = exp(-0.075):
    # AUP = 1 * 80 + (2 - 1)(80 + 80) / 2 + (4 - 2)(80 + 78 exp(-0.075)) / 2 = 240 + 78 exp(-0.075).
    points = [(4, 78), (8, 60), (1, 80), (2, 80)]
    assert aup(points, 80) == pytest.approx(240 + 78 * math.exp(-0.075), rel=1e-12)
    assert aup(points, 80) == pytest.approx(312.364, abs=1e-3)
    # The first term is the unweighted rectangle rho_1 y_1; the trapezoids weigh by W against y_max = 100:
    # 2 * 90 + (4 - 2)(90 exp(-0.3) + 88 exp(-0.36)) / 2.
    assert aup([(2, 90), (4, 88)], 100) == pytest.approx(180 + 90 * math.exp(-0.3) + 88 * math.exp(-0.36), rel=1e-12)
    # alpha and the accuracy drop are the definition's parameters: a drop of 25 points keeps (8, 60).
    wide = 240 + 78 * math.exp(-0.075) + (8 - 4) * (78 * math.exp(-0.075) + 60 * math.exp(-0.75)) / 2
    assert aup(points, 80, accuracy_drop=25) == pytest.approx(wide, rel=1e-12)
    assert aup([(1, 80), (3, 70)], 80, alpha=1, accuracy_drop=10) == pytest.approx(
        80 + (80 + 70 * math.exp(-1 / 8)), rel=1e-12
    )


def test_a_point_exactly_at_the_threshold_is_kept_whatever_the_rounding():
    y_1 = 100 * (1 - 0.45)  # 55.00000000000001: 50 is 5 points below it, not 5.00000000000001
    assert aup([(1, y_1), (2, 50)], y_1) == pytest.approx(y_1 + (y_1 + 50 * math.exp(-3 * (1 - 50 / y_1))) / 2)


def test_an_autoregressive_point_scores_its_accuracy_and_one_point_its_rectangle():
    assert aup([(1, 74.1)], 74.98) == pytest.approx(74.1)  # as the d3LLM leaderboard scores an AR model
    assert aup([(3, 50)], 100) == pytest.approx(150)


def test_a_curve_whose_best_accuracy_is_zero_scores_zero():
    assert aup([(1, 0), (4, 0)], 0) == 0


rho_values = st.lists(st.floats(0.05, 50), min_size=1, max_size=8, unique=True)
percent = st.one_of(st.just(0.0), st.floats(1.001, 100))  # a best accuracy in (0, 1] is refused as a fraction


@settings(max_examples=60, deadline=None)
@given(rho=rho_values, accuracy=percent, data=st.data())
def test_a_flat_curve_at_the_best_accuracy_scores_its_largest_parallelism_times_it(rho, accuracy, data):
    # W = 1 everywhere: rho_1 y + y (rho_m - rho_1) = rho_m y, whatever the order of the points.
    points = data.draw(st.permutations([(r, accuracy) for r in rho]))
    assert aup(points, accuracy) == pytest.approx(max(rho) * accuracy, rel=1e-9, abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(
    points=st.lists(st.tuples(st.floats(0.05, 50), st.floats(0, 100)), min_size=1, max_size=8),
    data=st.data(),
)
def test_aup_depends_on_the_points_not_their_order_and_ignores_points_outside_its_area(points, data):
    best = max(accuracy for _, accuracy in points)
    assume(best == 0 or best > 1)
    value = aup(points, best)
    assert aup(data.draw(st.permutations(points)), best) == pytest.approx(value, rel=1e-12, abs=1e-12)
    first = min(points, key=lambda point: (point[0], -point[1]))
    if first[1] >= 6:  # a point 6 below the first, past every other: outside the region, no area
        outside = (max(rho for rho, _ in points) + 1, first[1] - 6)
        assert aup([*points, outside], best) == pytest.approx(value, rel=1e-12, abs=1e-12)
    assert 0 <= value <= max(rho for rho, _ in points) * best + 1e-9


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "points, max_accuracy, kwargs, message",
    [
        ([(1, 0.8), (2, 0.7)], 0.8, {}, "looks like a fraction"),
        ([], 80, {}, "non-empty list"),
        ([1, 2], 80, {}, "pairs"),
        ([(0, 80)], 80, {}, "tokens per forward must be a finite number > 0"),
        ([(float("nan"), 80)], 80, {}, "tokens per forward must be a finite number > 0"),
        ([(1, 101)], 101, {}, "percentage in"),
        ([(1, 80)], 70, {}, "below an accuracy of the curve"),
        ([(1, 80)], 80, {"alpha": 0}, "alpha must be"),
        ([(1, 80)], 80, {"accuracy_drop": -1}, "accuracy_drop must be"),
        ("12", 80, {}, "non-empty list"),
    ],
)
def test_aup_refuses_what_the_definition_cannot_read(points, max_accuracy, kwargs, message):
    with pytest.raises(ValueError, match=message):
        aup(points, max_accuracy, **kwargs)


def row(strategy, length, steps, ser, tokens_per_forward, num_samples=100, se=0.01, **extra):
    low, high = wilson_interval(round(ser * num_samples), num_samples)
    return dict(strategy=strategy, length=length, steps=steps, num_samples=num_samples, ser=ser, ser_low=low,
                ser_high=high, tokens_per_forward=tokens_per_forward, tokens_per_forward_standard_error=se,
                **extra)  # fmt: skip


def sweep_rows(num_samples=100):
    rows = []
    for length in (8, 16):
        for steps, ser in ((16, 0.02), (8, 0.04), (4, 0.06), (2, 0.5)):
            rows.append(row("confidence", length, steps, ser, length / min(steps, length) + 0.1, num_samples))
            rows.append(row("random", length, steps, min(1.0, 2 * ser), length / min(steps, length), num_samples))
    rows.append(row("autoregressive", 8, 8, 0.01, 1.0, num_samples, se=None, block_size=1))
    return rows


def test_one_aup_per_length_strategy_and_block_size_from_the_rows_points():
    rows = sweep_rows()
    results = accuracy_under_parallelism(rows)
    assert [(r.length, r.decoder) for r in results] == [
        (8, "autoregressive"), (8, "confidence"), (8, "random"), (16, "confidence"), (16, "random")
    ]  # fmt: skip
    for result in results:
        at_length = [r for r in rows if r["length"] == result.length]
        best = max(100 * (1 - r["ser"]) for r in at_length)
        curve = [r for r in at_length if r["strategy"] == result.strategy]
        points = [(r["tokens_per_forward"], 100 * (1 - r["ser"])) for r in curve]
        assert result.max_accuracy == pytest.approx(best)
        assert result.aup == pytest.approx(aup(points, best), rel=1e-12)
        assert result.num_points == len(points)
    autoregressive = results[0]
    assert autoregressive.aup == pytest.approx(99.0) and autoregressive.num_points == autoregressive.points_used == 1
    assert autoregressive.metric_config == "strategy=autoregressive,length=8,block_size=1"
    confidence = results[1]  # steps 2 (accuracy 50) is more than 5 points below steps 16 (98): outside the area
    assert (confidence.points_used, confidence.num_points) == (3, 4)
    assert confidence.first_point == (1.1, 98.0)  # steps 16 at length 8
    assert "over 3 of 4 points" in confidence.describe() and "one point" in autoregressive.describe()
    assert "from 98.0% at 1.10 tokens per forward" in confidence.describe()


def test_block_sizes_are_separate_curves():
    rows = [row("confidence", 16, steps, 0.1, 16 / steps, block_size=size) for size in (4, 16) for steps in (4, 8)]
    results = accuracy_under_parallelism(rows)
    assert [(r.block_size, r.decoder) for r in results] == [("L", "confidence"), (4, "confidence, block size 4")]
    assert results[1].metric_config == "strategy=confidence,length=16,block_size=4"


def test_the_bootstrap_uncertainty_follows_the_samples_and_is_reproducible():
    # A one-point curve at rho = 1: the AUP is the accuracy, whose SE is that of a binomial proportion.
    rows = [row("random", 8, 8, 0.5, 1.0, num_samples=10_000, se=0.0)]
    (result,) = accuracy_under_parallelism(rows)
    assert result.standard_error == pytest.approx(100 * math.sqrt(0.25 / 10_000), rel=0.1)
    low, high = result.interval
    assert low < result.aup < high and high - low == pytest.approx(2 * 1.96 * result.standard_error, rel=0.15)
    small, large = accuracy_under_parallelism(sweep_rows(100)), accuracy_under_parallelism(sweep_rows(10_000))
    for a, b in zip(small, large):
        assert b.standard_error < a.standard_error
    assert accuracy_under_parallelism(sweep_rows(), seed=3) == accuracy_under_parallelism(sweep_rows(), seed=3)
    assert accuracy_under_parallelism(sweep_rows(), seed=3) != accuracy_under_parallelism(sweep_rows(), seed=4)


def test_the_tokens_per_forward_error_enters_the_uncertainty():
    exact = [row("random", 8, steps, 0.0, 8 / steps, num_samples=1_000_000, se=0.0) for steps in (8, 4)]
    noisy = [row("random", 8, steps, 0.0, 8 / steps, num_samples=1_000_000, se=0.2) for steps in (8, 4)]
    (a,), (b,) = accuracy_under_parallelism(exact), accuracy_under_parallelism(noisy)
    assert a.aup == b.aup and b.standard_error > 10 * a.standard_error


def test_the_table_and_the_report():
    table = aup_table(sweep_rows())
    assert table.splitlines()[0] == (
        "| length | decoder | points used / swept | first point: tokens/forward, accuracy (%) | max accuracy (%) "
        "| AUP ± SE | AUP 95% interval |"
    )
    assert "| 8 | autoregressive | 1 / 1 | 1.00, 99.0 | 99.0 | 99.0 ± " in table
    assert "| 16 | random | 2 / 4 | 1.00, 96.0 | 98.0 | " in table  # steps 16: 2 x 0.02 wrong
    report = aup_report(sweep_rows())
    assert report.startswith(AUP_DEFINITION) and table in report


@pytest.mark.bad_input
def test_rows_without_tokens_per_forward_are_refused_and_the_report_says_why():
    rows = [{"task": task, "strategy": "confidence", "length": 4, "steps": steps, "num_samples": 10, "ser": 0.5}
            for task in ("a", "b") for steps in (2, 4)]  # fmt: skip
    with pytest.raises(ValueError, match="has no tokens_per_forward: AUP needs"):
        accuracy_under_parallelism(rows[:2])
    with pytest.raises(ValueError, match="one table or card is one task"):
        accuracy_under_parallelism(rows)
    report = aup_report(rows)  # lm-eval rows: one section per task, each saying why it has no AUP
    assert "### a\n\nNot computed: Sweep row 0" in report and "### b\n\nNot computed: Sweep row 0" in report


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "change, kwargs, message",
    [
        ({"tokens_per_forward": 0.0}, {}, "decoded 0 tokens per forward"),
        ({"tokens_per_forward": -1.0}, {}, "tokens_per_forward must be a finite number >= 0"),
        ({"ser": 0.555}, {}, "not a whole number"),
        ({}, {"num_draws": 1}, "num_draws must be an integer >= 2"),
        ({}, {"seed": -1}, "seed must be an integer >= 0"),
        ({}, {"alpha": float("inf")}, "alpha must be"),
    ],
)
def test_bad_rows_and_arguments_are_refused_before_any_draw(change, kwargs, message):
    rows = sweep_rows()
    rows[3].update(change)
    with pytest.raises(ValueError, match=message):
        accuracy_under_parallelism(rows, **kwargs)


@pytest.mark.bad_input
def test_a_table_that_is_not_rows_is_refused():
    with pytest.raises(TypeError, match="must be a sweep table"):
        accuracy_under_parallelism("sweep.jsonl")
    with pytest.raises(ValueError, match="empty"):
        accuracy_under_parallelism([])


def test_a_row_without_errors_still_has_an_uncertainty():
    # Binomial resampling of 0 errors in 100 would give no spread; the Jeffreys posterior Beta(100.5, 0.5) has a
    # standard deviation of sqrt(100.5 * 0.5 / (101 ** 2 * 102)) = 0.70 points, all of it below 100%.
    (result,) = accuracy_under_parallelism([row("random", 8, 8, 0.0, 1.0, num_samples=100, se=0.0)])
    assert result.aup == 100 and result.standard_error == pytest.approx(0.70, rel=0.15)
    assert result.interval[1] <= 100


@settings(max_examples=25, deadline=None)
@given(
    cells=st.lists(
        st.tuples(
            st.sampled_from(["random", "confidence"]),
            st.sampled_from([8, 16]),
            st.integers(1, 32),
            st.integers(0, 20),
            st.floats(0.1, 16),
            st.one_of(st.none(), st.floats(0, 1)),
        ),  # (strategy, length, steps, errors of 20, tokens per forward, its SE)
        min_size=1,
        max_size=10,
        unique_by=lambda cell: cell[:3],
    )
)
def test_every_valid_sweep_gets_each_curve_the_aup_of_its_points(cells):
    rows = [row(strategy, length, steps, errors / 20, rho, num_samples=20, se=se)
            for strategy, length, steps, errors, rho, se in cells]  # fmt: skip
    results = accuracy_under_parallelism(rows, num_draws=50)
    assert len(results) == len({(r["strategy"], r["length"]) for r in rows})
    for result in results:
        at_length = [r for r in rows if r["length"] == result.length]
        best = max(100 * (1 - r["ser"]) for r in at_length)
        curve = [r for r in at_length if r["strategy"] == result.strategy]
        points = [(r["tokens_per_forward"], 100 * (1 - r["ser"])) for r in curve]
        if best == 0 or best > 1:  # `aup` refuses a best accuracy in (0, 1] as a fraction; the rows are counts
            assert result.aup == pytest.approx(aup(points, best), rel=1e-12, abs=1e-12)
        assert result.standard_error >= 0 and result.interval[0] <= result.interval[1]
        assert 1 <= result.points_used <= result.num_points == len(curve)
