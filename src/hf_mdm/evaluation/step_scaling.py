"""How the steps a model needs grow with the sequence length: steps_needed ~ c * L^b, with the uncertainty of b.

Per length, the steps needed come from a search (`steps_search`) or from a swept table (`fit_step_scaling`), decided
on the monotone fit of the error against steps, with a 95% interval [low_L, high_L] from the probes' own intervals
(`steps_needed`). Across the n lengths that reach the target, least squares on y = log S, x = log L
(`scipy.stats.linregress`) gives

    b = Sxy / Sxx = sum_L w_L y_L,   w_L = (x_L - mean x) / Sxx,   log c = mean(y) - b mean(x),
    SE_regression(b) = sqrt(RSS / (n - 2) / Sxx).

Each y_L is itself uncertain: S*_L lies in [low_L, high_L] with 95%, read as y_L +- 1.96 sigma_L, so
sigma_L = (log high_L - log low_L) / (2 * 1.96). Since b is linear in the y_L, that uncertainty propagates exactly:

    SE(b)^2 = SE_regression(b)^2 + sum_L w_L^2 sigma_L^2,   b +- t_{0.975, n-2} SE(b)

with the t quantile from `scipy.stats.t.ppf`. Why both terms: the residual scatter estimates the steps' noise
only with n - 2 degrees of freedom (one or two here), and it is 0 when the decided steps happen to fall on a line
(a swept grid of powers of 2 often does), although the per-length brackets say each point is only known to within a
factor; the probe term keeps that known uncertainty in, the regression term keeps the lack of fit. Where both
describe the same noise this double-counts, so the interval is conservative rather than short; the t quantile is
kept for the same reason. A length whose interval is open above (no probe significantly meets the target) makes b
unbounded on the side of its weight's sign (w_L > 0: above), and SE(b) infinite; a length without an interval
(probes with none) adds no term, and the reading says so.

The research predicts b ~ 0 for token error and b ~ 1 for sequence error (Feng et al. 2025); `verdict` says which the
95% interval supports. With 3 lengths the interval has one degree of freedom (t = 12.7): b is given, the interval is
called wide. With fewer than 3 there is no exponent (two points always fit exactly: no error estimate).
"""

import math
from dataclasses import dataclass

from scipy import stats

from .argument_checks import check_known
from .steps_needed import StepsNeeded, decide_steps_needed
from .sweep_columns import ERROR_COLUMNS, REQUIRED_CELL_COLUMNS, REQUIRED_COLUMNS
from .sweep_table import ONE_BLOCK, Z_95, block_axis, check_sweep_rows, is_present


MIN_LENGTHS = 3
CONFIDENT_LENGTHS = 4


def select_rows(rows, strategy: str, metric: str, required=REQUIRED_COLUMNS, block_size=None) -> list[dict]:
    """The checked rows (`check_sweep_rows`, each with the `required` columns) of `strategy` and `block_size` that
    have `metric`. `block_size`: an int B, or "L" for the rows decoded as one block (`sweep_table.block_axis`); None:
    the one the rows hold. A strategy, block size or metric the rows do not hold is refused with the ones they do (a
    misspelled name never fits nothing), and so are rows of several block sizes without `block_size` (one curve per
    block size: mixing them would read one size's steps as another's)."""
    rows = [dict(row) if isinstance(row, dict) else row for row in rows]
    if not rows:
        raise ValueError("No sweep rows to fit; run `sweep_steps` or `search_steps_needed` first.")
    check_sweep_rows(rows, required)
    check_known("strategy", strategy, {row["strategy"] for row in rows})
    check_known("error column", metric, ERROR_COLUMNS, "step-scaling fits")
    selected = [row for row in rows if row["strategy"] == strategy]
    sizes = {block_axis(row) for row in selected}
    if block_size is None and len(sizes) > 1:
        raise ValueError(
            f"The {strategy} rows hold the block sizes {sorted(sizes, key=str)} ({ONE_BLOCK!r}: one block): one fit "
            "is one block size; pass block_size=... (one fit per size)."
        )
    if block_size is not None:
        check_known("block size", block_size, sizes, f"the {strategy} rows")
        selected = [row for row in selected if block_axis(row) == block_size]
    check_known("error column", metric, [column for column in ERROR_COLUMNS if any(
        row.get(column) is not None for row in selected)], f"the {strategy} rows")  # fmt: skip
    return selected


def verdict(low: float, high: float) -> str:
    """Which prediction the 95% interval [low, high] of b supports: b ~ 0 (TER) or b ~ 1 (SER)."""
    has_zero, has_one = low <= 0 <= high, low <= 1 <= high
    if has_one and not has_zero:
        return "consistent with linear growth (b ~ 1, the SER prediction), not with b = 0"
    if has_zero and not has_one:
        return "consistent with no growth (b ~ 0, the TER prediction), not with b = 1"
    if has_zero and has_one:
        return "too uncertain to tell b = 0 (TER) from b = 1 (SER)"
    return "excludes both b = 0 and b = 1"


@dataclass(frozen=True)
class StepScaling:
    """steps_needed ~ coefficient * length ** exponent for one strategy, block size and error column.

    `needed[L]` is the decision at length L (its probes, its 95% interval, or "not reached by S_max"). The fit
    fields are None with fewer than 3 lengths that reach the target; `standard_error` and `interval` include the
    per-length uncertainty (module docstring), `regression_standard_error` is the least-squares part alone.
    `block_size`: the decoding block size B held fixed across the lengths, "L" (or None) for one block over the
    whole length.
    """

    strategy: str
    metric: str
    target: float
    needed: dict[int, StepsNeeded]
    exponent: float | None = None
    coefficient: float | None = None
    standard_error: float | None = None
    interval: tuple[float, float] | None = None
    block_size: "int | str | None" = None
    regression_standard_error: float | None = None

    @property
    def decoder(self) -> str:
        """The strategy, with the block size when it decodes several blocks: "confidence, block size 4"."""
        several = self.block_size not in (None, ONE_BLOCK)
        return self.strategy + (f", block size {self.block_size}" if several else "")

    @property
    def steps_needed(self) -> dict[int, int]:
        """{length: steps needed} over the lengths that reach the target."""
        return {length: result.steps for length, result in sorted(self.needed.items()) if result.reached}

    @property
    def needed_interval(self) -> dict[int, tuple[int, int | None]]:
        """{length: (low, high)}, the 95% interval of the steps needed at each length whose probes give one (high None:
        open above; for a length not reached, low says how many it needs at least)."""
        return {length: result.interval for length, result in sorted(self.needed.items()) if result.interval}

    @property
    def num_fitted(self) -> int:
        return len(self.steps_needed)

    def describe(self) -> str:
        per_length = "; ".join(result.describe() for _, result in sorted(self.needed.items())) or "no length"
        head = f"{self.decoder}: steps for {self.metric} <= {self.target:g}"
        if self.exponent is None:
            return (
                f"{head}: {per_length}. No exponent: {self.num_fitted} length(s) reach the target and a fit with an "
                f"error estimate needs {MIN_LENGTHS} or more."
            )
        low, high = self.interval
        few = self.num_fitted < CONFIDENT_LENGTHS
        width = "; only 3 lengths (1 degree of freedom): read it as wide" if few else ""
        without = [length for length in self.steps_needed if self.needed[length].interval is None]
        if without:
            width += f"; the steps needed at L={without} have no interval, so their uncertainty is not in it"
        if self.regression_standard_error is not None:
            width = f"; regression alone +- {self.regression_standard_error:.2f}{width}"
        return (
            f"{head} grow as {self.coefficient:.3g} * L^{self.exponent:.2f} (b = {self.exponent:.2f} +- "
            f"{self.standard_error:.2f}, 95% interval [{low:.2f}, {high:.2f}], with the per-length intervals"
            f"{width}): {verdict(low, high)}. Steps needed (95% interval): {per_length}."
        )


def fit_exponent(
    strategy: str, metric: str, target: float, needed: dict[int, StepsNeeded], block_size: "int | str | None" = None
) -> StepScaling:
    """Least squares of log steps_needed on log length over the lengths that reach the target (>= 3 of them), its
    standard error and interval widened by the per-length intervals (module docstring)."""
    points = {length: result.steps for length, result in needed.items() if result.reached}
    if len(points) < MIN_LENGTHS:
        return StepScaling(strategy, metric, target, needed, block_size=block_size)
    x = [math.log(length) for length in points]
    exponent, intercept, regression_standard_error = least_squares(x, [math.log(steps) for steps in points.values()])
    mean_x = sum(x) / len(x)
    sxx = sum((a - mean_x) ** 2 for a in x)
    variance, unbounded = regression_standard_error**2, set()
    for length, x_length in zip(points, x):
        weight, interval = (x_length - mean_x) / sxx, needed[length].interval
        if interval is None:
            continue  # no per-length interval: nothing to add (`describe` says so)
        low, high = interval
        if high is None:
            unbounded |= {1.0 if weight > 0 else -1.0} if weight else set()
            continue
        variance += (weight * (math.log(high) - math.log(low)) / (2 * Z_95)) ** 2
    half = float(stats.t.ppf(0.975, len(points) - 2)) * math.sqrt(variance)
    interval = (-math.inf if -1.0 in unbounded else exponent - half, math.inf if 1.0 in unbounded else exponent + half)
    return StepScaling(
        strategy, metric, target, needed, exponent, math.exp(intercept),
        math.inf if unbounded else math.sqrt(variance), interval, block_size, regression_standard_error,
    )  # fmt: skip


def step_scaling_table(scalings: list[StepScaling]) -> str:
    """A Markdown table, one row per fit: the steps needed per length ("not reached by S") with its 95% interval
    ("[low, high]", "[>= low]" open above), b, SE(b), its 95% interval and the verdict (or why there is no
    exponent)."""
    lengths = sorted({length for scaling in scalings for length in scaling.needed})
    lines = [
        "| strategy | error <= target | " + " | ".join(f"L={length}" for length in lengths)
        + " | b | SE(b) | 95% interval | verdict |",
        "|---|---|" + "---:|" * len(lengths) + "---:|---:|---|---|",
    ]  # fmt: skip
    for scaling in scalings:
        cells = []
        for length in lengths:
            result = scaling.needed.get(length)
            cells.append("-" if result is None else " ".join(filter(None, (
                str(result.steps) if result.reached else f"not reached by {result.max_steps}",
                result.interval_text()))))  # fmt: skip
        if scaling.exponent is None:
            fit = ["-", "-", "-", f"no exponent ({scaling.num_fitted} lengths reach the target, {MIN_LENGTHS} needed)"]
        else:
            low, high = scaling.interval
            fit = [f"{scaling.exponent:.2f}", f"{scaling.standard_error:.2f}", f"[{low:.2f}, {high:.2f}]",
                   verdict(low, high)]  # fmt: skip
        head = f"| {scaling.decoder} | {scaling.metric} <= {scaling.target:g} | "
        lines.append(head + " | ".join(cells + fit) + " |")
    return "\n".join(lines)


def fixed_steps_trend_table(rows: list[dict], strategy: str, metric: str = "ter_gap", block_size=None) -> str:
    """A Markdown table of how `metric` changes with length at each fixed step count: per S, least squares of the
    metric on log2 L (`scipy.stats.linregress`), the slope per doubling of L with its SE and 95% interval (t with
    n - 2 degrees of freedom). The TER claim predicts a flat token error at fixed steps: an interval around 0.
    Fewer than 3 lengths at an S: no slope, said in words."""
    cells: dict[int, dict[int, float]] = {}
    # neither the SER nor its samples: the cell (and one block size, `select_rows`)
    for row in select_rows(rows, strategy, metric, required=REQUIRED_CELL_COLUMNS, block_size=block_size):
        value = row.get(metric)
        if value is not None:
            cells.setdefault(int(row["steps"]), {})[int(row["length"])] = value
    lines = [
        f"| steps | lengths | {metric} per length | slope per doubling of L | SE | 95% interval | reading |",
        "|---:|---|---|---:|---:|---|---|",
    ]
    for steps, values in sorted(cells.items()):
        lengths = sorted(values)
        shown = ", ".join(f"{values[length]:.3f}" for length in lengths)
        if len(lengths) < MIN_LENGTHS:
            lines.append(f"| {steps} | {lengths} | {shown} | - | - | - | no slope: {MIN_LENGTHS} lengths needed |")
            continue
        slope, _, standard_error = least_squares([math.log2(length) for length in lengths],
                                                 [values[length] for length in lengths])  # fmt: skip
        half = float(stats.t.ppf(0.975, len(lengths) - 2)) * standard_error
        low, high = slope - half, slope + half
        reading = "flat (0 inside the interval)" if low <= 0 <= high else "changes with L"
        lines.append(
            f"| {steps} | {lengths} | {shown} | {slope:+.3f} | {standard_error:.3f} | [{low:+.3f}, {high:+.3f}] "
            f"| {reading} |"
        )
    return "\n".join(lines)


def least_squares(x: list[float], y: list[float]) -> tuple[float, float, float]:
    """(slope, intercept, SE(slope)) of y on x by `scipy.stats.linregress`. For a constant y scipy's SE is 0/0 (it
    goes through r); the residuals are then 0, so SE = sqrt(RSS / (n - 2) / Sxx) = 0, computed here."""
    fit = stats.linregress(x, y)
    standard_error = float(fit.stderr)
    if not math.isfinite(standard_error):
        mean_x = sum(x) / len(x)
        residuals = sum((b - fit.intercept - fit.slope * a) ** 2 for a, b in zip(x, y))
        standard_error = math.sqrt(residuals / (len(x) - 2) / sum((a - mean_x) ** 2 for a in x))
    return float(fit.slope), float(fit.intercept), standard_error


def check_target(target) -> float:
    """`target` as a float in (0, 1), or a ValueError before any work."""
    if isinstance(target, bool) or not isinstance(target, (int, float)) or not 0 < target < 1:
        raise ValueError(f"The target error must be a number strictly between 0 and 1, got {target!r}.")
    return float(target)


def probe_interval(row: dict, metric: str) -> tuple[float | None, float | None]:
    """A row's 95% interval of `metric`: its `{metric}_low` / `_high` (the Wilson interval of SER), else
    value +- 1.96 `{metric}_se` (the TER gap's normal interval), else (None, None): no bound from this row."""
    low, high, standard_error = row.get(f"{metric}_low"), row.get(f"{metric}_high"), row.get(f"{metric}_se")
    if is_present(low) and is_present(high):
        return low, high
    if is_present(standard_error):
        return row[metric] - Z_95 * standard_error, row[metric] + Z_95 * standard_error
    return None, None


def fit_step_scaling(
    rows: list[dict], strategy: str, metric: str = "ser", target: float = 0.1, block_size: "int | str | None" = None
) -> StepScaling:
    """The fit from a swept table: per length, the smallest swept steps whose monotone-fitted `metric` is <= target
    ("not reached by S_max" = the largest swept steps otherwise), then `fit_exponent`. Rows of several block sizes
    need `block_size` (an int, or "L" for one block: one fit per size, `select_rows`).

    Rows where `metric` is None (a column the task does not define) are skipped; NaN or inf is an error, and so are
    a `strategy` or `metric` the rows do not hold and rows that `check_sweep_rows` refuses. The answer is
    only as fine as the swept grid: the true threshold lies between the swept step count below it and it. Each
    length's 95% interval comes from the rows' intervals (`probe_interval`), with a floor of 1 step.
    """
    target = check_target(target)
    measured: dict[int, dict] = {}
    selected = select_rows(rows, strategy, metric, block_size=block_size)
    for row in selected:
        value = row.get(metric)
        if value is None:
            continue
        low, high = probe_interval(row, metric)
        measured.setdefault(int(row["length"]), {})[int(row["steps"])] = (value, int(row["num_samples"]), low, high)
    needed = {
        length: decide_steps_needed(length, target, max(cells), cells) for length, cells in sorted(measured.items())
    }
    return fit_exponent(strategy, metric, target, needed, block_axis(selected[0]) if selected else block_size)
