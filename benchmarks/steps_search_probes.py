"""Probes and forwards the steps-needed search spends, and the scatter of replicate searches (issue P, item 2).

On the exact oracle of a research language (default the HMM), for each strategy and length, `search_steps_needed`
is run with several seeds (independent replicate searches). Per (strategy, length) it prints, summed over the
replicates: probes (sweep cells generated) and forwards spent (sum over probes of mean NFE x samples); then per
replicate: the steps needed and, where the code gives one, its 95% interval (`StepsNeeded.interval`). The replicates'
scatter is what a per-length interval must cover. Runs on any version of the library (an interval is shown only where
the results carry one), so the same cells can be measured before and after a change of the search:

    OMP_NUM_THREADS=1 python benchmarks/steps_search_probes.py [--lengths 32 64 128 256] [--seeds 0 1 2]
    OMP_NUM_THREADS=1 PYTHONPATH=/path/to/old/src python benchmarks/steps_search_probes.py   # the old code
"""

import argparse
import platform
import time

import torch

import hf_mdm
from hf_mdm.evaluation import LanguageTask, search_steps_needed
from hf_mdm.languages import RESEARCH_LANGUAGES, research_language


def interval_text(result) -> str:
    """The decision's 95% interval as text, "-" where this version of the library gives none."""
    interval = getattr(result, "interval", None)
    if interval is None:
        return "-"
    low, high = interval
    return f"[{low}, {high}]" if high is not None else f"[>= {low}]"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--language", default="hmm", choices=sorted(RESEARCH_LANGUAGES))
    parser.add_argument("--strategies", nargs="+", default=["confidence", "random"])
    parser.add_argument("--lengths", nargs="+", type=int, default=[32, 64, 128, 256])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--target", type=float, default=0.05)
    parser.add_argument("--num_samples", type=int, default=100)
    parser.add_argument("--max_steps_per_token", type=int, default=4)
    args = parser.parse_args()

    language = research_language(args.language)
    tokenizer = language.tokenizer()
    model = hf_mdm.enable_diffusion_generation(language.oracle_model(), tokenizer)
    task = LanguageTask(language, name=args.language)
    max_steps = {length: args.max_steps_per_token * length for length in args.lengths}
    print(
        f"hf-mdm {hf_mdm.__file__}; torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
        f"{platform.processor() or platform.machine()}; {args.language} oracle, SER <= {args.target}, "
        f"{args.num_samples} samples per probe, S_max = {args.max_steps_per_token} L, seeds {args.seeds}\n",
        flush=True,
    )
    lines = [
        "| strategy | L | probes (all seeds) | forwards (all seeds) | needed per seed | 95% interval per seed |",
        "|---|---:|---:|---:|---|---|",
    ]
    totals = {}
    for strategy in args.strategies:
        spent = {length: [0, 0.0] for length in args.lengths}
        decisions = {length: [] for length in args.lengths}
        start = time.perf_counter()
        for seed in args.seeds:
            table, (scaling,) = search_steps_needed(
                model, tokenizer, task, target=args.target, max_steps=max_steps, strategies=[strategy],
                lengths=args.lengths, num_samples=args.num_samples, seed=seed, batch_size=args.num_samples,
                progress=False,
            )  # fmt: skip
            for row in table:
                spent[row["length"]][0] += 1
                spent[row["length"]][1] += row["nfe"] * row["num_samples"]
            for length in args.lengths:
                decisions[length].append(scaling.needed[length])
                probes = [row for row in table if row["length"] == length]
                forwards = sum(row["nfe"] * row["num_samples"] for row in probes)
                print(f"{strategy}, seed {seed}, L={length}: probes {[row['steps'] for row in probes]}, forwards "
                      f"{forwards:.0f}, needed {scaling.needed[length].steps} {interval_text(scaling.needed[length])}",
                      flush=True)  # fmt: skip
            print(f"{strategy}, seed {seed}: {scaling.describe()} [{time.perf_counter() - start:.0f} s]\n", flush=True)
        for length in args.lengths:
            needed = ", ".join(str(result.steps) for result in decisions[length])
            intervals = ", ".join(interval_text(result) for result in decisions[length])
            probes, forwards = spent[length]
            lines.append(f"| {strategy} | {length} | {probes} | {forwards:.0f} | {needed} | {intervals} |")
        totals[strategy] = (sum(p for p, _ in spent.values()), sum(f for _, f in spent.values()),
                            time.perf_counter() - start)  # fmt: skip
    print("\n".join(lines))
    print("\n| strategy | probes, all lengths and seeds | forwards | wall s |\n|---|---:|---:|---:|")
    for strategy, (probes, forwards, wall) in totals.items():
        print(f"| {strategy} | {probes} | {forwards:.0f} | {wall:.0f} |")


if __name__ == "__main__":
    main()
