"""The draw the prompted block samplers share (LLaDA 2.x's `_sample_with_temperature_topk_topp`, SDAR's sampler):
per position x0 ~ softmax(top_p(top_k(logits / T))) by `torch.multinomial` over the rows in order, with the authors'
filters in their operations and order (so that ties and roundings match), and a block's per-step reveal counts."""

import torch


def transfer_counts(block_length: int, steps: int) -> list[int]:
    """Positions revealed at each step of a block: block_length // steps, plus one for the first
    block_length % steps steps (steps > block_length: the extra steps have count 0)."""
    base, remainder = divmod(block_length, steps)
    return [base + (step < remainder) for step in range(steps)]


def top_k_filtered(logits: torch.Tensor, top_k) -> torch.Tensor:
    """Logits below the k-th largest set to -inf (ties with it kept); top_k None or <= 0: unchanged."""
    if top_k is None or top_k <= 0:
        return logits
    kth = torch.topk(logits, top_k).values[..., -1, None]
    return torch.where(logits < kth, torch.full_like(logits, float("-inf")), logits)


def top_p_filtered(logits: torch.Tensor, top_p) -> torch.Tensor:
    """The authors' nucleus filter: in descending order, drop a token once the probability before it exceeds top_p
    (the first token is always kept; transformers' `TopPLogitsWarper` sums ascending and keeps a token at exactly
    top_p); top_p None or >= 1: unchanged."""
    if top_p is None or top_p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, descending=True)
    beyond = torch.cumsum(torch.softmax(sorted_logits, dim=-1), dim=-1) > top_p
    beyond[..., 1:] = beyond[..., :-1].clone()
    beyond[..., 0] = False
    return logits.masked_fill(torch.zeros_like(logits, dtype=torch.bool).scatter(-1, order, beyond), float("-inf"))


def sample_filtered(logits: torch.Tensor, temperature: float, top_k, top_p, generator) -> tuple[torch.Tensor, ...]:
    """(tokens, their probabilities), of logits' shape without the vocabulary axis: x0 ~ softmax(top_p(top_k(
    logits / T))) (no division at T = 1), one `torch.multinomial` draw per row of the flattened (N, V) logits."""
    scores = logits.reshape(-1, logits.shape[-1])
    if temperature != 1.0:
        scores = scores / temperature
    probs = torch.softmax(top_p_filtered(top_k_filtered(scores, top_k), top_p), dim=-1)
    tokens = torch.multinomial(probs, num_samples=1, generator=generator)
    return tokens.view(logits.shape[:-1]), probs.gather(-1, tokens).view(logits.shape[:-1])


__all__ = ["sample_filtered", "top_k_filtered", "top_p_filtered", "transfer_counts"]
