"""DataCollatorForMaskedDiffusion: pad a batch, draw a diffusion time per row and mask tokens accordingly."""

import hashlib
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from accelerate.state import GradientState
from transformers import PreTrainedTokenizerBase

from ..block_positions import PAD_BLOCK, block_ids
from ..masked_diffusion_objective import IGNORE_INDEX, PROMPT_COLUMNS
from ..schedules import NoiseSchedule, get_schedule
from ..transformers_compat import pad_without_fast_tokenizer_warning
from .collator_arguments import check_collator_arguments


@dataclass
class DataCollatorForMaskedDiffusion:
    r"""Collate examples for masked-diffusion training, as `DataCollatorForLanguageModeling` does for BERT.

    For each row b it draws t_b and masks every maskable token independently with probability 1 - alpha(t_b):

        t_b = eps + (1 - eps) * ((u + b / B) mod 1),   u ~ U[0, 1)     (antithetic: stratified across the batch)
        t_b = eps + (1 - eps) * u_b,                   u_b ~ U[0, 1)   (otherwise)

    The affine map keeps t uniform on [eps, 1) instead of clipping, which would put a point mass at the largest weight
    w(eps). With `t_interval=(low, high)` t is drawn uniformly on [low, high) instead (BD3-LM's clipped noise, a
    variance reduction): the loss is then a training objective that weights the times in the interval, no longer an
    upper bound on -log p(x). Pad tokens are never masked; with `prompt_length` or `prompt_mask` in an example, its
    prompt is never masked either (instruction tuning).

    EOS padding (`eos_padding=True`, supervised fine-tuning as in LLaDA): every example is followed by the tokenizer's
    EOS (one ending it, unless it ends in EOS already, then as many as fill the batch's width: the longest example, or
    `max_length` with `padding="max_length"`, rounded up to `pad_to_multiple_of`). Those EOS tokens are real tokens
    (attention 1) of the response, masked and scored like it, so the model learns to end an answer and to fill the
    rest of the canvas with EOS, which generate() turns into padding. Examples without a prompt (plain text) are
    padded the same way, so that unconditional samples end too. A text cut at `max_length` (no room for its EOS) gets
    no EOS, only pad tokens: it did not end there.

    Block diffusion (`block_size=B`, the model's `config.block_size`): every block of B real tokens (a token's block is
    its index among its row's real tokens // B, as the model counts it) draws its own t, the draws of all blocks of the
    batch stratified as above, and its tokens are masked with that block's probability; `t` is then returned per
    token, (batch, length), each token carrying its block's time (0 at padding, which no loss reads). The model's
    forward refuses a `t` that varies inside one of its blocks, so a collator whose block_size does not divide into
    the model's fails loudly; one whose block_size is a multiple of the model's (or None) is a correct, coarser draw.

    Randomness: with `generator`, every draw comes from it (a stream: each call advances it). Otherwise, while an
    epoch is known, each batch draws from its own generator seeded with SHA-256(seed, epoch, the batch's ids), so a
    batch is noised identically however the run reached it (in order, or after the Trainer skipped batches on
    `resume_from_checkpoint`); the epoch is the one `set_epoch` gave, else that of the accelerate dataloader
    collating (the Trainer's, in the main process). With neither, draws come from torch's global RNG.

    Examples are dicts with `input_ids` (lists or tensors; optional `attention_mask`; at most `max_length` tokens) or
    with a `text` string, which is tokenized (truncated to `max_length` when set; `input_ids` win when both are
    there). Returns `input_ids` (masked), `attention_mask`, `labels` (original ids where masked, -100 elsewhere) and
    `t` (per row, or per token with `block_size`); with prompts, also `prompt_mask` (1 on prompt tokens), with which
    the loss divides by the response tokens: the NELBO of the response given the prompt, per response token.
    Arguments are checked once, at construction (`collator_arguments.py`): a wrong type, range or a pair of arguments
    that would cancel is an error naming the fix.
    """

    tokenizer: PreTrainedTokenizerBase
    schedule: "str | NoiseSchedule" = "linear"
    eps: float = 1e-3
    antithetic: bool = True
    padding: bool | str = True
    max_length: int | None = None
    pad_to_multiple_of: int | None = None
    generator: torch.Generator | None = None
    seed: int = 0
    return_tensors: str = "pt"
    eos_padding: bool = False
    block_size: int | None = None
    t_interval: tuple[float, float] | None = None
    noise_schedule: NoiseSchedule = field(init=False, repr=False)
    _encodable_characters: set = field(default_factory=set, init=False, repr=False)
    _epoch: int | None = field(default=None, init=False, repr=False)

    def __post_init__(self):
        check_collator_arguments(self)
        self.noise_schedule = get_schedule(self.schedule)

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        if isinstance(examples, Mapping) or len(examples) == 0:
            raise ValueError(
                "DataCollatorForMaskedDiffusion takes a non-empty list of examples (one dict each), got "
                f"{'a dict' if isinstance(examples, Mapping) else 'an empty batch'}; pass [dataset[i] for i in ...]."
            )
        features, prompt_masks, complete = [], [], []
        for example in examples:
            if not isinstance(example, Mapping):
                raise TypeError(
                    f"Each example must be a dict (with `input_ids` or `text`), got {type(example).__name__}; wrap "
                    "token ids as {'input_ids': ids}."
                )
            feature, ended = self._tokenized(example)
            length = len(feature["input_ids"])
            prompt_masks.append(self._prompt_mask(example, length))
            features.append(feature)
            complete.append(ended)
        if self.eos_padding:
            self._pad_with_eos(features, prompt_masks, complete)

        batch = pad_without_fast_tokenizer_warning(
            self.tokenizer,
            features,
            padding=self.padding,
            max_length=self.max_length if self.padding == "max_length" else None,  # tokenizer.pad ignores it else
            pad_to_multiple_of=self.pad_to_multiple_of,
            return_tensors="pt",
        )
        input_ids, attention_mask = batch["input_ids"], batch["attention_mask"]
        prompt_mask = self._pad_like(prompt_masks, input_ids.shape[1])

        generator = self._batch_generator(input_ids)
        t = self._times(attention_mask, generator)
        maskable = attention_mask.bool() & ~prompt_mask
        draw = torch.rand(input_ids.shape, generator=generator)
        probability = self.noise_schedule.mask_probability(t)
        masked = (draw < (probability if t.dim() == 2 else probability[:, None])) & maskable
        labels = torch.where(masked, input_ids, IGNORE_INDEX)
        noisy_ids = torch.where(masked, self.tokenizer.mask_token_id, input_ids)
        batch = {"input_ids": noisy_ids, "attention_mask": attention_mask, "labels": labels, "t": t,
                 "mask_probability": probability}  # fmt: skip
        if any(name in example for example in examples for name in PROMPT_COLUMNS):
            batch["prompt_mask"] = prompt_mask.long()  # the loss counts response tokens only
        return batch

    def sample_t(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Diffusion times in [eps, 1) (or in `t_interval`), stratified across the batch when `antithetic`."""
        generator = generator if generator is not None else self.generator
        if self.antithetic:
            u = (torch.rand(1, generator=generator) + torch.arange(batch_size) / batch_size) % 1.0
        else:
            u = torch.rand(batch_size, generator=generator)
        low, high = self.t_interval if self.t_interval is not None else (self.eps, 1.0)
        return low + (high - low) * u

    def _times(self, attention_mask: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """(batch,) one time per row; with `block_size`, (batch, length): one time per block of every row (the
        blocks of the batch are the draws `sample_t` stratifies), each token its block's, 0 at padding."""
        if self.block_size is None:
            return self.sample_t(attention_mask.shape[0], generator)
        blocks = block_ids(attention_mask, attention_mask.shape[1], self.block_size)
        blocks_per_row = (attention_mask.sum(1) + self.block_size - 1) // self.block_size
        first_block = blocks_per_row.cumsum(0) - blocks_per_row  # index of each row's block 0 among the batch's
        times = self.sample_t(max(int(blocks_per_row.sum()), 1), generator)
        index = (first_block[:, None] + blocks).clamp(min=0)
        return torch.where(blocks == PAD_BLOCK, 0.0, times[index])

    def set_epoch(self, epoch: int) -> None:
        """Key the noise of the batches that follow to `epoch` (for loops other than accelerate's or the Trainer's)."""
        self._epoch = int(epoch)

    def _batch_generator(self, input_ids: torch.Tensor) -> torch.Generator | None:
        """The generator this batch draws from (see the class docstring); None for torch's global RNG."""
        if self.generator is not None:
            return self.generator
        epoch = self._epoch if self._epoch is not None else collating_epoch()
        if epoch is None:
            return None
        key = f"{self.seed}/{epoch}/{tuple(input_ids.shape)}/".encode() + input_ids.numpy().tobytes()
        return torch.Generator().manual_seed(int.from_bytes(hashlib.sha256(key).digest()[:8], "little"))

    def _tokenized(self, example: dict[str, Any]) -> tuple[dict[str, list[int]], bool]:
        """The example's `input_ids` and `attention_mask`, and whether it is complete: token ids always are; a text
        is when it fits in `max_length` (with its EOS, under `eos_padding`), so that EOS padding may follow it."""
        if "prompt_length" in example and "prompt_mask" in example:
            raise ValueError(
                "An example has both prompt_length and prompt_mask, and only one would be used; keep one of them."
            )
        if "input_ids" in example:
            ids = self._token_ids(example["input_ids"])
            mask = example.get("attention_mask")
            # An example without a mask has only real tokens (a batch may mix examples with and without one).
            mask = [1] * len(ids) if mask is None else self._attention_mask(mask, len(ids))
            self._check_fits(ids, mask)
            return {"input_ids": ids, "attention_mask": mask}, True
        if isinstance(example.get("text"), str):
            self._check_encodable(example["text"])
            encoded = self.tokenizer(
                example["text"], truncation=self.max_length is not None, max_length=self.max_length
            )
            ids = encoded["input_ids"]
            complete = self.max_length is None or len(ids) + self._missing_eos(ids) <= self.max_length
            return {"input_ids": ids, "attention_mask": encoded["attention_mask"]}, complete
        raise ValueError(
            f"Each example needs `input_ids` or a `text` string; got keys {sorted(example)}. Tokenize the dataset "
            "first: `dataset = dataset.map(lambda b: tokenizer(b['text']), batched=True)`. With the Trainer, its "
            "default `remove_unused_columns=True` drops every column the model's forward does not name, `text` "
            "included: tokenize first, or pass `TrainingArguments(remove_unused_columns=False)`."
        )

    def _missing_eos(self, ids: list[int]) -> int:
        """1 when EOS padding must add an end-of-text EOS after `ids` (they do not end in EOS), else 0."""
        return int(self.eos_padding and (not ids or ids[-1] != self.tokenizer.eos_token_id))

    def _check_fits(self, ids: list[int], mask: list[int]) -> None:
        """Token-id examples are not truncated: refuse one longer than `max_length` (with its EOS under
        `eos_padding`), and, under `eos_padding`, one padded already (EOS must follow its last real token)."""
        needed = len(ids) + self._missing_eos(ids)
        if self.max_length is not None and needed > self.max_length:
            with_eos = " with its EOS" if needed > len(ids) else ""
            raise ValueError(
                f"An example has {needed} tokens{with_eos}, more than max_length={self.max_length}; truncate it when "
                f"tokenizing (to {self.max_length - (needed - len(ids))} tokens), or raise max_length."
            )
        if self.eos_padding and 0 in mask:
            raise ValueError(
                "With eos_padding=True examples must not be padded already (an attention_mask holds 0s): the "
                "collator pads each response with EOS. Tokenize without padding."
            )

    def _pad_with_eos(self, features: list[dict], prompt_masks: list[list[bool]], complete: list[bool]) -> None:
        """Extend every complete example with EOS (one ending it, if it does not end in EOS, then padding) to the
        batch's width, in place. The EOS tokens are real (attention 1) and not prompt: masked and scored like the
        response. A text cut at `max_length` gets none (it did not end) and is padded with pad tokens as usual."""
        eos = self.tokenizer.eos_token_id
        lengths = [len(feature["input_ids"]) + self._missing_eos(feature["input_ids"]) * ended
                   for feature, ended in zip(features, complete)]  # fmt: skip
        width = self.max_length if self.padding == "max_length" else max(lengths)
        if self.pad_to_multiple_of is not None:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        for feature, prompt, ended in zip(features, prompt_masks, complete):
            if ended:
                extra = width - len(feature["input_ids"])
                feature["input_ids"] = feature["input_ids"] + [eos] * extra
                feature["attention_mask"] = feature["attention_mask"] + [1] * extra
                prompt.extend([False] * extra)

    def _token_ids(self, ids) -> list[int]:
        """One example's ids as a flat list of ints in [0, len(tokenizer)), or an error naming the fix."""
        if len(ids) == 0:
            return []
        try:
            ids = torch.as_tensor(ids)
        except (ValueError, TypeError):
            ids = None
        if ids is None or ids.dim() != 1:
            raise ValueError(
                "The input_ids of an example must be one flat sequence of token ids, got a nested or ragged value; "
                "give each example its own row (flatten or split nested lists)."
            )
        if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
            raise TypeError(
                f"input_ids must be integer token ids, got dtype {ids.dtype}; convert them to ints (e.g. "
                "`dataset.cast_column('input_ids', datasets.Sequence(datasets.Value('int64')))`)."
            )
        if len(ids) and (int(ids.min()) < 0 or int(ids.max()) >= len(self.tokenizer)):
            raise ValueError(
                f"input_ids hold ids outside [0, {len(self.tokenizer)}) of the tokenizer (found {int(ids.min())} to "
                f"{int(ids.max())}); tokenize the dataset with this collator's tokenizer."
            )
        return ids.tolist()

    @staticmethod
    def _per_token_flags(name: str, mask, length: int, fix: str) -> list[int]:
        """`mask` (list or tensor) as 0/1 ints, one per token; anything else is a ValueError naming `fix`."""
        mask = mask.tolist() if isinstance(mask, torch.Tensor) else list(mask)
        if len(mask) != length or any(value not in (0, 1) for value in mask):
            raise ValueError(
                f"{name} must hold one 0/1 entry per token ({length}), got {len(mask)} entries {mask}; {fix}"
            )
        return [int(value) for value in mask]

    @classmethod
    def _attention_mask(cls, mask, length: int) -> list[int]:
        return cls._per_token_flags("attention_mask", mask, length, "drop it to mark every token as real.")

    def _check_encodable(self, text: str) -> None:
        """Without an unk token, a character outside the vocabulary may be dropped silently: refuse it instead."""
        if self.tokenizer.unk_token_id is not None:
            return
        unknown = []
        for character in sorted(set(text) - self._encodable_characters):
            try:
                encodable = character.isspace() or bool(
                    self.tokenizer(character, add_special_tokens=False)["input_ids"]
                )
            except Exception:  # tokenizers raises a bare Exception (e.g. WordLevel without [UNK])
                encodable = False
            if encodable:
                self._encodable_characters.add(character)
            else:
                unknown.append(character)
        if unknown:
            raise ValueError(
                f"The text holds characters the tokenizer cannot encode and it has no unk token: {unknown}; clean the "
                "text, or give the tokenizer an unk token (tokenizer.add_special_tokens({'unk_token': '<unk>'}))."
            )

    @classmethod
    def _prompt_mask(cls, example: dict[str, Any], length: int) -> list[bool]:
        if "prompt_mask" in example:
            flags = cls._per_token_flags("prompt_mask", example["prompt_mask"], length, "mark prompt tokens with 1.")
            return [bool(value) for value in flags]
        prompt_length = example.get("prompt_length", 0)
        if isinstance(prompt_length, torch.Tensor) and prompt_length.numel() == 1:
            prompt_length = prompt_length.item()
        if isinstance(prompt_length, bool) or not isinstance(prompt_length, numbers.Integral):
            raise TypeError(
                f"prompt_length must be a whole number of prompt tokens, got {prompt_length!r}; count the prompt's "
                "tokens, e.g. len(tokenizer(prompt)['input_ids'])."
            )
        if not 0 <= prompt_length <= length:
            raise ValueError(
                f"prompt_length={prompt_length} does not fit an example of {length} tokens; give a count between 0 "
                "and the example's length (after truncation)."
            )
        return [True] * prompt_length + [False] * (length - prompt_length)

    def _pad_like(self, rows: list[list[bool]], width: int) -> torch.Tensor:
        """Pad per-example boolean rows to `width` on the tokenizer's padding side (False on padding)."""
        left = self.tokenizer.padding_side == "left"
        padded = [[False] * (width - len(row)) + row if left else row + [False] * (width - len(row)) for row in rows]
        return torch.tensor(padded, dtype=torch.bool)  # one tensor for the batch, not one per row


def collating_epoch() -> int | None:
    """The epoch of the accelerate dataloader being iterated in this process (the Trainer's), else None.

    In a dataloader worker process the copy of that state may be stale (persistent workers), so it is not used there.
    """
    if torch.utils.data.get_worker_info() is not None:
        return None
    return getattr(GradientState().active_dataloader, "iteration", None)
