"""The one check of `DataCollatorForMaskedDiffusion`'s arguments: types, ranges and conflicts, before any batch.

A wrong type is a TypeError, a wrong value or two arguments where one would silently override the other a ValueError;
each message names the fix. The value checks (`check_flag`, `check_count`) are shared with `hf-mdm train`.
"""

import dataclasses
import math

import torch
from transformers import PreTrainedTokenizerBase

from ..schedules import NoiseSchedule
from ..value_checks import is_integer, is_real


PADDING_CHOICES = (True, False, "longest", "max_length", "do_not_pad")


def check_flag(name: str, value) -> None:
    """`value` must be a real bool: the string "false" is truthy, so strings and numbers are refused."""
    if not isinstance(value, bool):
        hint = f" (the string {value!r} is not a bool)" if isinstance(value, str) else ""
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}{hint}; pass a bool.")


def check_count(name: str, value, minimum: int | None = 1, optional: bool = False) -> None:
    """`value` must be a whole number >= `minimum` (any whole number when `minimum` is None; None too when
    `optional`)."""
    if value is None and optional:
        return
    if not is_integer(value):
        allowed = " or None" if optional else ""
        raise TypeError(f"{name} must be a whole number{allowed}, got {type(value).__name__} {value!r}.")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}.")


def padding_pads(padding) -> bool:
    """Whether a (checked) `padding` value pads the batch."""
    return padding not in (False, "do_not_pad")


def check_collator_arguments(collator) -> None:
    """Raise the error naming the fix for the first bad argument of `collator` (a DataCollatorForMaskedDiffusion)."""
    tokenizer = collator.tokenizer
    if not isinstance(tokenizer, PreTrainedTokenizerBase):
        raise TypeError(
            f"tokenizer must be a transformers tokenizer, got {type(tokenizer).__name__}; load it with "
            "`AutoTokenizer.from_pretrained(path)`."
        )
    if tokenizer.mask_token_id is None:
        raise ValueError(
            "The tokenizer has no mask token, which masked diffusion needs. Add one and resize the model:\n"
            "    tokenizer.add_special_tokens({'mask_token': '<|mask|>'})\n"
            "    model.resize_token_embeddings(len(tokenizer))"
        )
    if tokenizer.pad_token_id is None:
        raise ValueError(
            "The tokenizer has no pad token, so batches cannot be padded. Set one, e.g. "
            "`tokenizer.pad_token = tokenizer.eos_token` (pad positions are never masked nor scored)."
        )
    if not isinstance(collator.schedule, (str, NoiseSchedule)):
        raise TypeError(
            f"schedule must be a schedule name or a NoiseSchedule, got {type(collator.schedule).__name__}; "
            "pass e.g. 'linear' or hf_mdm.get_schedule('cosine')."
        )
    eps = collator.eps
    if not is_real(eps):
        raise TypeError(f"eps must be a number in [0, 1), got {type(eps).__name__} {eps!r}.")
    if not (math.isfinite(eps) and 0.0 <= eps < 1.0):
        raise ValueError(f"eps must lie in [0, 1), got {eps}.")
    check_flag("antithetic", collator.antithetic)
    check_flag("eos_padding", collator.eos_padding)
    padding = collator.padding
    if not (isinstance(padding, bool) or (isinstance(padding, str) and padding in PADDING_CHOICES[2:])):
        raise ValueError(f"padding must be one of {PADDING_CHOICES} (as for tokenizer.pad), got {padding!r}.")
    check_count("max_length", collator.max_length, optional=True)
    check_count("pad_to_multiple_of", collator.pad_to_multiple_of, optional=True)
    check_count("seed", collator.seed, minimum=None)
    check_count("block_size", collator.block_size, optional=True)
    check_time_interval(collator)
    if collator.generator is not None:
        if not isinstance(collator.generator, torch.Generator):
            raise TypeError(
                f"generator must be a torch.Generator or None, got {type(collator.generator).__name__}; pass "
                "torch.Generator().manual_seed(n), or seed=n for noise keyed to each batch."
            )
        if collator.generator.device.type != "cpu":
            raise ValueError(
                f"generator lives on {collator.generator.device}, but the collator draws on the CPU (the batch is "
                "moved to the device later); pass torch.Generator() (a CPU generator)."
            )
        if collator.seed != 0:
            raise ValueError(
                f"Both generator and seed={collator.seed} were given, and a generator ignores seed. Pass one: seed "
                "(noise keyed to each batch, reproducible across a resume) or generator (one stream)."
            )
    if collator.return_tensors != "pt":
        raise ValueError(f"Only return_tensors='pt' is supported, got {collator.return_tensors!r}.")
    check_padding_conflicts(collator)
    if collator.eos_padding:
        check_eos_token(tokenizer)


def check_time_interval(collator) -> None:
    """`t_interval` is None or (low, high) with 0 < low < high <= 1, and replaces `eps` (which must keep its
    default: an eps given with it would be ignored)."""
    interval = collator.t_interval
    if interval is None:
        return
    if not (isinstance(interval, (tuple, list)) and len(interval) == 2 and all(is_real(v) for v in interval)):
        raise TypeError(f"t_interval must be a pair of numbers (low, high), got {interval!r}.")
    low, high = interval
    if not (math.isfinite(low) and math.isfinite(high) and 0.0 < low < high <= 1.0):
        raise ValueError(
            f"t_interval must satisfy 0 < low < high <= 1 (t is drawn uniformly on [low, high)), got {interval!r}."
        )
    default_eps = next(f.default for f in dataclasses.fields(collator) if f.name == "eps")
    if collator.eps != default_eps:
        raise ValueError(
            f"Both eps={collator.eps} and t_interval={interval!r} were given, and t_interval replaces eps (t is "
            "drawn on [low, high) instead of [eps, 1)); pass one."
        )


def check_padding_conflicts(collator) -> None:
    """padding, max_length, pad_to_multiple_of and eos_padding must not cancel each other silently."""
    pads = padding_pads(collator.padding)
    if collator.padding == "max_length" and collator.max_length is None:
        raise ValueError(
            "padding='max_length' needs max_length (otherwise the tokenizer's model_max_length is used); pass "
            "max_length=N, or padding=True to pad to the longest example."
        )
    if not pads and collator.pad_to_multiple_of is not None:
        raise ValueError(
            f"pad_to_multiple_of={collator.pad_to_multiple_of} has no effect with padding={collator.padding!r}; "
            "drop one of the two."
        )
    if not pads and collator.eos_padding:
        raise ValueError(
            f"eos_padding=True pads every response with EOS, but padding={collator.padding!r} asks not to pad; pass "
            "padding=True (or 'max_length'), or eos_padding=False."
        )


def check_eos_token(tokenizer) -> None:
    """eos_padding needs an end-of-text token distinct from [MASK]."""
    if tokenizer.eos_token_id is None:
        sep = getattr(tokenizer, "sep_token", None)
        fix = (
            f"this tokenizer ends texts with {sep!r}: set `tokenizer.eos_token = tokenizer.sep_token`"
            if sep is not None
            else "add one: `tokenizer.add_special_tokens({'eos_token': '<|endoftext|>'})` and resize the model"
        )
        raise ValueError(
            f"eos_padding=True pads responses with the tokenizer's EOS token, and the tokenizer has none; {fix} "
            "(the model then learns to end answers with it; give generate() the same eos_token_id)."
        )
    if tokenizer.eos_token_id == tokenizer.mask_token_id:
        raise ValueError(
            f"The tokenizer's EOS id {tokenizer.eos_token_id} is its [MASK] id, so EOS padding would look masked; "
            "give the tokenizer a distinct eos_token."
        )
