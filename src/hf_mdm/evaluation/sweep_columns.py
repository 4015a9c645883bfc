"""The columns of a sweep row, defined once: `SWEEP_COLUMNS`, one `SweepColumn` each, in the order the Markdown table
shows them.

Everything that names columns reads this registry: the table's titles and formats (`sweep_table.markdown_table`,
also the card's table), the row checks (`sweep_table.check_row`, `check_sweep_rows`), a row's cell, the columns a
task scores and those a resume file's header lists (`sweep_tasks.SCORE_COLUMNS`, `names(resume_checked=True)`), the
error columns a step-scaling fit reads and the card's model-index publishes (`step_scaling`, `hub.model_card`), the
plot's axis labels (`hub.step_vs_error_plot`) and the row's JSON schema (`sweep_row_json_schema`).

Each column says
- `kind`: the values it takes, which the row checks enforce: "name" (a string), "label" (any value, not checked),
  "positive integer", "rate" (in [0, 1]), "non-negative" (finite, >= 0), "finite", "standard error" (finite >= 0,
  or NaN/None for "none": one sample), "record" (how the row was generated, not checked);
- `source`: who writes it: "cell" (the grid point), "sweep" (`sweep_steps` measures it for every cell), "task" (the
  task's `score`), "record" (the sweep's record of the generation), "lm-eval" (`lm_eval_step_sweep` only);
- `aggregation`: how the cell's samples make the value (documentation, and the schema's description);
- `title` and `fmt`: its Markdown table (and card table) column, or no title when the table does not show it; a
  column `c` whose standard error is in column `c_se` is shown "value ± SE";
- `card_rank`, `metric_type`, `metric_name`: for an error column (lower is better), its place and names in the
  card's model-index; these are the columns a step-scaling fit may read; `axis_label`: its label on the plot's y axis;
- `resume_checked`: a resume file whose header does not list it is refused (as written by an older hf-mdm whose rows
  lack it), so that no resumed table holds it for some cells only; `one_per_table`: rows that differ in it come
  from different sweeps, and the words for what one table is one of.

Adding a column is one entry here plus the code that computes it. E.g. `tokens_per_forward`, the mean number of
tokens revealed per forward pass, a sweep measurement, was added as:

1. here, where the table shows it (after "nfe"):
   `SweepColumn("tokens_per_forward", "non-negative", "sweep", "tokens decoded / forward passes",
   title="tokens/forward", fmt="{:.2f}"),`
2. in `sweep.run_cell`'s row: the decoded tokens (`num_decoded_tokens` of the output) over the forwards (`nfe`),
   summed over the cell's sequences. A task-scored column would instead be a keyword of `sweep_tasks.score_row` in
   the `score` of each task that defines it (the others write None); an lm-eval column, in
   `lm_eval_sweep.lm_eval_row`.

The table, the row checks (a negative value is refused), the resume header (a file from before the column is
refused), the card's table and the schema follow; the existing tests of those cover the new entry. A column of
source "cell" is also a coordinate of the grid (`CELL_COLUMNS`: a table holds each cell once, a resumed sweep skips
the cells it finished); one that is not `required` (`block_size`) may be absent from rows written without it (an
lm-eval row, an older table), which then count as one cell per (strategy, length, steps).
"""

from dataclasses import dataclass


KINDS = ("name", "label", "positive integer", "rate", "non-negative", "finite", "standard error", "record")
SOURCES = ("cell", "sweep", "task", "record", "lm-eval")


@dataclass(frozen=True)
class SweepColumn:
    """One column of a sweep row (see the module docstring for each field)."""

    name: str
    kind: str
    source: str
    aggregation: str
    title: str | None = None
    fmt: str = "{}"
    required: bool = False
    card_rank: int | None = None
    metric_type: str | None = None
    metric_name: str | None = None
    axis_label: str | None = None
    resume_checked: bool = True
    one_per_table: str | None = None

    def __post_init__(self):
        if self.kind not in KINDS or self.source not in SOURCES:
            raise ValueError(f"Column {self.name}: kind must be one of {KINDS} and source one of {SOURCES}.")


# fmt: off
SWEEP_COLUMNS = (
    SweepColumn("task", "label", "lm-eval", "the lm-eval task of the row", "task", resume_checked=False,
                one_per_table="task"),
    SweepColumn("seed", "record", "record", "the sweep's base seed", one_per_table="sweep (one seed)"),
    SweepColumn("strategy", "name", "cell", "the reveal strategy of the cell", "strategy", required=True,
                resume_checked=False),
    SweepColumn("length", "positive integer", "cell", "generated tokens per sequence", "length", required=True,
                resume_checked=False),
    SweepColumn("steps", "positive integer", "cell", "reverse steps per sequence", "steps", required=True,
                resume_checked=False),
    SweepColumn("block_size", "positive integer", "cell", "tokens per decoding block: the block-causal model's "
                "block_size, else the sweep's block length (the whole length: one block; the AR row: 1)",
                "block size"),
    SweepColumn("steps_per_block", "non-negative", "sweep", "steps / the blocks of the generated region, "
                "ceil(length / block_size)", "steps/block", "{:g}"),
    SweepColumn("nfe", "non-negative", "sweep", "mean over sequences of the forward passes each needed", "NFE",
                "{:.1f}", resume_checked=False),
    SweepColumn("tokens_per_forward", "non-negative", "sweep", "tokens decoded / forward passes, over the cell's "
                "sequences (length / NFE unless rows stop at EOS)", "tokens/forward", "{:.2f}"),
    SweepColumn("tokens_per_forward_standard_error", "standard error", "sweep", "standard error of "
                "tokens_per_forward, a ratio of sums over the cell's sequences (delta method), shown in the card's "
                "Score | tokens per forward table; cells resumed from before it have none", resume_checked=False),
    SweepColumn("num_samples", "positive integer", "sweep", "sequences (documents) scored in the cell",
                required=True, resume_checked=False),
    SweepColumn("accuracy", "rate", "lm-eval", "the lm-eval metric over the documents", "accuracy", "{:.3f}",
                resume_checked=False),
    SweepColumn("ser", "rate", "task", "wrong sequences k / n", "SER", "{:.3f}", required=True, card_rank=1,
                metric_type="sequence_error_rate", metric_name="Sequence error rate",
                axis_label="sequence error rate"),
    SweepColumn("ser_low", "rate", "task", "Wilson 95% interval of k / n, lower end", "SER 95% low", "{:.3f}"),
    SweepColumn("ser_high", "rate", "task", "Wilson 95% interval of k / n, upper end", "SER 95% high", "{:.3f}"),
    SweepColumn("invalid_token_rate", "rate", "task", "mean over tokens of the language's invalid ones",
                "invalid tokens", "{:.4f}", card_rank=3, metric_type="invalid_token_rate",
                metric_name="Invalid-token rate"),
    SweepColumn("log_perplexity", "non-negative", "task", "mean over tokens of -log p under the true language",
                "log-ppl (true LM)", "{:.3f}"),
    SweepColumn("log_perplexity_se", "standard error", "task", "standard error of log_perplexity over sequences"),
    SweepColumn("entropy_rate", "non-negative", "task", "the language's entropy rate (nats/token)", "entropy rate",
                "{:.3f}", one_per_table="language (one entropy rate)"),
    SweepColumn("ter_gap", "finite", "task", "log_perplexity - entropy_rate", "TER gap", "{:.3f}", card_rank=2,
                metric_type="token_error_gap", metric_name="Token error (log-perplexity minus entropy rate)",
                axis_label="token error gap (nats/token)"),
    SweepColumn("ter_gap_se", "standard error", "task", "standard error of ter_gap over sequences"),
    SweepColumn("token_error", "rate", "task", "mean over positions of word disagreement with the reference",
                "token error", "{:.3f}", card_rank=4, metric_type="token_error_rate", metric_name="Token error rate",
                axis_label="token error rate"),
    SweepColumn("latency_s", "non-negative", "sweep", "mean seconds per generate() batch (lm-eval: per document)",
                "latency (s)", "{:.3f}", resume_checked=False),
    SweepColumn("latency_s_se", "standard error", "sweep", "standard error of latency_s over the cell's batches "
                "(the scatter within one run; none with one batch)", resume_checked=False),
    SweepColumn("tokens_per_s", "non-negative", "sweep", "generated tokens / seconds of the cell", "tokens/s",
                "{:,.0f}", resume_checked=False),
    SweepColumn("generation", "record", "record", "the cell's generate() keywords and first samples, as JSON"),
)
# fmt: on
COLUMNS = {column.name: column for column in SWEEP_COLUMNS}


def names(**where) -> tuple[str, ...]:
    """The names of the columns whose fields equal `where`, in registry order, e.g. `names(source="task")`."""
    return tuple(c.name for c in SWEEP_COLUMNS if all(getattr(c, key) == value for key, value in where.items()))


CELL_COLUMNS = names(source="cell")  # a cell of the grid: (strategy, length, steps, block_size)
REQUIRED_CELL_COLUMNS = names(source="cell", required=True)  # what every row has of it: (strategy, length, steps)
REQUIRED_COLUMNS = names(required=True)
SCORE_COLUMNS = names(source="task")
TABLE_COLUMNS = tuple((c.name, c.title, c.fmt) for c in SWEEP_COLUMNS if c.title is not None)
ERROR_COLUMNS = tuple(c.name for c in sorted((c for c in SWEEP_COLUMNS if c.card_rank), key=lambda c: c.card_rank))
ONE_PER_TABLE = {c.name: c.one_per_table for c in SWEEP_COLUMNS if c.one_per_table is not None}


_JSON_TYPES = {
    "name": {"type": "string"},
    "label": {},
    "positive integer": {"type": "integer", "minimum": 1},
    "rate": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
    "non-negative": {"type": ["number", "null"], "minimum": 0},
    "finite": {"type": ["number", "null"]},
    "standard error": {"type": ["number", "null"]},  # NaN (one sample) is written as NaN, which JSON Schema cannot say
    "record": {},
}


def sweep_row_json_schema() -> dict:
    """The JSON Schema (draft 2020-12) of one row of a sweep's JSON / JSON-lines file."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "hf-mdm sweep row",
        "type": "object",
        "required": list(REQUIRED_COLUMNS),
        "properties": {c.name: {**_JSON_TYPES[c.kind], "description": c.aggregation} for c in SWEEP_COLUMNS},
    }


__all__ = ["SWEEP_COLUMNS", "SweepColumn", "names", "sweep_row_json_schema"]
