"""Give any stock masked LM (BERT, RoBERTa, ALBERT, DistilBERT, ModernBERT, ...) diffusion `generate()`.

The instance's class is swapped for a subclass of the same name that also inherits `DiffusionGenerationMixin`; no
weight, module or config field changes, so `save_pretrained` writes the same checkpoint (plus generation_config.json).
"""

import functools
import os

from torch import nn
from transformers.utils import GENERATION_CONFIG_NAME

from .configuration import DiffusionGenerationConfig
from .mixin import DiffusionGenerationMixin


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


def enable_diffusion_generation(model: nn.Module, mask_token_id: int | None = None) -> nn.Module:
    """Return `model` (the same object) with `generate()` for masked diffusion decoding (idempotent).

    Args:
        model: a masked LM whose forward maps `input_ids`, `attention_mask` to `.logits` (batch, length, vocab).
        mask_token_id: the tokenizer's [MASK] id, stored in `model.generation_config` (needed when the model config has
            no `mask_token_id`, as BERT-style configs do not).
    """
    if not isinstance(model, nn.Module) or not hasattr(model, "config"):
        raise TypeError(f"enable_diffusion_generation expects a transformers model, got {type(model).__name__}.")
    if not isinstance(model, DiffusionGenerationMixin):
        model.__class__ = _diffusion_class(type(model))
    if not isinstance(getattr(model, "generation_config", None), DiffusionGenerationConfig):
        model.generation_config = _initial_generation_config(model)
    if mask_token_id is not None:
        model.generation_config.mask_token_id = mask_token_id
    return model


__all__ = ["enable_diffusion_generation"]
