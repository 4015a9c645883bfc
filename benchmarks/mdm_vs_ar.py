"""MDM vs AR: latency at matched token error and at matched sequence error (issue I, point 4).

A masked diffusion LM reveals many tokens per step, so at the steps where its token error (TER gap, the log-perplexity
under the true language minus the entropy rate) matches the autoregressive model's it can be much faster (SEDD vs
GPT-2: up to 4.5x lower latency); at matched sequence error (SER, the whole sequence valid) the steps it needs grow
about linearly with the length and the advantage shrinks or disappears.

One `sweep_steps` runs the MDM over a grid of steps and the AR model (`autoregressive_model=`, transformers'
`generate` with its KV cache, checked here) on the same formal-language task, at the same batch size, in one process;
`latency_at_matched_quality` then reads, per metric, the smallest swept steps at which the MDM is not significantly
worse than the AR model, with its latency per batch, NFE, and the ratio AR latency / MDM latency.

    OMP_NUM_THREADS=1 python benchmarks/mdm_vs_ar.py --mdm outputs/reproduce/hmm/models/mdm \\
        --autoregressive outputs/reproduce/hmm/models/autoregressive --language hmm [--output rows.jsonl]

Both folders hold models trained on `research_language(name).tokenizer()` ids. `--output` keeps the rows as the
sweep's JSON lines (`hf_mdm.evaluation.read_sweep_rows(path)` reads them back for `ModelCard.from_sweep`; `--resume`
continues a stopped run).
"""

import argparse
import os
import platform
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

import hf_mdm
from hf_mdm.evaluation import LanguageTask, latency_at_matched_quality, markdown_table, matched_quality_table
from hf_mdm.evaluation.latency_at_matched_quality import describe_ratio
from hf_mdm.languages import RESEARCH_LANGUAGES, research_language


GOAL = 4.5  # the goal: at least this many times lower latency at matched TER


def uses_kv_cache(model, tokenizer) -> bool:
    """Whether `model.generate` feeds one new token per forward after the prompt (it reuses its KV cache)."""
    lengths = []
    handle = model.register_forward_pre_hook(
        lambda module, args, kwargs: lengths.append(kwargs["input_ids"].shape[1]), with_kwargs=True
    )
    try:
        with torch.no_grad():
            model.generate(
                input_ids=torch.full((1, 1), tokenizer.bos_token_id, device=model.device),
                min_new_tokens=4, max_new_tokens=4, do_sample=False, pad_token_id=tokenizer.pad_token_id,
            )  # fmt: skip
    finally:
        handle.remove()
    return len(lengths) == 4 and all(length == 1 for length in lengths[1:])


def machine() -> str:
    cpuinfo = Path("/proc/cpuinfo")  # Linux; elsewhere platform's words
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return f"{names[0] if names else platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs"


def check_fits(model, name: str, vocab: int, positions: int) -> None:
    """Fail before the sweep when a checkpoint was not trained on this language's tokenizer or is too short."""
    config = model.config
    if config.vocab_size < vocab:
        raise SystemExit(
            f"{name} has vocab_size {config.vocab_size} < {vocab}, the language tokenizer's size: it was not trained "
            "on this --language."
        )
    if config.max_position_embeddings < positions:
        raise SystemExit(f"{name} has {config.max_position_embeddings} positions; --length needs {positions}.")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mdm", required=True, help="MDMForMaskedGeneration folder")
    parser.add_argument("--autoregressive", required=True, help="causal LM folder (AutoModelForCausalLM)")
    parser.add_argument("--language", default="hmm", choices=sorted(RESEARCH_LANGUAGES))
    parser.add_argument("--length", type=int, default=256)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--num_samples", type=int, default=200)
    parser.add_argument("--strategy", default="confidence")
    parser.add_argument("--steps", nargs="+", type=int, default=[4, 8, 16, 32, 64, 128, 256])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default=None, help="JSON-lines file for the sweep rows")
    parser.add_argument("--resume", action="store_true", help="keep the cells already in --output")
    args = parser.parse_args()

    language = research_language(args.language)
    tokenizer = language.tokenizer()
    mdm = hf_mdm.MDMForMaskedGeneration.from_pretrained(args.mdm).to(args.device).eval()
    autoregressive = AutoModelForCausalLM.from_pretrained(args.autoregressive).to(args.device).eval()
    check_fits(mdm, args.mdm, len(tokenizer), args.length)
    check_fits(autoregressive, args.autoregressive, len(tokenizer), args.length + 1)  # + the <bos> prompt
    if not uses_kv_cache(autoregressive, tokenizer):
        raise SystemExit(f"{args.autoregressive}: generate() does not reuse its KV cache; set use_cache=True.")
    print(
        f"{args.language} language ({hf_mdm.languages.describe_research_language(args.language)}), length "
        f"{args.length}, {args.num_samples} samples per cell, batch {args.batch_size}\n"
        f"MDM {args.mdm} ({mdm.num_parameters() / 1e6:.2f}M parameters), strategy {args.strategy}; AR "
        f"{args.autoregressive} ({autoregressive.num_parameters() / 1e6:.2f}M parameters), KV cache: on (verified: "
        "one token per forward after the prompt)\n"
        f"torch {torch.__version__}, {torch.get_num_threads()} threads (OMP_NUM_THREADS="
        f"{os.environ.get('OMP_NUM_THREADS', 'unset')}), {args.device}, {machine()}\n",
        flush=True,
    )

    rows = hf_mdm.sweep_steps(
        mdm, tokenizer, LanguageTask(language, name=args.language), steps=args.steps, strategies=[args.strategy],
        lengths=[args.length], num_samples=args.num_samples, seed=args.seed, batch_size=args.batch_size,
        autoregressive_model=autoregressive, output_path=args.output, resume=args.resume,
    )  # fmt: skip
    print(markdown_table(list(rows)))
    results = latency_at_matched_quality(rows, strategy=args.strategy)
    print("\nLatency per batch at matched quality (matched: the 95% interval of MDM - AR reaches 0):\n")
    print(matched_quality_table(results))
    print()
    for point in results:
        if not point.reached:
            verdict = f"not reached by {point.max_steps} steps"
        else:
            interval = point.latency_ratio_interval
            verdict = f"{describe_ratio(point)} lower latency"
            if point.metric == "ter_gap":
                low, high = interval or (point.latency_ratio, point.latency_ratio)
                met = "met" if low >= GOAL else "not met" if high < GOAL else "not decided (the interval holds it)"
                verdict += f": the goal of >= {GOAL}x is {met}"
            if point.below_entropy_rate:
                verdict += " (but its samples are below the entropy rate: see the note under the table)"
        print(f"At matched {'TER' if point.metric == 'ter_gap' else 'SER'}: {verdict}.")
    if args.output:
        print(f"\nrows: {args.output} (hf_mdm.evaluation.read_sweep_rows)")


if __name__ == "__main__":
    main()
