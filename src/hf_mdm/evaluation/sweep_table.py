"""A step-vs-error sweep table: the checks its rows must pass, and its rendering as Markdown (the sweep's JSON is
`Dataset.to_json`), each value with its standard error where the row has one (`ter_gap` ± `ter_gap_se`)."""

import math

from scipy.stats import norm


TABLE_COLUMNS = [
    ("task", "task", "{}"),
    ("strategy", "strategy", "{}"),
    ("length", "length", "{}"),
    ("steps", "steps", "{}"),
    ("nfe", "NFE", "{:.1f}"),
    ("accuracy", "accuracy", "{:.3f}"),
    ("ser", "SER", "{:.3f}"),
    ("ser_low", "SER 95% low", "{:.3f}"),
    ("ser_high", "SER 95% high", "{:.3f}"),
    ("invalid_token_rate", "invalid tokens", "{:.4f}"),
    ("log_perplexity", "log-ppl (true LM)", "{:.3f}"),
    ("entropy_rate", "entropy rate", "{:.3f}"),
    ("ter_gap", "TER gap", "{:.3f}"),
    ("token_error", "token error", "{:.3f}"),
    ("latency_s", "latency (s)", "{:.3f}"),
    ("tokens_per_s", "tokens/s", "{:,.0f}"),
]


# A 95% interval from a standard error: value ± Z_95 SE.
Z_95 = float(norm.ppf(0.975))


def is_present(value) -> bool:
    """False for a missing cell: None or NaN."""
    return value is not None and not (isinstance(value, float) and math.isnan(value))


REQUIRED_COLUMNS = ("strategy", "length", "steps", "num_samples", "ser")


def check_sweep_rows(rows: list[dict]) -> None:
    """Raise a ValueError naming the first row that misses a required column, or whose SER is not a finite rate, or
    when the rows come from several tasks (`hf-mdm eval` writes a `task` column): one table is one task."""
    tasks = sorted({str(row.get("task")) for row in rows if isinstance(row, dict) and row.get("task") is not None})
    if len(tasks) > 1:
        raise ValueError(
            f"The rows come from {len(tasks)} tasks {tasks}; one table or card is one task: pass "
            f"[row for row in rows if row['task'] == {tasks[0]!r}]."
        )
    for index, row in enumerate(rows):
        if not isinstance(row, dict):
            raise ValueError(f"Sweep row {index} is a {type(row).__name__}, not a dict of columns.")
        missing = [column for column in REQUIRED_COLUMNS if row.get(column) is None]
        if missing:
            raise ValueError(
                f"Sweep row {index} has no {missing}; every row needs {list(REQUIRED_COLUMNS)} (as `sweep_steps` "
                "writes them)."
            )
        ser = row["ser"]
        if isinstance(ser, bool) or not isinstance(ser, (int, float)) or not 0 <= ser <= 1:
            raise ValueError(
                f"Sweep row {index} ({row['strategy']}, length {row['length']}, steps {row['steps']}) has SER "
                f"{ser!r}; SER must be a finite rate in [0, 1] (a NaN or inf means the cell failed: rerun it)."
            )


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
