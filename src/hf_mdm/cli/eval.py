"""`hf-mdm eval`: lm-eval generation tasks against the step budget (`evaluation.lm_eval_step_sweep`), one lm-eval
run per (task, strategy, steps).

Each run is a row (task, strategy, length = the task's max_gen_toks, steps, NFE per document, accuracy, ser = 1 -
accuracy with its Wilson 95% interval, latency per document) appended to `output_dir/eval.jsonl`, a resume file
like a sweep's (`--resume` keeps its finished rows, and refuses a file written for another model, task set or
setting), the table to `output_dir/eval.md` and the accuracy under parallelism per task to `output_dir/aup.md`
(`evaluation.accuracy_under_parallelism.aup_report`). `ModelCard.from_sweep` turns one task's rows into a
step-vs-accuracy card.

Every argument is checked first, the local ones (model folder, numbers, strategies, device, task folder) when they are
parsed, then the task names against lm-eval's index and each task's metric and generation length, all before the
model is loaded or a dataset fetched; a mistake is one line `hf-mdm eval: error: ...` and exit status 2.
"""

from dataclasses import dataclass, field
from pathlib import Path

from ..evaluation.accuracy_under_parallelism import aup_report
from ..evaluation.lm_eval_sweep import LMEvalTasks, lm_eval_step_sweep
from ..evaluation.sweep_table import markdown_table
from ..generation.strategies import STRATEGIES
from ..integrations.lm_eval_model_arguments import check_device
from ..model_source import check_model_source


@dataclass
class EvalArguments:
    model_name_or_path: str = field(metadata={"help": "Model folder: hf-mdm, LLaDA, Dream or a stock masked LM."})
    tasks: list[str] = field(metadata={"help": "lm-eval task names (generate_until tasks)."})
    output_dir: str = field(metadata={"help": "Folder for eval.jsonl (resumable), eval.md and aup.md."})
    steps: list[int] = field(default_factory=lambda: [16, 32, 64, 128], metadata={"help": "Step budgets."})
    strategies: list[str] = field(default_factory=lambda: ["confidence"], metadata={"help": "Reveal strategies."})
    block_length: int | None = field(default=None, metadata={"help": "Semi-autoregressive block size."})
    per_block: bool = field(
        default=False,
        metadata={"help": "Each --steps value is a per-block budget (steps_per_block), for block-diffusion models."},
    )
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


def run(args: EvalArguments):
    """The tasks and their settings are checked (`LMEvalTasks`) before the model is loaded; then
    `lm_eval_step_sweep` writes output_dir/eval.jsonl, its table goes to eval.md and its AUP to aup.md."""
    from ..integrations.lm_eval_harness import load_masked_lm

    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)  # an unwritable place fails here, before any model is loaded
    tasks = LMEvalTasks.load(args.tasks, args.metric, args.num_fewshot, args.include_path)
    tasks.check_steps(args.steps, args.block_length, args.per_block)
    model, tokenizer = load_masked_lm(args.model_name_or_path)
    path = output_dir / "eval.jsonl"
    table = lm_eval_step_sweep(
        model, tokenizer, tasks, args.steps, args.strategies, block_length=args.block_length, limit=args.limit,
        batch_size=args.batch_size, device=args.device, seed=args.seed, output_path=path, resume=args.resume,
        per_block=args.per_block,
    )  # fmt: skip
    rows = list(table)
    (output_dir / "eval.md").write_text(markdown_table(rows) + "\n")
    aup = aup_report(rows)
    (output_dir / "aup.md").write_text(aup + "\n")
    print(markdown_table(rows))
    print(f"\nAccuracy under parallelism (AUP)\n\n{aup}")
    print(f"\nWrote {path}, {output_dir / 'eval.md'} and {output_dir / 'aup.md'}")
