"""`hf-mdm eval`: lm-eval generation tasks against the step budget, one lm-eval run per (task, strategy, steps).

Each run is a row (task, strategy, length = the task's max_gen_toks, steps, NFE per document, accuracy, ser = 1 -
accuracy with its Wilson 95% interval, latency per document) appended to `output_dir/eval.jsonl`, a resume file
like a sweep's (`--resume` keeps its finished rows, and refuses a file written for another model, task set or
setting). `ModelCard.from_sweep` turns one task's rows into a step-vs-accuracy card.

Every argument is checked first, the local ones (model folder, numbers, strategies, device, task folder) when they are
parsed, then the task names against lm-eval's index and each task's metric and generation length, all before the
model is loaded or a dataset fetched; a mistake is one line `hf-mdm eval: error: ...` and exit status 2.
"""

import difflib
import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..evaluation.sweep_resume import append_rows, open_resume_file, sweep_identity
from ..evaluation.sweep_table import markdown_table
from ..generation.configuration import DiffusionGenerationConfig
from ..generation.strategies import STRATEGIES
from ..integrations.lm_eval_model_arguments import check_device
from ..metrics.sequence_error_rate.sequence_error_rate import wilson_interval
from ..model_source import check_model_source


@dataclass
class EvalArguments:
    model_name_or_path: str = field(metadata={"help": "Model folder: hf-mdm, LLaDA, Dream or a stock masked LM."})
    tasks: list[str] = field(metadata={"help": "lm-eval task names (generate_until tasks)."})
    output_dir: str = field(metadata={"help": "Folder for eval.jsonl (resumable) and eval.md."})
    steps: list[int] = field(default_factory=lambda: [16, 32, 64, 128], metadata={"help": "Step budgets."})
    strategies: list[str] = field(default_factory=lambda: ["confidence"], metadata={"help": "Reveal strategies."})
    block_length: int | None = field(default=None, metadata={"help": "Semi-autoregressive block size."})
    metric: str = field(default="exact_match", metadata={"help": "The task metric read as accuracy (in [0, 1])."})
    include_path: str | None = field(default=None, metadata={"help": "Folder of extra task YAML files."})
    limit: int | None = field(default=None, metadata={"help": "Documents per task (default all)."})
    num_fewshot: int | None = None
    batch_size: int = 8
    device: str | None = None
    seed: int = 0
    resume: bool = field(default=False, metadata={"help": "Keep the rows already in output_dir/eval.jsonl."})

    def __post_init__(self):
        check_local_arguments(self)


ARGUMENTS = (EvalArguments,)


def _positive(name: str, value, minimum: int = 1) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < minimum):
        raise ValueError(f"--{name} must be an integer >= {minimum}, got {value!r}.")


def _distinct(name: str, values: list) -> None:
    if not values:
        raise ValueError(f"--{name} needs at least one value.")
    repeated = sorted({value for value in values if values.count(value) > 1}, key=str)
    if repeated:
        raise ValueError(f"--{name} lists {repeated} more than once; each value is one run, give it once.")


def check_local_arguments(args: EvalArguments) -> None:
    """Everything checkable without lm-eval's task index: the model folder, the numbers, the strategies, the device,
    the task folder and the output folder."""
    check_model_source(args.model_name_or_path, "--model_name_or_path", required_file="config.json")
    _distinct("tasks", args.tasks)
    _distinct("steps", args.steps)
    _distinct("strategies", args.strategies)
    for steps in args.steps:
        _positive("steps", steps)
    for strategy in args.strategies:
        STRATEGIES.check(strategy)
    for name, minimum in (("block_length", 1), ("limit", 1), ("num_fewshot", 0), ("batch_size", 1), ("seed", 0)):
        _positive(name, getattr(args, name), minimum)
    check_device(args.device, "--device")
    if not args.metric:
        raise ValueError("--metric must name one of the tasks' metrics, e.g. exact_match.")
    if args.include_path is not None and not Path(args.include_path).is_dir():
        raise FileNotFoundError(f"No such folder: {args.include_path} (--include_path, a folder of task YAML files).")
    if Path(args.output_dir).is_file():
        raise FileExistsError(f"--output_dir {args.output_dir} is a file; give a folder for eval.jsonl and eval.md.")


def check_task_names(names: list[str], task_manager) -> None:
    """Refuse names that lm-eval's task index (with --include_path) does not know, suggesting the closest ones."""
    unknown = [name for name in names if not task_manager.match_tasks([name]) and not Path(name).is_file()]
    if unknown:
        hints = [difflib.get_close_matches(name, task_manager.all_tasks, n=3) for name in unknown]
        suggestions = sorted({match for matches in hints for match in matches})
        raise ValueError(
            f"Unknown lm-eval tasks {unknown}"
            + (f"; did you mean {suggestions}?" if suggestions else "")
            + " `lm-eval ls tasks` lists them; local YAML tasks need --include_path."
        )


def check_task_settings(args: EvalArguments, tasks: dict) -> None:
    """Each task's metric list holds --metric, and the step budgets fit its generation length."""
    for name, task in tasks.items():
        metrics = sorted(
            {entry["metric"] for entry in task.config.metric_list or [] if isinstance(entry["metric"], str)}
        )
        if metrics and args.metric not in metrics:
            raise ValueError(f"Task {name} has no metric {args.metric!r}; pass --metric with one of {metrics}.")
        length = int(task.config.generation_kwargs.get("max_gen_toks", 256))
        try:
            for steps in args.steps:
                config = DiffusionGenerationConfig(steps=steps, block_length=args.block_length, max_new_tokens=length)
                config.validate()
        except ValueError as error:
            raise ValueError(f"Task {name} generates max_gen_toks={length} tokens: {error}") from None


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


def accuracy_of(results: dict, task: str, metric: str) -> float:
    values = {key: value for key, value in results["results"][task].items() if key.split(",")[0] == metric}
    if not values:
        available = sorted({key.split(",")[0] for key in results["results"][task]} - {"alias"})
        raise ValueError(f"Task {task} reports no metric {metric!r}; pass --metric with one of {available}.")
    key = sorted(values)[0]
    accuracy = float(values[key])
    if not 0 <= accuracy <= 1:
        raise ValueError(f"{task}'s {key} is {accuracy}, not a rate in [0, 1]; pass an accuracy-like --metric.")
    return accuracy


def run(args: EvalArguments):
    import lm_eval
    from lm_eval.tasks import TaskManager

    from ..integrations.lm_eval_harness import MaskedDiffusionLM, load_masked_lm

    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)  # an unwritable place fails here, before any model is loaded
    task_manager = TaskManager(include_path=args.include_path)
    check_task_names(args.tasks, task_manager)
    tasks = generation_tasks(args.tasks, task_manager)
    check_task_settings(args, tasks)
    model, tokenizer = load_masked_lm(args.model_name_or_path)
    settings = {
        "tasks": sorted(tasks),
        "task_files_sha256": task_files_sha256(args.include_path),
        "metric": args.metric,
        "num_fewshot": args.num_fewshot,
        "block_length": args.block_length,
    }
    identity = sweep_identity(model, settings, args.seed, args.limit or 0, settings, None)
    path = output_dir / "eval.jsonl"
    rows = open_resume_file(path, identity, args.resume, write=True)
    done = {(row["task"], row["strategy"], row["steps"]) for row in rows}
    for task_name, task in tasks.items():
        length = int(task.config.generation_kwargs.get("max_gen_toks", 256))
        for strategy in args.strategies:
            for steps in args.steps:
                if (task_name, strategy, steps) in done:
                    continue
                lm = MaskedDiffusionLM(
                    pretrained=model, tokenizer=tokenizer, steps=steps, strategy=strategy,
                    block_length=args.block_length, batch_size=args.batch_size, device=args.device, seed=args.seed,
                )  # fmt: skip
                start = time.perf_counter()
                results = lm_eval.simple_evaluate(
                    model=lm, tasks=[task_name], task_manager=task_manager, limit=args.limit,
                    num_fewshot=args.num_fewshot, random_seed=args.seed, numpy_random_seed=args.seed,
                    torch_random_seed=args.seed, fewshot_random_seed=args.seed,
                )  # fmt: skip
                elapsed = time.perf_counter() - start
                documents = int(results["n-samples"][task_name]["effective"])
                accuracy = accuracy_of(results, task_name, args.metric)
                errors = round((1 - accuracy) * documents)
                low, high = wilson_interval(errors, documents)
                row = {
                    "task": task_name, "strategy": strategy, "length": length, "steps": steps,
                    "nfe": lm.nfe / max(lm.generated_rows, 1), "num_samples": documents, "accuracy": accuracy,
                    "ser": errors / documents, "ser_low": low, "ser_high": high, "latency_s": elapsed / documents,
                }  # fmt: skip
                append_rows(path, identity, [row])
                rows.append(row)
    (output_dir / "eval.md").write_text(markdown_table(rows) + "\n")
    print(markdown_table(rows))
    print(f"\nWrote {path} and {output_dir / 'eval.md'}")
