"""How the steps a model needs grow with the sequence length, fitted from a step-vs-error sweep.

For each strategy and length, steps_needed(L) is the fewest swept steps whose error is at most `target`. Across
lengths, log steps_needed = log c + b log L is fitted by least squares: the research predicts b ~ 0 for token error
and b ~ 1 for sequence error (Feng et al. 2025).
"""

import math
from dataclasses import dataclass


@dataclass
class StepScaling:
    """steps_needed ~ coefficient * length ** exponent, fitted for one strategy and one error column."""

    strategy: str
    metric: str
    target: float
    steps_needed: dict[int, int]
    exponent: float | None
    coefficient: float | None

    def describe(self) -> str:
        reached = ", ".join(f"L={length}: {steps}" for length, steps in sorted(self.steps_needed.items()))
        if self.exponent is None:
            return f"{self.strategy}: {self.metric} <= {self.target} reached at {reached or 'no swept length'}"
        return (
            f"{self.strategy}: steps for {self.metric} <= {self.target} grow as {self.coefficient:.3g} * "
            f"L^{self.exponent:.2f} ({reached})"
        )


def steps_needed(rows: list[dict], strategy: str, metric: str, target: float) -> dict[int, int]:
    """{length: fewest steps with rows[metric] <= target} over the lengths where some swept steps reach it."""
    needed = {}
    for row in rows:
        value = row.get(metric)
        if row["strategy"] != strategy or value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        if value <= target and row["steps"] < needed.get(row["length"], math.inf):
            needed[row["length"]] = row["steps"]
    return needed


def fit_step_scaling(rows: list[dict], strategy: str, metric: str = "ser", target: float = 0.1) -> StepScaling:
    """Least-squares fit of log steps_needed against log length (needs two or more lengths that reach `target`)."""
    needed = steps_needed(rows, strategy, metric, target)
    if len(needed) < 2:
        return StepScaling(strategy, metric, target, needed, None, None)
    xs = [math.log(length) for length in needed]
    ys = [math.log(steps) for steps in needed.values()]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    exponent = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / spread
    return StepScaling(strategy, metric, target, needed, exponent, math.exp(mean_y - exponent * mean_x))
