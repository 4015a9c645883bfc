"""The card's "How to use" section: a snippet that loads the model and reruns one measured cell of its table.

The snippet loads `model_id`: the model's folder when the card knows it, the repo id once pushed (`for_repo`). It
reruns the cell exactly as the sweep generated it, from the row's `generation` record (`sweep_steps` writes it):
the same `generate()` keywords (strategy, steps, sampling, temperature, suppressed tokens, block length, ...) and the
cell's first samples with their own generators (and prompts, for a prompt task), so it prints the sweep's samples.
Rows without a record (an older sweep, an lm-eval row) give a snippet that says it draws new samples.
"""

import json
import re

from ..evaluation.sweep_columns import CELL_COLUMNS
from ..evaluation.sweep_table import is_present
from .step_vs_error_plot import AUTOREGRESSIVE


# What the usage snippet loads until the card knows the model's folder or repo.
MODEL_ID_PLACEHOLDER = "path/to/this/folder"
MODEL_ID_LINE = re.compile(r'^model_id = "(?P<model_id>[^"\n]*)"', re.MULTILINE)
NOT_RECORDED = "<not recorded"


def metric_config(row: dict) -> str:
    """The row's cell as the model-index's metric_config: `strategy=...,length=...,steps=...,block_size=...` (the
    columns of the cell the row has)."""
    return ",".join(f"{column}={row[column]}" for column in CELL_COLUMNS if row.get(column) is not None)


def usage_cell(rows: list[dict], model) -> dict:
    """The table cell the usage snippet reproduces: at the largest generated length that fits the model's positions,
    the diffusion row with the lowest SER (fewest steps on ties); an autoregressive row when the table has only those
    (the snippet then takes its length alone)."""
    max_positions = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    fitting = [row for row in rows if max_positions is None or row["length"] <= max_positions]
    if not fitting:
        raise ValueError(
            f"Every generated length of the sweep ({sorted({row['length'] for row in rows})}) exceeds the model's "
            f"max_position_embeddings={max_positions}: the table was not measured on this model. Pass the model "
            "the sweep ran."
        )
    diffusion = [row for row in fitting if row["strategy"] != AUTOREGRESSIVE]
    return min(diffusion or fitting, key=lambda row: (-row["length"], row["ser"], row["steps"]))


def generation_record(row: dict) -> dict | None:
    """The row's `generation` record (`sweep_steps`), or None when the row has none."""
    record = row.get("generation")
    if record is None:
        return None
    try:
        record = json.loads(record) if isinstance(record, str) else record
    except json.JSONDecodeError:
        record = None
    if not isinstance(record, dict) or not isinstance(record.get("generate"), dict):
        raise ValueError(
            f"The row {metric_config(row)} has a `generation` column that is not a sweep's record "
            f"({str(row['generation'])[:80]!r}); drop the column or rerun the cell."
        )
    return record


def generate_call(row: dict) -> list[str]:
    """The snippet's lines from the cell's comment to `out = model.generate(...)`."""
    interval = f" [{row['ser_low']:.3f}, {row['ser_high']:.3f}]" if is_present(row.get("ser_low")) else ""
    cited = f"# The table's cell {metric_config(row)}: SER {row['ser']:.3f}{interval}"
    record = generation_record(row)
    if row["strategy"] == AUTOREGRESSIVE:
        return ["# The table has no diffusion row: its length, with the model's generation_config",
                f"out = model.generate(max_new_tokens={row['length']})"]  # fmt: skip
    if record is None or "samples" not in record:
        return [
            cited,
            "# Its rows do not record how the sweep generated (seed, sampling, block length): this draws new",
            "# samples with the cell's strategy and steps and the model's generation_config.",
            f"out = model.generate(max_new_tokens={row['length']}, steps={row['steps']}, "
            f"strategy={row['strategy']!r})",
        ]
    samples = record["samples"]
    kept = {key: value for key, value in record["generate"].items() if not str(value).startswith(NOT_RECORDED)}
    dropped = sorted(set(record["generate"]) - set(kept))
    count = len(samples["seeds"])
    lines = [cited, f"# Its first {count} samples as the sweep generated them (seed {row.get('seed')}):"]
    if dropped:
        lines.append(f"# the sweep also passed {dropped}, which a table cannot record: pass them as it did.")
    lines.append(f"generator = [torch.Generator().manual_seed(seed) for seed in {samples['seeds']}]")
    inputs = ""
    if samples.get("prompts") is not None:
        lines += [f"prompts = {samples['prompts']!r}",
                  'inputs = tokenizer(prompts, return_tensors="pt", padding=True, padding_side="left")']  # fmt: skip
        inputs = "**inputs, "
    arguments = ", ".join(f"{key}={value!r}" for key, value in kept.items())
    lines.append(f"out = model.generate({inputs}{arguments}, generator=generator)")
    return lines


def usage_section(rows: list[dict], model, model_id: str) -> list[str]:
    """The "How to use" section: the install line and a snippet that loads this model and reruns one measured cell."""
    if model is not None and not callable(getattr(model, "save_pretrained", None)):
        return [
            f"`{type(model).__name__}` has no checkpoint to load: it is built in code (e.g. "
            "`language.oracle_model()`), and decodes with `hf_mdm.enable_diffusion_generation(model).generate(...)`."
        ]
    stock = model is not None and getattr(model.config, "model_type", None) != "mdm"
    cell = usage_cell(rows, model)
    load = (
        [
            "tokenizer = AutoTokenizer.from_pretrained(model_id)",
            "# diffusion generate(); the tokenizer's special tokens are never generated",
            "model = hf_mdm.enable_diffusion_generation(AutoModelForMaskedLM.from_pretrained(model_id), tokenizer)",
        ]
        if stock
        else [
            "model = AutoModel.from_pretrained(model_id)  # a masked diffusion LM, not a causal LM",
            "tokenizer = AutoTokenizer.from_pretrained(model_id)",
        ]
    )
    return [
        "```bash",
        "pip install hf-mdm",
        "```",
        "",
        "```python",
        "import torch",
        "from transformers import " + ("AutoModelForMaskedLM" if stock else "AutoModel") + ", AutoTokenizer",
        "",
        "import hf_mdm  # registers the model types with transformers' Auto classes",
        "",
        f'model_id = "{model_id}"',
        *load,
        *generate_call(cell),
        f"print(tokenizer.batch_decode(out[:, -{cell['length']}:], skip_special_tokens=True))",
        "```",
    ]


def with_model_id(text: str, model_id: str) -> str:
    """`text` with its snippet's `model_id = "..."` line loading `model_id`."""
    return MODEL_ID_LINE.sub(lambda match: f'model_id = "{model_id}"', text, count=1)


def snippet_model_id(text: str) -> str | None:
    """What the card's snippet loads (None: the card has no snippet)."""
    match = MODEL_ID_LINE.search(text)
    return match.group("model_id") if match else None
