"""`hf-mdm demo`: the whole path on an embedded default, no download.

Builds a sparse bigram language, trains a small MDM and an autoregressive baseline of the same size on it, sweeps
steps for two lengths, prints the step-vs-error table, and writes a model folder with its card and plot.
"""

from dataclasses import dataclass, field
from pathlib import Path

from datasets import concatenate_datasets
from transformers import TrainingArguments

from ..configuration_mdm import MDMConfig
from ..evaluation import LanguageTask, fit_step_scaling, markdown_table, sweep_steps, train_autoregressive_baseline
from ..evaluation.train_twins import seeded_mdm, train_mdm, twin_mdm_config
from ..hub import ModelCard
from ..languages import NGramLanguage


@dataclass
class DemoArguments:
    output_dir: str = field(default="outputs/demo", metadata={"help": "Where the model folder and sweep go."})
    vocab_size: int = field(default=8, metadata={"help": "Symbols of the bigram language."})
    support: int = field(default=4, metadata={"help": "Allowed successors per symbol (the rest are invalid)."})
    lengths: list[int] = field(default_factory=lambda: [16, 32], metadata={"help": "The two generated lengths."})
    steps: list[int] = field(default_factory=lambda: [2, 4, 8, 16, 32], metadata={"help": "Steps to sweep."})
    strategies: list[str] = field(default_factory=lambda: ["random", "confidence"])
    train_examples: int = field(default=8000, metadata={"help": "Training sequences per length."})
    train_steps: int = field(default=800, metadata={"help": "Optimizer steps of each model."})
    hidden_size: int = 64
    num_hidden_layers: int = 3
    num_samples: int = field(default=200, metadata={"help": "Sequences per sweep cell."})
    seed: int = 0
    progress: bool = field(default=True, metadata={"help": "Show progress bars."})


ARGUMENTS = (DemoArguments,)


def demo_language(args: DemoArguments) -> NGramLanguage:
    """The demo's bigram language (also what `benchmarks/thread_counts.py` trains on)."""
    return NGramLanguage(args.vocab_size, n=2, support=args.support, seed=args.seed)


def demo_config(args: DemoArguments, tokenizer) -> MDMConfig:
    """The demo MDM's configuration (also what `benchmarks/thread_counts.py` times)."""
    return twin_mdm_config(tokenizer, args.hidden_size, args.num_hidden_layers, 4, max(args.lengths))


def training_arguments(args: DemoArguments, output_dir: Path) -> TrainingArguments:
    return TrainingArguments(
        output_dir=str(output_dir),
        max_steps=args.train_steps,
        per_device_train_batch_size=64,
        learning_rate=3e-3,
        warmup_steps=args.train_steps // 20,
        lr_scheduler_type="cosine",
        logging_steps=max(args.train_steps // 10, 1),
        save_strategy="no",
        report_to=[],
        use_cpu=True,
        seed=args.seed,
        disable_tqdm=not args.progress,
    )


def run(args: DemoArguments):
    if len(args.lengths) != 2:
        raise ValueError(f"The demo compares exactly two lengths, got --lengths {args.lengths}.")
    output_dir = Path(args.output_dir)
    language = demo_language(args)
    tokenizer = language.tokenizer()
    entropy = language.entropy_rate().value
    print(f"Language: bigram over {args.vocab_size} symbols, {args.support} allowed successors each; entropy rate "
          f"{entropy:.3f} nats/token. A sequence is wrong when it uses a forbidden transition.")  # fmt: skip
    data = concatenate_datasets(
        [language.dataset(args.train_examples, length, seed=args.seed + length) for length in args.lengths]
    ).shuffle(seed=args.seed)

    model = seeded_mdm(demo_config(args, tokenizer), args.seed)
    print(f"\n[1/3] Training the MDM ({model.num_parameters() / 1e6:.2f}M parameters) with the stock Trainer")
    trainer = train_mdm(model, data, tokenizer, training_arguments(args, output_dir / "mdm"))
    nelbo = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry][-1]
    model.eval()

    print("\n[2/3] Training the autoregressive baseline of the same size")
    autoregressive = train_autoregressive_baseline(
        model, data, tokenizer, args=training_arguments(args, output_dir / "autoregressive")
    )
    autoregressive.eval()

    print("\n[3/3] Sweeping steps")
    table = sweep_steps(model, tokenizer, LanguageTask(language, name="bigram language"), steps=args.steps,
                        strategies=args.strategies, lengths=args.lengths, num_samples=args.num_samples,
                        seed=args.seed, batch_size=100, autoregressive_model=autoregressive,
                        progress=args.progress)  # fmt: skip
    rows = list(table)
    print("\n" + markdown_table(rows) + "\n")
    for strategy in args.strategies:
        print(fit_step_scaling(rows, strategy, "ser", 0.1).describe())

    model_dir = output_dir / "model"
    card = ModelCard.from_sweep(
        rows, model=model, model_name="hf-mdm demo: bigram MDM", task_name="bigram language",
        training={"data": f"{args.train_examples} sequences per length {args.lengths}", "steps": args.train_steps,
                  "last logged training NELBO (nats/token)": f"{nelbo:.3f}",
                  "entropy rate (nats/token)": f"{entropy:.3f}"},
    )  # fmt: skip
    model.save_pretrained(model_dir, model_card=card)
    tokenizer.save_pretrained(model_dir)
    table.to_json(output_dir / "sweep.json")
    print(f"\nWrote the model, tokenizer, card (README.md) and plot to {model_dir}")
