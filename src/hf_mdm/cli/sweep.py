"""`hf-mdm sweep`: the step-vs-error table of a model on a formal language or a prompt/answer dataset."""

import re
from dataclasses import dataclass, field
from pathlib import Path

from accelerate import PartialState
from datasets import load_dataset
from transformers import AutoModelForCausalLM, AutoTokenizer

from ..evaluation import LanguageTask, PromptTask, markdown_table, sweep_steps
from ..evaluation.accuracy_under_parallelism import aup_report
from ..evaluation.exact_autoregressive import ExactAutoregressiveLM
from ..evaluation.sweep_table import ONE_BLOCK
from ..generation import enable_diffusion_generation
from ..hub.step_vs_error_plot import plot_step_vs_error
from ..model_loading import diffusion_model_class
from ..own_decoders import load_own_decoder_model, own_decoder
from .language_arguments import LanguageArguments, language_choices


NORMALIZERS = {
    "strip": lambda text: text.strip(),
    "last_number": lambda text: (re.findall(r"-?\d+(?:\.\d+)?", text) or [""])[-1],
}


def block_size_argument(help: str, *aliases: str):
    """A `--block_size` list field (positive integers or "L", parsed by `block_sizes`) with its other spellings."""
    return field(default=None, metadata={"help": help, "aliases": list(aliases)})


@dataclass
class SweepArguments:
    output_dir: str = field(metadata={"help": "Folder for sweep.jsonl, sweep.json, sweep.md, aup.md and the plot."})
    model_name_or_path: str | None = field(default=None, metadata={"help": "The MDM folder to evaluate."})
    oracle: bool = field(default=False, metadata={"help": "Evaluate the language's exact denoiser instead."})
    autoregressive_model: str | None = field(default=None, metadata={"help": "Causal LM folder for the AR row."})
    dataset: str | None = field(default=None, metadata={"help": "JSON/JSONL file with prompt and answer columns."})
    prompt_column: str = "prompt"
    answer_column: str = "answer"
    normalizer: str = field(default="strip", metadata={"help": f"Answer normaliser: {sorted(NORMALIZERS)}."})
    steps: list[int] = field(default_factory=lambda: [2, 4, 8, 16, 32], metadata={"help": "Step counts."})
    strategies: list[str] | None = field(
        default=None,
        metadata={"help": "Strategies. Default: random confidence; a model with its own decoder: its own rule."},
    )
    lengths: list[int] = field(default_factory=lambda: [16, 32], metadata={"help": "Generated lengths."})
    block_size: list[str] | None = block_size_argument(
        "Decoding block sizes, an axis of the sweep (L: one block over the whole length; a block-causal model: its "
        "own size only). Default: one block, or the model's block size.", "--block_length", "--block-length",
    )  # fmt: skip
    oracle_autoregressive: bool = field(
        default=False, metadata={"help": "With --oracle: the AR row of the language's exact next-token model."}
    )
    num_samples: int = 128
    batch_size: int = 64
    seed: int = 0
    resume: bool = field(default=False, metadata={"help": "Keep the cells already in output_dir/sweep.jsonl."})


ARGUMENTS = (SweepArguments, LanguageArguments)


def load_task(args: SweepArguments, language_args: LanguageArguments):
    if (args.dataset is None) == (language_args.language is None):
        raise ValueError(
            f"Give exactly one task: --language ({language_choices()}) or --dataset (prompt/answer JSON)."
        )
    if language_args.language is not None:
        language = language_args.build()
        return LanguageTask(language, name=language_args.describe())
    if args.normalizer not in NORMALIZERS:
        raise ValueError(f"--normalizer must be one of {sorted(NORMALIZERS)}, got {args.normalizer!r}.")
    if not Path(args.dataset).exists():
        raise FileNotFoundError(f"--dataset {args.dataset} does not exist.")
    dataset = load_dataset("json", data_files=args.dataset, split="train")
    return PromptTask(
        dataset, args.prompt_column, args.answer_column, NORMALIZERS[args.normalizer], Path(args.dataset).stem
    )


def load_model(args: SweepArguments, task):
    if args.oracle == (args.model_name_or_path is not None):
        raise ValueError("Give exactly one of --model_name_or_path or --oracle (a formal language's exact denoiser).")
    if args.oracle:
        if not isinstance(task, LanguageTask):
            raise ValueError("--oracle needs a formal language task (--language).")
        tokenizer = task.language.tokenizer()
        return enable_diffusion_generation(task.language.oracle_model(), tokenizer), tokenizer
    model = load_own_decoder_model(args.model_name_or_path)  # DiffusionGemma: decoded by its own generate()
    if model is None:
        model = diffusion_model_class(args.model_name_or_path).from_pretrained(args.model_name_or_path).eval()
    tokenizer = task.language.tokenizer() if isinstance(task, LanguageTask) else None
    return model, tokenizer or AutoTokenizer.from_pretrained(args.model_name_or_path)


def block_sizes(values: list[str] | None) -> list | None:
    """`--block_size` as `sweep_steps`' block_sizes: positive integers, or "L" (one block); None when not given."""
    if values is None:
        return None
    bad = [value for value in values if value != ONE_BLOCK and not (value.isdigit() and int(value) > 0)]
    if bad:
        raise ValueError(f"--block_size takes positive integers or {ONE_BLOCK} (one block), got {bad}.")
    return [value if value == ONE_BLOCK else int(value) for value in values]


def load_autoregressive(args: SweepArguments, task):
    """The AR row's model: --autoregressive_model, or with --oracle_autoregressive the language's exact one."""
    exact = args.oracle and args.autoregressive_model is None and isinstance(task, LanguageTask)
    if args.oracle_autoregressive and not exact:
        raise ValueError(
            "--oracle_autoregressive goes with --oracle and --language, instead of --autoregressive_model."
        )
    if args.oracle_autoregressive:
        return ExactAutoregressiveLM(task.language)
    if args.autoregressive_model is not None:
        return AutoModelForCausalLM.from_pretrained(args.autoregressive_model).eval()
    return None


def run(args: SweepArguments, language_args: LanguageArguments):
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)  # an unwritable place fails here, before any model is loaded
    sizes = block_sizes(args.block_size)
    task = load_task(args, language_args)
    autoregressive = load_autoregressive(args, task)
    model, tokenizer = load_model(args, task)
    strategies = args.strategies or (None if own_decoder(model) else ["random", "confidence"])
    table = sweep_steps(
        model, tokenizer, task, steps=args.steps, strategies=strategies, lengths=args.lengths,
        num_samples=args.num_samples, seed=args.seed, batch_size=args.batch_size,
        autoregressive_model=autoregressive, output_path=output_dir / "sweep.jsonl",
        resume=args.resume, block_sizes=sizes,
    )  # fmt: skip
    if not PartialState().is_main_process:
        return
    table.to_json(output_dir / "sweep.json")
    rows = list(table)
    (output_dir / "sweep.md").write_text(markdown_table(rows) + "\n")
    aup = aup_report(rows)
    (output_dir / "aup.md").write_text(aup + "\n")
    plotted = plot_step_vs_error(rows, output_dir / "step_vs_error.png")
    print(markdown_table(rows))
    print(f"\nAccuracy under parallelism (AUP)\n\n{aup}")
    written = "sweep.jsonl, sweep.json, sweep.md, aup.md" + (" and step_vs_error.png" if plotted else "")
    print(f"\nWrote {written} in {output_dir}")
