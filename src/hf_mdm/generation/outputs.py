"""DiffusionGenerationOutput: what `generate(..., return_dict_in_generate=True)` returns."""

from dataclasses import dataclass

import torch
from transformers.utils import ModelOutput


@dataclass
class DiffusionGenerationOutput(ModelOutput):
    r"""
    sequences: (batch, prompt + max_new_tokens) the prompt (its [MASK] filled) followed by the generated tokens; pad
        after a row's EOS.
    nfe: (batch,) forward passes each row took part in (exact reuse and finished rows spend none).
    steps_per_block: (batch, num_blocks) reverse steps each row went through in each block; for the ranked
        strategies (which skip steps that reveal nothing) and `random` (which visits only steps that reveal
        something), the steps in which the row revealed a position.
    history: with `output_history=True`, the canvas after every step, one (batch, length) tensor per step.
    """

    sequences: torch.LongTensor | None = None
    nfe: torch.LongTensor | None = None
    steps_per_block: torch.LongTensor | None = None
    history: tuple[torch.LongTensor, ...] | None = None


__all__ = ["DiffusionGenerationOutput"]
