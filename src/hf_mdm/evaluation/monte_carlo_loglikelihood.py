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

Block-diffusion models (`MDMConfig(block_size=B)`): log p(y | c) = sum_k log p(y_k | c, y_<k) over the continuation's
parts y_k in the model's blocks (canvas position // B), and the bound above holds for each part given the clean
earlier ones, so a draw masks every part on its own (size l_k ~ the systematic draws above over 1..L_k, a uniform
subset of that size) and scores

    sum_k (L_k / l_k) * sum_{i in M_k} log p(y_i | c, y_<k, y_k with M_k masked),

every part predicted from itself and the clean earlier blocks in one forward (the model's `clean_input_ids`), as the
model was trained and decodes; never from noisy earlier blocks. With one part (a bidirectional model) it is the bound
above. `is_greedy` then asks whether each block's greedy prediction, given the true earlier blocks, is the
continuation.

Cost: a draw's score is a deterministic function of its mask, so identical masks are one forward row (scored once,
counted as often as drawn): a 1-token continuation costs one row instead of num_samples + 1, a 2-token one three, and
the estimate is the same. Rows of several requests share a forward, longest first; log p(y_i | x_t) is the target's
logit minus the logsumexp of its row, without materialising a log-softmax over the vocabulary.
"""

import functools
import hashlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..generation.caches import CACHES
from ..generation.denoisers import DENOISERS, DenoiseRequest, model_block_size


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


def continuation_parts(context_length: int, length: int, block_size: int | None) -> list[int]:
    """The lengths of the continuation's parts in the model's blocks (canvas position // `block_size`), in order; one
    part, the whole continuation, for a bidirectional model."""
    if block_size is None:
        return [length]
    first = min(length, -context_length % block_size)  # the rest of the block the context ends in
    rest = [block_size] * ((length - first) // block_size) + [(length - first) % block_size]
    return [part for part in [first, *rest] if part]


def mask_weights(masks: torch.BoolTensor, parts: torch.LongTensor) -> torch.Tensor:
    """(R, n) L_k / l_k at each masked token (its part's length over the masked count in its part), 0 elsewhere;
    `parts` (n,) numbers each canvas position's part, -1 in the context."""
    one_hot = F.one_hot(parts.clamp(min=0)).double() * (parts >= 0)[:, None]  # (n, parts)
    per_part = one_hot.sum(0) / (masks.double() @ one_hot).clamp(min=1)
    return (per_part @ one_hot.T) * masks


@dataclass
class _RequestDraws:
    """One request's draws as distinct masks (identical draws share one forward row, and the same score).

    masks: (u, n) the distinct masks over the canvas (context then continuation), sorted, so the last one masks the
    whole continuation (the draw of is_greedy). tokens: (n,) the unmasked canvas. parts: (n,) the continuation part
    (model block) of each position, -1 in the context. draw_masks: (num_samples,) the mask of each draw. scores: (u,)
    each mask's sum over masked i of (L_k / l_k) * log p(x_i | canvas), filled in by `_score_canvases`.
    """

    masks: torch.BoolTensor
    tokens: torch.LongTensor
    parts: torch.LongTensor
    context_length: int
    draw_masks: torch.LongTensor
    scores: torch.Tensor
    is_greedy: bool = False

    @classmethod
    def sample(cls, context, continuation, num_samples, num_groups, generator, block_size=None) -> "_RequestDraws":
        lengths = continuation_parts(len(context), len(continuation), block_size)
        part_masks = []
        for length in lengths:  # each part drawn on its own
            sizes = stratified_mask_sizes(length, num_samples, num_groups, generator)
            part_masks.append(random_masks(sizes, length, generator))
        draws = torch.cat([torch.cat(part_masks, 1), torch.ones(1, len(continuation), dtype=torch.bool)])
        distinct, draw_masks = torch.unique(draws, dim=0, return_inverse=True)  # sorted: the all-True row is last
        parts = torch.repeat_interleave(torch.arange(len(lengths)), torch.tensor(lengths))
        return cls(
            masks=torch.cat([torch.zeros(len(distinct), len(context), dtype=torch.bool), distinct], 1),
            tokens=torch.tensor(list(context) + list(continuation), dtype=torch.long),
            parts=torch.cat([torch.full((len(context),), -1), parts]),
            context_length=len(context),
            draw_masks=draw_masks[:-1],
            scores=torch.zeros(len(distinct), dtype=torch.float64),
        )


def _chunks(draws: list[_RequestDraws], batch_size: int):
    """Lists of (request, first canvas, end canvas) with at most `batch_size` canvases in all, longest requests first
    (rows of one length share a forward without padding)."""
    chunk, room = [], batch_size
    for index in sorted(range(len(draws)), key=lambda k: -len(draws[k].tokens)):
        start, count = 0, len(draws[index].masks)
        while start < count:
            take = min(room, count - start)
            chunk.append((index, start, start + take))
            start, room = start + take, room - take
            if room == 0:
                yield chunk
                chunk, room = [], batch_size
    if chunk:
        yield chunk


def _padded(blocks: list[torch.Tensor], width: int, value) -> torch.Tensor:
    """(rows, n_k) blocks right-padded with `value` to `width` columns and stacked."""
    return torch.cat([F.pad(block, (0, width - block.shape[1]), value=value) for block in blocks])


def _score_canvases(scored_logits, draws: list[_RequestDraws], batch_size: int, mask_token_id: int, device) -> None:
    """Fill each request's `scores` and `is_greedy`: one forward per chunk of canvases, right-padded to its longest;
    log p(x_i | x_t) = logit(x_i) - logsumexp(logits), the LM head run from the chunk's first continuation position
    (`scored_logits(rows, attention_mask, clean canvases, span, t)`, t (rows,) each canvas's masked fraction of its
    continuation: the time a time-conditioned model is conditioned on)."""
    for chunk in _chunks(draws, batch_size):
        width = max(len(draws[index].tokens) for index, _, _ in chunk)
        masks = _padded([draws[k].masks[a:b] for k, a, b in chunk], width, False)
        tokens = _padded([draws[k].tokens.expand(b - a, -1) for k, a, b in chunk], width, mask_token_id)
        rows = torch.where(masks, mask_token_id, tokens)  # right padding: [MASK], outside the attention mask
        attention_mask = _padded(
            [torch.ones_like(draws[k].masks[a:b], dtype=torch.long) for k, a, b in chunk], width, 0
        )
        weights = _padded([mask_weights(draws[k].masks[a:b], draws[k].parts) for k, a, b in chunk], width, 0.0)
        span = slice(min(draws[index].context_length for index, _, _ in chunk), width)
        continuation_lengths = torch.cat(
            [torch.full((b - a,), len(draws[k].tokens) - draws[k].context_length) for k, a, b in chunk]
        )
        t = masks.sum(1) / continuation_lengths
        logits = scored_logits(rows.to(device), attention_mask.to(device), tokens.to(device), span, t.to(device))
        tokens, masks = tokens[:, span].to(device), masks[:, span].to(device)
        token_log_probs = logits.gather(-1, tokens[..., None]).squeeze(-1) - logits.logsumexp(-1)
        weighted = token_log_probs.double().masked_fill(~masks, 0) * weights[:, span].to(device)
        scores = weighted.sum(1).cpu()
        offset, fully_masked = 0, []
        for index, start, end in chunk:
            draws[index].scores[start:end] = scores[offset : offset + end - start]
            if end == len(draws[index].masks):  # the chunk holds the request's last mask, the fully masked one
                fully_masked.append((index, offset + end - start - 1))
            offset += end - start
        if fully_masked:
            rows_of_full = torch.tensor([row for _, row in fully_masked], device=logits.device)
            hits = ((logits[rows_of_full].argmax(-1) == tokens[rows_of_full]) | ~masks[rows_of_full]).all(1)
            for (index, _), hit in zip(fully_masked, hits.tolist()):
                draws[index].is_greedy = hit


def _block_objective_logits(model, rows, attention_mask, clean, span: slice, t) -> torch.Tensor:
    """A block-diffusion model's logits of p(x_i | x_t) at canvas positions `span`, (R, span, vocab) in float32: each
    block given the clean earlier blocks (one forward next to the clean canvases; blocks masked at several times, so
    `t` is not passed: a time-conditioned block model refuses the forward)."""
    keep = torch.arange(span.start, span.stop, device=rows.device)
    outputs = model(input_ids=rows, attention_mask=attention_mask, clean_input_ids=clean, logits_to_keep=keep)
    return outputs.logits.float()


def _denoiser_logits(denoiser, rows, attention_mask, clean, span: slice, t) -> torch.Tensor:
    """Logits of p(x_i | x_t) at canvas positions `span`, (R, span, vocab) in float32, through the model's denoiser
    adapter (a bidirectional model sees the whole canvas; `clean` is not needed) at times `t` (R,)."""
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
        t=t,
    )
    return denoiser.logits(request).float()


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
            registered denoiser adapter, so padding and position ids are handled as in `generate()`; a
            block-diffusion model is scored block by block given the clean earlier blocks (see the module doc).
        requests: token ids; each continuation must be non-empty.
        mask_token_id: the model's [MASK] id.
        num_samples: masked draws per request (a multiple of `num_groups`).
        num_groups: independent groups the standard error is computed from (>= 2).
        batch_size: canvases per forward pass; the canvases of several requests share a forward, right-padded.
            Identical draws (frequent for short continuations: a 1-token continuation has one canvas) are one row.
        seed: a request's draws depend only on `seed` and its tokens (not on its batch or its neighbours).
    """
    _check_arguments(num_samples, num_groups, batch_size)
    for index, (context, continuation) in enumerate(requests):
        if len(continuation) == 0:
            raise ValueError(f"Request {index} has an empty continuation; there is nothing to score.")
    device = getattr(model, "device", None) or next(model.parameters()).device
    block_size = model_block_size(model)
    if block_size is not None:
        scored_logits = functools.partial(_block_objective_logits, model)
    else:
        denoiser = DENOISERS.build(getattr(model, "denoiser_adapter", "masked_lm"), model=model)
        scored_logits = functools.partial(_denoiser_logits, denoiser)
    draws = [
        _RequestDraws.sample(
            context,
            continuation,
            num_samples,
            num_groups,
            torch.Generator().manual_seed(request_seed(seed, context, continuation)),
            block_size,
        )
        for context, continuation in requests
    ]
    was_training = getattr(model, "training", False)
    model.eval()
    try:
        _score_canvases(scored_logits, draws, batch_size, mask_token_id, device)
    finally:
        model.train(was_training)

    results = []
    for (_, continuation), draw in zip(requests, draws):
        values = draw.scores[draw.draw_masks]
        group_means = values.view(num_groups, -1).mean(1)
        results.append(
            LoglikelihoodEstimate(
                value=float(group_means.mean()),
                standard_error=float(group_means.std() / num_groups**0.5),
                is_greedy=draw.is_greedy,
                num_tokens=len(continuation),
            )
        )
    return results


__all__ = [
    "LoglikelihoodEstimate",
    "continuation_parts",
    "mask_weights",
    "monte_carlo_loglikelihood",
    "random_masks",
    "request_seed",
    "stratified_mask_sizes",
]
