"""Training throughput: MDMForMaskedGeneration + DataCollatorForMaskedDiffusion vs a LlamaForCausalLM of identical
dimensions + DataCollatorForLanguageModeling(mlm=False), both under the stock Trainer on the same data; and the
block-diffusion objective (`MDMConfig(block_size=B)` + the collator's `block_size=B`: one forward over the noisy and
the clean sequence, 2L positions) against the bidirectional one.

Tokens/s counts every real input token of the timed steps (the first `--warmup` steps are excluded): per original
token, so the block objective's 2L positions count once. Runs alternate between the models `--repeats` times and the
best run of each is kept. Targets: MDM / Llama >= 0.95; block / bidirectional >= 0.45.

    python benchmarks/train_throughput.py            # prints a Markdown table
"""

import argparse
import platform
import time

import torch
from datasets import Dataset
from tokenizers import Tokenizer, models
from transformers import (
    DataCollatorForLanguageModeling,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from hf_mdm import DataCollatorForMaskedDiffusion, MDMConfig, MDMForMaskedGeneration


class StepTimer(TrainerCallback):
    """Wall time of the optimizer steps after `warmup`, data loading and collation included."""

    def __init__(self, warmup: int):
        self.warmup, self.elapsed, self.timed_steps, self._start = warmup, 0.0, 0, None

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step >= self.warmup:
            self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if self._start is not None:
            self.elapsed += time.perf_counter() - self._start
            self.timed_steps += 1
            self._start = None


def numbered_tokenizer(vocab_size: int) -> PreTrainedTokenizerFast:
    specials = ["[PAD]", "[UNK]", "[MASK]"]
    vocab = {token: i for i, token in enumerate(specials + [f"t{i}" for i in range(vocab_size - len(specials))])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]", mask_token="[MASK]")


def run(name, model, collator, dataset, args) -> dict:
    timer = StepTimer(args.warmup)
    training_args = TrainingArguments(
        output_dir=f"/tmp/hf_mdm_bench_{name}",
        max_steps=args.warmup + args.steps,
        per_device_train_batch_size=args.batch_size,
        learning_rate=1e-4,
        logging_steps=10_000,
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
        use_cpu=True,
        seed=0,
    )
    Trainer(model=model, args=training_args, train_dataset=dataset, data_collator=collator, callbacks=[timer]).train()
    tokens = timer.timed_steps * args.batch_size * args.length
    return {
        "model": name,
        "steps": timer.timed_steps,
        "seconds": timer.elapsed,
        "tokens_per_s": tokens / timer.elapsed,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden-size", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--kv-heads", type=int, default=4)
    parser.add_argument("--vocab-size", type=int, default=4096)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--block-size", type=int, default=16, help="B of the block-diffusion model")
    args = parser.parse_args()

    tokenizer = numbered_tokenizer(args.vocab_size)
    generator = torch.Generator().manual_seed(0)
    rows = torch.randint(
        3, args.vocab_size, (args.batch_size * (args.steps + args.warmup), args.length), generator=generator
    )
    dataset = Dataset.from_dict({"input_ids": rows.tolist()})
    dims = dict(
        vocab_size=args.vocab_size,
        hidden_size=args.hidden_size,
        intermediate_size=4 * args.hidden_size,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.kv_heads,
        max_position_embeddings=args.length,
        pad_token_id=tokenizer.pad_token_id,
    )
    builders = {
        "MDMForMaskedGeneration": lambda: (
            MDMForMaskedGeneration(MDMConfig(**dims, mask_token_id=tokenizer.mask_token_id)),
            DataCollatorForMaskedDiffusion(tokenizer),
        ),
        "LlamaForCausalLM": lambda: (
            LlamaForCausalLM(LlamaConfig(**dims)),
            DataCollatorForLanguageModeling(tokenizer, mlm=False),
        ),
        f"MDMForMaskedGeneration, block_size={args.block_size}": lambda: (
            MDMForMaskedGeneration(
                MDMConfig(**dims, mask_token_id=tokenizer.mask_token_id, block_size=args.block_size)
            ),
            DataCollatorForMaskedDiffusion(tokenizer, block_size=args.block_size),
        ),
    }
    best = {}
    for _ in range(args.repeats):
        for name, build in builders.items():
            torch.manual_seed(0)
            model, collator = build()
            result = run(name, model, collator, dataset, args)
            if name not in best or result["tokens_per_s"] > best[name]["tokens_per_s"]:
                best[name] = result

    ratio = best["MDMForMaskedGeneration"]["tokens_per_s"] / best["LlamaForCausalLM"]["tokens_per_s"]
    block = f"MDMForMaskedGeneration, block_size={args.block_size}"
    block_ratio = best[block]["tokens_per_s"] / best["MDMForMaskedGeneration"]["tokens_per_s"]
    params = sum(p.numel() for p in builders["LlamaForCausalLM"]()[0].parameters()) / 1e6
    print(
        f"Training throughput, stock Trainer, {params:.1f}M params (hidden {args.hidden_size}, {args.layers} layers), "
        f"batch {args.batch_size} x length {args.length}, {args.steps} timed steps, best of {args.repeats}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}\n"
    )
    print("| model | timed steps | seconds | tokens/s |")
    print("|---|---:|---:|---:|")
    for result in best.values():
        print(f"| {result['model']} | {result['steps']} | {result['seconds']:.2f} | {result['tokens_per_s']:,.0f} |")
    print(f"\nratio MDM / Llama = **{ratio:.3f}** (target >= 0.95)")
    print(f"ratio block (B={args.block_size}) / bidirectional MDM = **{block_ratio:.3f}** (target >= 0.45)")


if __name__ == "__main__":
    main()
