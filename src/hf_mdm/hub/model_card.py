"""Hub model cards that publish a model's step-vs-error table.

`ModelCard.from_sweep(table, ...)` builds a `huggingface_hub.ModelCard` whose YAML carries `library_name: hf-mdm`, tags
and a `model-index` with one `EvalResult` per reported cell (so the Hub renders the results), and whose body has the
Markdown table, the same cells in the "Score | tokens per forward" form of the LLaDA 2.x cards, d3LLM's accuracy under
parallelism (AUP) per curve with its uncertainty (also in the model-index, beside each row's tokens per forward), a
plot of sequence and token error against steps (with the `[plot]` extra), how to load and generate, and the
limitation the research predicts, fitted from the sweep. A model that brings its own decoder (`hf_mdm.own_decoders`) is
reported by its weights, and its snippet decodes through that decoder's adapter.

A sweep table is a `datasets.Dataset` (or a list of dicts) with one row per cell, its columns those of
`evaluation.sweep_columns` (a value ± its standard error where the row has one; rows written before a standard error
column existed show the value alone). The autoregressive baseline is the row with `strategy == "autoregressive"`.
"""

import copy
import tempfile
from pathlib import Path

from huggingface_hub import EvalResult, HfApi, ModelCardData
from huggingface_hub import ModelCard as HubModelCard
from transformers.utils import logging

from ..evaluation.accuracy_under_parallelism import (
    AUP_DEFINITION,
    AccuracyUnderParallelism,
    accuracy_under_parallelism,
    aup_results_table,
)
from ..evaluation.argument_checks import check_known
from ..evaluation.latency_at_matched_quality import latency_at_matched_quality, matched_quality_table
from ..evaluation.step_scaling import StepScaling, check_target, fit_step_scaling
from ..evaluation.sweep_columns import COLUMNS, ERROR_COLUMNS
from ..evaluation.sweep_table import (
    block_axis,
    checked_rows,
    decoder_label,
    is_present,
    markdown_table,
    score_per_forward_table,
)
from ..own_decoders import OWN_DECODERS, own_decoder
from .push_to_hub import push_with_model_card, push_with_trainer
from .step_vs_error_plot import AUTOREGRESSIVE, plot_step_vs_error
from .usage_snippet import (
    MODEL_ID_PLACEHOLDER,
    generation_record,
    metric_config,
    snippet_model_id,
    usage_cell,
    usage_section,
    with_model_id,
)


logger = logging.get_logger(__name__)

PLOT_FILE = "step_vs_error.png"
PLOT_LINK = f"![Sequence and token error against decoding steps]({PLOT_FILE})"
NO_PLOT_NOTE = "_No plot: install the `[plot]` extra (`pip install hf-mdm[plot]`) to draw one._"
# Config fields the "Model" section reports when the denoiser's config has them: (attribute, words).
CONFIG_FACTS = [
    ("num_hidden_layers", "layers"),
    ("hidden_size", "hidden size"),
    ("vocab_size", "vocabulary"),
    ("max_position_embeddings", "positions"),
    ("mask_token_id", "[MASK] id"),
]


def model_facts(model) -> list[str]:
    """The "Model" section's lines for any denoiser (ours, a LLaDA/Dream conversion, a stock masked LM, an oracle):
    its class, its parameter count, and only the config fields it has."""
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", "")
    parameters = sum(p.numel() for p in model.parameters())
    present = [(getattr(config, name, None), words) for name, words in CONFIG_FACTS]
    sizes = [f"{words} {value}" for value, words in present if value is not None]
    lines = [
        f"- `{type(model).__name__}`" + (f" (model_type `{model_type}`)" if model_type else "")
        + (f", {parameters / 1e6:.2f}M parameters" if parameters else ", no parameters (an exact denoiser)")
    ]  # fmt: skip
    if sizes:
        lines.append("- " + ", ".join(sizes))
    if getattr(config, "schedule", None) is not None:
        lines.append(f"- training noise schedule: `{config.schedule}`")
    return lines


def row_eval_result(row: dict, column: str, metric_type: str, metric_name: str, eval_result: dict) -> EvalResult:
    """A row's `column` as a model-index entry, its cell the metric_config."""
    return EvalResult(
        **eval_result,
        metric_type=metric_type,
        metric_name=f"{metric_name} ({metric_config(row)})",
        metric_config=metric_config(row),
        metric_value=float(row[column]),
    )


def aup_eval_result(result: AccuracyUnderParallelism, eval_result: dict) -> EvalResult:
    """A curve's AUP as a model-index entry; its name carries the standard error and 95% interval."""
    low, high = result.interval
    return EvalResult(
        **eval_result,
        metric_type="accuracy_under_parallelism",
        metric_name=f"Accuracy under parallelism, AUP ({result.metric_config}; ± {result.standard_error:.1f} SE, "
        f"95% interval [{low:.1f}, {high:.1f}], {result.points_used} of {result.num_points} points)",
        metric_config=result.metric_config,
        metric_value=result.aup,
    )


def matched_quality_section(rows: list[dict]) -> list[str]:
    """Per length with an autoregressive row, per strategy swept over 2+ step counts there: the latency at matched
    TER and SER (`latency_at_matched_quality`). Rows without the standard errors it needs say so instead."""
    lines = []
    for length in sorted({row["length"] for row in rows if row["strategy"] == AUTOREGRESSIVE}):
        at_length = [row for row in rows if row["length"] == length]
        autoregressive = [row for row in at_length if row["strategy"] == AUTOREGRESSIVE]
        for decoder in sorted({decoder_label(row) for row in at_length} - {AUTOREGRESSIVE}):
            curve = [row for row in at_length if decoder_label(row) == decoder]  # one strategy and block size
            if len({row["steps"] for row in curve}) < 2:
                continue
            try:
                table = matched_quality_table(latency_at_matched_quality(autoregressive + curve, curve[0]["strategy"]))
            except ValueError as error:
                table = f"Not computed: {error}"
            lines += ["", f"### L = {length}, {decoder}", "", table]
    if lines:
        lines = ["", "## Latency at matched quality (MDM vs the autoregressive row)", "",
                 "The smallest swept steps from which the MDM is not significantly worse than the AR model (95% "
                 "interval of the difference reaching 0), with its latency per batch and the ratio to the AR "
                 "model's (which decodes with its KV cache)."] + lines  # fmt: skip
    return lines


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
        model_id: str | None = None,
    ) -> "ModelCard":
        """Build the card; its body links the plot that `save_pretrained` draws next to it.

        `model` is any denoiser the sweep ran (ours, a LLaDA/Dream conversion, a stock masked LM, an oracle): the card
        reports what its config has. The limitation section fits steps ~ c L^b per strategy from the swept table at
        `ser_target` (`fit_step_scaling`), unless `step_scaling` gives the fits of a search (`search_steps_needed`).
        The usage snippet loads `model_id`, the model's folder or repo id: when None, the folder `save_pretrained`
        writes the card into (`model.save_pretrained(folder, model_card=card)`), or the repo id it is pushed to;
        and it reruns one cell of the table with that cell's recorded generation arguments and seeds.

        Every argument is checked first: contradictory or impossible rows (`check_sweep_rows`), fits of strategies
        the table does not hold, names that are not strings.
        """
        rows = checked_rows(table)
        ser_target = check_target(ser_target)
        check_card_arguments(rows, step_scaling, model_name=model_name, task_name=task_name,
                             dataset_name=dataset_name, dataset_type=dataset_type, base_model=base_model,
                             license=license, model_id=model_id, training=training)  # fmt: skip
        try:
            aup = accuracy_under_parallelism(rows)
        except ValueError as error:  # rows without tokens per forward (older tables), or with 0
            aup = f"Not computed: {error}"
        eval_result = dict(task_type="text-generation", task_name=task_name, dataset_type=dataset_type,
                           dataset_name=dataset_name or task_name)  # fmt: skip
        eval_results = [
            row_eval_result(row, column, COLUMNS[column].metric_type, COLUMNS[column].metric_name, eval_result)
            for row in rows
            for column in ERROR_COLUMNS  # the error columns of `sweep_columns`, in their model-index order
            if is_present(row.get(column))
        ]
        eval_results += [
            row_eval_result(row, "tokens_per_forward", "tokens_per_forward", "Tokens per forward", eval_result)
            for row in rows
            if is_present(row.get("tokens_per_forward"))
        ]
        if not isinstance(aup, str):
            eval_results += [aup_eval_result(result, eval_result) for result in aup]
        data = ModelCardData(
            model_name=model_name,
            library_name="hf-mdm",
            license=license,
            tags=["hf-mdm", "masked-diffusion", "diffusion-language-model"],
            pipeline_tag="text-generation",
            base_model=base_model,
            eval_results=eval_results,
        )
        curves = sorted({(row["strategy"], block_axis(row)) for row in rows if row["strategy"] != AUTOREGRESSIVE},
                        key=repr)  # fmt: skip
        scalings = step_scaling if step_scaling is not None else [
            fit_step_scaling(rows, strategy, "ser", ser_target, block_size) for strategy, block_size in curves
        ]  # fmt: skip
        if model is not None and own_decoder(model) is not None:
            model = own_decoder(model).module  # the weights the card reports; the snippet comes from the rows
        body = cls._body(rows, model, model_name, training, scalings, model_id or MODEL_ID_PLACEHOLDER, aup)
        card = cls(f"---\n{data.to_yaml()}\n---\n\n{body}")
        card.sweep_rows = rows
        return card

    @staticmethod
    def _body(rows, model, model_name, training, scalings, model_id, aup) -> str:
        parts = [
            f"# {model_name}",
            "",
            "A masked diffusion language model, evaluated with [hf-mdm](https://github.com/hf-mdm/hf-mdm).",
        ]
        if model is not None:
            parts += ["", "## Model", "", *model_facts(model)]
        if training:
            parts += ["", "## Training", ""] + [f"- {key}: {value}" for key, value in training.items()]
        parts += [
            "",
            "## Step-vs-error table",
            "",
            "SER: sequence error rate with its Wilson 95% interval (the plot's error bars). TER gap: generative "
            "log-perplexity under the true language minus its entropy rate (0 is perfect), ± its standard error "
            "(the generated sequences are the independent units; the plot's bars are ± 1.96 SE). NFE: forward passes "
            "per sequence; tokens/forward: tokens decoded per forward. Block size: tokens per decoding block "
            "(bidirectional inside a block, blocks in order; 1 is autoregressive, the length one block), steps/block: "
            "steps / blocks.",
            "",
            markdown_table(rows),
        ]
        per_forward = score_per_forward_table(rows)
        if per_forward:
            parts += [
                "",
                "## Score | tokens per forward",
                "",
                "The cells above as the LLaDA 2.x cards report them: Score = 100 (1 - SER) with its Wilson 95% "
                "interval, and the tokens generated per forward pass ± its standard error (a ratio over the "
                "sequences, delta method); the autoregressive row generates one token per forward.",
                "",
                per_forward,
            ]
        parts += ["", "## Accuracy under parallelism (AUP)", "", AUP_DEFINITION, "",
                  aup if isinstance(aup, str) else aup_results_table(aup)]  # fmt: skip
        parts += ["", PLOT_LINK]
        parts += matched_quality_section(rows)
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
            *own_decoder_usage(rows, model, model_id),
        ]
        return "\n".join(parts) + "\n"

    def save_pretrained(self, save_directory: "str | Path") -> Path:
        """Write README.md and, with matplotlib, the plot the card links to, into `save_directory`.

        A snippet that does not know its model yet loads `save_directory` when it holds the model (a config.json),
        so the saved card runs where it is; elsewhere a warning says the snippet needs the model's folder."""
        save_directory = Path(save_directory)
        save_directory.mkdir(parents=True, exist_ok=True)
        content, rows = self.content, getattr(self, "sweep_rows", None)
        if snippet_model_id(content) == MODEL_ID_PLACEHOLDER:
            if (save_directory / "config.json").is_file():
                content = with_model_id(content, str(save_directory.resolve()))
            else:
                logger.warning(
                    f"The card's usage snippet loads {MODEL_ID_PLACEHOLDER!r}: {save_directory} holds no model. "
                    "Pass model_id= (the model's folder or repo id) to ModelCard.from_sweep, or save the card with "
                    "the model: model.save_pretrained(folder, model_card=card)."
                )
        if PLOT_LINK in content and not (rows is not None and plot_step_vs_error(rows, save_directory / PLOT_FILE)):
            content = content.replace(PLOT_LINK, NO_PLOT_NOTE)
        (save_directory / "README.md").write_text(content)
        return save_directory / "README.md"

    def for_repo(self, repo_id: str) -> "ModelCard":
        """A copy whose usage snippet loads `repo_id` (what the Hub shows)."""
        card = copy.deepcopy(self)
        card.text = with_model_id(card.text, repo_id)
        return card

    def push_with_model(self, model, repo_id: str, **push_to_hub_kwargs):
        """What `model.push_to_hub(repo_id, model_card=self, tokenizer=tokenizer, **kwargs)` does: the model's files,
        its tokenizer, this card and its plot in one upload (see `hub.push_to_hub`)."""
        return push_with_model_card(model, repo_id, self, **push_to_hub_kwargs)

    def push_with_trainer(self, trainer, **push_to_hub_kwargs):
        """`trainer.push_to_hub(**kwargs)` keeping this card as the repo's README.md (see `hub.push_to_hub`)."""
        return push_with_trainer(trainer, self, **push_to_hub_kwargs)

    def push_to_hub(
        self,
        repo_id: str,
        token: str | None = None,
        repo_type: str | None = None,
        commit_message: str | None = None,
        commit_description: str | None = None,
        revision: str | None = None,
        create_pr: bool | None = None,
        parent_commit: str | None = None,
    ):
        """`huggingface_hub.ModelCard.push_to_hub`, uploading the plot with README.md in the same commit (the parent
        uploads README.md alone, so the card's image link would dangle), with the snippet loading `repo_id`."""
        repo_type = repo_type or self.repo_type
        self.validate(repo_type=repo_type)
        with tempfile.TemporaryDirectory() as folder:
            self.for_repo(repo_id).save_pretrained(folder)
            return HfApi(token=token).upload_folder(
                repo_id=repo_id,
                folder_path=folder,
                repo_type=repo_type,
                commit_message=commit_message or "Update model card",
                commit_description=commit_description,
                revision=revision,
                create_pr=create_pr,
                parent_commit=parent_commit,
            )


def own_decoder_usage(rows: list[dict], model, model_id: str) -> list[str]:
    """The "How to use" lines: for rows a model's own decoder generated (their record names the `decoder`), that
    decoder's adapter snippet (`OwnDecoder.usage`); otherwise hf-mdm's `usage_section`."""
    record = generation_record(usage_cell(rows, model)) or {}
    name = record.get("generate", {}).get("decoder")
    if name is None:
        return usage_section(rows, model, model_id)
    OWN_DECODERS.check(name)
    return OWN_DECODERS[name].usage(record, model_id)


def check_card_arguments(rows: list[dict], step_scaling, training, **names) -> None:
    """The card's arguments besides its rows: names are strings, `training` a dict, and the fits of `step_scaling`
    are StepScaling of strategies the table holds (fits of another table would describe another model)."""
    for name, value in names.items():
        if value is not None and not isinstance(value, str):
            raise TypeError(f"{name} must be a string, got {type(value).__name__} {value!r}.")
    if training is not None and not isinstance(training, dict):
        raise TypeError(f"training must be a dict of facts (e.g. {{'steps': 1000}}), got {type(training).__name__}.")
    if step_scaling is None:
        return
    if isinstance(step_scaling, (str, bytes)) or not all(isinstance(fit, StepScaling) for fit in step_scaling):
        raise TypeError("step_scaling must be a list of StepScaling, as `search_steps_needed` returns.")
    strategies = {row["strategy"] for row in rows}
    for fit in step_scaling:
        check_known("step_scaling strategy", fit.strategy, strategies - {AUTOREGRESSIVE}, "the table's rows")
