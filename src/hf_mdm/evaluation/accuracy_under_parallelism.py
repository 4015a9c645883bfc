"""AUP, accuracy under parallelism: one hardware-independent number for a decoder's whole accuracy-vs-tokens-per-
forward curve, as d3LLM defines it (Qian et al. 2026, "d3LLM: Ultra-Fast Diffusion LLM using Pseudo-Trajectory
Distillation", arXiv:2601.07568; its reference implementation is `get_aup` in `d3LLM_Code/aup_utils.py` of the
https://huggingface.co/spaces/d3LLM/dLLM_Leaderboard Space, which ranks dLLMs by it).

The definition. A curve is points (rho_i, y_i): rho the tokens per forward (TPF, > 0), y the accuracy in percent. Sort
them by rho, rho_1 <= ... <= rho_m; keep the points with y_i >= y_1 - 5 (at most 5 percentage points below the
accuracy at the least parallelism); over the kept points,

    AUP = rho_1 y_1 + sum_{i >= 2} (rho_i - rho_{i-1}) (y_i W(y_i) + y_{i-1} W(y_{i-1})) / 2,
    W(y) = min(exp(-alpha (1 - y / y_max)), 1),   alpha = 3,

y_max the highest accuracy of every method compared on the task. The first term is the rectangle from no
parallelism to rho_1, the sum the trapezoids of the quality-weighted accuracy y W(y): a point 10% (relative) less
accurate than the best method counts e^-0.3 = 0.74 of its accuracy. An autoregressive model (one point at rho = 1)
scores its accuracy; any one-point curve scores rho_1 y_1, the definition's rectangle (the tables say how many
points an area has, so a one-point AUP is not read as a measured trade-off). The reference code also asserts that
the last point is kept; here a point below the threshold is left out of the area (its filter), and counted.
Ties in rho are ordered by accuracy, highest first, so the value does not depend on the rows' order. The rectangle
is not weighted (as in the reference): a curve that starts at rho_1 > 1 scores rho_1 y_1 even when y_1 is far below
y_max (d3LLM's curves all start at the vanilla decoder, rho = 1), so the tables show the first point beside the AUP.

From a sweep (`accuracy_under_parallelism(rows)`): y = 100 (1 - SER) per row (`hf-mdm eval` rows: SER = 1 - the
task's accuracy), rho its `tokens_per_forward`; one curve per (length, strategy, block size) over its steps, the
autoregressive row one curve of its own (rho = 1); y_max per length over all its rows (the methods the table
compares).

Uncertainty: a parametric bootstrap, jointly over the rows of a length. Each draw takes every row's accuracy from the
Jeffreys posterior Beta(k + 1/2, n - k + 1/2) of its k right sequences out of n, and its TPF from
Normal(TPF, SE) (exact where the row has no SE: one sample, or a table from before the column), then recomputes
y_max, the order, the kept points and the AUP. `standard_error` is the draws' standard deviation and `interval` their
2.5% and 97.5% quantiles. A bootstrap because AUP is not smooth (the max in y_max, the threshold that drops points,
the min in W) where a delta method would miss the jumps; the Jeffreys posterior rather than binomial resampling
because a row with SER 0 or 1 would have no spread: at SER 0 the draws lie below 100%, and the interval may lie below
the plug-in AUP, which is what the data say (the true accuracy is below 100% almost surely).
"""

import math
from dataclasses import dataclass

import numpy as np

from ..value_checks import check_integer, is_real
from .sweep_table import block_axis, checked_rows, decoder_label, describe_cell, is_present


ALPHA = 3.0  # d3LLM's penalty factor for accuracy below y_max
ACCURACY_DROP = 5.0  # d3LLM's y_min offset: the points kept are at most this many percentage points below y_1
NUM_DRAWS = 2000
ROUNDING = 1e-9  # percentage points: an accuracy exactly at the threshold (55 and 50.000000000000007) is kept


def _check_positive_real(name: str, value, allow_zero: bool = False) -> float:
    if not is_real(value) or not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be a finite number {'>=' if allow_zero else '>'} 0, got {value!r}.")
    return float(value)


def weighted_areas(rho: np.ndarray, accuracy: np.ndarray, max_accuracy: np.ndarray, alpha: float,
                   accuracy_drop: float) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The AUP of each row of `rho` and `accuracy` (draws x points, accuracy in percent) against its `max_accuracy`
    (draws,), and the number of points each kept. The trapezoid of a kept point joins it to the previous kept one."""
    order = np.lexsort((-accuracy, rho), axis=1)  # by rho, ties highest accuracy first
    rho, accuracy = np.take_along_axis(rho, order, 1), np.take_along_axis(accuracy, order, 1)
    kept = accuracy >= accuracy[:, :1] - accuracy_drop - ROUNDING  # y_1 - 5 itself is in, whatever the rounding
    ratio = np.divide(accuracy, max_accuracy[:, None], out=np.ones_like(accuracy), where=max_accuracy[:, None] > 0)
    weighted = accuracy * np.minimum(np.exp(-alpha * (1 - ratio)), 1.0)  # y_max = 0: every y is 0, y W(y) = 0
    positions = np.arange(rho.shape[1])
    last_kept = np.maximum.accumulate(np.where(kept, positions, -1), axis=1)
    previous = np.concatenate([np.zeros_like(last_kept[:, :1]), last_kept[:, :-1]], axis=1)  # >= 0: point 1 is kept
    trapezoids = (rho - np.take_along_axis(rho, previous, 1)) * (weighted + np.take_along_axis(weighted, previous, 1))
    trapezoids = np.where(kept & (positions >= 1), trapezoids / 2, 0.0)
    return rho[:, 0] * accuracy[:, 0] + trapezoids.sum(axis=1), kept.sum(axis=1)


def aup(points, max_accuracy: float, alpha: float = ALPHA, accuracy_drop: float = ACCURACY_DROP) -> float:
    """d3LLM's AUP of one curve (see the module docstring): `points` are (tokens per forward, accuracy in percent)
    pairs, `max_accuracy` the highest accuracy (percent) of all the methods compared.

    Accuracies are percent, as the definition has them: a `max_accuracy` in (0, 1] is refused as a fraction."""
    points = list(points) if not isinstance(points, (str, bytes)) and hasattr(points, "__iter__") else None
    if not points or not all(isinstance(point, (tuple, list)) and len(point) == 2 for point in points):
        raise ValueError("points must be a non-empty list of (tokens_per_forward, accuracy_percent) pairs.")
    for rho, accuracy in points:
        _check_positive_real("Each point's tokens per forward", rho)
        if not is_real(accuracy) or not 0 <= accuracy <= 100:
            raise ValueError(f"Each point's accuracy must be a percentage in [0, 100], got {accuracy!r}.")
    if not is_real(max_accuracy) or not 0 <= max_accuracy <= 100:
        raise ValueError(f"max_accuracy must be a percentage in [0, 100], got {max_accuracy!r}.")
    if 0 < max_accuracy <= 1:
        raise ValueError(
            f"max_accuracy {max_accuracy!r} looks like a fraction: AUP takes accuracies in percent (100 x accuracy), "
            "as d3LLM defines it."
        )
    if max_accuracy < max(accuracy for _, accuracy in points):
        raise ValueError(f"max_accuracy {max_accuracy!r} is below an accuracy of the curve: it is the highest of all.")
    alpha = _check_positive_real("alpha", alpha)
    accuracy_drop = _check_positive_real("accuracy_drop", accuracy_drop, allow_zero=True)
    rho, accuracy = (np.array([[float(value) for value in column]]) for column in zip(*points))
    return float(weighted_areas(rho, accuracy, np.array([float(max_accuracy)]), alpha, accuracy_drop)[0][0])


@dataclass(frozen=True)
class AccuracyUnderParallelism:
    """The AUP of one curve of a sweep: a (length, strategy, block size) over its steps (see the module docstring).

    `block_size` is the curve's block axis (`sweep_table.block_axis`: "L" for one block); `num_points` the curve's
    rows and `points_used` those inside the definition's region (at most 5 points below the accuracy at the least
    parallelism); `first_point` (rho_1, y_1), the point of least parallelism; `max_accuracy` the y_max of the
    length, percent."""

    length: int
    strategy: str
    block_size: "int | str"
    decoder: str
    aup: float
    standard_error: float
    interval: tuple[float, float]
    num_points: int
    points_used: int
    first_point: tuple[float, float]
    max_accuracy: float

    @property
    def metric_config(self) -> str:
        """The curve as a model-index metric_config: `strategy=...,length=...,block_size=...`."""
        return f"strategy={self.strategy},length={self.length},block_size={self.block_size}"

    def describe(self) -> str:
        one = " (one point: the definition's rectangle, no trade-off measured)" if self.num_points == 1 else ""
        low, high = self.interval
        return (
            f"{self.decoder} at L = {self.length}: AUP {self.aup:.1f} ± {self.standard_error:.1f} (95% interval "
            f"[{low:.1f}, {high:.1f}]) over {self.points_used} of {self.num_points} points{one}, from "
            f"{self.first_point[1]:.1f}% at {self.first_point[0]:.2f} tokens per forward; max accuracy "
            f"{self.max_accuracy:.1f}%"
        )


def _curves(rows: list[dict]) -> list[list[int]]:
    """The indices of each curve's rows, (strategy, block size) at one length, in the order of their decoder labels."""
    curves: dict = {}
    for index, row in enumerate(rows):
        curves.setdefault((row["strategy"], block_axis(row)), []).append(index)
    return sorted(curves.values(), key=lambda members: decoder_label(rows[members[0]]))


def accuracy_under_parallelism(
    rows, alpha: float = ALPHA, accuracy_drop: float = ACCURACY_DROP, num_draws: int = NUM_DRAWS, seed: int = 0
) -> list[AccuracyUnderParallelism]:
    """The AUP of every (length, strategy, block size) curve of a sweep, with its bootstrap standard error and 95%
    interval (`num_draws` draws seeded by `seed`), sorted by length then decoder.

    Rows are checked first (`check_sweep_rows`): a row without tokens per forward (a table written before the column,
    or an lm-eval row of a log-likelihood task, which generates nothing) or with 0 is refused, naming it."""
    rows = checked_rows(rows, "rows")
    for index, row in enumerate(rows):
        if not is_present(row.get("tokens_per_forward")):
            raise ValueError(
                f"Sweep row {index} ({describe_cell(row)}) has no tokens_per_forward: AUP needs every row's tokens "
                "per forward, which `sweep_steps` and `hf-mdm eval` write (a table from before the column, or a "
                "task that generates nothing, has none: rerun it with this version, or leave the row out)."
            )
        if row["tokens_per_forward"] == 0:
            raise ValueError(
                f"Sweep row {index} ({describe_cell(row)}) decoded 0 tokens per forward; AUP needs a positive "
                "parallelism: drop the row or rerun the cell."
            )
    alpha = _check_positive_real("alpha", alpha)
    accuracy_drop = _check_positive_real("accuracy_drop", accuracy_drop, allow_zero=True)
    num_draws = check_integer(num_draws, "num_draws", minimum=2)
    generator = np.random.default_rng(check_integer(seed, "seed", minimum=0))
    results = []
    for length in sorted({row["length"] for row in rows}):
        at_length = [row for row in rows if row["length"] == length]
        right = np.array([round(row["num_samples"] * (1 - row["ser"])) for row in at_length], dtype=float)
        total = np.array([row["num_samples"] for row in at_length], dtype=float)
        rho = np.array([row["tokens_per_forward"] for row in at_length], dtype=float)
        spread = np.array([row.get("tokens_per_forward_standard_error") for row in at_length], dtype=float)
        spread = np.where(np.isfinite(spread), spread, 0.0)  # None / NaN: no SE, the TPF taken as exact
        accuracy = 100 * right / total
        drawn_accuracy = 100 * generator.beta(right + 0.5, total - right + 0.5, size=(num_draws, len(at_length)))
        drawn_rho = np.maximum(generator.normal(rho, spread, size=(num_draws, len(at_length))), 1e-9)
        for members in _curves(at_length):
            first = at_length[members[0]]
            value, used = weighted_areas(rho[None, members], accuracy[None, members], accuracy.max(keepdims=True),
                                         alpha, accuracy_drop)  # fmt: skip
            draws, _ = weighted_areas(drawn_rho[:, members], drawn_accuracy[:, members], drawn_accuracy.max(axis=1),
                                      alpha, accuracy_drop)  # fmt: skip
            low, high = np.quantile(draws, [0.025, 0.975])
            results.append(AccuracyUnderParallelism(
                length=length, strategy=first["strategy"], block_size=block_axis(first), decoder=decoder_label(first),
                aup=float(value[0]), standard_error=float(draws.std(ddof=1)), interval=(float(low), float(high)),
                num_points=len(members), points_used=int(used[0]), max_accuracy=float(accuracy.max()),
                first_point=min(((float(rho[i]), float(accuracy[i])) for i in members), key=lambda p: (p[0], -p[1])),
            ))  # fmt: skip
    return results


def aup_results_table(results: list[AccuracyUnderParallelism]) -> str:
    """The results of `accuracy_under_parallelism` as a Markdown table, one line per curve."""
    lines = ["| length | decoder | points used / swept | first point: tokens/forward, accuracy (%) | max accuracy (%) "
             "| AUP ± SE | AUP 95% interval |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for result in results:
        (low, high), (rho, accuracy) = result.interval, result.first_point
        lines.append(
            f"| {result.length} | {result.decoder} | {result.points_used} / {result.num_points} | {rho:.2f}, "
            f"{accuracy:.1f} | {result.max_accuracy:.1f} | {result.aup:.1f} ± {result.standard_error:.1f} | "
            f"[{low:.1f}, {high:.1f}] |"
        )
    return "\n".join(lines)


def aup_table(rows, **aup_kwargs) -> str:
    """The AUP of every curve of a sweep (`accuracy_under_parallelism(rows, **aup_kwargs)`) as a Markdown table."""
    return aup_results_table(accuracy_under_parallelism(rows, **aup_kwargs))


AUP_DEFINITION = (
    "AUP (accuracy under parallelism, d3LLM: Qian et al. 2026, arXiv:2601.07568) summarises a decoder's accuracy-vs-"
    "tokens-per-forward curve in one hardware-independent number: over the points sorted by tokens per forward rho "
    "and kept while the accuracy y = 100 (1 - SER) stays within 5 points of the first's, AUP = rho_1 y_1 + the "
    "trapezoids of y W(y), W(y) = min(exp(-3 (1 - y / y_max)), 1), y_max the best accuracy at the length (the "
    "rectangle rho_1 y_1 is not weighted: read AUP beside the first point). One curve per length, strategy and block "
    "size over its steps; the autoregressive row is a one-point curve (AUP = its accuracy). ± SE and the 95% "
    "interval: a parametric bootstrap of the rows' accuracies (Jeffreys posterior) and tokens per forward (normal, ± "
    "its SE); where rows have SER 0 the interval lies below the AUP, as the true accuracy lies below 100%."
)


def aup_report(rows: list[dict]) -> str:
    """What `hf-mdm sweep` and `hf-mdm eval` print and write to aup.md: the definition, then the AUP table (one per
    lm-eval task), or "Not computed: <why>" where the rows cannot give one (no tokens per forward), so that a finished
    sweep's other outputs are still written."""
    sections = []
    for task in sorted({row.get("task") for row in rows}, key=str):
        try:
            table = aup_table([row for row in rows if row.get("task") == task])
        except ValueError as error:
            table = f"Not computed: {error}"
        sections.append(table if task is None else f"### {task}\n\n{table}")
    return "\n\n".join([AUP_DEFINITION, *sections])


__all__ = [
    "AccuracyUnderParallelism",
    "accuracy_under_parallelism",
    "aup",
    "aup_report",
    "aup_results_table",
    "aup_table",
]
