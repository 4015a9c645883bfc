"""Seconds per forward of the exact oracle (`OracleDenoiser`), one thread: the reference posterior and the fast one.

    python benchmarks/oracle_speed.py [--length 1024] [--rows 200] [--masked 0.1 0.5 0.9 1.0] [--no-before]

"before" is the position-by-position posterior kept as the reference of tests/measurement/test_oracle_fast_path.py
(run from the repository root so it can be imported); "after" is the posterior in torch and, for the n-gram, the
numba-compiled one (`pip install "hf-mdm[oracle]"`), and the whole `OracleDenoiser` forward (the posterior and the
logits: for the n-gram with numba installed, the compiled kernel writes the logs into the logits itself). Each "after"
cell is the fastest of `--repeats` calls, the columns of a row taking turns, in wall-clock seconds (and, for the
forward, in this process's CPU seconds, which other programs on a shared machine inflate less). The languages are those
of `benchmarks/metrics_speed.py`: a trigram over 32 symbols with 8 successors per context, and an HMM with 16 states.
Target: an oracle forward at L = 1024, 200 rows, half the tokens masked, <= 0.5 s. Prints a Markdown table.
"""

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

from hf_mdm.languages import NGramLanguage, describe_research_language, research_language
from hf_mdm.languages.ngram_posterior import ngram_posterior
from hf_mdm.languages.ngram_posterior_compiled import compiled_available


def fastest(functions: dict, repeats: int) -> dict:
    """name -> (wall-clock seconds, CPU seconds of this process) of the fastest of `repeats` calls of each function.
    The functions take turns, so a slow minute of a shared machine slows every column of a row alike."""
    wall, cpu = {name: [] for name in functions}, {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            function()
            wall[name].append(time.perf_counter() - start_wall)
            cpu[name].append(time.process_time() - start_cpu)
    return {name: (min(wall[name]), min(cpu[name])) for name in functions}


def timed_calls(language, oracle, symbols, observed) -> dict:
    """What one row times: the torch posterior, the compiled one (an n-gram, numba installed) and the forward."""
    shown = torch.where(observed, symbols, 0)
    input_ids = torch.where(observed, symbols, oracle.config.mask_token_id)
    if not isinstance(language, NGramLanguage):
        return {"torch": lambda: language.posterior(shown, observed), "forward": lambda: oracle(input_ids)}
    lengths = torch.full((shown.shape[0],), shown.shape[1])
    calls = {"torch": lambda: ngram_posterior(language, shown, observed, lengths, compiled=False)}
    if compiled_available():
        calls["compiled"] = lambda: ngram_posterior(language, shown, observed, lengths, compiled=True)
    calls["forward"] = lambda: oracle(input_ids)
    for name in calls.keys() - {"torch"}:  # numba compiles each signature on its first call: outside the clock
        calls[name]()
    return calls


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--length", type=int, default=1024)
    parser.add_argument("--rows", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--masked", type=float, nargs="+", default=[0.1, 0.5, 0.9, 1.0])
    parser.add_argument("--no-before", action="store_true", help="skip the slow reference path")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    reference = None
    if not args.no_before:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from tests.measurement.test_oracle_fast_path import reference_posterior as reference

    languages = [(describe_research_language(name), research_language(name)) for name in ("trigram", "hmm")]
    print(f"torch {torch.__version__}, {args.threads} thread(s), {platform.processor() or platform.machine()}\n")
    print(
        "| language | L | rows | masked | before: posterior (s) | after: posterior, torch (s) "
        "| after: posterior, compiled (s) | after: oracle forward (s) | after: oracle forward, CPU (s) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, language in languages:
        symbols = language.sample(args.rows, args.length, torch.Generator().manual_seed(0))
        oracle = language.oracle_model()
        for fraction in args.masked:
            observed = torch.rand(symbols.shape, generator=torch.Generator().manual_seed(1)) >= fraction
            before = "-"
            if reference is not None:
                shown, active = torch.where(observed, symbols, 0), torch.ones_like(observed)
                start = time.perf_counter()
                reference(language, shown, observed, active)
                before = "{:.2f}".format(time.perf_counter() - start)
            seconds = fastest(timed_calls(language, oracle, symbols, observed), args.repeats)
            compiled = "{:.2f}".format(seconds["compiled"][0]) if "compiled" in seconds else "-"
            print(
                f"| {name} | {args.length} | {args.rows} | {fraction:.0%} | {before} | {seconds['torch'][0]:.2f} "
                f"| {compiled} | {seconds['forward'][0]:.2f} | {seconds['forward'][1]:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
