"""Exact log-probability and validity of many long sequences: n-gram and HMM languages (prints a Markdown table).

    python benchmarks/metrics_speed.py [--threads 2]     # 10,000 sequences of 1,024 tokens, 1 thread by default

Each sequence batch is sampled from the language, then 1 token in 7 rows is changed so invalid tokens occur. Times are
the best of `--repeats` runs of `log_prob` and of `is_valid` (each a full exact pass over the batch).
"""

import argparse
import platform
import timeit

import torch

from hf_mdm.languages import describe_research_language, research_language


def best_time(function, repeats: int) -> float:
    """The fastest of `repeats` single calls (timeit's repeat, without its loop)."""
    return min(timeit.repeat(function, number=1, repeat=repeats))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=10_000)
    parser.add_argument("--length", type=int, default=1_024)
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads (the recursions run small ops)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    languages = [
        (describe_research_language(name), research_language(name), target)
        for name, target in (("trigram", 1.0), ("hmm", 5.0))
    ]
    print(
        f"{args.num:,} sequences x {args.length:,} tokens, torch {torch.__version__}, {args.threads} threads, "
        f"{platform.processor() or platform.machine()}\n"
    )
    print("| language | log_prob (s) | is_valid (s) | log_prob + is_valid (s) | target (s) | valid rows |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, language, target in languages:
        sequences = language.sample(args.num, args.length, torch.Generator().manual_seed(0))
        sequences[::7, args.length // 2] = (sequences[::7, args.length // 2] + 1) % language.vocab_size
        log_prob = best_time(lambda: language.log_prob(sequences), args.repeats)
        is_valid = best_time(lambda: language.is_valid(sequences), args.repeats)
        valid = float(language.is_valid(sequences).double().mean())
        print(f"| {name} | {log_prob:.2f} | {is_valid:.2f} | {log_prob + is_valid:.2f} | {target:.0f} | {valid:.1%} |")


if __name__ == "__main__":
    main()
