"""The steps needed for a target error, decided from probes of the error rate at several step counts.

An error rate such as SER(S) does not increase with the number of steps S: fewer tokens are revealed together. Probes
are noisy (SER is a binomial rate over n sequences), so a lucky probe can dip under the target at too few steps. The
decision therefore uses the monotone fit of all probes so far, not the probes themselves: the non-increasing sequence
f minimising sum_j n_j (f_j - r_j)^2 over the probes ordered by S (r_j the measured rate, n_j its sample count), found
by pooling adjacent violators (`scipy.optimize.isotonic_regression`). For binomial rates that least-squares fit is
also the maximum-likelihood non-increasing fit. A dip is pooled with the larger-S probes that contradict it, so one
lucky probe cannot decide.

steps needed = the smallest probed S whose fitted rate is <= target; "not reached" when none is, up to S_max.
"""

from dataclasses import dataclass

from scipy.optimize import isotonic_regression


def non_increasing_fit(rates: list[float], weights: list[float]) -> list[float]:
    """Weighted least-squares non-increasing fit of `rates` (in probe order): scipy's pool-adjacent-violators."""
    return isotonic_regression(rates, weights=weights, increasing=False).x.tolist()


@dataclass(frozen=True)
class Probe:
    """One measured step count: the rate over `num_samples` sequences, its 95% interval (None where the metric has
    none), and the monotone fit's value at this S."""

    steps: int
    rate: float
    num_samples: int
    low: float | None
    high: float | None
    fitted: float

    def describe(self) -> str:
        interval = f" [{self.low:.3f}, {self.high:.3f}]" if self.low is not None else ""
        return f"S={self.steps}: {self.rate:.3f}{interval} (n={self.num_samples}, monotone fit {self.fitted:.3f})"


@dataclass(frozen=True)
class StepsNeeded:
    """The smallest probed S with monotone-fitted rate <= target at one length; `steps` is None when even `max_steps`
    misses the target (never extrapolated)."""

    length: int
    target: float
    max_steps: int
    probes: tuple[Probe, ...]
    steps: int | None

    @property
    def reached(self) -> bool:
        return self.steps is not None

    def describe(self) -> str:
        if self.reached:
            return f"L={self.length}: {self.steps}"
        return f"L={self.length}: not reached by S_max={self.max_steps}"


def decide_steps_needed(
    length: int, target: float, max_steps: int, measured: dict[int, tuple[float, int, float | None, float | None]]
) -> StepsNeeded:
    """Fit the probes `measured[S] = (rate, num_samples, low, high)` monotonically and decide the steps needed."""
    order = sorted(measured)
    fitted = non_increasing_fit([measured[s][0] for s in order], [measured[s][1] for s in order])
    probes = tuple(Probe(s, *measured[s], fit) for s, fit in zip(order, fitted))
    meets = [probe.steps for probe in probes if probe.fitted <= target]
    return StepsNeeded(length, target, max_steps, probes, meets[0] if meets else None)
