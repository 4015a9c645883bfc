"""Steps needed for a target error: the monotone fit, the search, the exponent with its interval."""

import math

import numpy as np
import pytest

from hf_mdm.evaluation import StepsNeeded, fit_step_scaling, search_steps
from hf_mdm.evaluation.step_scaling import fit_exponent, step_scaling_table, verdict
from hf_mdm.evaluation.steps_needed import decide_steps_needed, non_increasing_fit
from hf_mdm.evaluation.steps_search import predicted_start
from hf_mdm.metrics.sequence_error_rate.sequence_error_rate import wilson_interval


# ---- monotone fit ---------------------------------------------------------------------------------------------------
def test_non_increasing_fit_pools_violators_with_weights():
    rates, weights = [0.9, 0.2, 0.6, 0.5, 0.1], [10, 10, 30, 10, 10]
    fitted = non_increasing_fit(rates, weights)
    assert all(a >= b for a, b in zip(fitted, fitted[1:]))
    assert fitted[0] == rates[0] and fitted[-1] == rates[-1]
    pooled = (0.2 * 10 + 0.6 * 30 + 0.5 * 10) / 50  # the dip at index 1 pools with the two probes that contradict it
    assert fitted[1:4] == pytest.approx([pooled] * 3)
    assert sum(f * w for f, w in zip(fitted, weights)) == pytest.approx(sum(r * w for r, w in zip(rates, weights)))
    already = [0.8, 0.8, 0.3, 0.0]
    assert non_increasing_fit(already, [1] * 4) == already


def test_non_increasing_fit_is_the_least_squares_projection():
    rng = np.random.default_rng(0)
    for _ in range(50):
        rates, weights = rng.random(6), rng.integers(1, 20, 6)
        fitted = np.array(non_increasing_fit(list(rates), list(weights)))
        best = np.sum(weights * (fitted - rates) ** 2)
        for _ in range(20):  # no other non-increasing sequence is closer
            other = np.sort(np.clip(fitted + rng.normal(0, 0.05, 6), 0, 1))[::-1]
            assert np.sum(weights * (other - rates) ** 2) >= best - 1e-12


# ---- the search ---------------------------------------------------------------------------------------------------
def ser_curve(length: int, scale: float):
    """A decreasing SER curve: each of L tokens goes wrong with probability scale / S, independently."""
    return lambda steps: 1 - (1 - min(1.0, scale / steps)) ** length


def exact_evaluator(curve, num_samples, probed):
    def evaluate(steps):
        probed.append(steps)
        return round(curve(steps) * num_samples), num_samples

    return evaluate


@pytest.mark.parametrize("length, scale, target", [(8, 0.5, 0.1), (32, 0.3, 0.05), (64, 0.3, 0.05), (16, 2.0, 0.2)])
def test_search_brackets_the_true_threshold_as_tightly_as_the_noise_allows(length, scale, target):
    """Behaviour change (issue P): the search no longer bisects down to +-1 step inside the sampling noise; it stops
    when the bracket's ends are adjacent or both indistinguishable from the target, and gives a 95% interval."""
    curve, num_samples, probed = ser_curve(length, scale), 10_000, []
    result = search_steps(exact_evaluator(curve, num_samples, probed), target, max_steps=4096, length=length)
    truth = next(s for s in range(1, 4097) if round(curve(s) * num_samples) / num_samples <= target)
    low, high = result.interval
    assert low <= truth <= high and low <= result.steps <= high and result.reached and result.length == length
    assert len(probed) == len(set(probed)) <= 2 * math.log2(4096) + 2  # O(log S) probes, none repeated
    assert [p.steps for p in result.probes] == sorted(probed)
    for probe in result.probes:
        assert probe.low <= probe.rate <= probe.high  # Wilson interval around every probe
    lo = [p for p in result.probes if p.steps < result.steps][-1]
    hi = next(p for p in result.probes if p.steps == result.steps)
    assert hi.steps - lo.steps == 1 or not (lo.too_few(target) or hi.enough(target))  # nothing left to tell apart
    assert any(p.too_few(target) for p in result.probes) and any(p.enough(target) for p in result.probes)


def test_the_search_stops_when_the_bracket_is_within_the_sampling_noise():
    """At 100 samples the rates between lo and hi cannot be told from the target: no bisection down to +-1 step."""
    curve, probed = ser_curve(64, 0.3), []
    result = search_steps(exact_evaluator(curve, 100, probed), 0.05, max_steps=4096)
    lo = [p for p in result.probes if p.steps < result.steps][-1]
    assert result.steps - lo.steps > 1 and lo.low <= 0.05 and next(
        p for p in result.probes if p.steps == result.steps).high > 0.05  # fmt: skip


def test_the_interval_covers_the_true_threshold_of_replicate_searches():
    """Replicate searches on binomial noise scatter; their 95% intervals cover the true threshold (multiplicity
    allows a little less than 95%, see `steps_needed`)."""
    curve, rng, trials = ser_curve(32, 0.3), np.random.default_rng(2), 300
    truth = next(s for s in range(1, 4097) if curve(s) <= 0.05)
    results = [search_steps(lambda s: (int(rng.binomial(100, curve(s))), 100), 0.05, max_steps=4096)
               for _ in range(trials)]  # fmt: skip
    covered = sum(r.interval[0] <= truth <= (r.interval[1] or math.inf) for r in results)
    assert covered / trials >= 0.9
    assert len({r.steps for r in results}) > 3  # the point decisions do scatter: the interval is needed


def test_a_predicted_start_spends_fewer_probes():
    curve = ser_curve(64, 0.3)
    from_floor, from_prediction = [], []
    cold = search_steps(exact_evaluator(curve, 400, from_floor), 0.05, max_steps=4096)
    warm = search_steps(exact_evaluator(curve, 400, from_prediction), 0.05, max_steps=4096, start=cold.steps)
    assert from_prediction[0] == cold.steps and len(from_prediction) < len(from_floor)
    assert warm.interval[0] <= cold.steps <= warm.interval[1]


@pytest.mark.parametrize(
    "decided, expected",
    [({}, 3), ({16: 10}, 20), ({8: 4, 16: 10}, 25), ({16: 2, 24: 100}, 200), ({8: 1, 16: 1}, 3)],
)
def test_predicted_start_follows_the_decided_lengths(decided, expected):
    needed = {length: StepsNeeded(length, 0.1, 200, (), steps) for length, steps in decided.items()}
    assert predicted_start(needed, 32, floor=3, ceiling=200) == expected


def test_search_on_binomial_noise_lands_near_the_threshold():
    curve, rng = ser_curve(32, 0.3), np.random.default_rng(1)
    truth = next(s for s in range(1, 4097) if curve(s) <= 0.05)
    for _ in range(10):
        result = search_steps(lambda s: (int(rng.binomial(2000, curve(s))), 2000), 0.05, max_steps=4096)
        assert abs(result.steps - truth) <= 0.25 * truth


def test_a_lucky_dip_does_not_end_the_search():
    curve, probed = ser_curve(32, 0.3), []
    exact = exact_evaluator(curve, 400, probed)
    truth = search_steps(exact, 0.05, max_steps=1024).steps
    dip = 2 ** int(math.log2(truth) - 2)  # a probe on the doubling path, far below the threshold, shows no error

    def lucky(steps):
        return (0, 400) if steps == dip else exact(steps)

    result = search_steps(lucky, 0.05, max_steps=1024)
    assert result.steps == truth
    assert next(p for p in result.probes if p.steps == dip).fitted > 0.05  # pooled with what contradicts it


def test_not_reached_by_max_steps_is_never_extrapolated():
    probed = []
    result = search_steps(exact_evaluator(ser_curve(64, 2.0), 500, probed), 0.01, max_steps=100, min_steps=3)
    assert result.steps is None and not result.reached
    assert max(probed) == 100 and min(probed) == 3
    assert result.describe() == "L=0: not reached by S_max=100 (95% interval [>= 101])"  # S_max is too few


def test_met_at_min_steps_stops_there():
    probed = []
    result = search_steps(exact_evaluator(lambda s: 0.0, 100, probed), 0.1, max_steps=64, min_steps=4)
    assert result.steps == 4 and probed[0] == 4 and min(probed) == 4


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(target=0.0), "strictly between 0 and 1"),
        (dict(target=1.0), "strictly between 0 and 1"),
        (dict(target="0.1"), "strictly between 0 and 1"),
        (dict(max_steps=0), "max_steps must be a positive integer"),
        (dict(max_steps=8.0), "max_steps must be a positive integer"),
        (dict(min_steps=16, max_steps=8), "must not exceed"),
    ],
)
def test_search_refuses_bad_input_before_evaluating(kwargs, match):
    def never(steps):
        raise AssertionError("evaluated before the input was checked")

    with pytest.raises(ValueError, match=match):
        search_steps(never, **{"target": 0.1, "max_steps": 64, **kwargs})


@pytest.mark.bad_input
def test_search_refuses_impossible_counts():
    with pytest.raises(ValueError, match="returned 5 errors out of 4"):
        search_steps(lambda s: (5, 4), 0.1, max_steps=8)


# ---- the exponent --------------------------------------------------------------------------------------------------
def needed_at(points: dict[int, int | None], max_steps: int = 10**9) -> dict[int, StepsNeeded]:
    return {length: StepsNeeded(length, 0.1, max_steps, (), steps) for length, steps in points.items()}


def test_exponent_and_standard_error_match_least_squares():
    rng = np.random.default_rng(0)
    lengths = [16, 32, 64, 128]  # 2 degrees of freedom: t_{0.975} = sqrt(2 c^2 / (1 - c^2)), c = 0.95, in closed form
    points = {L: int(round(3 * L**0.8 * math.exp(rng.normal(0, 0.1)))) for L in lengths}
    fit = fit_exponent("random", "ser", 0.1, needed_at(points))
    x, y = np.log(lengths), np.log([points[L] for L in lengths])
    (slope, intercept), covariance = np.polyfit(x, y, 1, cov=True)
    assert fit.exponent == pytest.approx(slope, rel=1e-9)
    assert fit.coefficient == pytest.approx(math.exp(intercept), rel=1e-9)
    assert fit.standard_error == pytest.approx(math.sqrt(covariance[0, 0]), rel=1e-9)
    half = math.sqrt(2 * 0.95**2 / (1 - 0.95**2)) * fit.standard_error
    assert fit.interval == pytest.approx((slope - half, slope + half), rel=1e-9)
    assert fit.interval[0] < 0.8 < fit.interval[1]


def test_interval_covers_the_true_exponent_95_percent_of_the_time():
    rng, lengths, covered, trials = np.random.default_rng(1), [8, 16, 32, 64, 128], 0, 400
    for _ in range(trials):
        points = {L: int(round(1000 * L * math.exp(rng.normal(0, 0.3)))) for L in lengths}
        low, high = fit_exponent("random", "ser", 0.1, needed_at(points)).interval
        covered += low <= 1.0 <= high
    assert 0.91 <= covered / trials <= 0.99


def test_three_lengths_use_the_cauchy_quantile():
    """With 3 lengths the interval has 1 degree of freedom: t_{0.975} = tan(0.475 pi) (the Cauchy quantile)."""
    points = {8: 9, 16: 15, 32: 35}
    fit = fit_exponent("random", "ser", 0.1, needed_at(points))
    x, y = np.log(list(points)), np.log(list(points.values()))
    residuals = y - np.polyval(np.polyfit(x, y, 1), x)
    standard_error = math.sqrt(np.sum(residuals**2) / 1 / np.sum((x - x.mean()) ** 2))
    assert fit.standard_error == pytest.approx(standard_error, rel=1e-9)
    half = math.tan(0.475 * math.pi) * standard_error
    assert fit.interval == pytest.approx((fit.exponent - half, fit.exponent + half), rel=1e-9)
    assert "only 3 lengths" in fit.describe()


def test_fewer_than_three_lengths_give_no_exponent():
    fit = fit_exponent("random", "ser", 0.1, needed_at({8: 8, 16: 16, 32: None}, max_steps=64))
    assert fit.exponent is None and fit.interval is None and fit.steps_needed == {8: 8, 16: 16}
    text = fit.describe()
    assert "No exponent" in text and "2 length(s)" in text and "L=32: not reached by S_max=64" in text


def test_three_lengths_give_an_exponent_with_a_wide_interval():
    fit = fit_exponent("random", "ser", 0.1, needed_at({8: 9, 16: 15, 32: 33}))
    assert fit.exponent is not None and fit.interval[1] - fit.interval[0] > 10 * fit.standard_error
    assert "only 3 lengths (1 degree of freedom): read it as wide" in fit.describe()


def test_verdict_names_the_claim_the_interval_supports():
    assert verdict(0.7, 1.2).startswith("consistent with linear growth")
    assert verdict(-0.2, 0.3).startswith("consistent with no growth")
    assert verdict(-0.5, 1.5).startswith("too uncertain")
    assert verdict(1.3, 1.9).startswith("excludes both")


# ---- swept tables ---------------------------------------------------------------------------------------------------
def swept(ser_by_length: dict[int, dict[int, float]], strategy="confidence") -> list[dict]:
    """Sweep rows of 200 samples, each with the Wilson interval of its SER (a non-finite SER gets [0, 1])."""
    return [
        dict(strategy=strategy, length=L, steps=s, num_samples=200, ser=v,
             **dict(zip(("ser_low", "ser_high"),
                        wilson_interval(round(v * 200), 200) if math.isfinite(v) else (0, 1))))
        for L, cells in ser_by_length.items()
        for s, v in cells.items()
    ]  # fmt: skip


def test_swept_table_decides_on_the_monotone_fit_not_the_first_dip():
    rows = swept({32: {8: 0.0, 16: 0.5, 32: 0.3, 64: 0.05, 128: 0.01}})
    assert fit_step_scaling(rows, "confidence", "ser", 0.1).steps_needed == {32: 64}


def test_swept_table_fit_reports_not_reached_and_its_exponent():
    """Behaviour change (issue P): the decided steps lie exactly on S = L, but each is only known to within the
    swept grid (L=16: more than 8, at most 16), so b's interval is no longer the zero-width [1, 1]."""
    grid = {L: {s: (0.02 if s >= L else 0.6) for s in (8, 16, 32, 64)} for L in (8, 16, 32, 64, 128)}
    fit = fit_step_scaling(swept(grid), "confidence", "ser", 0.1)
    assert fit.steps_needed == {8: 8, 16: 16, 32: 32, 64: 64}
    assert fit.needed_interval == {8: (1, 8), 16: (9, 16), 32: (17, 32), 64: (33, 64), 128: (65, None)}
    assert fit.exponent == pytest.approx(1.0) and fit.regression_standard_error == pytest.approx(0.0, abs=1e-12)
    x = np.log([8, 16, 32, 64])
    weights = (x - x.mean()) / np.sum((x - x.mean()) ** 2)
    sigmas = np.log([8 / 1, 16 / 9, 32 / 17, 64 / 33]) / (2 * 1.959963984540054)
    standard_error = math.sqrt(np.sum((weights * sigmas) ** 2))
    assert fit.standard_error == pytest.approx(standard_error, rel=1e-9)
    half = math.sqrt(2 * 0.95**2 / (1 - 0.95**2)) * standard_error  # t_{0.975, 2}
    assert fit.interval == pytest.approx((1 - half, 1 + half), rel=1e-9)
    text = fit.describe()
    assert "L=128: not reached by S_max=64 (95% interval [>= 65])" in text
    assert "L=16: 16 (95% interval [9, 16])" in text
    assert "too uncertain to tell" in text  # a grid of powers of 2 over 4 lengths cannot tell b = 1 from b = 0
    cells = "| 8 [1, 8] | 16 [9, 16] | 32 [17, 32] | 64 [33, 64] | not reached by 64 [>= 65] |"
    assert cells in step_scaling_table([fit])


# ---- the interval of the steps needed -----------------------------------------------------------------------------
def wilson_probes(counts: dict[int, int], num_samples: int = 100) -> dict:
    return {s: (k / num_samples, num_samples, *wilson_interval(k, num_samples)) for s, k in counts.items()}


def test_interval_ends_are_the_significant_probes():
    # 100 samples, target 0.1: 30 errors is significantly too few, 12 and 6 are not significant, 0 is enough
    result = decide_steps_needed(64, 0.1, 512, wilson_probes({8: 30, 16: 30, 32: 12, 48: 6, 64: 0, 128: 0}), 2)
    assert result.steps == 48 and result.interval == (17, 64)
    assert result.describe() == "L=64: 48 (95% interval [17, 64])"
    # nothing significantly too few: the floor; nothing significantly enough: open above
    result = decide_steps_needed(64, 0.1, 512, wilson_probes({8: 12, 16: 6}), 2)
    assert result.steps == 16 and result.interval == (2, None) and result.interval_text() == "[>= 2]"
    # contradicting probes (16 significantly enough, 32 significantly too few; one test erred): the interval spans
    # both, and holds the decision the pooled fit makes
    result = decide_steps_needed(64, 0.1, 512, wilson_probes({16: 0, 32: 22}), 1)
    assert result.steps is None and result.interval == (16, 33)
    result = decide_steps_needed(64, 0.1, 512, wilson_probes({16: 2, 32: 18}), 1)
    assert result.steps == 16 and result.interval == (16, 33)
    # 4/100 at S=16 is significantly enough, but pooled with 107/1000 at S=32 its fit is over 0.1, so the fit decides
    # 64: the interval is widened to hold the decision
    measured = {**wilson_probes({16: 4, 64: 0}), 32: (0.107, 1000, *wilson_interval(107, 1000))}
    result = decide_steps_needed(64, 0.1, 512, measured, 1)
    assert result.steps == 64 and result.interval == (1, 64)


def test_probes_without_an_interval_give_none():
    result = decide_steps_needed(64, 0.1, 512, {8: (0.5, 100, None, None), 16: (0.0, 100, None, None)})
    assert result.steps == 16 and result.interval is None and result.describe() == "L=64: 16 (no interval)"
    rows = [dict(strategy="random", length=L, steps=s, num_samples=50, ser=0.0, token_error=v)
            for L in (8, 16, 32) for s, v in ((4, 0.5), (64, 0.01))]  # fmt: skip
    fit = fit_step_scaling(rows, "random", "token_error", 0.1)
    assert fit.needed_interval == {} and fit.standard_error == fit.regression_standard_error
    assert "have no interval, so their uncertainty is not in it" in fit.describe()


def test_ter_gap_intervals_come_from_its_standard_error():
    rows = [dict(strategy="random", length=L, steps=s, num_samples=50, ser=0.0, ter_gap=v, ter_gap_se=0.01)
            for L in (8, 16, 32) for s, v in ((4, 0.5), (8, 0.09), (16, 0.05), (32, 0.0))]  # fmt: skip
    fit = fit_step_scaling(rows, "random", "ter_gap", 0.1)
    # 0.09 +- 0.0196 straddles 0.1: not significant; 0.05 + 0.0196 < 0.1 is; 0.5 - 0.0196 > 0.1 is too few
    assert fit.steps_needed == {8: 8, 16: 8, 32: 8} and fit.needed_interval == {L: (5, 16) for L in (8, 16, 32)}


def test_an_open_interval_makes_the_exponent_unbounded_on_its_side():
    closed = {8: {4: 60, 8: 0}, 16: {8: 60, 16: 0}, 32: {16: 60, 32: 0}}
    for length, side in ((32, 1), (8, 0)):  # the longest length weighs b up, the shortest down
        counts = {**closed, length: {length // 2: 60, length: 3}}  # 3 of 100: meets 0.05, not significantly
        needed = {L: decide_steps_needed(L, 0.05, 1024, wilson_probes(c)) for L, c in counts.items()}
        fit = fit_exponent("random", "ser", 0.05, needed)
        assert needed[length].interval[1] is None and fit.standard_error == math.inf
        assert math.isinf(fit.interval[side]) and math.isfinite(fit.interval[1 - side])


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "start, match",
    [
        (0, "start must be a positive integer"),
        (65, "must lie in"),
        (2, "must lie in"),
        (8.0, "start must be a positive integer"),
    ],
)
def test_search_refuses_a_start_outside_its_range(start, match):
    def never(steps):
        raise AssertionError("evaluated before the input was checked")

    with pytest.raises(ValueError, match=match):
        search_steps(never, 0.1, max_steps=64, min_steps=4, start=start)


@pytest.mark.bad_input
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_swept_table_with_non_finite_error_is_refused(bad):
    rows = swept({8: {4: 0.5, 8: bad}})
    with pytest.raises(ValueError, match="finite"):
        fit_step_scaling(rows, "confidence", "ser", 0.1)


@pytest.mark.bad_input
def test_swept_table_fit_refuses_a_bad_target():
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        fit_step_scaling(swept({8: {4: 0.5}}), "confidence", "ser", 1.5)
