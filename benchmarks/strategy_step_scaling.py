"""Does any decoding strategy beat the linear-steps law for sequence error? (issue G, the project's research question)

For each strategy and length, the smallest step count with SER <= target is searched (`search_steps_needed`: doubling,
then bisection on the monotone fit of SER(steps), Wilson intervals at every probe) on the exact oracle of a formal
language (no model error: what remains is the strategy's own parallel-decoding error), or on a trained MDM folder.
Then b in steps_needed ~ c L^b is fitted per strategy with its standard error and 95% interval. The theory (Feng et
al. 2025) says b ~ 1 for strategies that never revise a revealed token; `remdm` (remasking) and `editing` revise.

    python benchmarks/strategy_step_scaling.py [--lengths 64 128 256 512] [--num_samples 200] [--device cuda]
    python benchmarks/strategy_step_scaling.py --model path/to/trained/mdm   # a model trained on the same language

`threshold` has no step budget (it reveals every position above tau, NFE adapts), so it is reported separately: its SER
and mean NFE per length at tau = 0.9. Prints Markdown tables and writes the probes as a sweep card to --output_dir.
"""

import argparse
import platform
import time
from pathlib import Path

import torch

import hf_mdm
from hf_mdm.evaluation import LanguageTask, markdown_table, search_steps_needed, sweep_steps
from hf_mdm.evaluation.step_scaling import step_scaling_table
from hf_mdm.languages import RESEARCH_LANGUAGES, research_language


# (strategy, the strategy_kwargs it runs with): ReMDM's published "cap" remasking, LLaDA 2.x-style editing.
STRATEGIES = {
    "confidence": {},
    "random": {},
    "remdm": {"eta": 0.02, "remask_schedule": "cap"},
    "editing": {"edit_threshold": 0.5},
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--language", default="hmm", choices=sorted(RESEARCH_LANGUAGES))
    parser.add_argument("--model", default=None, help="a trained MDM folder (default: the language's exact oracle)")
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES))
    parser.add_argument("--lengths", nargs="+", type=int, default=[64, 128, 256, 512])
    parser.add_argument("--target", type=float, default=0.05)
    parser.add_argument("--num_samples", type=int, default=200)
    parser.add_argument("--max_steps_per_token", type=int, default=8, help="search up to this many steps per token")
    parser.add_argument("--batch_size", type=int, default=200)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--output_dir", default="outputs/strategy_step_scaling")
    args = parser.parse_args()
    unknown = sorted(set(args.strategies) - set(STRATEGIES) - {"threshold"})
    if unknown:
        raise SystemExit(f"unknown strategies {unknown}; choose from {sorted(STRATEGIES) + ['threshold']}")

    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    language = research_language(args.language)
    tokenizer = language.tokenizer()
    if args.model is None:
        model = hf_mdm.enable_diffusion_generation(language.oracle_model(), tokenizer)
    else:
        model = hf_mdm.MDMForMaskedGeneration.from_pretrained(args.model)
    model = model.to(args.device).eval()
    task = LanguageTask(language, name=args.language)
    decoder = "exact oracle" if args.model is None else args.model
    print(
        f"{args.language} language, {decoder}, target SER <= "
        f"{args.target}, {args.num_samples} samples per probe, torch {torch.__version__}, {args.device}, "
        f"{platform.processor() or platform.machine()}\n"
    )

    rows, fits = [], []
    for strategy in [name for name in args.strategies if name != "threshold"]:
        start = time.perf_counter()
        table, (scaling,) = search_steps_needed(
            model, tokenizer, task, args.target, strategies=[strategy], lengths=args.lengths,
            max_steps={length: args.max_steps_per_token * length for length in args.lengths},
            num_samples=args.num_samples, batch_size=args.batch_size, progress=False,
            strategy_kwargs=STRATEGIES[strategy] or None, output_path=output_dir / f"probes-{strategy}.jsonl",
        )  # fmt: skip
        rows.extend(table)
        fits.append(scaling)
        print(scaling.describe(), f"[{time.perf_counter() - start:.0f} s]\n", flush=True)

    print(step_scaling_table(fits))

    if "threshold" in args.strategies:
        threshold_rows = sweep_steps(
            model, tokenizer, task, steps=[max(args.lengths)], strategies=["threshold"], lengths=args.lengths,
            num_samples=args.num_samples, batch_size=args.batch_size, progress=False,
        )  # fmt: skip
        rows.extend(threshold_rows)
        print("\nthreshold (tau = 0.9; steps unused):\n")
        print(markdown_table(threshold_rows))

    card = hf_mdm.ModelCard.from_sweep(
        rows, model=model, model_name=f"{decoder} on the {args.language} language", task_name=args.language,
        step_scaling=fits,
    )  # fmt: skip
    card.save_pretrained(output_dir)
    print(f"\nsweep card: {output_dir / 'README.md'}; probes (a rerun resumes from them): {output_dir}/probes-*.jsonl")


if __name__ == "__main__":
    main()
