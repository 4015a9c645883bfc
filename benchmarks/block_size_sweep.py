"""Block size against sequence error: which decoding block size B gives the lowest SER at equal NFE, and how the steps
needed for SER <= target grow with the length L at a fixed B (issue M, item 4).

Block diffusion decodes B tokens at a time, bidirectionally inside the block and block after block; B = 1 is
autoregressive decoding, B = L today's one-block MDM. Two parts, each one run:

    python benchmarks/block_size_sweep.py oracle    # the exact oracle of a research language (no model error)
    python benchmarks/block_size_sweep.py trained   # tiny models trained at several B (block-causal, stock Trainer)

`oracle`: on the language's exact posterior, decoded at each B (a block length over the bidirectional oracle: the
posterior of a block given the earlier ones is exact, so this is exact block diffusion),
1. SER (Wilson 95% interval), TER gap ± SE, NFE and tokens per forward at length L for every (B, steps) with at
   least one step per block, beside the AR row of the language's exact next-token model (`ExactAutoregressiveLM`);
2. at equal step budget (NFE = steps for the ranked strategies; `random` skips empty steps), the block size with
   the lowest SER, and whether its interval is clear of the others';
3. B = 1 against the AR row: the difference of log-perplexity with its 95% interval (both draw exact samples);
4. per B, the steps needed for SER <= target at each length (`search_steps_needed`, "not reached by S_max" rather
   than an extrapolation) and b in steps ~ c L^b with its interval.

`trained`: one block-causal MDM per B (`MDMConfig(block_size=B)`, BD3-LM objective, one time per block) and its AR
twin (`train_autoregressive_baseline`), all the same size and data, trained by `train_research_models` /
`train_block_models` into --output_dir (a rerun loads them); each decoded at its own B with the exact block cache,
then table 1 and the comparison of B = 1 with the AR row. Runs on one thread (OMP_NUM_THREADS=1) in a few minutes.
"""

import argparse
import dataclasses
import math
import platform
import time
from pathlib import Path

import torch

import hf_mdm
from hf_mdm.evaluation import LanguageTask, markdown_table, search_steps_needed, sweep_steps
from hf_mdm.evaluation.exact_autoregressive import ExactAutoregressiveLM
from hf_mdm.evaluation.research_models import ResearchTraining, train_block_models, train_research_models
from hf_mdm.evaluation.step_scaling import step_scaling_table
from hf_mdm.evaluation.sweep_table import ONE_BLOCK, Z_95
from hf_mdm.languages import RESEARCH_LANGUAGES, research_language


# The columns of table 1.
SHOWN = ("strategy", "length", "steps", "block_size", "steps_per_block", "nfe", "tokens_per_forward", "num_samples",
         "ser", "ser_low", "ser_high", "ter_gap", "ter_gap_se")  # fmt: skip


def block_size_arguments(values: list[str]) -> list:
    return [value if value == ONE_BLOCK else int(value) for value in values]


def possible_cells(strategies, length, block_sizes, steps) -> list[tuple]:
    """The (strategy, length, steps, block size) cells with at least one step per block."""
    sizes = [length if size == ONE_BLOCK else size for size in block_sizes]
    return [(s, length, n, b) for s in strategies for b in sizes for n in steps if n >= math.ceil(length / b)]


def equal_budget_table(rows: list[dict]) -> str:
    """Per strategy and step budget (the NFE; `random` skips the steps that reveal nothing, so its mean NFE, shown
    in parentheses, is lower): the SER [95% interval] of every block size, the lowest, and whether its interval lies
    below every other's (else the lowest is not significantly lowest)."""
    sizes = sorted({row["block_size"] for row in rows})
    titles = " | ".join(f"B={size}" for size in sizes)
    lines = [f"| strategy | steps | {titles} | lowest SER | clear of the others |",
             "|---|---:|" + "---|" * len(sizes) + "---|---|"]  # fmt: skip
    for strategy in sorted({row["strategy"] for row in rows}):
        for steps in sorted({row["steps"] for row in rows if row["strategy"] == strategy}):
            at = {row["block_size"]: row for row in rows if (row["strategy"], row["steps"]) == (strategy, steps)}
            if len(at) < 2:
                continue
            cells = ["-" if size not in at else f"{at[size]['ser']:.3f} [{at[size]['ser_low']:.3f}, "
                     f"{at[size]['ser_high']:.3f}]" + ("" if at[size]["nfe"] == steps else f" ({at[size]['nfe']:.1f})")
                     for size in sizes]  # fmt: skip
            best = min(row["ser"] for row in at.values())
            ties = sorted(size for size, row in at.items() if row["ser"] == best)
            clear = all(at[ties[0]]["ser_high"] < row["ser_low"] for size, row in at.items() if size not in ties)
            verdict = "all equal" if len(ties) == len(at) else "yes" if clear else "no"
            lowest = ", ".join(f"B={size}" for size in ties)
            lines.append(f"| {strategy} | {steps} | " + " | ".join(cells) + f" | {lowest} | {verdict} |")
    return "\n".join(lines)


def autoregressive_agreement(rows: list[dict]) -> str:
    """Every B = 1 row against the AR row of its length: SER and the log-perplexity difference with its 95% interval
    (the samples of the two rows are independent: SE = sqrt(SE_1^2 + SE_2^2))."""
    lines = [
        "| decoder | length | SER [95%] | log-ppl ± SE | difference to AR [95%] | within |",
        "|---|---:|---|---|---|---|",
    ]
    for autoregressive in [row for row in rows if row["strategy"] == "autoregressive"]:
        same_length = [row for row in rows if row["length"] == autoregressive["length"]]
        for row in [r for r in same_length if r["block_size"] == 1 and r["strategy"] != "autoregressive"] + [
            autoregressive
        ]:
            difference = row["log_perplexity"] - autoregressive["log_perplexity"]
            half = Z_95 * math.hypot(row["log_perplexity_se"], autoregressive["log_perplexity_se"])
            within = "-" if row is autoregressive else ("yes" if abs(difference) <= half else "NO")
            lines.append(
                f"| {row['strategy']} (B={row['block_size']}) | {row['length']} | {row['ser']:.3f} "
                f"[{row['ser_low']:.3f}, {row['ser_high']:.3f}] | {row['log_perplexity']:.3f} ± "
                f"{row['log_perplexity_se']:.3f} | {difference:+.3f} [{difference - half:+.3f}, "
                f"{difference + half:+.3f}] | {within} |"
            )
    return "\n".join(lines)


def report_table(title: str, rows: list[dict]) -> None:
    print(f"\n### {title}\n")
    print(markdown_table([{key: row.get(key) for key in SHOWN} for row in rows]))
    print("\n### At equal step budget (NFE)\n")
    print(equal_budget_table([row for row in rows if row["strategy"] != "autoregressive"]))
    print("\n### Block size 1 against the autoregressive row\n")
    print(autoregressive_agreement(rows))


def run_oracle(args, language, tokenizer, task) -> None:
    model = hf_mdm.enable_diffusion_generation(language.oracle_model(), tokenizer)
    started = time.perf_counter()
    cells = possible_cells(args.strategies, args.length, args.block_sizes, args.steps)
    rows = list(sweep_steps(
        model, tokenizer, task, steps=args.steps, strategies=args.strategies, lengths=[args.length],
        block_sizes=args.block_sizes, cells=cells, num_samples=args.num_samples, batch_size=args.num_samples,
        autoregressive_model=ExactAutoregressiveLM(language), progress=False,
    ))  # fmt: skip
    report_table(f"Exact oracle, L = {args.length} ({time.perf_counter() - started:.0f} s)", rows)

    started = time.perf_counter()
    _, fits = search_steps_needed(
        model, tokenizer, task, args.target, max_steps={n: args.max_steps_per_token * n for n in args.lengths},
        strategies=args.search_strategies, lengths=args.lengths, block_sizes=args.search_block_sizes,
        num_samples=args.num_samples, batch_size=args.num_samples, progress=False,
    )  # fmt: skip
    print(f"\n### Steps needed for SER <= {args.target} against L at fixed B, exact oracle "
          f"(searched up to S = {args.max_steps_per_token} L; {time.perf_counter() - started:.0f} s)\n")  # fmt: skip
    print(step_scaling_table(fits))
    print()
    for fit in fits:
        print(f"- {fit.describe()}")


def run_trained(args, language, tokenizer, task) -> None:
    training = ResearchTraining(hidden_size=args.hidden_size, num_hidden_layers=args.num_hidden_layers,
                                train_steps=args.train_steps, examples_per_length=args.examples,
                                batch_size=args.train_batch_size)  # fmt: skip
    output_dir = Path(args.output_dir)
    started = time.perf_counter()
    mdm, autoregressive = train_research_models(language, [args.length], output_dir / "research", training)
    clipped = dataclasses.replace(training, t_interval=tuple(args.t_interval) if args.t_interval else None)
    models = train_block_models(language, [args.length], output_dir / "block", clipped, args.trained_block_sizes)
    print(f"\nTrained {len(models)} block models, the bidirectional MDM and the AR twin in "
          f"{time.perf_counter() - started:.0f} s "
          f"({training}; block models: t_interval={clipped.t_interval})")  # fmt: skip
    rows = list(sweep_steps(
        mdm, tokenizer, task, steps=args.steps, strategies=args.strategies, lengths=[args.length],
        num_samples=args.num_samples, batch_size=args.num_samples, progress=False, autoregressive_model=autoregressive,
    ))  # fmt: skip
    for block_size, model in models.items():
        steps = [n for n in args.steps if n >= math.ceil(args.length / block_size)]
        rows += list(sweep_steps(
            model, tokenizer, task, steps=steps, strategies=args.strategies, lengths=[args.length],
            num_samples=args.num_samples, batch_size=args.num_samples, progress=False,
        ))  # fmt: skip
    report_table(f"Block-causal MDMs trained at each B (B = {args.length}: the bidirectional MDM), L = {args.length}",
                 rows)  # fmt: skip


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=["oracle", "trained"])
    parser.add_argument("--language", default="hmm", choices=sorted(RESEARCH_LANGUAGES))
    parser.add_argument("--length", type=int, default=32, help="the length of the block-size table")
    parser.add_argument("--block_sizes", nargs="+", default=["1", "2", "4", "8", ONE_BLOCK])
    parser.add_argument("--steps", nargs="+", type=int, default=[4, 8, 16, 32])
    parser.add_argument("--strategies", nargs="+", default=["confidence", "random"])
    parser.add_argument("--num_samples", type=int, default=400)
    parser.add_argument("--target", type=float, default=0.05)
    parser.add_argument("--lengths", nargs="+", type=int, default=[16, 32, 64, 128], help="the search's lengths")
    parser.add_argument("--search_block_sizes", nargs="+", default=["1", "4", ONE_BLOCK])
    parser.add_argument("--search_strategies", nargs="+", default=["random"])
    parser.add_argument("--max_steps_per_token", type=int, default=4, help="the search's S_max / L")
    parser.add_argument("--trained_block_sizes", nargs="+", type=int, default=[1, 4, 8])
    parser.add_argument("--hidden_size", type=int, default=32)
    parser.add_argument("--num_hidden_layers", type=int, default=2)
    parser.add_argument("--train_steps", type=int, default=800)
    parser.add_argument("--train_batch_size", type=int, default=16)
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--t_interval", nargs=2, type=float, default=None, help="block models: BD3-LM's clipped t")
    parser.add_argument("--output_dir", default="outputs/block_size_sweep")
    args = parser.parse_args()
    args.block_sizes = block_size_arguments(args.block_sizes)
    args.search_block_sizes = block_size_arguments(args.search_block_sizes)

    language = research_language(args.language)
    tokenizer = language.tokenizer()
    task = LanguageTask(language, name=args.language)
    print(
        f"# Block size sweep ({args.part}): {args.language}, {args.num_samples} samples per cell; torch "
        f"{torch.__version__}, {torch.get_num_threads()} thread(s), {platform.processor() or platform.machine()}"
    )
    (run_oracle if args.part == "oracle" else run_trained)(args, language, tokenizer, task)


if __name__ == "__main__":
    main()
