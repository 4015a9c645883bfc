"""The sampler's distributional error against steps, for every strategy, on an exact HMM oracle (issue P, item 4).

For each registered strategy and step count, `sampler_distribution_error` gives TV(Q, P), KL(Q || P) and KL(P || Q)
between generate()'s law Q of unconditional samples and the language's P over all V^L sequences: exactly (dynamic
programming over the partially revealed canvases) where the law is enumerable, else by Monte Carlo over
`--samples` generate() samples with the stated 95% bound on the TV error. The oracle is the language's exact
denoiser, so every error is the sampler's own. Prints a markdown table and the machine it ran on:

    OMP_NUM_THREADS=1 python benchmarks/sampler_distribution_error.py [--length 5] [--steps 1 2 5 10 20]

With `--block-lengths` (e.g. `--length 6 --block-lengths 1 2 3 6 --steps 2 3 6 12`), block size is an axis (issue P,
item 5): each strategy decodes block after block (`block_length=B`, exact block diffusion on the oracle), at the step
counts with at least one step per block, so the table reads which B errs least at an equal step budget.
"""

import argparse
import platform
import time

import torch

import hf_mdm
from hf_mdm.evaluation.sampler_distribution_error import sampler_distribution_error
from hf_mdm.generation import STRATEGIES, enable_diffusion_generation
from hf_mdm.languages import HMMLanguage


def cell(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--states", type=int, default=3)
    parser.add_argument("--vocab-size", type=int, default=3)
    parser.add_argument("--length", type=int, default=5)
    parser.add_argument("--steps", nargs="+", type=int, default=[1, 2, 5, 10, 20])
    parser.add_argument("--strategies", nargs="+", default=sorted(STRATEGIES))
    parser.add_argument("--samples", type=int, default=50_000, help="Monte Carlo samples per cell")
    parser.add_argument("--block-lengths", nargs="+", type=int, default=None, help="decoding block sizes (one block)")
    args = parser.parse_args()

    language = HMMLanguage(args.states, args.vocab_size, seed=0)
    model = enable_diffusion_generation(language.oracle_model(), language.tokenizer())
    print(f"hf-mdm {hf_mdm.__version__}, torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} thread(s)")  # fmt: skip
    print(f"HMMLanguage({args.states}, {args.vocab_size}, seed=0), L = {args.length} "
          f"({args.vocab_size ** args.length} sequences), exact oracle\n")  # fmt: skip
    print("| strategy | block size | steps | method | TV | TV bound (95%) | KL(Q‖P) | KL(P‖Q) | outside | forwards "
          "| seconds |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for strategy in args.strategies:
        for block in args.block_lengths or [args.length]:
            blocks = -(-args.length // block)
            for steps in [steps for steps in args.steps if steps >= blocks]:
                began = time.perf_counter()
                result = sampler_distribution_error(
                    model, language, args.length, steps, strategy, num_samples=args.samples, batch_size=5000,
                    **({"block_length": block} if args.block_lengths else {}),
                )  # fmt: skip
                seconds = time.perf_counter() - began
                print(f"| {strategy} | {block} | {steps} | {result.method} | {cell(result.tv)} | "
                      f"{cell(result.tv_bound, 2)} | {cell(result.kl)} | {cell(result.kl_language_to_sampler)} | "
                      f"{cell(result.outside_mass)} | {result.forwards} | {seconds:.1f} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
