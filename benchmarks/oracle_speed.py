"""Seconds per forward of the exact oracle (`OracleDenoiser`): before and after the batched forward-backward.

    python benchmarks/oracle_speed.py [--length 1024] [--rows 200] [--threads 1] [--no-before]

"before" is the position-by-position posterior the fast path replaced, kept as the reference of
tests/measurement/test_oracle_fast_path.py (run from the repository root so it can be imported); "after" is
`language.posterior` and the whole `OracleDenoiser` forward. Best of `--repeats`; prints a Markdown table.
"""

import argparse
import platform
import sys
import timeit
from pathlib import Path

import torch

from hf_mdm.languages import HMMLanguage, NGramLanguage


def best_time(function, repeats: int) -> float:
    """The fastest of `repeats` single calls (timeit's repeat, without its loop)."""
    return min(timeit.repeat(function, number=1, repeat=repeats))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--length", type=int, default=1024)
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--no-before", action="store_true", help="skip the slow reference path")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    reference = None
    if not args.no_before:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from tests.measurement.test_oracle_fast_path import reference_posterior as reference

    languages = [
        ("n-gram (V=32, n=3, support 8)", NGramLanguage(32, n=3, support=8, seed=0)),
        ("HMM (16 states, V=32, 4 moves, 8 emissions)", HMMLanguage(16, 32, 4, 8, seed=0)),
    ]
    print(f"torch {torch.__version__}, {args.threads} thread(s), {platform.processor() or platform.machine()}\n")
    print(
        "| language | L | rows | masked | before: posterior (s) | after: posterior (s) | after: oracle forward (s) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, language in languages:
        symbols = language.sample(args.rows, args.length, torch.Generator().manual_seed(0))
        oracle = language.oracle_model()
        for fraction in (0.1, 0.5, 1.0):
            observed = torch.rand(symbols.shape, generator=torch.Generator().manual_seed(1)) >= fraction
            shown = torch.where(observed, symbols, 0)
            active = torch.ones_like(observed)
            before = (
                "-"
                if reference is None
                else "{:.2f}".format(best_time(lambda: reference(language, shown, observed, active), 1))
            )
            after = best_time(lambda: language.posterior(shown, observed), args.repeats)
            input_ids = torch.where(observed, symbols, oracle.config.mask_token_id)
            forward = best_time(lambda: oracle(input_ids), args.repeats)
            print(
                f"| {name} | {args.length} | {args.rows} | {fraction:.0%} | {before} | {after:.2f} | {forward:.2f} |"
            )


if __name__ == "__main__":
    main()
