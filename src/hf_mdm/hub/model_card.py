"""Hub model cards that publish a model's step-vs-error table.

`ModelCard.from_sweep(table, ...)` builds a `huggingface_hub.ModelCard` whose YAML carries `library_name: hf-mdm`, tags
and a `model-index` with one `EvalResult` per reported cell (so the Hub renders the results), and whose body has the
Markdown table, a plot of sequence and token error against steps (with the `[plot]` extra), how to load and generate,
and the limitation the research predicts, fitted from the sweep.

A sweep table is a `datasets.Dataset` (or a list of dicts) with one row per cell: `strategy`, `length`, `steps`, `nfe`,
`num_samples`, `ser`, `ser_low`, `ser_high` and, where the task defines them, `invalid_token_rate`, `log_perplexity`,
`entropy_rate`, `ter_gap`, `token_error`, plus `latency_s` and `tokens_per_s`. The autoregressive baseline is the row
with `strategy == "autoregressive"`.
"""

from pathlib import Path

from huggingface_hub import EvalResult, ModelCardData
from huggingface_hub import ModelCard as HubModelCard

from ..evaluation.step_scaling import StepScaling, check_target, fit_step_scaling
from ..evaluation.sweep_table import check_sweep_rows, is_present, markdown_table


PLOT_FILE = "step_vs_error.png"
PLOT_LINK = f"![Sequence and token error against steps]({PLOT_FILE})"
NO_PLOT_NOTE = "_No plot: install the `[plot]` extra (`pip install hf-mdm[plot]`) to draw one._"
# Error columns published in the model-index: (column, metric_type, human-readable name).
INDEXED_METRICS = [
    ("ser", "sequence_error_rate", "Sequence error rate"),
    ("ter_gap", "token_error_gap", "Token error (log-perplexity minus entropy rate)"),
    ("invalid_token_rate", "invalid_token_rate", "Invalid-token rate"),
    ("token_error", "token_error_rate", "Token error rate"),
]


def metric_config(row: dict) -> str:
    return f"strategy={row['strategy']},length={row['length']},steps={row['steps']}"


def plot_step_vs_error(rows: list[dict], path: Path) -> bool:
    """Write SER and token error against steps, one panel per length; False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    lengths = sorted({row["length"] for row in rows})
    ter = "ter_gap" if any(is_present(row.get("ter_gap")) for row in rows) else "token_error"
    colors = {strategy: f"C{i}" for i, strategy in enumerate(sorted({row["strategy"] for row in rows}))}
    figure, axes = plt.subplots(2, len(lengths), figsize=(4 * len(lengths), 6), squeeze=False)
    for column, length in enumerate(lengths):
        for axis, metric, label in ((axes[0, column], "ser", "sequence error"), (axes[1, column], ter, ter)):
            for strategy, color in colors.items():
                cells = sorted(
                    (r["steps"], r[metric])
                    for r in rows
                    if r["strategy"] == strategy and r["length"] == length and is_present(r.get(metric))
                )
                if cells:
                    steps, values = zip(*cells)
                    axis.plot(steps, values, marker="o", color=color, label=strategy)
            axis.set_xscale("log", base=2)
            axis.set_xlabel("steps")
            axis.set_ylabel(label)
            axis.set_title(f"length {length}")
            axis.grid(alpha=0.3)
    handles = [plt.Line2D([], [], color=color, marker="o", label=strategy) for strategy, color in colors.items()]
    axes[0, 0].legend(handles=handles, fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return True


class ModelCard(HubModelCard):
    """A `huggingface_hub.ModelCard` for an hf-mdm model, built from a step-vs-error sweep."""

    @classmethod
    def from_sweep(
        cls,
        table,
        model=None,
        model_name: str = "hf-mdm model",
        task_name: str = "formal language",
        dataset_name: str | None = None,
        dataset_type: str = "formal-language",
        training: dict | None = None,
        base_model: str | None = None,
        license: str = "apache-2.0",
        ser_target: float = 0.1,
        step_scaling: list[StepScaling] | None = None,
    ) -> "ModelCard":
        """Build the card; its body links the plot that `save_pretrained` draws next to it.

        The limitation section fits steps ~ c L^b per strategy from the swept table at `ser_target`
        (`fit_step_scaling`), unless `step_scaling` gives the fits of a search (`search_steps_needed`).
        """
        if isinstance(table, (str, bytes)) or not hasattr(table, "__iter__"):
            raise TypeError(f"table must be a sweep table (a datasets.Dataset or a list of dicts), got {type(table)}.")
        rows = [dict(row) for row in table]
        if not rows:
            raise ValueError("The sweep table is empty; run `hf_mdm.sweep_steps` over at least one cell first.")
        check_sweep_rows(rows)
        ser_target = check_target(ser_target)
        if step_scaling is not None and not all(isinstance(fit, StepScaling) for fit in step_scaling):
            raise TypeError("step_scaling must be a list of StepScaling, as `search_steps_needed` returns.")
        eval_results = [
            EvalResult(
                task_type="text-generation",
                task_name=task_name,
                dataset_type=dataset_type,
                dataset_name=dataset_name or task_name,
                metric_type=metric_type,
                metric_name=f"{name} ({metric_config(row)})",
                metric_config=metric_config(row),
                metric_value=float(row[column]),
            )
            for row in rows
            for column, metric_type, name in INDEXED_METRICS
            if is_present(row.get(column))
        ]
        data = ModelCardData(
            model_name=model_name,
            library_name="hf-mdm",
            license=license,
            tags=["hf-mdm", "masked-diffusion", "diffusion-language-model"],
            pipeline_tag="text-generation",
            base_model=base_model,
            eval_results=eval_results,
        )
        scalings = (
            step_scaling
            if step_scaling is not None
            else [
                fit_step_scaling(rows, strategy, "ser", ser_target)
                for strategy in sorted({row["strategy"] for row in rows} - {"autoregressive"})
            ]
        )
        card = cls(f"---\n{data.to_yaml()}\n---\n\n{cls._body(rows, model, model_name, training, scalings)}")
        card.sweep_rows = rows
        return card

    @staticmethod
    def _body(rows, model, model_name, training, scalings) -> str:
        parts = [
            f"# {model_name}",
            "",
            "A masked diffusion language model trained and evaluated with [hf-mdm](https://github.com/hf-mdm/hf-mdm).",
        ]
        if model is not None:
            config = model.config
            params = sum(p.numel() for p in model.parameters())
            parts += [
                "",
                "## Model",
                "",
                f"- {params / 1e6:.2f}M parameters, {config.num_hidden_layers} layers, "
                f"hidden size {config.hidden_size}, vocabulary {config.vocab_size}, [MASK] id "
                f"{config.mask_token_id}",
                f"- training noise schedule: `{config.schedule}`",
            ]
        if training:
            parts += ["", "## Training", ""] + [f"- {key}: {value}" for key, value in training.items()]
        parts += [
            "",
            "## Step-vs-error table",
            "",
            "SER: sequence error rate with its Wilson 95% interval. TER gap: generative log-perplexity under the "
            "true language minus its entropy rate (0 is perfect). NFE: forward passes per sequence.",
            "",
            markdown_table(rows),
        ]
        parts += ["", PLOT_LINK]
        parts += [
            "",
            "## Limitation: steps needed grow with length",
            "",
            "Token error needs a number of steps that does not grow with the sequence length; whether the whole "
            "sequence is right (SER) needs steps proportional to the length (Feng et al. 2025): b ~ 0 for token "
            "error, b ~ 1 for SER in steps ~ c L^b. Per length, the steps needed are the smallest step count whose "
            "monotone fit of the error is under the target; b is fitted by least squares on log-log axes, with its "
            "standard error and 95% interval (t distribution, n - 2 degrees of freedom; no exponent from fewer "
            "than 3 lengths). Measured here:",
            "",
        ]
        parts += [f"- {scaling.describe()}" for scaling in scalings]
        parts += [
            "",
            "## How to use",
            "",
            "```python",
            "import hf_mdm",
            "from transformers import AutoModel, AutoTokenizer",
            "",
            'model = AutoModel.from_pretrained("path/to/this/folder")',
            'tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")',
            'inputs = tokenizer(["prompt"], return_tensors="pt")',
            'out = model.generate(**inputs, max_new_tokens=64, steps=64, strategy="confidence")',
            "```",
        ]
        return "\n".join(parts) + "\n"

    def save_pretrained(self, save_directory: "str | Path") -> Path:
        """Write README.md and, with matplotlib, the plot the card links to, into `save_directory`."""
        save_directory = Path(save_directory)
        save_directory.mkdir(parents=True, exist_ok=True)
        content, rows = self.content, getattr(self, "sweep_rows", None)
        if PLOT_LINK in content and not (rows is not None and plot_step_vs_error(rows, save_directory / PLOT_FILE)):
            content = content.replace(PLOT_LINK, NO_PLOT_NOTE)
        (save_directory / "README.md").write_text(content)
        return save_directory / "README.md"
