"""The steps-needed figure: steps needed against length on log-log axes, with each length's 95% interval and the
fitted line steps = c L^b, one colour per fit (`StepScaling`: a strategy, block size and error column).

A length's bar is its interval [low, high] (`StepsNeeded.interval`, from the probes' own intervals). A length whose
interval is open above (no probe significantly meets the target), and a length not reached by S_max, are drawn as an
upward arrow from low: "at least low". A fit without an exponent (fewer than 3 lengths reach the target) has points
and no line. Needs the `[plot]` extra (matplotlib).
"""

from pathlib import Path

from ..evaluation.step_scaling import StepScaling
from .figure_file import save_figure


def steps_needed_figure(scalings: list[StepScaling]):
    """The figure as a `matplotlib.figure.Figure` (ImportError without matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.5, 4.5))
    for index, scaling in enumerate(scalings):
        color, label = f"C{index}", f"{scaling.decoder}, {scaling.metric} <= {scaling.target:g}"
        closed = [(length, result.steps, result.interval) for length, result in sorted(scaling.needed.items())
                  if result.reached and result.interval and result.interval[1] is not None]  # fmt: skip
        bare = [(length, result.steps) for length, result in sorted(scaling.needed.items())
                if result.reached and result.interval is None]  # fmt: skip
        at_least = [(length, result.interval[0]) for length, result in sorted(scaling.needed.items())
                    if result.interval and result.interval[1] is None]  # fmt: skip
        if closed:
            axis.errorbar(
                [length for length, _, _ in closed], [steps for _, steps, _ in closed],
                yerr=[[steps - low for _, steps, (low, _) in closed],
                      [high - steps for _, steps, (_, high) in closed]],
                color=color, marker="o", linestyle="none", capsize=3, label=label,
            )  # fmt: skip
        if bare:
            axis.plot(*zip(*bare), color=color, marker="o", linestyle="none", label=None if closed else label)
        if at_least:
            axis.errorbar(
                [length for length, _ in at_least], [low for _, low in at_least],
                yerr=[[0.0] * len(at_least), [low for _, low in at_least]], lolims=True, color=color, marker="_",
                markersize=10, linestyle="none", label=f"{label}: at least (open above)",
            )  # fmt: skip
        if scaling.exponent is not None:
            lengths = sorted(scaling.steps_needed)
            low, high = scaling.interval
            line = f"{scaling.coefficient:.3g} L^{scaling.exponent:.2f}, b in [{low:.2f}, {high:.2f}]"
            axis.plot(
                lengths, [scaling.coefficient * length**scaling.exponent for length in lengths], color=color,
                linestyle="--", label=line,
            )  # fmt: skip
    axis.set_xscale("log", base=2)
    axis.set_yscale("log", base=2)
    axis.set_xlabel("generated length L")
    axis.set_ylabel("steps needed")
    axis.set_title("steps needed (95% intervals) against length")
    axis.grid(alpha=0.3, which="both")
    axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def plot_steps_needed(scalings: list[StepScaling], path: "str | Path") -> bool:
    """Draw the figure into `path`; False (nothing written) when matplotlib is not installed. `scalings`: a non-empty
    list of `StepScaling` (what `search_steps_needed` or `fit_step_scaling` return), checked before any drawing."""
    if isinstance(scalings, StepScaling) or not isinstance(scalings, (list, tuple)) or not scalings:
        raise TypeError(f"scalings must be a non-empty list of StepScaling (e.g. [fit]), got {scalings!r:.80}.")
    if not all(isinstance(scaling, StepScaling) for scaling in scalings):
        raise TypeError("every entry of scalings must be a StepScaling, as `search_steps_needed` returns.")
    return save_figure(lambda: steps_needed_figure(scalings), path)
