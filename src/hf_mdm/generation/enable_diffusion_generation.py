"""Give any stock masked LM (BERT, RoBERTa, ALBERT, DistilBERT, ModernBERT, ...) diffusion `generate()`.

The instance's class is swapped for a subclass of the same name that also inherits `DiffusionGenerationMixin`; no
weight, module or config field changes, so `save_pretrained` writes the same checkpoint (plus generation_config.json).
"""

import functools
import os

from torch import nn
from transformers import MODEL_FOR_CAUSAL_LM_MAPPING, MODEL_FOR_MASKED_LM_MAPPING
from transformers.utils import GENERATION_CONFIG_NAME, logging

from .configuration import DiffusionGenerationConfig
from .mixin import DiffusionGenerationMixin


logger = logging.get_logger(__name__)


@functools.cache
def _diffusion_class(model_class: type) -> type:
    """`model_class` with `DiffusionGenerationMixin` first in its bases (same name: config.architectures is kept)."""
    return type(
        model_class.__name__,
        (DiffusionGenerationMixin, model_class),
        {"__module__": model_class.__module__, "__qualname__": model_class.__qualname__},
    )


def _initial_generation_config(model: nn.Module) -> DiffusionGenerationConfig:
    """The generation_config.json saved next to the checkpoint (no download), completed from the model config."""
    config = DiffusionGenerationConfig.from_model_config(model.config)
    checkpoint = getattr(model, "name_or_path", "")
    if checkpoint and os.path.isfile(os.path.join(checkpoint, GENERATION_CONFIG_NAME)):
        saved = DiffusionGenerationConfig.from_pretrained(checkpoint)
        saved.update(**config.to_dict(), defaults_only=True)
        return saved
    return config


# Model config fields that name special tokens, read when no tokenizer is given.
SPECIAL_TOKEN_FIELDS = ("pad_token_id", "bos_token_id", "eos_token_id", "sep_token_id", "cls_token_id", "unk_token_id")


def special_token_ids(model: nn.Module, tokenizer=None) -> list[int]:
    """Ids that text generation should never emit unless asked for: the tokenizer's special tokens ([CLS], [SEP],
    [PAD], [UNK], <s>, ...; [MASK] is never generated anyway), else those the model config names; only ids inside the
    model's vocabulary. EOS ids of the generation config stay allowed: they end a row."""
    if tokenizer is not None:
        ids = set(tokenizer.all_special_ids)
    else:
        ids = {getattr(model.config, name, None) for name in SPECIAL_TOKEN_FIELDS}
    eos = model.generation_config.eos_token_id
    allowed = {model.generation_config.mask_token_id, *(eos if isinstance(eos, list) else [eos])}
    vocab_size = getattr(model.config, "vocab_size", None) or float("inf")  # ids beyond it are never produced
    return sorted(token for token in ids if isinstance(token, int) and token not in allowed and token < vocab_size)


def causal_lm_evidence(model: nn.Module) -> str | None:
    """Why `model` is an autoregressive LM (its logits predict the next token, not the masked one), or None: its
    config `is_decoder` (XLM's and FlauBERT's: `causal`), a class named *ForCausalLM / *LMHeadModel, or the class
    transformers' AutoModelForCausalLM maps its config to (and not AutoModelForMaskedLM's)."""
    config_class, model_class = type(model.config), type(model)
    for flag in ("is_decoder", "causal"):  # XLM's and FlauBERT's configs say `causal` for `is_decoder`
        if getattr(model.config, flag, False):
            return f"its config has {flag}=True ({model_class.__name__} runs causal attention)"
    if model_class.__name__.endswith(("ForCausalLM", "LMHeadModel")) and model_class.__name__ != "XLMWithLMHeadModel":
        return f"{model_class.__name__} is a causal LM class"
    causal = MODEL_FOR_CAUSAL_LM_MAPPING[config_class] if config_class in MODEL_FOR_CAUSAL_LM_MAPPING else None
    masked = MODEL_FOR_MASKED_LM_MAPPING[config_class] if config_class in MODEL_FOR_MASKED_LM_MAPPING else None
    if causal is not None and issubclass(model_class, causal) and not (masked and issubclass(model_class, masked)):
        return f"AutoModelForCausalLM maps {config_class.__name__} to {causal.__name__}"
    return None


def appended_end_marker(tokenizer) -> int | None:
    """The special token the tokenizer appends to every text (BERT's [SEP], RoBERTa's </s>), or None."""
    text = tokenizer.mask_token or tokenizer.unk_token
    if text is None:
        return None
    with_specials = tokenizer(text)["input_ids"]
    plain = tokenizer(text, add_special_tokens=False)["input_ids"]
    if not plain or with_specials[-len(plain) :] == plain:
        return None
    last = with_specials[-1]
    return last if last in tokenizer.all_special_ids else None


def enable_diffusion_generation(model: nn.Module, tokenizer=None, mask_token_id: int | None = None) -> nn.Module:
    """Return `model` (the same object) with `generate()` for masked diffusion decoding (idempotent).

    A stock masked LM was trained to predict special tokens too ([CLS], [SEP], [UNK], ...); unless
    `generation_config.suppress_tokens` is already set (e.g. in a saved generation_config.json), they are suppressed
    (for a model that already has diffusion `generate()`, only when a tokenizer is passed), so generated text holds
    none of them. Pass `suppress_tokens=None` to `generate()` to allow them. When the tokenizer appends an end marker
    to every text (BERT's [SEP]), `generation_config.sep_token_id` names it: the model then sees it after the
    generated region (see `DiffusionGenerationConfig`).

    A causal LM is refused: its logits predict the next token, and decoding them as a masked LM's gives fluent-looking
    garbage without an error. `MDMForMaskedGeneration.from_causal_lm` converts one (it keeps the next-token alignment).

    Args:
        model: a masked LM whose forward maps `input_ids`, `attention_mask` to `.logits` (batch, length, vocab).
        tokenizer: the model's tokenizer: its [MASK] id and its special tokens (recommended; without it only the
            special ids the model config names are suppressed, and a warning says so).
        mask_token_id: the [MASK] id, when no tokenizer is given and the model config has none (BERT-style configs).
    """
    if not isinstance(model, nn.Module) or not hasattr(model, "config"):
        raise TypeError(f"enable_diffusion_generation expects a transformers model, got {type(model).__name__}.")
    if tokenizer is not None and not hasattr(tokenizer, "all_special_ids"):
        raise TypeError(
            f"enable_diffusion_generation(model, tokenizer): expected a tokenizer, got {type(tokenizer).__name__}; "
            "pass a [MASK] id as mask_token_id=..."
        )
    stock = not isinstance(model, DiffusionGenerationMixin)
    evidence = causal_lm_evidence(model) if stock else None
    if evidence:
        raise ValueError(
            f"enable_diffusion_generation needs a masked LM, but this is a causal LM: {evidence}. Its logits predict "
            "the next token, so masked diffusion decoding would read them at the wrong positions. Convert it: "
            "MDMForMaskedGeneration.from_causal_lm(model, tokenizer) (then fine-tune it as a masked diffusion LM)."
        )
    if stock:
        model.__class__ = _diffusion_class(type(model))
    if not isinstance(getattr(model, "generation_config", None), DiffusionGenerationConfig):
        model.generation_config = _initial_generation_config(model)
    if tokenizer is not None and mask_token_id is None:
        mask_token_id = tokenizer.mask_token_id
    if mask_token_id is not None:
        model.generation_config.mask_token_id = mask_token_id
    if tokenizer is not None and model.generation_config.sep_token_id is None:
        model.generation_config.sep_token_id = appended_end_marker(tokenizer)
    if model.generation_config.suppress_tokens is None and (stock or tokenizer is not None):
        if tokenizer is None:
            logger.warning_once(
                "enable_diffusion_generation() without a tokenizer suppresses only the special tokens the model "
                "config names; pass the tokenizer (enable_diffusion_generation(model, tokenizer)) so that [CLS], "
                "[SEP], [UNK], ... are never generated."
            )
        model.generation_config.suppress_tokens = special_token_ids(model, tokenizer) or None
    return model


__all__ = ["appended_end_marker", "causal_lm_evidence", "enable_diffusion_generation"]
