"""Instruction tuning's prompt columns, and why model forwards name them.

An example marks its prompt with `prompt_length` (the count of its leading real tokens) or `prompt_mask` (1 on each
prompt token); `DataCollatorForMaskedDiffusion` never masks, so never scores, a prompt token. The stock Trainer's
default `remove_unused_columns=True` keeps only the dataset columns that the model's forward names, and would drop
these before the collator sees them: prompts would be trained on, silently. So the forward of `MDMForMaskedGeneration`
(and of a stock masked LM after `enable_diffusion_training`) names both. The collator reads them and returns the
batch's `prompt_mask`; a forward that receives prompt columns with `labels` checks them (a scored prompt token is an
error) and divides the loss by the response's tokens only: the NELBO of the response given the prompt, per response
token.
"""

import torch

from .masked_diffusion_loss import IGNORE_INDEX


PROMPT_COLUMNS = ("prompt_length", "prompt_mask")


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


def check_prompt_not_scored(
    labels: torch.Tensor | None,
    attention_mask: torch.Tensor | None = None,
    prompt_length: torch.Tensor | None = None,
    prompt_mask: torch.Tensor | None = None,
) -> None:
    """A ValueError when a prompt token carries a label (it would be trained on); nothing to check without labels."""
    if labels is None or (prompt_length is None and prompt_mask is None):
        return
    prompt = prompt_positions(labels.shape, attention_mask, prompt_length, prompt_mask).to(labels.device)
    if bool((prompt & (labels != IGNORE_INDEX)).any()):
        raise ValueError(
            "Some prompt tokens have labels, so the prompt would be trained on. Noise the batch with "
            "DataCollatorForMaskedDiffusion, which never masks the prompt, or set labels to -100 on the prompt."
        )


def loss_token_mask(
    attention_mask: torch.Tensor | None,
    prompt_length: torch.Tensor | None = None,
    prompt_mask: torch.Tensor | None = None,
    shape: torch.Size | None = None,
) -> torch.Tensor | None:
    """The tokens a per-token loss divides by: real (a 2-D `attention_mask`, when given) and not prompt; None when
    there is neither (every position counts)."""
    has_padding_mask = attention_mask is not None and attention_mask.dim() == 2
    if prompt_length is None and prompt_mask is None:
        return attention_mask if has_padding_mask else None
    prompt = prompt_positions(shape, attention_mask, prompt_length, prompt_mask)
    real = attention_mask.bool() if has_padding_mask else torch.ones_like(prompt)
    return (real.to(prompt.device) & ~prompt).long()
