"""lm_eval_step_sweep: lm-eval generation tasks against the step budget, one lm-eval run per (task, strategy, steps).

Each run is a row (`sweep_columns`: task, strategy, length = the task's max_gen_toks, steps, NFE per document,
num_samples = documents, accuracy, ser = 1 - accuracy with its Wilson 95% interval, latency per document). With
`output_path` each finished row is appended at once to a resume file like a sweep's (`sweep_resume`), whose identity
is the model's weights, the tasks (`LMEvalTasks`: names, local task files, metric, few-shot count), the generation
arguments (`block_length`, and `per_block` when the budgets are per block, as a block-diffusion model needs), the seed
and the document limit: `resume=True` keeps its finished rows and refuses a file
written for another model, task set or setting. `ModelCard.from_sweep` turns one task's rows into a card.

`LMEvalTasks.load` checks the task names against lm-eval's index and each task's metric and output type, and
`check_steps` the step budgets against each task's generation length, all before a model is needed (`hf-mdm eval`
loads its model only after them).
"""

import difflib
import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

from datasets import Dataset

from ..generation.configuration import DiffusionGenerationConfig
from ..metrics.sequence_error_rate.sequence_error_rate import wilson_interval
from .argument_checks import check_int, check_names, check_positive_int, check_positive_ints
from .sweep import model_block_size
from .sweep_resume import append_rows, open_resume_file, sweep_identity


def check_task_names(names: list[str], task_manager) -> None:
    """Refuse names that lm-eval's task index (with include_path) does not know, suggesting the closest ones."""
    unknown = [name for name in names if not task_manager.match_tasks([name]) and not Path(name).is_file()]
    if unknown:
        hints = [difflib.get_close_matches(name, task_manager.all_tasks, n=3) for name in unknown]
        suggestions = sorted({match for matches in hints for match in matches})
        raise ValueError(
            f"Unknown lm-eval tasks {unknown}"
            + (f"; did you mean {suggestions}?" if suggestions else "")
            + " `lm-eval ls tasks` lists them; local YAML tasks need --include_path."
        )


def generation_tasks(names: list[str], task_manager) -> dict:
    """name -> Task for every task in `names` (groups expanded), refusing tasks that steps cannot change."""

    def leaves(tree):
        for name, value in tree.items():
            if isinstance(value, dict):
                yield from leaves(value)
            else:
                yield getattr(name, "group_name", name), value

    if hasattr(task_manager, "load"):  # lm-eval >= 0.4.12, where load_task_or_group is deprecated
        tasks = task_manager.load(names)["tasks"]
    else:
        tasks = dict(leaves(task_manager.load_task_or_group(names)))
    scored = sorted(name for name, task in tasks.items() if task.OUTPUT_TYPE != "generate_until")
    if scored:
        raise ValueError(
            f"Tasks {scored} are scored by log-likelihood, which no step count changes; run them once with "
            "`python -m hf_mdm.integrations.lm_eval_harness --model hf-mdm ...` instead of sweeping steps."
        )
    return tasks


def task_files_sha256(include_path: str | None) -> str | None:
    """SHA-256 of the files under `include_path`, so that a resumed run refuses edited local tasks."""
    if include_path is None:
        return None
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(include_path).rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(include_path)).encode() + path.read_bytes())
    return digest.hexdigest()


def generation_length(task) -> int:
    """The tokens a task generates per document: its max_gen_toks (lm-eval's default 256)."""
    return int(task.config.generation_kwargs.get("max_gen_toks", 256))


@dataclass
class LMEvalTasks:
    """lm-eval generation tasks with the metric read as accuracy: the task of an lm-eval step sweep. Its fields are
    what makes two sweeps' tasks the same (a resume file's identity fingerprints them); `tasks` (name -> lm-eval
    Task) and `task_manager`, set by `load`, are what runs them."""

    names: list[str]
    task_files_sha256: str | None
    metric: str
    num_fewshot: int | None

    @property
    def name(self) -> str:
        return "lm-eval: " + ", ".join(self.names)

    @classmethod
    def load(cls, names: list[str], metric: str = "exact_match", num_fewshot: int | None = None,
             include_path: str | None = None) -> "LMEvalTasks":  # fmt: skip
        """Look the names up in lm-eval's index (with the YAML tasks under `include_path`), expand groups, and
        refuse unknown names, tasks scored by log-likelihood and tasks without `metric`."""
        from lm_eval.tasks import TaskManager

        names = check_names("tasks", names, '["gsm8k"]')
        if include_path is not None and not Path(include_path).is_dir():
            raise FileNotFoundError(f"No such folder: {include_path} (--include_path, a folder of task YAML files).")
        task_manager = TaskManager(include_path=include_path)
        check_task_names(names, task_manager)
        tasks = generation_tasks(names, task_manager)
        for name, task in tasks.items():
            metrics = sorted(
                {entry["metric"] for entry in task.config.metric_list or [] if isinstance(entry["metric"], str)}
            )
            if metrics and metric not in metrics:
                raise ValueError(f"Task {name} has no metric {metric!r}; pass --metric with one of {metrics}.")
        loaded = cls(sorted(tasks), task_files_sha256(include_path), metric, num_fewshot)
        loaded.tasks, loaded.task_manager = tasks, task_manager  # not fields: not part of the identity
        return loaded

    def check_steps(self, steps: list[int], block_length: int | None, per_block: bool = False) -> None:
        """Each step budget (with `block_length`; per block with `per_block`) fits each task's generation length."""
        budget = "steps_per_block" if per_block else "steps"
        for name, task in self.tasks.items():
            length = generation_length(task)
            try:
                for value in steps:
                    DiffusionGenerationConfig(
                        **{budget: value}, block_length=block_length, max_new_tokens=length
                    ).validate()
            except ValueError as error:
                raise ValueError(f"Task {name} generates max_gen_toks={length} tokens: {error}") from None


def accuracy_of(results: dict, task: str, metric: str) -> float:
    """The task's `metric` in lm-eval's results, checked to be a rate."""
    values = {key: value for key, value in results["results"][task].items() if key.split(",")[0] == metric}
    if not values:
        available = sorted({key.split(",")[0] for key in results["results"][task]} - {"alias"})
        raise ValueError(f"Task {task} reports no metric {metric!r}; pass --metric with one of {available}.")
    key = sorted(values)[0]
    accuracy = float(values[key])
    if not 0 <= accuracy <= 1:
        raise ValueError(f"{task}'s {key} is {accuracy}, not a rate in [0, 1]; pass an accuracy-like --metric.")
    return accuracy


def lm_eval_row(task_name, strategy, length, steps, lm, results, metric, elapsed, steps_per_block=None) -> dict:
    """One run's row: accuracy and SER = 1 - accuracy over the documents, with its Wilson interval. A per-block
    budget is recorded as `steps_per_block`, with `steps` its nominal total over the generated region's blocks."""
    documents = int(results["n-samples"][task_name]["effective"])
    accuracy = accuracy_of(results, task_name, metric)
    errors = round((1 - accuracy) * documents)
    low, high = wilson_interval(errors, documents)
    row = {
        "task": task_name, "strategy": strategy, "length": length, "steps": steps,
        "nfe": lm.nfe / max(lm.generated_rows, 1),
        "tokens_per_forward": lm.decoded_tokens / lm.nfe if lm.nfe else None,
        "num_samples": documents, "accuracy": accuracy,
        "ser": errors / documents, "ser_low": low, "ser_high": high, "latency_s": elapsed / documents,
    }  # fmt: skip
    if steps_per_block is not None:
        row["steps_per_block"] = steps_per_block
    return row


def diffusion_lm_class():
    """lm-eval's model type "hf-mdm", from lm-eval's registry: `import hf_mdm.integrations.lm_eval_harness`
    registers it (evaluation/ sits below integrations/ and does not import it)."""
    from lm_eval.api.registry import get_model

    try:
        return get_model("hf-mdm")
    except ValueError:
        raise ValueError(
            "lm-eval has no model type 'hf-mdm': `import hf_mdm.integrations.lm_eval_harness` first (it registers it, "
            "and its load_masked_lm loads the model)."
        ) from None


def _distinct(name: str, values: list) -> None:
    repeated = sorted({value for value in values if values.count(value) > 1}, key=str)
    if repeated:
        raise ValueError(f"{name} lists {repeated} more than once; each value is one run, give it once.")


def lm_eval_step_sweep(
    model,
    tokenizer,
    tasks: LMEvalTasks,
    steps: list[int],
    strategies: list[str] = ("confidence",),
    block_length: int | None = None,
    limit: int | None = None,
    batch_size: int = 8,
    device: str | None = None,
    seed: int = 0,
    output_path: "str | Path | None" = None,
    resume: bool = False,
    per_block: bool = False,
) -> Dataset:
    """Run every (task, strategy, steps) of `tasks` through lm-eval with its model type "hf-mdm" (`MaskedDiffusionLM`
    of `hf_mdm.integrations.lm_eval_harness`, which registers it); return the rows as a
    `datasets.Dataset` (resumed rows first, in the file's order).

    Args:
        model, tokenizer: a model with the diffusion `generate()` and its tokenizer (`load_masked_lm`).
        tasks: `LMEvalTasks.load(names, metric, num_fewshot, include_path)`.
        steps, strategies, block_length: the step budgets and reveal strategies, each budget one run per task.
        limit: documents per task (None: all); batch_size, device: `MaskedDiffusionLM`'s; seed: every lm-eval seed.
        output_path: JSON-lines file receiving each finished row; `resume=True` keeps the rows already in it when it
            was written by the same sweep, and refuses it otherwise.
        per_block: each value of `steps` is a per-block budget (`steps_per_block`); a row records it as
            `steps_per_block`, and as `steps` the nominal total ceil(length / block) x budget (a prompt whose tail
            shares the first block can add one block; `nfe` is what the run spent). A block-diffusion model needs it:
            lm-eval batches mix prompt lengths, whose rows hold different numbers of its blocks, so one total
            budget would be split differently per row, and is refused before the first run.

    Every argument is checked before the first run (a ValueError that names it).
    """
    import lm_eval

    if not isinstance(tasks, LMEvalTasks):
        raise TypeError(f"tasks must be LMEvalTasks.load([...]), got {type(tasks).__name__}.")
    steps, strategies = check_positive_ints("steps", steps), check_names("strategies", strategies)
    _distinct("steps", steps)
    _distinct("strategies", strategies)
    for strategy in strategies:
        DiffusionGenerationConfig(strategy=strategy, block_length=block_length).validate()
    if not isinstance(per_block, bool):
        raise TypeError(f"per_block must be True or False, got {per_block!r}.")
    block_size = model_block_size(model)
    if block_size is not None and not per_block:
        raise ValueError(
            f"The model is block-diffusion (block_size={block_size}): lm-eval batches mix prompt lengths, whose rows "
            "hold different numbers of its blocks, so a total step budget is refused by generate(). Give per-block "
            "budgets: per_block=True (hf-mdm eval --per_block)."
        )
    tasks.check_steps(steps, block_length, per_block)
    limit = None if limit is None else check_positive_int("limit", limit)
    batch_size, seed = check_positive_int("batch_size", batch_size), check_int("seed", seed)
    diffusion_lm = diffusion_lm_class()
    rows, identity = [], None
    if output_path is not None:
        settings = {"block_length": block_length, **({"per_block": True} if per_block else {})}
        identity = sweep_identity(model, tasks, seed, limit or 0, settings, None)
        rows = open_resume_file(output_path, identity, resume, write=True)
    budget_column = "steps_per_block" if per_block else "steps"
    done = {(row["task"], row["strategy"], row[budget_column]) for row in rows}
    for task_name, task in tasks.tasks.items():
        for strategy in strategies:
            for budget in steps:
                if (task_name, strategy, budget) in done:
                    continue
                length = generation_length(task)
                budget_argument = {"steps_per_block" if per_block else "steps": budget}
                lm = diffusion_lm(
                    pretrained=model, tokenizer=tokenizer, strategy=strategy, block_length=block_length,
                    batch_size=batch_size, device=device, seed=seed, **budget_argument,
                )  # fmt: skip
                start = time.perf_counter()
                results = lm_eval.simple_evaluate(
                    model=lm, tasks=[task_name], task_manager=tasks.task_manager, limit=limit,
                    num_fewshot=tasks.num_fewshot, random_seed=seed, numpy_random_seed=seed, torch_random_seed=seed,
                    fewshot_random_seed=seed,
                )  # fmt: skip
                elapsed = time.perf_counter() - start
                blocks = -(-length // (block_size or block_length or length)) if per_block else 1
                row = lm_eval_row(task_name, strategy, length, budget * blocks, lm, results, tasks.metric, elapsed,
                                  steps_per_block=budget if per_block else None)  # fmt: skip
                if output_path is not None:
                    append_rows(output_path, identity, [row])
                rows.append(row)
    return Dataset.from_list(rows)
