"""Foreign checkpoint formats that `MDMForMaskedGeneration.from_pretrained` reads without remote code.

One file per format (`@register_checkpoint_format`); `pretrained_mixin.MDMPretrainedMixin` holds the classmethods that
read them (and convert causal LMs, export remote code), mixed into the model class from this layer below it.
"""

from .base import CHECKPOINT_FORMATS, CheckpointFormat, known_formats, register_checkpoint_format
from .bd3lm import BD3LMFormat, BD3LMFormatConfig
from .dit_format import DiTCheckpointFormat
from .dream import DreamFormat, DreamFormatConfig
from .llada import LLaDAFormat, LLaDAFormatConfig
from .mdlm import MDLMFormat, MDLMFormatConfig
from .sedd import SEDDFormat, SEDDFormatConfig, sedd_log_score


__all__ = [
    "CHECKPOINT_FORMATS",
    "BD3LMFormat",
    "BD3LMFormatConfig",
    "CheckpointFormat",
    "DiTCheckpointFormat",
    "DreamFormat",
    "DreamFormatConfig",
    "LLaDAFormat",
    "LLaDAFormatConfig",
    "MDLMFormat",
    "MDLMFormatConfig",
    "SEDDFormat",
    "SEDDFormatConfig",
    "known_formats",
    "register_checkpoint_format",
    "sedd_log_score",
]
