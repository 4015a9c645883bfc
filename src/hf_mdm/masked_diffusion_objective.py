"""The masked-diffusion objective (NELBO) and the checks of its inputs, in one module that the model's forward and
`training/` both import (the model never imports `training/`). `masked_diffusion_loss` is also the
`Trainer(compute_loss_func=...)` of stock masked LMs.

Prompt columns (instruction tuning), and why model forwards name them: an example marks its prompt with
`prompt_length` (the count of its leading real tokens) or `prompt_mask` (1 on each prompt token);
`DataCollatorForMaskedDiffusion` never masks, so never scores, a prompt token. The stock Trainer's default
`remove_unused_columns=True` keeps only the dataset columns that the model's forward names, and would drop these before
the collator sees them: prompts would be trained on, silently. So the forward of `MDMForMaskedGeneration` (and of a
stock masked LM after `enable_diffusion_training`) names both. The collator reads them and returns the batch's
`prompt_mask`; a forward that receives prompt columns with `labels` checks them (a scored prompt token is an error)
and divides the loss by the response's tokens only: the NELBO of the response given the prompt, per response token.

Diffusion times: `t` is one time per row, (batch,), or one per token, (batch, length), as
`DataCollatorForMaskedDiffusion(block_size=B)` returns it for a block-diffusion model (each block of B real tokens
masked at its own time; the value at padding is not read). A masked token's NELBO weight is w(t) at its own time, and
every token of one of the model's blocks must share its time (a block is masked at one time): a per-token `t` that
varies inside a block (a collator whose block_size does not divide into the model's, or a bidirectional model trained
with a block collator) is refused. Times shared by several blocks (a per-row `t`, or a collator block that is a
multiple of the model's) are correct: each block's term of the block NELBO still sees a uniform time, so the loss
keeps its expectation.
"""

import torch
import torch.nn.functional as F

from .block_positions import PAD_BLOCK, block_ids
from .schedules import NoiseSchedule, get_schedule


IGNORE_INDEX = -100
PROMPT_COLUMNS = ("prompt_length", "prompt_mask")
TOKEN_ID_DTYPES = (torch.int64, torch.int32)
PROMPT_SCORED = (
    "Some prompt tokens have labels, so the prompt would be trained on. Noise the batch with "
    "DataCollatorForMaskedDiffusion, which never masks the prompt, or set labels to -100 on the prompt."
)


def check_token_id_dtype(name: str, ids: torch.Tensor) -> None:
    """A TypeError unless `ids` holds integer token ids (int64, or int32 which embeddings also index with)."""
    if ids.dtype not in TOKEN_ID_DTYPES:
        raise TypeError(
            f"{name} must hold token ids as torch.long, got dtype {ids.dtype}; convert with `{name}.long()`."
        )


def check_diffusion_times(t: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """`t` as one time per row (batch,) or, when it has the batch's (batch, length) shape, one per token; a
    ValueError otherwise (its values: `check_loss_inputs`)."""
    batch_size, length = shape
    if t.dim() == 2 and tuple(t.shape) == (batch_size, length) and length > 1:
        return t
    if t.numel() != batch_size:
        raise ValueError(
            f"t has shape {tuple(t.shape)} for a batch of shape {(batch_size, length)}; give one per row "
            f"({batch_size},) or one per token {(batch_size, length)}."
        )
    return t.reshape(-1)


def token_blocks(attention_mask: torch.Tensor | None, shape: tuple[int, int], block_size: int | None) -> torch.Tensor:
    """(batch or 1, length) the block of each token (`PAD_BLOCK` at padding) for a model with `block_size`; a
    bidirectional model (None) is one block per row."""
    padding = attention_mask if attention_mask is not None and attention_mask.dim() == 2 else None
    return block_ids(padding, shape[1], block_size or shape[1])


def time_varies_within_a_block(t: torch.Tensor, blocks: torch.Tensor) -> torch.Tensor:
    """A flag: two real tokens of one block (`blocks` from `token_blocks`) carry different per-token times `t`."""
    blocks = blocks.to(t.device).expand(t.shape[0], -1)
    slots = torch.where(blocks == PAD_BLOCK, t.shape[1], blocks)  # padding goes to a slot of its own
    lowest = t.new_full((t.shape[0], t.shape[1] + 1), float("inf")).scatter_reduce(1, slots, t, "amin")
    highest = t.new_full((t.shape[0], t.shape[1] + 1), float("-inf")).scatter_reduce(1, slots, t, "amax")
    return (highest[:, :-1] > lowest[:, :-1]).any()


def labels_of_masked_tokens(
    labels: torch.Tensor,
    input_ids: torch.Tensor | None,
    mask_token_id: int,
    attention_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """`labels` with -100 wherever the input is not [MASK] or is padding: the objective scores masked tokens only, so
    `labels=input_ids` (a masked-LM habit) gives the masked-diffusion loss, not a loss over visible tokens. Without
    `input_ids` (inputs_embeds) the labels are taken as given."""
    if input_ids is None:
        return labels
    masked = input_ids == mask_token_id
    if attention_mask is not None and attention_mask.dim() == 2:
        masked = masked & attention_mask.bool()
    return labels.masked_fill(~masked, IGNORE_INDEX)


def check_loss_inputs(
    labels: torch.Tensor,
    vocab_size: int,
    t: torch.Tensor | None = None,
    num_items_in_batch: torch.Tensor | int | None = None,
    input_ids: torch.Tensor | None = None,
    mask_token_id: int | None = None,
    prompt: torch.Tensor | None = None,
    blocks: torch.Tensor | None = None,
    unlabelled_masks: torch.Tensor | None = None,
    mask_probability: torch.Tensor | None = None,
    schedule: "NoiseSchedule | None" = None,
) -> None:
    """Raise a ValueError naming the fix when a value of the training inputs is wrong, at the cost of one device sync.

    Checked: labels are -100 or ids in [0, vocab_size) (and not the [MASK] id when given); input_ids lie in
    [0, vocab_size); t lies in (0, 1] (NaN included; a per-token t at the scored tokens), and a per-token t is one
    time per block of `blocks` (`token_blocks`; required with a per-token t); num_items_in_batch covers at least this
    batch's scored tokens, and, with input_ids, no label sits on a token that is not [MASK] (the count would include
    unscored tokens); no label sits on a `prompt` token (`prompt_tokens`); no token of `unlabelled_masks` (the
    masked real tokens without a label, `masked_without_label`) exists; the collator's `mask_probability` 1 - alpha(t)
    is the `schedule`'s at `t` (the batch was masked with the schedule that weights the loss).
    """
    scored = labels != IGNORE_INDEX
    checks = [
        (
            (scored & (labels < 0)).any(),
            "labels hold negative values other than -100 (e.g. -1); mark positions that are not scored with -100.",
        ),
        (
            (labels >= vocab_size).any(),
            f"labels hold ids >= the vocabulary size {vocab_size}; the tokenizer and the model disagree: "
            "call `model.resize_token_embeddings(len(tokenizer))`.",
        ),
    ]
    if mask_token_id is not None:
        checks.append(
            (
                (labels == mask_token_id).any(),
                f"labels hold the [MASK] id {mask_token_id}, which the model never predicts; labels must hold the "
                "original tokens at masked positions (as DataCollatorForMaskedDiffusion returns them).",
            )
        )
    if input_ids is not None:
        checks.append(
            (
                ((input_ids < 0) | (input_ids >= vocab_size)).any(),
                f"input_ids hold ids outside [0, {vocab_size}); the tokenizer and the model disagree: "
                "call `model.resize_token_embeddings(len(tokenizer))`.",
            )
        )
    if input_ids is not None and mask_token_id is not None and num_items_in_batch is not None:
        checks.append(
            (
                (scored & (input_ids != mask_token_id)).any(),
                "labels are set on tokens that are not [MASK] (visible or padding), and num_items_in_batch counted "
                "them: only masked tokens are scored, so the loss would be scaled by a wrong count. Set labels to "
                "-100 wherever input_ids is not the [MASK] id (DataCollatorForMaskedDiffusion does).",
            )
        )
    if t is not None:
        times = t[scored.to(t.device)] if t.dim() == 2 else t
        checks.append(
            (~((times > 0) & (times <= 1)).all(), "t must lie in (0, 1] (NaN is refused); pass the collator's `t`.")
        )
    if t is not None and t.dim() == 2:
        checks.append(
            (
                time_varies_within_a_block(t, blocks if blocks is not None else token_blocks(None, t.shape, None)),
                "The per-token t varies inside one of the model's blocks, so a block is not masked at one time and "
                "the loss is not the block NELBO. Draw one time per model block: "
                "DataCollatorForMaskedDiffusion(block_size=model.config.block_size) (block_size=None, one time per "
                "row, for a bidirectional model).",
            )
        )
    if num_items_in_batch is not None:
        checks.append(
            (
                ~(torch.as_tensor(num_items_in_batch, device=labels.device) >= scored.sum()),
                "num_items_in_batch is smaller than this batch's count of scored labels (or not a count); pass the "
                "number of labels != -100 over the whole accumulated batch, as the Trainer does.",
            )
        )
    if prompt is not None:
        checks.append(((prompt.to(labels.device) & scored).any(), PROMPT_SCORED))
    if unlabelled_masks is not None:
        checks.append(
            (
                unlabelled_masks.any(),
                "Some masked tokens have no label (-100), so their clean value, which later blocks are conditioned "
                "on, is unknown. Give the original token as the label at every masked real token "
                "(DataCollatorForMaskedDiffusion does).",
            )
        )
    if mask_probability is not None and schedule is not None and t is not None:
        expected = schedule.mask_probability(t.to(mask_probability.device)).to(mask_probability.dtype)
        checks.append(
            (
                ~torch.isclose(mask_probability, expected.expand_as(mask_probability), rtol=1e-5, atol=1e-6).all(),
                f"The batch was masked with another noise schedule than the {schedule!r} that weights the loss (the "
                "collator's mask probabilities are not 1 - alpha(t)), so the loss is not the NELBO of this data. "
                "Build the collator with the model's schedule: DataCollatorForMaskedDiffusion(tokenizer, "
                "schedule=model.config.noise_schedule).",
            )
        )
    flags = torch.stack([flag.to(labels.device).reshape(()) for flag, _ in checks]).tolist()  # the one sync
    for flag, (_, message) in zip(flags, checks):
        if flag:
            raise ValueError(message)


def masked_diffusion_loss(
    outputs,
    labels: torch.LongTensor,
    num_items_in_batch: torch.Tensor | int | None = None,
    *,
    t: torch.Tensor | None = None,
    attention_mask: torch.Tensor | None = None,
    schedule: "str | NoiseSchedule" = "linear",
    weighting: str = "elbo",
    reduction: str = "mean",
    check_inputs: bool = True,
    block_size: int | None = None,
    mask_probability: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Per-token masked-diffusion NELBO of a batch noised by `DataCollatorForMaskedDiffusion`.

        loss = sum_b w(t_b) * sum_{i masked in b} -log p(x_i | x_t) / sum_b L_b,    w(t) = -alpha'(t) / (1 - alpha(t))

    (with a per-token t, each masked token weighted by w(t_i) at its own block's time: the block NELBO) with L_b the
    real (non-pad) tokens of row b that `attention_mask` marks (the model and `enable_diffusion_training`
    leave prompt tokens out of it), so `exp(loss)` is a Monte-Carlo estimate of an upper bound on the
    perplexity. `weighting="uniform"` gives the plain masked cross-entropy (CE summed over masked tokens / count).

    Args:
        outputs: a model output with `logits` (and, from `enable_diffusion_training`, `t` and `attention_mask`), or
            the logits tensor itself, shape (batch, length, vocab).
        labels: target ids at masked positions, -100 elsewhere, shape (batch, length).
        num_items_in_batch: masked tokens in the whole accumulated batch (the Trainer passes it). The micro-batch loss
            is then scaled by m / num_items_in_batch (m = its masked tokens), so the sum the Trainer accumulates is the
            masked-count-weighted mean of the micro-batch losses.
        t: diffusion times in (0, 1], per row (batch,) or per token (batch, length); from `outputs.t` when omitted.
        attention_mask: 1 on real tokens; from `outputs.attention_mask` when omitted, else every position is real.
            With a per-token t and `block_size`, the padding mask (it numbers the blocks).
        schedule: the noise schedule (name or instance) the collator used.
        weighting: "elbo" or "uniform".
        reduction: "mean" (the loss above) or "none": per row, sum_{i masked} w(t_b) * -log p(x_i | x_t) (the row's
            one-draw NELBO estimate, unnormalised; with "uniform", its summed cross-entropy).
        check_inputs: run `check_loss_inputs` (one device sync); the model's forward checks before running instead.
        block_size: the model's block size (None: bidirectional); a per-token t must be one time per block.
        mask_probability: the collator's masking probability 1 - alpha(t) (from `outputs.mask_probability` when
            omitted); checked against `schedule` (with `check_inputs`), so a batch masked under another schedule fails.
    """
    logits = outputs if isinstance(outputs, torch.Tensor) else outputs["logits"]
    if t is None and not isinstance(outputs, torch.Tensor):
        t = outputs.get("t")
    if attention_mask is None and not isinstance(outputs, torch.Tensor):
        attention_mask = outputs.get("attention_mask")
    if mask_probability is None and not isinstance(outputs, torch.Tensor):
        mask_probability = outputs.get("mask_probability")
    if weighting not in ("elbo", "uniform"):
        raise ValueError(f"weighting must be 'elbo' or 'uniform', got {weighting!r}.")
    if reduction not in ("mean", "none"):
        raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}.")
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
        t = check_diffusion_times(t, labels.shape)
        schedule = get_schedule(schedule)
    check_token_id_dtype("labels", labels)
    if check_inputs:
        check_loss_inputs(
            labels,
            logits.shape[-1],
            t=t if weighting == "elbo" else None,
            num_items_in_batch=num_items_in_batch,
            blocks=token_blocks(attention_mask, labels.shape, block_size) if weighting == "elbo" else None,
            mask_probability=mask_probability,
            schedule=schedule if weighting == "elbo" else None,
        )
    labels = labels.long()

    selected = labels != IGNORE_INDEX
    row_of_token = selected.nonzero()[:, 0]
    token_nll = F.cross_entropy(logits[selected].float(), labels[selected], reduction="none")
    if weighting == "elbo":
        weights = schedule.loss_weight(t.float()).to(token_nll.device)
        token_nll = token_nll * (weights[selected.to(weights.device)] if t.dim() == 2 else weights[row_of_token])
    # Per-row sums; a batch with nothing masked gives zeros that still hang on the graph.
    row_sums = token_nll.new_zeros(labels.shape[0]).index_add(0, row_of_token, token_nll)
    if reduction == "none":
        return row_sums
    num_masked = selected.sum()
    if weighting == "uniform":
        denominator = num_masked
    else:
        denominator = attention_mask.sum() if attention_mask is not None else torch.tensor(labels.numel())
    loss = row_sums.sum() / denominator.clamp_min(1).to(row_sums.device)
    if num_items_in_batch is not None:
        # num_items_in_batch == 0 means nothing is scored anywhere (so here neither): the loss is 0, not 0 / 0.
        total = torch.as_tensor(num_items_in_batch, device=loss.device).clamp_min(1)
        loss = loss * num_masked.to(loss.device) / total
    return loss


def prompt_positions(
    shape: torch.Size | None,
    attention_mask: torch.Tensor | None = None,
    prompt_length: torch.Tensor | None = None,
    prompt_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """A boolean (batch, length) map of prompt tokens: `prompt_mask`, or the first `prompt_length` real tokens of each
    row (real: a 2-D `attention_mask` == 1, so either padding side works). `shape`: the batch's (batch, length)."""
    if prompt_mask is not None:
        if shape is not None and tuple(prompt_mask.shape) != tuple(shape):
            raise ValueError(
                f"prompt_mask has shape {tuple(prompt_mask.shape)} but the batch is {tuple(shape)}; give one 0/1 "
                "entry per token, padded like input_ids (DataCollatorForMaskedDiffusion does)."
            )
        return prompt_mask.bool()
    has_padding_mask = attention_mask is not None and attention_mask.dim() == 2
    real = attention_mask.bool() if has_padding_mask else torch.ones(shape, dtype=torch.bool)
    real = real.to(prompt_length.device)
    return real & (real.cumsum(1) <= prompt_length.reshape(-1, 1))


def prompt_tokens(
    shape: torch.Size | None,
    attention_mask: torch.Tensor | None = None,
    prompt_length: torch.Tensor | None = None,
    prompt_mask: torch.Tensor | None = None,
) -> torch.Tensor | None:
    """`prompt_positions` when the batch has a prompt column, else None (no prompt)."""
    if prompt_length is None and prompt_mask is None:
        return None
    return prompt_positions(shape, attention_mask, prompt_length, prompt_mask)


def check_prompt_not_scored(labels: torch.Tensor | None, prompt: torch.Tensor | None) -> None:
    """A ValueError when a `prompt` token carries a label (it would be trained on); nothing to check without labels
    or prompt."""
    if labels is None or prompt is None:
        return
    if bool((prompt.to(labels.device) & (labels != IGNORE_INDEX)).any()):
        raise ValueError(PROMPT_SCORED)


def loss_token_mask(attention_mask: torch.Tensor | None, prompt: torch.Tensor | None) -> torch.Tensor | None:
    """The tokens a per-token loss divides by: real (a 2-D `attention_mask`, when given) and not `prompt`; None when
    there is neither (every position counts)."""
    has_padding_mask = attention_mask is not None and attention_mask.dim() == 2
    if prompt is None:
        return attention_mask if has_padding_mask else None
    real = attention_mask.bool() if has_padding_mask else torch.ones_like(prompt)
    return (real.to(prompt.device) & ~prompt).long()


def checked_forward_labels(
    labels: torch.Tensor,
    input_ids: torch.Tensor | None,
    inputs_embeds: torch.Tensor | None,
    attention_mask: torch.Tensor | None,
    *,
    t: torch.Tensor | None,
    num_items_in_batch: torch.Tensor | int | None,
    prompt_length: torch.Tensor | None,
    prompt_mask: torch.Tensor | None,
    vocab_size: int,
    mask_token_id: int,
    weighting: str,
    block_size: int | None = None,
    mask_probability: torch.Tensor | None = None,
    schedule: "NoiseSchedule | None" = None,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """A model forward's training inputs checked before its stack runs (shapes, dtypes, `t` (one time per block of
    `block_size`), values, no labelled prompt token, for a block model a label at every masked real token, and, for
    the ELBO, the collator's `mask_probability` under the model's `schedule`, with one device sync); returns the
    labels of its masked real tokens (`labels_of_masked_tokens`), the tokens the loss divides by (`loss_token_mask`)
    and `t` (per row or per token)."""
    reference = input_ids if input_ids is not None else inputs_embeds[..., 0]
    if labels.shape != reference.shape:
        raise ValueError(
            f"labels have shape {tuple(labels.shape)} but input_ids have shape {tuple(reference.shape)}; "
            "they must match (-100 where a position is not scored)."
        )
    check_token_id_dtype("labels", labels)
    if block_size is not None and input_ids is None:
        raise ValueError(
            "A block-diffusion model trains on the noisy input next to its clean copy, built from input_ids and "
            "labels; with inputs_embeds it is unknown. Pass input_ids (or clean_input_ids without labels)."
        )
    if t is not None:
        t = check_diffusion_times(t, labels.shape)
    elif weighting == "elbo":
        raise ValueError(
            "The ELBO loss needs the diffusion time `t` of each row (DataCollatorForMaskedDiffusion returns "
            "it); pass `t=` or build the model with loss_weighting='uniform'."
        )
    prompt = prompt_tokens(labels.shape, attention_mask, prompt_length, prompt_mask)
    blocks = token_blocks(attention_mask, labels.shape, block_size) if t is not None and t.dim() == 2 else None
    unlabelled = None if block_size is None else masked_without_label(input_ids, labels, attention_mask, mask_token_id)
    # Values (ids in range, t in (0, 1] and per block, counts, no labelled prompt token, no unlabelled [MASK] of a
    # block model) with a single device sync.
    check_loss_inputs(
        labels,
        vocab_size,
        t=t,
        num_items_in_batch=num_items_in_batch,
        input_ids=input_ids,
        mask_token_id=mask_token_id,
        prompt=prompt,
        blocks=blocks,
        unlabelled_masks=unlabelled,
        mask_probability=mask_probability,
        schedule=schedule if weighting == "elbo" else None,
    )
    masked_labels = labels_of_masked_tokens(labels, input_ids, mask_token_id, attention_mask)
    return masked_labels, loss_token_mask(attention_mask, prompt), t


def forward_training_inputs(config, labels, clean_input_ids, input_ids, inputs_embeds, attention_mask, **kwargs):
    """A model forward's (labels, loss tokens, t, clean_input_ids): without labels they pass through (loss tokens
    None); with labels, `checked_forward_labels` under the config's vocabulary, [MASK] id, weighting and block size,
    and on a block-diffusion model the clean copy x_0 built from them (`clean_sequence`), the collator's
    `mask_probability` checked against the config's schedule. Labels and clean_input_ids together are refused.
    `kwargs`: t, num_items_in_batch, prompt_length, prompt_mask, mask_probability."""
    if labels is None:
        return None, None, kwargs.get("t"), clean_input_ids
    if clean_input_ids is not None:
        raise ValueError(
            "Pass labels (training: the clean copy is built from them) or clean_input_ids (evaluation), not both."
        )
    labels, loss_tokens, t = checked_forward_labels(
        labels,
        input_ids,
        inputs_embeds,
        attention_mask,
        vocab_size=config.vocab_size,
        mask_token_id=config.mask_token_id,
        weighting=config.loss_weighting,
        block_size=config.block_size,
        schedule=config.noise_schedule,
        **kwargs,
    )
    if config.block_size is not None:
        clean_input_ids = clean_sequence(input_ids, labels)
    return labels, loss_tokens, t, clean_input_ids


def config_loss(config, logits, labels, loss_tokens, t, num_items_in_batch) -> torch.Tensor:
    """A model forward's loss: `masked_diffusion_loss` under the config's schedule and weighting, on inputs that
    `forward_training_inputs` checked."""
    return masked_diffusion_loss(
        logits,
        labels,
        num_items_in_batch=num_items_in_batch,
        t=t,
        attention_mask=loss_tokens,
        schedule=config.noise_schedule,
        weighting=config.loss_weighting,
        check_inputs=False,
    )


def masked_without_label(
    input_ids: torch.Tensor, labels: torch.Tensor, attention_mask: torch.Tensor | None, mask_token_id: int
) -> torch.Tensor:
    """(batch, length) the masked real tokens whose label is -100: their clean value is unknown."""
    masked = input_ids == mask_token_id
    if attention_mask is not None and attention_mask.dim() == 2:
        masked = masked & attention_mask.bool().to(masked.device)
    return masked & (labels == IGNORE_INDEX)


def clean_sequence(input_ids: torch.Tensor, labels: torch.Tensor) -> torch.LongTensor:
    """x_0 of a noisy batch, the block-diffusion objective's clean copy: the label wherever there is one, the input
    elsewhere. `labels` must cover every masked real token (`checked_forward_labels` with a block size checks it)."""
    return torch.where(labels != IGNORE_INDEX, labels, input_ids)
