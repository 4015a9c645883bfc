"""Writing a figure of the optional `[plot]` extra: matplotlib draws it, or nothing is written (the caller says so)."""

from collections.abc import Callable
from pathlib import Path


def save_figure(draw: Callable, path: "str | Path") -> bool:
    """Save the `matplotlib.figure.Figure` that `draw()` returns into `path` and close it; False (nothing written)
    when matplotlib is not installed (`draw` raises ImportError)."""
    try:
        figure = draw()
    except ImportError:
        return False
    import matplotlib.pyplot as plt

    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True
