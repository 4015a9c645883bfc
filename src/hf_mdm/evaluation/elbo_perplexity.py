"""elbo_perplexity: the Monte-Carlo NELBO upper bound on a masked LM's perplexity, with its standard error."""

import math

import torch
from transformers.utils import logging

from ..generation.denoisers import model_block_size
from ..masked_diffusion_objective import clean_sequence
from ..schedules import get_schedule
from ..training import DataCollatorForMaskedDiffusion, masked_diffusion_loss


logger = logging.get_logger(__name__)


@torch.no_grad()
def elbo_perplexity(
    model,
    dataset,
    num_samples: int = 8,
    *,
    tokenizer,
    batch_size: int = 32,
    schedule=None,
    eps: float = 1e-3,
    seed: int = 0,
) -> dict:
    r"""Per-token NELBO of `model` on `dataset` and the perplexity bound exp(NELBO).

    For each sequence x (L_x real tokens) it averages `num_samples` draws of the masked-diffusion loss

        N(x) = w(t) * sum_{i masked in x_t} -log p(x_i | x_t),    t ~ U[eps, 1),  w(t) = -alpha'(t) / (1 - alpha(t)),

    whose expectation upper-bounds -log p(x) (up to the O(eps) truncation of the time integral), with the training
    collator (same masking; stratified t, the draws of one sequence spread over [eps, 1)) and `masked_diffusion_loss`.
    The result is the token-weighted ratio NELBO = sum_x N(x) / sum_x L_x; its standard error is that of a ratio
    estimator over sequences (it covers both the Monte-Carlo noise and the choice of sequences), and the bound's error
    follows by the delta method. In expectation the bound does not depend on the schedule; its variance does.

    Works for `MDMForMaskedGeneration`, an `OracleDenoiser`, and stock masked LMs (BERT, ...): any model called as
    `model(input_ids=..., attention_mask=...)` that returns logits of the token at each position. A block-diffusion
    model (`MDMConfig(block_size=B)`) is scored on its own bound, that of BD3-LM:

        -log p(x) = sum_k -log p(x_k | x_<k) <= sum_k E_t[ w(t) sum_{i masked in block k} -log p(x_i | x_t^k, x_<k) ]

    each block masked at its own time (the collator with the model's block size) and predicted from itself and the
    clean earlier blocks (the model's forward with `clean_input_ids`), never from noisy earlier blocks.

    Args:
        model: the masked LM.
        dataset: a `datasets.Dataset` (or list of dicts) with `input_ids` (or `text`), as for the collator.
        num_samples: draws per sequence.
        tokenizer: the tokenizer with the mask and pad tokens the collator needs.
        batch_size: rows per forward pass (a multiple of `num_samples` works best).
        schedule: the noise schedule; default the model's training schedule (`config.noise_schedule`), else linear.
        eps: the smallest diffusion time.
        seed: seed of the masks and times.

    Returns:
        dict with nelbo, nelbo_standard_error (nats per token), perplexity_bound, perplexity_bound_standard_error,
        num_sequences, num_tokens, num_samples.
    """
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}.")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}.")
    if dataset is None or len(dataset) == 0:
        raise ValueError("elbo_perplexity got an empty dataset; pass at least one sequence.")
    if schedule is None:
        schedule = getattr(getattr(model, "config", None), "noise_schedule", "linear")
    schedule = get_schedule(schedule)
    block_size = model_block_size(model)
    collator = DataCollatorForMaskedDiffusion(
        tokenizer, schedule=schedule, eps=eps, generator=torch.Generator().manual_seed(seed), block_size=block_size
    )
    examples = [dict(example) for example in dataset]
    sequences_per_batch = max(1, batch_size // num_samples)
    device = getattr(model, "device", None) or next(model.parameters()).device
    was_training = getattr(model, "training", False)
    model.eval()

    totals, lengths = [], []
    for start in range(0, len(examples), sequences_per_batch):
        chunk = examples[start : start + sequences_per_batch]
        # Row b = k * len(chunk) + j holds sequence j: its draws get times t_b spread over the whole range.
        batch = {name: value.to(device) for name, value in collator(chunk * num_samples).items()}
        inputs = dict(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        if getattr(getattr(model, "config", None), "time_conditioning", False):  # SEDD: conditioned on sigma(t)
            inputs["t"] = batch["t"]
        if block_size is not None:  # each block given the clean earlier ones
            inputs["clean_input_ids"] = clean_sequence(batch["input_ids"], batch["labels"])
        logits = model(**inputs).logits
        # One draw of N(x) per row: sum over its masked tokens of w(t) * -log p(x_i | x_t) (t: the token's block's).
        row_nelbo = masked_diffusion_loss(
            logits,
            batch["labels"],
            t=batch["t"],
            attention_mask=batch["attention_mask"],
            schedule=schedule,
            reduction="none",
            block_size=block_size,
        )
        totals.append(row_nelbo.double().cpu().view(num_samples, len(chunk)).mean(0))
        row_length = batch["attention_mask"].sum(-1).double().cpu()
        lengths.append(row_length[: len(chunk)])
    model.train(was_training)

    totals, lengths = torch.cat(totals), torch.cat(lengths)
    nelbo = float(totals.sum() / lengths.sum())
    count = totals.shape[0]
    if count > 1:
        residuals = totals - nelbo * lengths
        standard_error = math.sqrt(float(residuals.pow(2).sum()) / (count * (count - 1))) / float(lengths.mean())
    else:
        logger.warning("elbo_perplexity: one sequence gives no standard error; pass at least two.")
        standard_error = math.nan
    bound = math.exp(nelbo)
    return {
        "nelbo": nelbo,
        "nelbo_standard_error": standard_error,
        "perplexity_bound": bound,
        "perplexity_bound_standard_error": bound * standard_error,
        "num_sequences": count,
        "num_tokens": int(lengths.sum()),
        "num_samples": num_samples,
    }
