"""Monte Carlo log-likelihood for lm-eval: hf-mdm's estimator against LLaDA's and the time-sampled bound.

    OMP_NUM_THREADS=1 python benchmarks/lm_eval_loglikelihood.py [--mc-num 128] [--seeds 8] [--requests 16]
        [--repeats 3] [--threads 1]

Three estimators of log p(y | c) from the same masked-diffusion bound, at the same number of masked draws:
- hf-mdm: `evaluation.monte_carlo_loglikelihood` (mask sizes l stratified within groups, identical draws scored once,
  rows of several requests packed into forwards of b rows, one extra fully masked row per request for is_greedy,
  standard error from the groups);
- LLaDA: the algorithm of LLaDA's published `get_log_likelihood`, re-implemented here from its description: for
  each request, batches of b rows of that request; in each batch the mask sizes are round(linspace(k, k + (b-1)L/b))
  wrapped into 1..L with k ~ U{1..L}, uniform random masks, weight L / l;
- time-sampled: t stratified over the draws (t_j = (u + j) / N), each continuation token masked w.p. t, weight 1/t.

Accuracy uses a formal language's exact oracle (the bound is tight, so the truth is log p(y | c)): for each request
the standard deviation of the estimate over `--seeds` seeds (root mean square over requests), and the bias (mean
over seeds minus the truth) in units of its own standard error. Speed uses a tiny random `MDMForMaskedGeneration`
(`--requests` requests, best of `--repeats` rounds in which every estimator runs once), twice: continuations of
1..32 tokens (short ones repeat masks, which hf-mdm scores once), and of 32 tokens only (few repeats: the cost per
draw). b is the number of rows per forward. Prints a Markdown table.
"""

import argparse
import math
import platform
import time

import torch

from hf_mdm import MDMConfig, MDMForMaskedGeneration, NGramLanguage
from hf_mdm.evaluation.monte_carlo_loglikelihood import monte_carlo_loglikelihood, request_seed


def scored_sums(model, context, continuation, masks, mask_token_id):
    """sum over masked continuation tokens of log p(y_i | x_t), one per row of `masks` (rows, L)."""
    rows = torch.tensor(context + continuation).repeat(masks.shape[0], 1)
    rows[:, len(context) :][masks] = mask_token_id
    log_probs = model(input_ids=rows).logits[:, len(context) :].float().log_softmax(-1)
    token = log_probs.gather(-1, torch.tensor(continuation).expand(masks.shape[0], -1)[..., None]).squeeze(-1)
    return (token.double() * masks).sum(1)


@torch.no_grad()
def llada_estimate(model, context, continuation, mc_num, batch, mask_token_id, generator):
    length, values = len(continuation), []
    for _ in range(mc_num // batch):
        k = int(torch.randint(1, length + 1, (), generator=generator))
        sizes = torch.round(torch.linspace(float(k), k + (batch - 1) * (length / batch), batch)).long()
        sizes = (sizes - 1) % length + 1
        masks = torch.rand(batch, length, generator=generator).argsort(1).argsort(1) < sizes[:, None]
        values.append(scored_sums(model, context, continuation, masks, mask_token_id) * length / sizes)
    return float(torch.cat(values).mean())


@torch.no_grad()
def time_sampled_estimate(model, context, continuation, mc_num, mask_token_id, generator):
    t = ((torch.rand((), generator=generator) + torch.arange(mc_num)) / mc_num).clamp(min=1e-3)
    masks = torch.rand(mc_num, len(continuation), generator=generator) < t[:, None]
    return float((scored_sums(model, context, continuation, masks, mask_token_id) / t).mean())


def estimators(mc_num, mask_token_id):
    """name -> function(model, requests, seed) -> list of estimates."""

    def ours(batch):
        def run(model, requests, seed):
            estimates = monte_carlo_loglikelihood(
                model, requests, mask_token_id, num_samples=mc_num, batch_size=batch, seed=seed
            )
            return [estimate.value for estimate in estimates]

        return run

    def per_request(estimate, **kwargs):
        def run(model, requests, seed):
            return [
                estimate(model, c, y, mc_num, mask_token_id=mask_token_id, **kwargs,
                         generator=torch.Generator().manual_seed(request_seed(seed, c, y)))
                for c, y in requests
            ]  # fmt: skip

        return run

    return {
        "hf-mdm (stratified l, packed rows), b=32": ours(32),
        "hf-mdm (stratified l, packed rows), b=128": ours(128),
        "LLaDA get_log_likelihood, b=32": per_request(llada_estimate, batch=32),
        "LLaDA get_log_likelihood, b=128": per_request(llada_estimate, batch=128),
        "time-sampled (stratified t)": per_request(time_sampled_estimate),
    }


def make_requests(language, count, lengths, seed=0):
    sequences = language.sample(count, 12 + max(lengths), torch.Generator().manual_seed(seed)).tolist()
    return [(row[:12], row[12 : 12 + lengths[k % len(lengths)]]) for k, row in enumerate(sequences)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mc-num", type=int, default=128)
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    language = NGramLanguage(8, n=2, seed=0)
    oracle = language.oracle_model()
    mask = oracle.config.mask_token_id
    accuracy_requests = make_requests(language, 6, [2, 4, 8, 16, 24, 32], seed=1)
    truths = [
        float(language.log_prob(torch.tensor([c + y])) - language.log_prob(torch.tensor([c])))
        for c, y in accuracy_requests
    ]
    config = MDMConfig(vocab_size=language.vocab_size + 4, hidden_size=128, intermediate_size=256,
                       num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=4,
                       max_position_embeddings=128, mask_token_id=mask)  # fmt: skip
    torch.manual_seed(0)
    model = MDMForMaskedGeneration(config).eval()
    speed_requests = {
        "mixed": make_requests(language, args.requests, [1, 2, 4, 8, 16, 32], seed=2),
        "long": make_requests(language, args.requests, [32], seed=3),
    }

    print(f"torch {torch.__version__}, {args.threads} thread(s), {platform.processor() or platform.machine()}, ")
    print(f"{args.mc_num} draws per request; accuracy: bigram oracle (V=8), continuations of 2..32 tokens after 12;")
    print(f"speed: tiny MDM (4 layers, hidden 128), {args.requests} requests after 12 tokens of context, with")
    print(f"continuations of 1..32 tokens (mixed) or of 32 tokens (long); best of {args.repeats} interleaved rounds;")
    print("b = rows per forward\n")
    print(
        "| estimator | requests/s, mixed | requests/s, long | std over seeds (nats, RMS over requests) "
        "| worst bias / its SE |"
    )
    print("|---|---:|---:|---:|---:|")
    # Rounds in which every estimator runs once, so that a machine whose load drifts slows them alike; best round.
    methods = estimators(args.mc_num, mask)
    seconds = {(name, kind): math.inf for name in methods for kind in speed_requests}
    for _ in range(args.repeats):
        for (name, kind), best in seconds.items():
            start = time.perf_counter()
            methods[name](model, speed_requests[kind], 0)
            seconds[name, kind] = min(best, time.perf_counter() - start)
    for name, estimate in methods.items():
        runs = torch.tensor([estimate(oracle, accuracy_requests, seed) for seed in range(args.seeds)])
        spread = runs.std(0)
        bias_z = (runs.mean(0) - torch.tensor(truths)).abs() / (spread / math.sqrt(args.seeds)).clamp(min=1e-9)
        rms = float(spread.pow(2).mean().sqrt())
        speeds = " | ".join(f"{args.requests / seconds[name, kind]:.1f}" for kind in speed_requests)
        print(f"| {name} | {speeds} | {rms:.3f} | {float(bias_z.max()):.1f} |")
    reported = torch.tensor(
        [
            [e.standard_error for e in monte_carlo_loglikelihood(oracle, accuracy_requests, mask, args.mc_num, seed=s)]
            for s in range(args.seeds)
        ]
    )
    print(
        f"\nhf-mdm's reported standard error (RMS over requests and seeds): {float(reported.pow(2).mean().sqrt()):.3f}"
    )


if __name__ == "__main__":
    main()
