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
from train_tiny_mdm import build_model, build_tokenizer, corpus, train

from hf_mdm import DataCollatorForMaskedDiffusion


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--block-size", type=int, default=4)
    parser.add_argument("--output-dir", default="outputs/tiny-block-diffusion")
    args = parser.parse_args()

    texts = corpus(2000)
    tokenizer = build_tokenizer(texts)
    model = build_model(tokenizer, block_size=args.block_size)
    # one noise time per block of the model; EOS padding teaches the model to end a sentence
    collator = DataCollatorForMaskedDiffusion(tokenizer, block_size=model.config.block_size, eos_padding=True)
    train(model, tokenizer, texts, collator, args.steps, args.output_dir)

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
