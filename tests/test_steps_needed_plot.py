"""The steps-needed figure: each length's 95% interval as a bar, open intervals as arrows, the fitted line."""

import sys

import numpy as np
import pytest

from hf_mdm.evaluation.step_scaling import fit_exponent
from hf_mdm.evaluation.steps_needed import decide_steps_needed
from hf_mdm.hub.steps_needed_plot import plot_steps_needed, steps_needed_figure
from hf_mdm.metrics.sequence_error_rate.sequence_error_rate import wilson_interval


def scaling():
    """Lengths 8-64 decided with closed intervals, 128 open above (3 of 100: meets 0.05, not significantly)."""
    counts = {8: {4: 60, 8: 0}, 16: {8: 60, 16: 0}, 32: {16: 60, 24: 0}, 64: {32: 60, 64: 0}, 128: {64: 60, 128: 3}}
    needed = {
        length: decide_steps_needed(
            length, 0.05, 4 * length, {s: (k / 100, 100, *wilson_interval(k, 100)) for s, k in probes.items()}
        )  # fmt: skip
        for length, probes in counts.items()
    }
    return fit_exponent("random", "ser", 0.05, needed)


def test_bars_are_the_intervals_and_the_line_is_the_fit():
    fit = scaling()
    axis = steps_needed_figure([fit]).axes[0]
    closed, open_above = axis.containers  # the closed intervals, then the open one
    bars = [segment[:, 1] for segment in closed.lines[2][0].get_segments()]
    expected = [fit.needed_interval[length] for length in (8, 16, 32, 64)]
    assert np.allclose(bars, expected) and list(closed.lines[0].get_xdata()) == [8, 16, 32, 64]
    assert list(closed.lines[0].get_ydata()) == [fit.steps_needed[length] for length in (8, 16, 32, 64)]
    low, high = fit.needed_interval[128]
    assert high is None and list(open_above.lines[0].get_ydata()) == [low]  # an arrow up from low
    (line,) = [line for line in axis.get_lines() if line.get_linestyle() == "--"]
    lengths = np.array(sorted(fit.steps_needed))
    assert np.allclose(line.get_ydata(), fit.coefficient * lengths**fit.exponent)


def test_plot_writes_a_png(tmp_path):
    assert plot_steps_needed([scaling()], tmp_path / "steps.png")
    assert (tmp_path / "steps.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_without_matplotlib_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` raises ImportError
    assert plot_steps_needed([scaling()], tmp_path / "steps.png") is False
    assert not (tmp_path / "steps.png").exists()


@pytest.mark.bad_input
@pytest.mark.parametrize("bad", [[], "fits", None, [{"exponent": 1.0}]])
def test_bad_scalings_are_refused_before_drawing(tmp_path, bad):
    with pytest.raises(TypeError, match="StepScaling"):
        plot_steps_needed(bad, tmp_path / "steps.png")
    assert not (tmp_path / "steps.png").exists()


@pytest.mark.bad_input
def test_a_single_scaling_is_refused_with_the_fix(tmp_path):
    with pytest.raises(TypeError, match=r"\(e.g. \[fit\]\)"):
        plot_steps_needed(scaling(), tmp_path / "steps.png")
