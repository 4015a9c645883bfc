"""LLaDA 2.x decoding: the authors' `generate()` (reproduced decision for decision by `decode_like_authors`) against
hf-mdm's batched `generate()` with the same threshold rule, without a cache and with the exact block cache.

A small LLaDA 2.x MoE (`LLaDA2MoeForMaskedDiffusion`: 4 layers, hidden 128, 8 experts of which 2 per token, grouped
routing, a shared expert, the first layer dense, block 32) is first trained briefly with the block-diffusion objective
on `generate_cache.py`'s periodic language, so that threshold decoding can commit several tokens per forward. Then
`--batch` prompts are decoded to `--length` tokens:

* `authors (llada2_threshold)`: LLaDA 2.0's sampler as published: one prompt at a time (their `generate()` takes
  batch 1), every forward over the whole prefix (no KV cache), threshold 0.9, `steps = block_length`.
* `generate(), no cache` / `generate(), exact cache`: the batch at once, `strategy="threshold"` (commit every position
  with p >= 0.9, at least the most confident), `steps_per_block = block`.

Reports the median wall time over `--repeats` with the spread (min-max), the speed-up against the authors' sampler,
forwards per row, tokens per forward, agreement (fraction of generated tokens equal to the authors' output: their
rule commits p > tau, ours p >= tau, and their [MASK] column is not suppressed, so it can be below 1) and accuracy
(equal to the true continuation). Prints a Markdown table.

    python benchmarks/llada2_decoding.py [--batch 8] [--length 256] [--repeats 3]
"""

import argparse
import statistics
import time

import torch
from generate_cache import periodic_rows, train

from hf_mdm import LLaDA2MoeConfig, LLaDA2MoeForMaskedDiffusion
from hf_mdm.generation.published_samplers import decode_like_authors


def trained_llada2(args) -> LLaDA2MoeForMaskedDiffusion:
    torch.manual_seed(0)
    config = LLaDA2MoeConfig(
        vocab_size=args.vocab, mask_token_id=args.vocab - 1, pad_token_id=0, eos_token_id=0, hidden_size=128,
        intermediate_size=256, moe_intermediate_size=64, num_hidden_layers=4, num_attention_heads=4,
        num_key_value_heads=2, head_dim=32, num_experts=8, num_experts_per_tok=2, n_group=4, topk_group=2,
        first_k_dense_replace=1, max_position_embeddings=args.prompt + args.length, block_size=args.block,
    )  # fmt: skip
    model = LLaDA2MoeForMaskedDiffusion(config)
    train(model, args, torch.device("cpu"))
    return model.eval()


def timed(function, repeats):
    """(last output, median seconds, min seconds, max seconds) of `repeats` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        out = function()
        times.append(time.perf_counter() - start)
    return out, statistics.median(times), min(times), max(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--length", type=int, default=256, help="generated tokens")
    parser.add_argument("--prompt", type=int, default=32)
    parser.add_argument("--block", type=int, default=32)
    parser.add_argument("--vocab", type=int, default=64)
    parser.add_argument("--threshold", type=float, default=0.9)
    parser.add_argument("--train-steps", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    model = trained_llada2(args)
    rows = periodic_rows(args.batch, args.prompt + args.length, args.vocab, torch.Generator().manual_seed(1))
    prompt, truth = rows[:, : args.prompt], rows[:, args.prompt :]

    def authors():
        ids, calls = decode_like_authors(model, "llada2_threshold", prompt, gen_length=args.length,
                                         block_length=args.block, steps=args.block, threshold=args.threshold,
                                         eos_id=args.vocab - 2, return_model_calls=True)  # fmt: skip
        return ids[:, : args.length], calls / args.batch

    def ours(cache):
        def run():
            out = model.generate(prompt, max_new_tokens=args.length, steps_per_block=args.block,
                                 strategy="threshold", threshold=args.threshold, cache=cache, do_sample=False,
                                 return_dict_in_generate=True)  # fmt: skip
            return out.sequences[:, args.prompt :], out.nfe.float().mean().item()

        return run

    print(
        f"LLaDA 2.x MoE (4 layers, hidden 128, 8 experts, top-2, block {args.block}), batch={args.batch}, "
        f"prompt={args.prompt}, generated={args.length}, threshold={args.threshold}, repeats={args.repeats}, "
        f"threads={torch.get_num_threads()}\n"
    )
    print("| decoding | time (s), median [min, max] | speed-up | forwards per row | tokens per forward | "
          "agreement with the authors | accuracy |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    reference, baseline = None, None
    cases = [("authors (llada2_threshold), batch 1, no cache", authors), ("generate(), no cache", ours("none")),
             ("generate(), exact cache", ours("exact"))]  # fmt: skip
    for name, function in cases:
        with torch.no_grad():
            (generated, forwards), median, low, high = timed(function, args.repeats)
        reference = generated if reference is None else reference
        baseline = median if baseline is None else baseline
        agreement = (generated == reference).float().mean().item()
        accuracy = (generated == truth).float().mean().item()
        print(f"| {name} | {median:.2f} [{low:.2f}, {high:.2f}] | {baseline / median:.1f}x | {forwards:.1f} | "
              f"{args.length / forwards:.2f} | {agreement:.3f} | {accuracy:.3f} |")  # fmt: skip


if __name__ == "__main__":
    main()
