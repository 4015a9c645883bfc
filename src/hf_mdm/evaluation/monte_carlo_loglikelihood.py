"""Monte Carlo log-likelihood of a continuation under a masked diffusion LM, with its standard error.

For a context c and a continuation y of L tokens, masking only continuation tokens, the masked-diffusion bound is

    log p(y | c) >= E_l E_{M: |M| = l} [ (L / l) * sum_{i in M} log p(y_i | c, y with M masked) ],   l ~ U{1..L},

M a uniformly random set of l continuation positions (LLaDA's form of the bound). It has the same expectation as the
time form E_t[(1/t) sum_{i masked} log p(y_i | x_t)] with each token masked w.p. t (integrate t out: a mask of size m
gets weight (m-1)!(L-m)!/L! in both), and equals the average over decoding orders of the any-order autoregressive
log-likelihood, so it is exact (= log p(y | c)) for the true posterior. We sample l, not t, because the weight L/l is
bounded by L where 1/t is not: at 128 samples its standard deviation is about 4x lower (docs/benchmarks.md).

Variance reduction and the standard error: the `num_samples` draws form `num_groups` independent groups; within a
group of n draws the mask sizes are systematic, l_j = 1 + floor((u + j) L / n) with one u ~ U[0, 1) (each l_j is
marginally uniform on 1..L, and the group covers the sizes evenly), and each mask is an independent uniform subset of
its size. The estimate is the mean of the group means; its standard error is their standard deviation over
sqrt(num_groups), an unbiased variance estimate that accounts for the stratification.
"""

import hashlib
import itertools
from dataclasses import dataclass

import torch
from torch.nn.utils.rnn import pad_sequence

from ..generation.caches import CACHES
from ..generation.denoisers import DENOISERS, DenoiseRequest


@dataclass
class LoglikelihoodEstimate:
    """log p(continuation | context) estimated from the bound: `value` and `standard_error` in nats.

    is_greedy: whether one-step greedy decoding of the fully masked continuation (argmax of p(y_i | c) at every
    position at once) reproduces the continuation.
    """

    value: float
    standard_error: float
    is_greedy: bool
    num_tokens: int


def request_seed(seed: int, *token_lists) -> int:
    """A 63-bit seed from `seed` and token ids: the same request gets the same draws in any batch or order."""
    payload = repr((int(seed), *(list(map(int, tokens)) for tokens in token_lists))).encode()
    return int.from_bytes(hashlib.sha256(payload).digest()[:8], "little") >> 1


def _check_arguments(num_samples: int, num_groups: int, batch_size: int) -> None:
    if num_groups < 2:
        raise ValueError(f"num_groups must be >= 2 (the standard error comes from the groups), got {num_groups}.")
    if num_samples < num_groups or num_samples % num_groups:
        raise ValueError(
            f"num_samples={num_samples} must be a positive multiple of num_groups={num_groups}; e.g. "
            f"num_samples={max(num_groups, num_samples // num_groups * num_groups)}."
        )
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1 row per forward, got {batch_size}.")


def stratified_mask_sizes(length: int, num_samples: int, num_groups: int, generator) -> torch.LongTensor:
    """(num_samples,) mask sizes in 1..length: per group of n draws, l_j = 1 + floor((u + j) * length / n)."""
    per_group = num_samples // num_groups
    offsets = torch.rand(num_groups, 1, generator=generator, dtype=torch.float64)
    grid = (offsets + torch.arange(per_group, dtype=torch.float64)) * length / per_group
    return (1 + grid.floor().long()).clamp(max=length).reshape(-1)


def random_masks(sizes: torch.LongTensor, length: int, generator) -> torch.BoolTensor:
    """(len(sizes), length) masks, row r a uniformly random subset of `sizes[r]` positions."""
    ranks = torch.rand(len(sizes), length, generator=generator).argsort(1).argsort(1)
    return ranks < sizes[:, None]


def _canvas_rows(context, continuation, num_samples, num_groups, mask_token_id, generator):
    """The request's `num_samples` masked draws, then one row with the whole continuation masked (for is_greedy):
    (rows, masks over the canvas, weights L / l with 0 on the last row), and the unmasked tokens."""
    length = len(continuation)
    sizes = stratified_mask_sizes(length, num_samples, num_groups, generator)
    masks = torch.zeros(num_samples + 1, len(context) + length, dtype=torch.bool)
    masks[:, len(context) :] = torch.cat([random_masks(sizes, length, generator), masks.new_ones(1, length)])
    tokens = torch.tensor(list(context) + list(continuation), dtype=torch.long)
    rows = torch.where(masks, mask_token_id, tokens)
    weights = torch.cat([length / sizes.double(), torch.zeros(1, dtype=torch.float64)])
    return rows, masks, weights, tokens


def _scored_log_probs(denoiser, rows, attention_mask, span: slice) -> torch.Tensor:
    """log p(x_i | x_t) of every vocabulary entry at canvas positions `span`, (R, span, vocab) in float32."""
    count, length = rows.shape
    keep = torch.arange(span.start, span.stop, device=rows.device)
    request = DenoiseRequest(
        input_ids=rows,
        attention_mask=attention_mask,
        position_ids=(attention_mask.cumsum(1) - 1).clamp(min=0),
        keep=keep,
        block_starts=rows.new_zeros(count),
        block_end=length,
        rows=torch.arange(count, device=rows.device),
        batch_size=count,
        cache=CACHES.build("none"),
        refresh_cache=False,
    )
    return denoiser.logits(request).float().log_softmax(-1)


@torch.no_grad()
def monte_carlo_loglikelihood(
    model,
    requests: list[tuple[list[int], list[int]]],
    mask_token_id: int,
    num_samples: int = 128,
    num_groups: int = 8,
    batch_size: int = 128,
    seed: int = 0,
) -> list[LoglikelihoodEstimate]:
    """Estimate log p(continuation | context) for each `(context_ids, continuation_ids)` request (see module doc).

    Args:
        model: a masked LM returning logits of the token at each position: `MDMForMaskedGeneration`, a model given
            `generate()` by `enable_diffusion_generation`, or a language's `oracle_model()`. It is run through its
            registered denoiser adapter, so padding and position ids are handled as in `generate()`.
        requests: token ids; each continuation must be non-empty.
        mask_token_id: the model's [MASK] id.
        num_samples: masked draws per request (a multiple of `num_groups`).
        num_groups: independent groups the standard error is computed from (>= 2).
        batch_size: rows per forward pass; the rows of several requests share a forward, right-padded.
        seed: a request's draws depend only on `seed` and its tokens (not on its batch or its neighbours).
    """
    _check_arguments(num_samples, num_groups, batch_size)
    for index, (context, continuation) in enumerate(requests):
        if len(continuation) == 0:
            raise ValueError(f"Request {index} has an empty continuation; there is nothing to score.")
    device = getattr(model, "device", None) or next(model.parameters()).device
    denoiser = DENOISERS.build(getattr(model, "denoiser_adapter", "masked_lm"), model=model)
    was_training = getattr(model, "training", False)
    model.eval()

    # Each request's rows are drawn with its own generator, lazily, longest requests first (less padding).
    def draws():
        for index in sorted(range(len(requests)), key=lambda k: -sum(map(len, requests[k]))):
            context, continuation = requests[index]
            generator = torch.Generator().manual_seed(request_seed(seed, context, continuation))
            rows, masks, weights, tokens = _canvas_rows(
                context, continuation, num_samples, num_groups, mask_token_id, generator
            )
            for sample in range(rows.shape[0]):
                yield index, sample, rows[sample], masks[sample], weights[sample], tokens

    totals = [torch.zeros(num_samples, dtype=torch.float64) for _ in requests]
    greedy = [False] * len(requests)
    rows_left = draws()
    while chunk := list(itertools.islice(rows_left, batch_size)):
        indices, samples, rows, masks, weights, tokens = zip(*chunk)
        attention_mask = pad_sequence([torch.ones_like(row) for row in rows], batch_first=True)
        rows = pad_sequence(rows, batch_first=True, padding_value=mask_token_id)
        masks = pad_sequence(masks, batch_first=True)
        tokens = pad_sequence(tokens, batch_first=True)
        span = slice(min(len(requests[index][0]) for index in indices), rows.shape[1])
        log_probs = _scored_log_probs(denoiser, rows.to(device), attention_mask.to(device), span)
        tokens, masks = tokens[:, span].to(device), masks[:, span].to(device)
        scored = log_probs.gather(-1, tokens[..., None]).squeeze(-1).double().masked_fill(~masks, 0).sum(1)
        values = (scored.cpu() * torch.stack(weights)).tolist()
        reproduced = ((log_probs.argmax(-1) == tokens) | ~masks).all(1).tolist()
        for index, sample, value, hit in zip(indices, samples, values, reproduced):
            if sample == num_samples:  # the fully masked row
                greedy[index] = hit
            else:
                totals[index][sample] = value
    model.train(was_training)

    results = []
    for index, (_, continuation) in enumerate(requests):
        group_means = totals[index].view(num_groups, -1).mean(1)
        results.append(
            LoglikelihoodEstimate(
                value=float(group_means.mean()),
                standard_error=float(group_means.std() / num_groups**0.5),
                is_greedy=greedy[index],
                num_tokens=len(continuation),
            )
        )
    return results


__all__ = [
    "LoglikelihoodEstimate",
    "monte_carlo_loglikelihood",
    "random_masks",
    "request_seed",
    "stratified_mask_sizes",
]
