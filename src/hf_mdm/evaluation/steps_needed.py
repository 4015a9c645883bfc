"""The steps needed for a target error, decided from probes of the error rate at several step counts, with its 95%
interval.

An error rate such as SER(S) does not increase with the number of steps S: fewer tokens are revealed together. Probes
are noisy (SER is a binomial rate over n sequences), so a lucky probe can dip under the target at too few steps. The
decision therefore uses the monotone fit of all probes so far, not the probes themselves: the non-increasing sequence
f minimising sum_j n_j (f_j - r_j)^2 over the probes ordered by S (r_j the measured rate, n_j its sample count), found
by pooling adjacent violators (`scipy.optimize.isotonic_regression`). For binomial rates that least-squares fit is
also the maximum-likelihood non-increasing fit. A dip is pooled with the larger-S probes that contradict it, so one
lucky probe cannot decide.

steps needed = the smallest probed S whose fitted rate is <= target; "not reached" when none is, up to S_max.

Its interval brackets S*, the smallest S whose true rate is <= target, from the probes' own 95% intervals (Wilson
for SER): a probe whose lower bound is > target is significantly too few, so S* > that S; one whose upper bound is
<= target is significantly enough, so S* <= that S (the rate does not increase with S). Each end is a one-sided
test at level 2.5%:

    low  = 1 + the largest probed S with low_S > target   (S_min when none: the search's floor)
    high = the smallest probed S with high_S <= target     (None when none: open above, "at least low")

widened, if needed, to hold the decision itself (the fit pools probes, so it can decide a step count that no single
probe settles). Multiplicity: each end is the extreme of several tests, so its error is at most 2.5% times the number
of probes on that side whose true rate is near the target (probes far from it almost never fail); in practice one to
three, so each end errs with probability at most ~2.5-7.5%. A probe without an interval (an error column with none,
such as `token_error`) gives no bound, and a decision whose probes carry none has no interval (None), never an
invented one.
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

    def too_few(self, target: float) -> bool:
        """Significantly above the target (one-sided, 2.5%): S* > this S."""
        return self.low is not None and self.low > target

    def enough(self, target: float) -> bool:
        """Significantly at or below the target (one-sided, 2.5%): S* <= this S."""
        return self.high is not None and self.high <= target


@dataclass(frozen=True)
class StepsNeeded:
    """The smallest probed S with monotone-fitted rate <= target at one length; `steps` is None when even `max_steps`
    misses the target (never extrapolated). `min_steps`: the floor of the search (the low end of `interval` when no
    probe is significantly too few)."""

    length: int
    target: float
    max_steps: int
    probes: tuple[Probe, ...]
    steps: int | None
    min_steps: int = 1

    @property
    def reached(self) -> bool:
        return self.steps is not None

    @property
    def interval(self) -> tuple[int, int | None] | None:
        """The 95% bracket (low, high) of the true steps needed (module docstring); high None: open above. None when
        no probe carries an interval."""
        if not any(probe.low is not None for probe in self.probes):
            return None
        too_few = [probe.steps for probe in self.probes if probe.too_few(self.target)]
        enough = [probe.steps for probe in self.probes if probe.enough(self.target)]
        low = max(too_few) + 1 if too_few else self.min_steps
        high = min(enough) if enough else None
        ends = [end for end in (low, high, self.steps) if end is not None]
        return min(ends), max(ends) if high is not None else None

    def interval_text(self) -> str:
        """The interval as text: "[low, high]", "[>= low]" (open above), or "" without an interval."""
        if self.interval is None:
            return ""
        low, high = self.interval
        return f"[{low}, {high}]" if high is not None else f"[>= {low}]"

    def describe(self) -> str:
        interval = f" (95% interval {self.interval_text()})" if self.interval is not None else " (no interval)"
        if self.reached:
            return f"L={self.length}: {self.steps}{interval}"
        return f"L={self.length}: not reached by S_max={self.max_steps}{interval}"


def decide_steps_needed(
    length: int,
    target: float,
    max_steps: int,
    measured: dict[int, tuple[float, int, float | None, float | None]],
    min_steps: int = 1,
) -> StepsNeeded:
    """Fit the probes `measured[S] = (rate, num_samples, low, high)` monotonically and decide the steps needed."""
    order = sorted(measured)
    fitted = non_increasing_fit([measured[s][0] for s in order], [measured[s][1] for s in order])
    probes = tuple(Probe(s, *measured[s], fit) for s, fit in zip(order, fitted))
    meets = [probe.steps for probe in probes if probe.fitted <= target]
    return StepsNeeded(length, target, max_steps, probes, meets[0] if meets else None, min_steps)
