"""lm-evaluation-harness on a formal language, where every number has an exact answer.

    python examples/lm_eval_formal_language.py [--docs 50] [--steps 4] [--mc_num 128]

Writes three local lm-eval tasks over a sparse bigram language (multiple choice: the true next symbols against a
corrupted copy; generation: the next symbols, exact match; perplexity: whole sequences, rolling log-likelihood) and
evaluates the language's exact oracle through the registered model type `hf-mdm`. The oracle makes the masked-diffusion
bound tight, so the word perplexity lm-eval reports must match the exact one within its Monte Carlo error.
"""

import argparse
import json
import math
import tempfile
from pathlib import Path

import lm_eval
import torch
from lm_eval.tasks import TaskManager
from lm_eval.utils import make_table

import hf_mdm
from hf_mdm.integrations.lm_eval_harness import MaskedDiffusionLM


def text(ids) -> str:
    return " ".join(map(str, ids))


def write_tasks(directory: Path, sequences: list[list[int]], vocab_size: int, prefix: int) -> None:
    def task(name, docs, body):
        (directory / f"{name}.jsonl").write_text("".join(json.dumps(doc) + "\n" for doc in docs))
        (directory / f"{name}.yaml").write_text(
            f"task: {name}\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    train: {directory / name}.jsonl\n"
            f"test_split: train\n{body}"
        )

    choice = [
        {"context": text(r[:prefix]), "label": 1,
         "choices": [" " + text([(r[prefix] + 1) % vocab_size] + r[prefix + 1 :]), " " + text(r[prefix:])]}
        for r in sequences
    ]  # fmt: skip
    task("language_choice", choice, "output_type: multiple_choice\ndoc_to_text: '{{context}}'\n"
         "doc_to_choice: '{{choices}}'\ndoc_to_target: '{{label}}'\nmetric_list:\n  - metric: acc\n")  # fmt: skip
    generation = [{"context": text(r[:prefix]), "answer": text(r[prefix:])} for r in sequences]
    task("language_continue", generation, "output_type: generate_until\ndoc_to_text: '{{context}}'\n"
         "doc_to_target: '{{answer}}'\ngeneration_kwargs:\n  until: ['\\n']\n"
         f"  max_gen_toks: {len(sequences[0]) - prefix}\nmetric_list:\n  - metric: exact_match\n")  # fmt: skip
    task("language_perplexity", [{"text": text(r)} for r in sequences],
         "output_type: loglikelihood_rolling\ndoc_to_text: ''\ndoc_to_target: '{{text}}'\n"
         "metric_list:\n  - metric: word_perplexity\n")  # fmt: skip


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=50)
    parser.add_argument("--length", type=int, default=12)
    parser.add_argument("--prefix", type=int, default=8)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--mc_num", type=int, default=128)
    args = parser.parse_args()
    language = hf_mdm.NGramLanguage(8, n=2, support=3, seed=0)
    sequences = language.sample(args.docs, args.length, torch.Generator().manual_seed(0))
    lm = MaskedDiffusionLM(pretrained=language.oracle_model(), tokenizer=language.tokenizer(), steps=args.steps,
                           strategy="confidence", mc_num=args.mc_num, batch_size=16)  # fmt: skip
    with tempfile.TemporaryDirectory() as directory:
        write_tasks(Path(directory), sequences.tolist(), language.vocab_size, args.prefix)
        results = lm_eval.simple_evaluate(
            model=lm,
            tasks=["language_choice", "language_continue", "language_perplexity"],
            task_manager=TaskManager(include_path=directory),
        )
    print(make_table(results))
    # Exact word perplexity (a word is a symbol) and the Monte Carlo error of the estimate lm-eval reported.
    exact = math.exp(-float(language.log_prob(sequences).sum()) / sequences.numel())
    rolling = [error for key, error in lm.standard_errors.items() if len(key) == 1]
    log_error = math.sqrt(sum(error**2 for error in rolling)) / sequences.numel()
    estimate = results["results"]["language_perplexity"]["word_perplexity,none"]
    print(f"word perplexity: estimate {estimate:.4f} +- {estimate * log_error:.4f} (Monte Carlo), exact {exact:.4f}")
    # Choices of probability 0 score the oracle's lowest logit, so their errors are astronomical: report the median.
    errors = sorted(error for key, error in lm.standard_errors.items() if len(key) == 2)
    print(
        f"multiple choice: median Monte Carlo standard error of a log-likelihood {errors[len(errors) // 2]:.3f} nats"
    )
    print(f"generation: {lm.nfe / lm.generated_rows:.2f} forward passes per document at steps={args.steps}")


if __name__ == "__main__":
    main()
