"""The masked-diffusion objective (NELBO), usable inside our model and as `Trainer(compute_loss_func=...)`."""

import torch
import torch.nn.functional as F

from ..schedules import NoiseSchedule, get_schedule


IGNORE_INDEX = -100


def check_diffusion_times(t: torch.Tensor, batch_size: int) -> torch.Tensor:
    """`t` flattened to one time per row, or a ValueError when a row has none or a time is outside (0, 1]."""
    t = t.reshape(-1)
    if t.shape[0] != batch_size:
        raise ValueError(f"t has {t.shape[0]} values for a batch of {batch_size} rows; give one per row.")
    if bool(((t <= 0) | (t > 1)).any()):
        raise ValueError(f"t must lie in (0, 1], got values in [{float(t.min())}, {float(t.max())}].")
    return t


def masked_diffusion_loss(
    outputs,
    labels: torch.LongTensor,
    num_items_in_batch: torch.Tensor | int | None = None,
    *,
    t: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    schedule: "str | NoiseSchedule" = "linear",
    weighting: str = "elbo",
) -> torch.Tensor:
    r"""Per-token masked-diffusion NELBO of a batch noised by `DataCollatorForMaskedDiffusion`.

        loss = sum_b w(t_b) * sum_{i masked in b} -log p(x_i | x_t) / sum_b L_b,    w(t) = -alpha'(t) / (1 - alpha(t))

    with L_b the real (non-pad) tokens of row b, so `exp(loss)` is a Monte-Carlo estimate of an upper bound on the
    perplexity. `weighting="uniform"` gives the plain masked cross-entropy (CE summed over masked tokens / count).

    Args:
        outputs: a model output with `logits` (and, from `enable_diffusion_training`, `t` and `attention_mask`), or
            the logits tensor itself, shape (batch, length, vocab).
        labels: target ids at masked positions, -100 elsewhere, shape (batch, length).
        num_items_in_batch: masked tokens in the whole accumulated batch (the Trainer passes it). The micro-batch loss
            is then scaled by m / num_items_in_batch (m = its masked tokens), so the sum the Trainer accumulates is the
            masked-count-weighted mean of the micro-batch losses.
        t: per-row diffusion times in (0, 1]; taken from `outputs.t` when omitted.
        attention_mask: 1 on real tokens; from `outputs.attention_mask` when omitted, else every position is real.
        schedule: the noise schedule (name or instance) the collator used.
        weighting: "elbo" or "uniform".
    """
    logits = outputs if isinstance(outputs, torch.Tensor) else outputs["logits"]
    if t is None and not isinstance(outputs, torch.Tensor):
        t = outputs.get("t")
    if attention_mask is None and not isinstance(outputs, torch.Tensor):
        attention_mask = outputs.get("attention_mask")
    if weighting not in ("elbo", "uniform"):
        raise ValueError(f"weighting must be 'elbo' or 'uniform', got {weighting!r}.")
    if labels is None:
        raise ValueError("masked_diffusion_loss needs `labels`; use DataCollatorForMaskedDiffusion to produce them.")
    if labels.shape != logits.shape[:2]:
        raise ValueError(
            f"labels have shape {tuple(labels.shape)} but the logits cover {tuple(logits.shape[:2])}; "
            "they must match (-100 where a position is not scored)."
        )
    if weighting == "elbo":
        if t is None:
            raise ValueError(
                "The ELBO weighting needs the diffusion time `t` of each row. DataCollatorForMaskedDiffusion returns "
                "it; for a stock masked LM call `hf_mdm.enable_diffusion_training(model)` so its outputs carry it, "
                "or pass weighting='uniform'."
            )
        t = check_diffusion_times(t, labels.shape[0])
        schedule = get_schedule(schedule)

    selected = labels != IGNORE_INDEX
    num_masked = selected.sum()
    if not bool(num_masked):
        return (logits * 0.0).sum()  # zero with a graph; logits.sum() would overflow on the finfo.min mask column
    token_nll = F.cross_entropy(logits[selected].float(), labels[selected], reduction="none")
    if weighting == "elbo":
        row_weight = schedule.loss_weight(t.float()).to(token_nll.device)
        row_of_token = selected.nonzero()[:, 0]
        total = (token_nll * row_weight[row_of_token]).sum()
        real_tokens = attention_mask.sum() if attention_mask is not None else torch.tensor(labels.numel())
    else:
        total = token_nll.sum()
        real_tokens = num_masked
    loss = total / real_tokens.clamp_min(1).to(total.device)
    if num_items_in_batch is not None:
        loss = loss * num_masked.to(loss.device) / torch.as_tensor(num_items_in_batch, device=loss.device)
    return loss
