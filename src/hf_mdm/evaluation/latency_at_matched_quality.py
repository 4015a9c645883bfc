"""latency_at_matched_quality: how much faster a masked diffusion LM is than the autoregressive baseline once its
samples are as good, at the token level (TER gap) and at the sequence level (SER).

From the rows of one sweep at one generated length, holding the autoregressive row (`sweep_steps(...,
autoregressive_model=...)`) and one diffusion strategy over a grid of steps: for each metric, the smallest swept step
count S at which the MDM matches the AR model, with that row's latency per `generate()` batch, its NFE, and the ratio
AR latency / MDM latency (> 1: the MDM is faster), with its 95% interval from the scatter of each cell's batch
latencies (`latency_s_se`; the scatter within one run, not the drift between runs on a shared machine).

"Matches" means *not significantly worse*: the 95% interval of the difference MDM - AR reaches 0 or below, i.e.
the hypothesis "the MDM is worse" is not accepted at one-sided level 2.5%:

    TER gap:  d = ter_gap_MDM - ter_gap_AR = log_ppl_MDM - log_ppl_AR     (one language: the entropy rate cancels)
              matched  <=>  d - 1.96 sqrt(se_MDM^2 + se_AR^2) <= 0       (se: `log_perplexity_se`, over sequences)
    SER:      d = ser_MDM - ser_AR, Newcombe's hybrid score interval from the rows' Wilson 95% intervals:
              matched  <=>  d - sqrt((ser_MDM - ser_low_MDM)^2 + (ser_high_AR - ser_AR)^2) <= 0

S is the smallest swept step count from which *every* larger swept step count matches too, so one lucky row below a
failing one is not chosen (error falls with steps; the rule reads the grid as the monotone curve it estimates). When
no swept step count qualifies, the result is "not reached by S_max", never an interpolated or extrapolated number; when
the smallest swept step count qualifies, the table says so (fewer steps, not swept, might match too).
Not significantly worse is a weaker claim with fewer samples (wider intervals): read it with the intervals it prints.
A TER gap significantly below 0 (samples more likely than the language's own: a mode-seeking decoder, low diversity)
also counts as matched; the table marks it, since token error then overstates the samples' quality.
"""

import math
from dataclasses import dataclass

from .argument_checks import check_known, check_names
from .sweep import AUTOREGRESSIVE
from .sweep_table import Z_95, block_axis, check_sweep_rows, is_present, with_standard_error


METRICS = {"ter_gap": "TER gap (nats/token)", "ser": "SER"}


def with_uncertainty(metric: str, row: dict) -> str:
    """A row's value of `metric` with its uncertainty: the TER gap ± its SE, the SER with its Wilson 95% interval."""
    if metric == "ser":
        return f"{row['ser']:.4f} [{row['ser_low']:.4f}, {row['ser_high']:.4f}]"
    return with_standard_error(row, "ter_gap", "{:.4f}")


@dataclass(frozen=True)
class MatchedQuality:
    """The matched-quality point of one metric: the AR row, and the strategy's row at the smallest matching steps
    (`row` None: not reached by `max_steps`), with the 95% interval of MDM - AR there."""

    metric: str
    strategy: str
    min_steps: int
    max_steps: int
    autoregressive: dict
    row: dict | None = None
    difference_interval: tuple[float, float] | None = None

    @property
    def reached(self) -> bool:
        return self.row is not None

    @property
    def steps(self) -> int | None:
        return int(self.row["steps"]) if self.reached else None

    @property
    def latency_ratio(self) -> float | None:
        """AR latency / MDM latency per batch (> 1: the MDM is faster); None when not reached."""
        return self.autoregressive["latency_s"] / self.row["latency_s"] if self.reached else None

    @property
    def latency_ratio_interval(self) -> tuple[float, float] | None:
        """The 95% interval of the latency ratio from the rows' `latency_s_se` (the scatter over each cell's batches),
        by the delta method on the log: log R +- 1.96 sqrt((se_AR / AR)^2 + (se_MDM / MDM)^2). None when not reached
        or a row has no latency SE (one batch, or rows from before that column)."""
        if not self.reached or not all(is_present(row.get("latency_s_se")) for row in (self.autoregressive, self.row)):
            return None
        spread = math.hypot(*(row["latency_s_se"] / row["latency_s"] for row in (self.autoregressive, self.row)))
        return self.latency_ratio * math.exp(-Z_95 * spread), self.latency_ratio * math.exp(Z_95 * spread)

    @property
    def below_entropy_rate(self) -> bool:
        """Whether the matched TER gap is significantly below 0: the samples are more likely than the language's."""
        return self.metric == "ter_gap" and self.reached and self.row["ter_gap"] + Z_95 * self.row["ter_gap_se"] < 0


def difference_interval(metric: str, mdm: dict, autoregressive: dict) -> tuple[float, float]:
    """The 95% interval of MDM - AR for `metric` (the module's docstring)."""
    difference = mdm[metric] - autoregressive[metric]
    if metric == "ser":  # Newcombe's hybrid score interval (method 10)
        below = math.hypot(mdm["ser"] - mdm["ser_low"], autoregressive["ser_high"] - autoregressive["ser"])
        above = math.hypot(mdm["ser_high"] - mdm["ser"], autoregressive["ser"] - autoregressive["ser_low"])
        return difference - below, difference + above
    half_width = Z_95 * math.hypot(mdm["log_perplexity_se"], autoregressive["log_perplexity_se"])
    return difference - half_width, difference + half_width


# The columns each metric's rule reads.
NEEDED_COLUMNS = {
    "ter_gap": ("ter_gap", "ter_gap_se", "log_perplexity_se", "entropy_rate"),
    "ser": ("ser", "ser_low", "ser_high"),
}


def _check_columns(rows: list[dict], metrics) -> None:
    for metric in metrics:
        if metric not in METRICS:
            raise ValueError(f"Unknown metric {metric!r}; choose from {sorted(METRICS)}.")
        for row in rows:
            needed = NEEDED_COLUMNS[metric] + ("latency_s", "nfe")
            missing = [column for column in needed if not is_present(row.get(column))]
            if missing:
                raise ValueError(
                    f"The row ({row['strategy']}, steps {row['steps']}) has no {missing}: the {metric} match needs "
                    "them. Use rows of a `LanguageTask` sweep by this hf-mdm (older rows have no standard errors; a "
                    "`PromptTask` has no TER gap: pass metrics=('ser',)), with at least 2 samples per cell."
                )


def _select(rows: list[dict], strategy: str | None) -> tuple[dict, list[dict], str]:
    """The AR row and the chosen strategy's rows by increasing steps, after checking the rows form one comparison."""
    lengths = sorted({int(row["length"]) for row in rows})
    if len(lengths) > 1:
        raise ValueError(
            f"The rows span the lengths {lengths}; the comparison is at one length: pass "
            f"[row for row in rows if row['length'] == {lengths[-1]}]."
        )
    autoregressive = [row for row in rows if row["strategy"] == AUTOREGRESSIVE]  # one at most: one per cell
    if not autoregressive:
        raise ValueError(
            "The rows hold 0 autoregressive rows; the comparison needs one: run "
            "`sweep_steps(..., autoregressive_model=causal_lm)`."
        )
    strategies = sorted({row["strategy"] for row in rows} - {AUTOREGRESSIVE})
    if strategy is None:
        if len(strategies) != 1:
            raise ValueError(
                f"The rows hold the diffusion strategies {strategies}; name the one to compare: strategy=..."
            )
        strategy = strategies[0]
    check_known("strategy", strategy, strategies, "the diffusion rows")
    diffusion = sorted((row for row in rows if row["strategy"] == strategy), key=lambda row: row["steps"])
    sizes = sorted({block_axis(row) for row in diffusion}, key=str)
    if len(sizes) > 1:
        raise ValueError(
            f"The {strategy!r} rows hold the block sizes {sizes}, each its own step-vs-error curve; compare one: "
            "pass [row for row in rows if row['strategy'] == 'autoregressive' or "
            f"hf_mdm.evaluation.sweep_table.block_axis(row) == {sizes[0]!r}]."
        )
    return autoregressive[0], diffusion, strategy


def latency_at_matched_quality(
    rows, strategy: str | None = None, metrics: tuple[str, ...] = ("ter_gap", "ser")
) -> list[MatchedQuality]:
    """For each metric, the smallest swept steps at which `strategy` matches the AR row, with its latency and NFE.

    Args:
        rows: sweep rows (a `datasets.Dataset` or dicts) of one length: the autoregressive row and the strategy's
            rows over a grid of steps, with `latency_s` (timed in the same process and batch size).
        strategy: the diffusion strategy to compare; may be omitted when the rows hold one.
        metrics: among "ter_gap" (token level) and "ser" (sequence level).

    Returns:
        One `MatchedQuality` per metric (`reached` False: not reached by the largest swept steps).
    """
    rows = [dict(row) if isinstance(row, dict) else row for row in rows]
    if not rows:
        raise ValueError("No sweep rows; run `sweep_steps(..., autoregressive_model=causal_lm)` first.")
    check_sweep_rows(rows)
    metrics = check_names("metrics", metrics, '("ter_gap", "ser")')
    autoregressive, diffusion, strategy = _select(rows, strategy)
    _check_columns([autoregressive, *diffusion], metrics)
    results = []
    for metric in metrics:
        intervals = [difference_interval(metric, row, autoregressive) for row in diffusion]
        chosen = None
        for row, (low, high) in reversed(list(zip(diffusion, intervals))):
            if low > 0:  # significantly worse: no smaller step count can be chosen
                break
            chosen = (row, (low, high))
        row, interval = chosen if chosen is not None else (None, None)
        swept = (int(diffusion[0]["steps"]), int(diffusion[-1]["steps"]))
        point = MatchedQuality(metric, strategy, *swept, autoregressive, row, interval)
        results.append(point)
    return results


BELOW_ENTROPY_RATE_MARK = " (below h)"
BELOW_ENTROPY_RATE_NOTE = (
    "(below h): the TER gap is significantly below 0, the samples are more likely than the language's own (a "
    "mode-seeking decoder, low diversity): matched token error overstates their quality."
)


def describe_ratio(point: MatchedQuality) -> str:
    """The latency ratio, with its 95% interval where the rows have latency standard errors."""
    interval = point.latency_ratio_interval
    return f"{point.latency_ratio:.2f}x" + (f" [{interval[0]:.2f}, {interval[1]:.2f}]" if interval else "")


def matched_quality_table(results: list[MatchedQuality]) -> str:
    """The matched-quality points as a Markdown table (TER gap ± SE, SER with its Wilson interval), with a note under
    it when a matched TER gap is significantly below 0."""
    lines = [
        "| metric | AR value | AR latency (s) | AR NFE | MDM steps at match | MDM value | MDM - AR, 95% interval "
        "| MDM latency (s) | MDM NFE | latency ratio AR / MDM [95% interval] |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|",
    ]
    for point in results:
        ar_row = point.autoregressive
        cells = [METRICS[point.metric], with_uncertainty(point.metric, ar_row), f"{ar_row['latency_s']:.3f}",
                 f"{ar_row['nfe']:.0f}"]  # fmt: skip
        if point.reached:
            low, high = point.difference_interval
            mark = BELOW_ENTROPY_RATE_MARK if point.below_entropy_rate else ""
            value = with_uncertainty(point.metric, point.row) + mark
            steps = f"{point.steps} (smallest swept)" if point.steps == point.min_steps else str(point.steps)
            cells += [steps, value, f"[{low:+.4f}, {high:+.4f}]", f"{point.row['latency_s']:.3f}",
                      f"{point.row['nfe']:.1f}", describe_ratio(point)]  # fmt: skip
        else:
            cells += [f"not reached by {point.max_steps}"] + ["-"] * 5
        lines.append("| " + " | ".join(cells) + " |")
    if any(point.below_entropy_rate for point in results):
        lines += ["", BELOW_ENTROPY_RATE_NOTE]
    return "\n".join(lines)
