"""A step-vs-error sweep table: the checks its rows must pass, and its rendering as Markdown (the sweep's JSON is
`Dataset.to_json`), each value with its standard error where the row has one (`ter_gap` ± `ter_gap_se`).

The checks refuse an impossible row (an SER outside [0, 1] or that is not k/n over its samples, steps < 1, a rate
outside [0, 1], a NaN) and rows that contradict each other (a cell twice, rows of several tasks, seeds or
languages), so no table, fit or card is ever built from them."""

import math

from scipy.stats import norm

from ..value_checks import is_integer, is_real
from .sweep_columns import CELL_COLUMNS, ONE_PER_TABLE, REQUIRED_COLUMNS, SWEEP_COLUMNS, TABLE_COLUMNS


# A 95% interval from a standard error: value ± Z_95 SE.
Z_95 = float(norm.ppf(0.975))


def is_present(value) -> bool:
    """False for a missing cell: None or NaN."""
    return value is not None and not (isinstance(value, float) and math.isnan(value))


# What the row checks enforce per column kind (`sweep_columns`): the ranges, in the order they are checked, and names.
RANGES = {
    "rate": (0, 1, "a rate in [0, 1]"),
    "non-negative": (0, math.inf, "a finite number >= 0"),
    "finite": (-math.inf, math.inf, "finite"),
    "standard error": (0, math.inf, "a finite number >= 0"),
}
RANGED_COLUMNS = [(c.name, c.kind) for kind in RANGES for c in SWEEP_COLUMNS if c.kind == kind]
POSITIVE_INTEGER_COLUMNS = [c.name for c in SWEEP_COLUMNS if c.kind == "positive integer"]
NAME_COLUMNS = [c.name for c in SWEEP_COLUMNS if c.kind == "name"]


def _same(a, b) -> bool:
    """Equal, floats to rounding (an entropy rate computed by two processes may differ in its last bits)."""
    if is_real(a) and is_real(b):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def describe_cell(row: dict) -> str:
    """The row's cell in words: "confidence, length 32, steps 8" (and ", block size 4" when the row has one)."""
    block = f", block size {row['block_size']}" if row.get("block_size") is not None else ""
    return f"{row.get('strategy')}, length {row.get('length')}, steps {row.get('steps')}{block}"


# The block axis of a row decoded as one block over its whole length (B = L), whatever that length is.
ONE_BLOCK = "L"


def block_axis(row: dict) -> "int | str":
    """The row's block size as one curve across lengths: its `block_size`, or `ONE_BLOCK` ("L") when that covers the
    whole length (or the row has none: a table from before the column)."""
    size = row.get("block_size")
    return ONE_BLOCK if size is None or size >= row["length"] else int(size)


def decoder_label(row: dict) -> str:
    """The row's curve in a plot or a fit: its strategy, with its block size when it decodes several blocks."""
    axis = block_axis(row)
    return row["strategy"] if axis == ONE_BLOCK or row["strategy"] == "autoregressive" else (
        f"{row['strategy']}, block size {axis}")  # fmt: skip


def _row_name(index: int, row: dict) -> str:
    return f"Sweep row {index} ({describe_cell(row)})"


def check_row(index: int, row, required=REQUIRED_COLUMNS) -> None:
    """One row: a dict with the `required` columns; positive integer cells and sample counts, an SER that is k/n for
    an integer k with its interval around it, and every known column in its range, wherever the row has them."""
    if not isinstance(row, dict):
        raise ValueError(f"Sweep row {index} is a {type(row).__name__}, not a dict of columns.")
    missing = [column for column in required if row.get(column) is None]
    if missing:
        raise ValueError(
            f"Sweep row {index} has no {missing}; every row needs {list(required)} (as `sweep_steps` writes them)."
        )
    name = _row_name(index, row)
    for column in NAME_COLUMNS:
        if column in row and not isinstance(row[column], str):
            raise ValueError(f"{name}: {column} must be a name, got {row[column]!r}.")
    for column in POSITIVE_INTEGER_COLUMNS:
        if column in row and (not is_integer(row[column]) or row[column] < 1):
            raise ValueError(f"{name}: {column} must be a positive integer, got {row[column]!r}.")
    ser = row.get("ser")
    if ser is not None and (not is_real(ser) or not 0 <= ser <= 1):
        raise ValueError(
            f"{name} has SER {ser!r}; SER must be a finite rate in [0, 1] (a NaN or inf means the cell failed: "
            "rerun it)."
        )
    errors = None if ser is None or "num_samples" not in row else ser * row["num_samples"]
    if errors is not None and abs(errors - round(errors)) > 1e-6 * row["num_samples"]:
        raise ValueError(
            f"{name}: SER {ser!r} over {row['num_samples']} samples is {errors:.3f} wrong sequences, not a whole "
            "number: the SER or num_samples was edited, or the row mixes two cells."
        )
    for column, kind in RANGED_COLUMNS:
        value = row.get(column)
        if value is None or (kind == "standard error" and not is_present(value)):  # NaN: one sample, no SE
            continue
        low, high, words = RANGES[kind]
        if not is_real(value) or not (math.isfinite(value) and low <= value <= high):
            raise ValueError(f"{name}: {column} must be {words}, got {value!r}.")
    if ser is not None and is_present(row.get("ser_low")) and is_present(row.get("ser_high")):
        if not row["ser_low"] - 1e-12 <= ser <= row["ser_high"] + 1e-12:
            raise ValueError(
                f"{name}: SER {ser} lies outside its interval [{row['ser_low']}, {row['ser_high']}]: the row's "
                "columns come from different cells."
            )


def check_sweep_rows(rows: list[dict], required=REQUIRED_COLUMNS) -> None:
    """Raise a ValueError naming the first row that is impossible (`check_row`; `required`: the columns the caller
    reads, at least the cell's), or when the rows contradict each other: the same cell twice, or rows of several
    sweeps (tasks, seeds or languages) in one table."""
    for index, row in enumerate(rows):
        check_row(index, row, required)
    for column, unit in ONE_PER_TABLE.items():
        if all(row.get(column) is None for row in rows):
            continue
        values = []  # a row without the column counts as a value: rows of a sweep that has it all have it
        for row in rows:
            value = row.get(column)
            if not any(_same(value, seen) for seen in values):
                values.append(value)
        if len(values) > 1:
            raise ValueError(
                f"The rows hold {len(values)} values of {column!r} ({', '.join(map(repr, values))}): they come from "
                f"different sweeps, and one table or card is one {unit}: pass [row for row in rows if "
                f"row.get({column!r}) == {values[0]!r}]."
            )
    first: dict = {}
    for index, row in enumerate(rows):
        cell = (row.get("task"), *(row.get(column) for column in CELL_COLUMNS))
        if cell in first:
            same = "with the same values" if row == rows[first[cell]] else "with different values"
            raise ValueError(
                f"Sweep rows {first[cell]} and {index} are the same cell ({describe_cell(row)}) {same}; one table "
                "holds each cell once: drop one (e.g. list({(r['strategy'], r['length'], r['steps'], "
                "r.get('block_size')): r for r in rows}.values()) keeps the last)."
            )
        first[cell] = index


def checked_rows(table, name: str = "table") -> list[dict]:
    """A sweep table (a `datasets.Dataset` or a list of dicts) as a list of rows that pass `check_sweep_rows`; a
    string, an object that is not a table, or an empty table is refused."""
    if isinstance(table, (str, bytes)) or not hasattr(table, "__iter__"):
        raise TypeError(f"{name} must be a sweep table (a datasets.Dataset or a list of dicts), got {type(table)}.")
    rows = [dict(row) if isinstance(row, dict) else row for row in table]
    if not rows:
        raise ValueError("The sweep table is empty; run `hf_mdm.sweep_steps` over at least one cell first.")
    check_sweep_rows(rows)
    return rows


def with_standard_error(row: dict, key: str, fmt: str) -> str:
    """The cell of `key`, followed by "± SE" when the row has its standard error `{key}_se` (rows written before a
    column had one show the value alone); empty when the value is missing."""
    if not is_present(row.get(key)):
        return ""
    standard_error = row.get(f"{key}_se")
    return fmt.format(row[key]) + (f" ± {fmt.format(standard_error)}" if is_present(standard_error) else "")


def markdown_table(rows: list[dict]) -> str:
    """The sweep as a Markdown table, with the columns the rows actually fill; a column whose standard error some row
    has is titled "... ± SE"."""
    columns = [c for c in TABLE_COLUMNS if any(is_present(row.get(c[0])) for row in rows)]
    titles = [title + (" ± SE" if any(is_present(row.get(f"{key}_se")) for row in rows) else "")
              for key, title, _ in columns]  # fmt: skip
    lines = ["| " + " | ".join(titles) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(with_standard_error(row, key, fmt) for key, _, fmt in columns) + " |")
    return "\n".join(lines)


def score_per_forward_table(rows: list[dict]) -> str:
    """The sweep in the "Score | tokens per forward" form of the LLaDA 2.x cards: per length and decoder (strategy,
    block size), at each step count, Score = 100 (1 - SER) with its Wilson 95% interval and the tokens per forward
    ± its standard error (the value alone for rows written before that column existed). Rows without tokens per
    forward are left out; empty when none has it."""
    rows = [row for row in rows if is_present(row.get("tokens_per_forward"))]
    if not rows:
        return ""
    lines = ["| length | decoder | steps | Score (95% interval) | tokens per forward ± SE |", "|---|---|---|---|---|"]
    for row in sorted(rows, key=lambda row: (row["length"], decoder_label(row), row["steps"])):
        score = f"{100 * (1 - row['ser']):.1f}"
        if is_present(row.get("ser_low")) and is_present(row.get("ser_high")):
            score += f" [{100 * (1 - row['ser_high']):.1f}, {100 * (1 - row['ser_low']):.1f}]"
        tokens = f"{row['tokens_per_forward']:.2f}"
        if is_present(row.get("tokens_per_forward_standard_error")):
            tokens += f" ± {row['tokens_per_forward_standard_error']:.2f}"
        lines.append(f"| {row['length']} | {decoder_label(row)} | {row['steps']} | {score} | {tokens} |")
    return "\n".join(lines)
