"""`hf-mdm eval`: lm-eval generation tasks against the step budget, one lm-eval run per (task, strategy, steps).

Each run is a row (task, strategy, length = the task's max_gen_toks, steps, NFE per document, accuracy, ser = 1 -
accuracy with its Wilson 95% interval, latency per document) appended to `output_dir/eval.jsonl`, a resume file
like a sweep's (`--resume` keeps its finished rows, and refuses a file written for another model, task set or
setting). `ModelCard.from_sweep` turns one task's rows into a step-vs-accuracy card.
"""

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..evaluation.sweep_resume import append_rows, open_resume_file, sweep_identity
from ..evaluation.sweep_table import markdown_table
from ..metrics.sequence_error_rate.sequence_error_rate import wilson_interval


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


ARGUMENTS = (EvalArguments,)


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
    tasks = generation_tasks(args.tasks, task_manager)
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
