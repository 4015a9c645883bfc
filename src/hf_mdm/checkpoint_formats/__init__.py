"""Foreign checkpoint formats that `MDMForMaskedGeneration.from_pretrained` reads without remote code.

One file per format (`@register_checkpoint_format`); `pretrained_mixin.MDMPretrainedMixin` holds the classmethods that
read them (and convert causal LMs, export remote code), mixed into the model class from this layer below it.
"""

from .base import CHECKPOINT_FORMATS, CheckpointFormat, known_formats, register_checkpoint_format
from .dream import DreamFormat, DreamFormatConfig
from .llada import LLaDAFormat, LLaDAFormatConfig


__all__ = [
    "CHECKPOINT_FORMATS",
    "CheckpointFormat",
    "DreamFormat",
    "DreamFormatConfig",
    "LLaDAFormat",
    "LLaDAFormatConfig",
    "known_formats",
    "register_checkpoint_format",
]
