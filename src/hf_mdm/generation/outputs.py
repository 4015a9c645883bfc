"""What `generate(..., return_dict_in_generate=True)` returns (`DiffusionGenerationOutput`) and what one
`DiffusionSampler.step` returns (`DiffusionSamplerOutput`, like diffusers' `SchedulerOutput`)."""

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
    num_decoded_tokens: (batch,) positions each row decoded: its [MASK] positions up to and including its first EOS
        (all of them without EOS; the pad after EOS is not decoded).
    """

    sequences: torch.LongTensor | None = None
    nfe: torch.LongTensor | None = None
    steps_per_block: torch.LongTensor | None = None
    history: tuple[torch.LongTensor, ...] | None = None
    num_decoded_tokens: torch.LongTensor | None = None

    @property
    def tokens_per_forward(self) -> torch.Tensor:
        """(batch,) `num_decoded_tokens / nfe`: tokens each row decoded per forward pass it took part in (NaN for a
        row with nothing to decode); above 1 when a forward reveals several tokens (threshold decoding)."""
        return self.num_decoded_tokens / self.nfe


@dataclass
class DiffusionSamplerOutput:
    r"""
    One reverse step t -> s of the current block. canvas: (batch, length) after the step (the state's own tensor).
    candidates: (batch, W) each row's candidate tokens over the block's window, from its last forward. revealed:
    (batch, W) window positions revealed at this step. t, s: the step's times. active: (batch,) rows still decoding
    the block after the step; done: (batch,) rows with nothing left to do. A plain dataclass: one is built per step,
    and a `ModelOutput` costs ~15 us to build.
    """

    canvas: torch.LongTensor
    candidates: torch.LongTensor
    revealed: torch.BoolTensor
    t: float
    s: float
    active: torch.BoolTensor
    done: torch.BoolTensor


__all__ = ["DiffusionGenerationOutput", "DiffusionSamplerOutput"]
