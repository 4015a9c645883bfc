"""Reproduce the step-vs-error tables of Feng et al. (2025) at full size: n-gram and HMM languages, lengths up to
1,024, several strategies, the exact oracle (no training error) and, optionally, trained MDM and AR models.

Sizes and run times on 2 CPU cores (measured for the oracle; trained models add their training time):
    --preset small    lengths 64, 256          minutes
    --preset full     lengths 64, 256, 1024    about an hour for the oracle sweep, hours with --train

    python examples/reproduce_research_tables.py --preset small --output_dir outputs/research
    torchrun --standalone --nproc_per_node 2 examples/reproduce_research_tables.py --preset full   # cells split

Each language gets a resumable sweep (outputs/research/<language>/sweep.jsonl): rerun the same command after an
interruption and only the missing cells are computed. The Markdown tables and plots land next to it.
"""

import argparse
from pathlib import Path

from accelerate import PartialState
from transformers import TrainingArguments

import hf_mdm
from hf_mdm.evaluation import (
    LanguageTask,
    fit_step_scaling,
    markdown_table,
    sweep_steps,
    train_autoregressive_baseline,
)
from hf_mdm.hub import plot_step_vs_error


PRESETS = {
    "small": dict(lengths=[64, 256], steps=[4, 16, 64, 256, 1024], num_samples=200),
    "full": dict(lengths=[64, 256, 1024], steps=[4, 16, 64, 256, 1024, 4096], num_samples=500),
}
LANGUAGES = {
    "ngram": lambda: hf_mdm.NGramLanguage(16, n=2, support=4, seed=0),
    "hmm": lambda: hf_mdm.HMMLanguage(16, 16, transition_support=4, emission_support=4, seed=0),
}


def trained_models(language, lengths, output_dir):
    """A small MDM and its AR baseline trained on the language (only with --train)."""
    tokenizer = language.tokenizer()
    data = language.dataset(20_000, max(lengths), seed=1)
    config = hf_mdm.MDMConfig(
        vocab_size=len(tokenizer),
        hidden_size=256,
        intermediate_size=1024,
        num_hidden_layers=6,
        num_attention_heads=8,
        max_position_embeddings=max(lengths),
        mask_token_id=tokenizer.mask_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    args = TrainingArguments(
        str(output_dir / "mdm"),
        max_steps=5000,
        per_device_train_batch_size=32,
        learning_rate=1e-3,
        warmup_steps=200,
        save_strategy="no",
        report_to=[],
        logging_steps=100,
    )
    model = hf_mdm.MDMForMaskedGeneration(config)
    from transformers import Trainer

    Trainer(
        model=model, args=args, train_dataset=data, data_collator=hf_mdm.DataCollatorForMaskedDiffusion(tokenizer)
    ).train()
    ar_args = TrainingArguments(
        str(output_dir / "autoregressive"),
        max_steps=5000,
        per_device_train_batch_size=32,
        learning_rate=1e-3,
        save_strategy="no",
        report_to=[],
        logging_steps=100,
    )
    return model.eval(), train_autoregressive_baseline(model, data, tokenizer, args=ar_args).eval()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="small")
    parser.add_argument("--languages", nargs="+", choices=sorted(LANGUAGES), default=sorted(LANGUAGES))
    parser.add_argument("--strategies", nargs="+", default=["random", "confidence", "entropy"])
    parser.add_argument("--train", action="store_true", help="also train an MDM and an AR baseline (hours)")
    parser.add_argument("--output_dir", default="outputs/research")
    args = parser.parse_args()
    preset = PRESETS[args.preset]

    for name in args.languages:
        language = LANGUAGES[name]()
        output_dir = Path(args.output_dir) / name
        output_dir.mkdir(parents=True, exist_ok=True)
        model = hf_mdm.enable_diffusion_generation(language.oracle_model(), language.tokenizer())
        autoregressive = None
        if args.train:
            model, autoregressive = trained_models(language, preset["lengths"], output_dir)
        table = sweep_steps(model, language.tokenizer(), LanguageTask(language, name=name), steps=preset["steps"],
                            strategies=args.strategies, lengths=preset["lengths"], num_samples=preset["num_samples"],
                            batch_size=50, autoregressive_model=autoregressive,
                            output_path=output_dir / "sweep.jsonl", resume=True)  # fmt: skip
        if not PartialState().is_main_process:
            continue
        rows = list(table)
        (output_dir / "sweep.md").write_text(markdown_table(rows) + "\n")
        plot_step_vs_error(rows, output_dir / "step_vs_error.png")
        print(f"\n## {name}: entropy rate {language.entropy_rate().value:.3f} nats/token\n\n{markdown_table(rows)}\n")
        for strategy in args.strategies:
            print(fit_step_scaling(rows, strategy, "ser", 0.1).describe())
            print(fit_step_scaling(rows, strategy, "invalid_token_rate", 0.01).describe())


if __name__ == "__main__":
    main()
