"""The rendering of a step-vs-error sweep as a Markdown table (the sweep's JSON is `Dataset.to_json`)."""

import math


TABLE_COLUMNS = [
    ("strategy", "strategy", "{}"),
    ("length", "length", "{}"),
    ("steps", "steps", "{}"),
    ("nfe", "NFE", "{:.1f}"),
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


def is_present(value) -> bool:
    """False for a missing cell: None or NaN."""
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def markdown_table(rows: list[dict]) -> str:
    """The sweep as a Markdown table, with the columns the rows actually fill."""
    columns = [c for c in TABLE_COLUMNS if any(is_present(row.get(c[0])) for row in rows)]
    lines = ["| " + " | ".join(title for _, title, _ in columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = [fmt.format(row[key]) if is_present(row.get(key)) else "" for key, _, fmt in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
