"""Train a tiny block-diffusion LM with the stock Trainer, then decode it block by block with the exact KV cache.

A block-diffusion model (`MDMConfig(block_size=B)`) attends bidirectionally inside a block of B tokens and causally
across blocks. Training (BD3-LM's objective) noises every block at its own time and predicts it from the clean
earlier blocks, in one forward of twice the length; `DataCollatorForMaskedDiffusion(block_size=B)` draws the times.
`generate()` then decodes block by block: a finished block's keys and values are stored once (`cache="exact"`, the
default on such a model) and never recomputed, so the output is token-identical to decoding without a cache, and a
row stops at the first block holding EOS.

Needs no download (the corpus and tokenizer of `train_tiny_mdm.py`). About a minute on 2 CPU cores.

    python examples/train_tiny_block_diffusion.py [--steps 300] [--block-size 4]
"""

import argparse
import time

import torch
from datasets import Dataset
from train_tiny_mdm import build_tokenizer, corpus, loss_curve
from transformers import Trainer, TrainingArguments

from hf_mdm import DataCollatorForMaskedDiffusion, MDMConfig, MDMForMaskedGeneration


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--block-size", type=int, default=4)
    parser.add_argument("--output-dir", default="outputs/tiny-block-diffusion")
    args = parser.parse_args()

    texts = corpus(2000)
    tokenizer = build_tokenizer(texts)
    dataset = Dataset.from_dict({"text": texts}).map(lambda batch: tokenizer(batch["text"]), batched=True)
    torch.manual_seed(0)
    model = MDMForMaskedGeneration(
        MDMConfig(
            vocab_size=len(tokenizer),
            hidden_size=64,
            intermediate_size=192,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=32,
            mask_token_id=tokenizer.mask_token_id,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            block_size=args.block_size,
        )
    )
    # one noise time per block of the model; EOS padding teaches the model to end a sentence
    collator = DataCollatorForMaskedDiffusion(tokenizer, block_size=model.config.block_size, eos_padding=True)
    trainer = Trainer(
        model=model,
        args=TrainingArguments(
            output_dir=args.output_dir,
            max_steps=args.steps,
            per_device_train_batch_size=32,
            learning_rate=3e-3,
            warmup_steps=20,
            logging_steps=1,
            save_strategy="no",
            report_to=[],
            use_cpu=True,
            seed=0,
        ),
        train_dataset=dataset,
        data_collator=collator,
    )
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    print(f"\nBlock NELBO per token over {len(losses)} steps:")
    print(loss_curve(losses))
    trainer.save_model(args.output_dir)
    tokenizer.save_pretrained(args.output_dir)

    model.eval()
    tokenizer.padding_side = "left"
    inputs = tokenizer(["the cat", "my friend likes", "a bird"], return_tensors="pt", padding=True)
    outputs = {}
    model.generate(**inputs, max_new_tokens=12)  # warm-up, so that neither timing below pays the first call
    for cache in ("exact", "none"):
        start = time.perf_counter()
        outputs[cache] = model.generate(
            **inputs, max_new_tokens=12, steps_per_block=2, strategy="confidence", cache=cache,
            return_dict_in_generate=True,
        )  # fmt: skip
        seconds = time.perf_counter() - start
        print(f"\ncache={cache!r}: {seconds * 1000:.0f} ms, forwards per row {outputs[cache].nfe.tolist()}, "
              f"tokens per forward {[round(v, 2) for v in outputs[cache].tokens_per_forward.tolist()]}")  # fmt: skip
        for text in tokenizer.batch_decode(outputs[cache].sequences, skip_special_tokens=True):
            print(f"  {text}")
    identical = torch.equal(outputs["exact"].sequences, outputs["none"].sequences)
    print(f"\nThe exact cache gives the uncached tokens: {identical}")
    print(f"Saved model and tokenizer to {args.output_dir}")


if __name__ == "__main__":
    main()
