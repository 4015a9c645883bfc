"""The card's figure: sequence error rate (with its Wilson 95% interval) and token error against decoding steps.

One column of panels per generated length L; the top row is the SER with error bars from the table's `ser_low` /
`ser_high`, the bottom row the token error (`ter_gap` in nats/token where the task defines it, with bars of
± 1.96 `ter_gap_se` where the rows have it; else `token_error`, which has no interval and is drawn without bars).
Each diffusion strategy (and decoding block size, `sweep_table.decoder_label`) is a line; the autoregressive
baseline (one token per forward pass, so steps = L) is a single black star at x = L. One legend for the whole
figure. Needs the `[plot]` extra (matplotlib).
"""

from pathlib import Path

from ..evaluation.sweep_columns import COLUMNS
from ..evaluation.sweep_table import Z_95, decoder_label, is_present
from .figure_file import save_figure


AUTOREGRESSIVE = "autoregressive"


def error_bars(cells: list[dict], metric: str):
    """(lower, upper) distances from each value to its 95% interval (the rows' `{metric}_low` / `_high`, or
    ± 1.96 `{metric}_se`), or None when the rows carry neither."""
    if all(is_present(cell.get(f"{metric}_se")) for cell in cells):
        half_widths = [Z_95 * cell[f"{metric}_se"] for cell in cells]
        return [half_widths, half_widths]
    if not all(is_present(cell.get(f"{metric}_low")) and is_present(cell.get(f"{metric}_high")) for cell in cells):
        return None
    return [
        [max(cell[metric] - cell[f"{metric}_low"], 0.0) for cell in cells],
        [max(cell[f"{metric}_high"] - cell[metric], 0.0) for cell in cells],
    ]


def step_vs_error_figure(rows: list[dict]):
    """The figure as a `matplotlib.figure.Figure` (ImportError without matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import ScalarFormatter

    lengths = sorted({row["length"] for row in rows})
    token_metric = "ter_gap" if any(is_present(row.get("ter_gap")) for row in rows) else "token_error"
    decoders = sorted({decoder_label(row) for row in rows} - {AUTOREGRESSIVE})
    styles = {decoder: dict(color=f"C{i}", marker="o", linestyle="-") for i, decoder in enumerate(decoders)}
    styles[AUTOREGRESSIVE] = dict(color="black", marker="*", markersize=13, linestyle="none", zorder=3)
    figure, axes = plt.subplots(2, len(lengths), figsize=(4 * len(lengths), 6.5), squeeze=False)
    handles = {}
    for column, length in enumerate(lengths):
        for axis, metric in ((axes[0, column], "ser"), (axes[1, column], token_metric)):
            for decoder, style in styles.items():
                cells = sorted(
                    (row for row in rows if (decoder_label(row), row["length"]) == (decoder, length)),
                    key=lambda row: row["steps"],
                )
                cells = [cell for cell in cells if is_present(cell.get(metric))]
                if cells:
                    handles[decoder] = axis.errorbar(
                        [cell["steps"] for cell in cells],
                        [cell[metric] for cell in cells],
                        yerr=error_bars(cells, metric),
                        capsize=3,
                        **style,
                    )
            axis.set_xscale("log", base=2)
            axis.xaxis.set_major_formatter(ScalarFormatter())  # 2, 4, 8 rather than 2^1, 2^2, 2^3
            axis.set_xlabel("decoding steps")
            axis.set_ylabel(COLUMNS[metric].axis_label)
            axis.set_title(f"generated length {length}")
            axis.grid(alpha=0.3)
    labels = {decoder: f"{decoder} decoding" for decoder in decoders}
    labels[AUTOREGRESSIVE] = "autoregressive baseline (steps = length)"
    order = [decoder for decoder in styles if decoder in handles]
    figure.legend(
        [handles[decoder] for decoder in order],
        [labels[decoder] for decoder in order],
        loc="upper center",
        ncol=min(len(order), 4),
        fontsize=9,
        title="error bars: 95% intervals (Wilson for the sequence error rate, ± 1.96 SE for the token error gap)",
        title_fontsize=9,
    )
    figure.tight_layout(rect=(0, 0, 1, 0.9))
    return figure


def plot_step_vs_error(rows: list[dict], path: Path) -> bool:
    """Draw the figure into `path`; False (nothing written) when matplotlib is not installed."""
    return save_figure(lambda: step_vs_error_figure(rows), path)
