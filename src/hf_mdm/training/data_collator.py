"""DataCollatorForMaskedDiffusion: pad a batch, draw a diffusion time per row and mask tokens accordingly."""

from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase

from ..schedules import NoiseSchedule, get_schedule
from ..transformers_compat import pad_without_fast_tokenizer_warning
from .masked_diffusion_loss import IGNORE_INDEX


@dataclass
class DataCollatorForMaskedDiffusion:
    r"""Collate examples for masked-diffusion training, as `DataCollatorForLanguageModeling` does for BERT.

    For each row b it draws t_b and masks every maskable token independently with probability 1 - alpha(t_b):

        t_b = eps + (1 - eps) * ((u + b / B) mod 1),   u ~ U[0, 1)     (antithetic: stratified across the batch)
        t_b = eps + (1 - eps) * u_b,                   u_b ~ U[0, 1)   (otherwise)

    The affine map keeps t uniform on [eps, 1) instead of clipping, which would put a point mass at the largest weight
    w(eps). Pad tokens are never masked; with `prompt_length` or `prompt_mask` in an example, its prompt is never
    masked either (instruction tuning). Randomness comes from `generator` when given, else from torch's global RNG,
    which the Trainer seeds and restores on `resume_from_checkpoint`.

    Examples are dicts with `input_ids` (lists or tensors; optional `attention_mask`) or with a `text` string, which is
    tokenized (truncated to `max_length` when set). Returns `input_ids` (masked), `attention_mask`, `labels` (original
    ids where masked, -100 elsewhere) and `t`.
    """

    tokenizer: PreTrainedTokenizerBase
    schedule: "str | NoiseSchedule" = "linear"
    eps: float = 1e-3
    antithetic: bool = True
    padding: bool | str = True
    max_length: int | None = None
    pad_to_multiple_of: int | None = None
    generator: torch.Generator | None = None
    return_tensors: str = "pt"
    noise_schedule: NoiseSchedule = field(init=False, repr=False)

    def __post_init__(self):
        if getattr(self.tokenizer, "mask_token_id", None) is None:
            raise ValueError(
                "The tokenizer has no mask token, which masked diffusion needs. Add one and resize the model:\n"
                "    tokenizer.add_special_tokens({'mask_token': '<|mask|>'})\n"
                "    model.resize_token_embeddings(len(tokenizer))"
            )
        if self.tokenizer.pad_token_id is None:
            raise ValueError(
                "The tokenizer has no pad token, so batches cannot be padded. Set one, e.g. "
                "`tokenizer.pad_token = tokenizer.eos_token` (pad positions are never masked nor scored)."
            )
        if not 0.0 <= self.eps < 1.0:
            raise ValueError(f"eps must lie in [0, 1), got {self.eps}.")
        if self.return_tensors != "pt":
            raise ValueError(f"Only return_tensors='pt' is supported, got {self.return_tensors!r}.")
        self.noise_schedule = get_schedule(self.schedule)

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        if len(examples) == 0:
            raise ValueError("DataCollatorForMaskedDiffusion got an empty batch; pass at least one example.")
        features, prompt_masks = [], []
        for example in examples:
            feature = self._tokenized(example)
            length = len(feature["input_ids"])
            prompt_masks.append(self._prompt_mask(example, length))
            features.append(feature)

        batch = pad_without_fast_tokenizer_warning(
            self.tokenizer,
            features,
            padding=self.padding,
            max_length=self.max_length,
            pad_to_multiple_of=self.pad_to_multiple_of,
            return_tensors="pt",
        )
        input_ids, attention_mask = batch["input_ids"], batch["attention_mask"]
        prompt_mask = self._pad_like(prompt_masks, input_ids.shape[1])

        t = self.sample_t(input_ids.shape[0])
        maskable = attention_mask.bool() & ~prompt_mask
        draw = torch.rand(input_ids.shape, generator=self.generator)
        masked = (draw < self.noise_schedule.mask_probability(t)[:, None]) & maskable
        labels = torch.where(masked, input_ids, IGNORE_INDEX)
        noisy_ids = torch.where(masked, self.tokenizer.mask_token_id, input_ids)
        return {"input_ids": noisy_ids, "attention_mask": attention_mask, "labels": labels, "t": t}

    def sample_t(self, batch_size: int) -> torch.Tensor:
        """Diffusion times in [eps, 1), stratified across the batch when `antithetic`."""
        if self.antithetic:
            u = (torch.rand(1, generator=self.generator) + torch.arange(batch_size) / batch_size) % 1.0
        else:
            u = torch.rand(batch_size, generator=self.generator)
        return self.eps + (1.0 - self.eps) * u

    def _tokenized(self, example: dict[str, Any]) -> dict[str, Any]:
        if "input_ids" in example:
            ids = example["input_ids"]
            ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
            feature = {"input_ids": ids}
            if "attention_mask" in example:
                mask = example["attention_mask"]
                feature["attention_mask"] = mask.tolist() if isinstance(mask, torch.Tensor) else list(mask)
            return feature
        if isinstance(example.get("text"), str):
            encoded = self.tokenizer(
                example["text"], truncation=self.max_length is not None, max_length=self.max_length
            )
            return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}
        raise ValueError(
            f"Each example needs `input_ids` or a `text` string; got keys {sorted(example)}. Tokenize the dataset "
            "with `dataset.map(lambda b: tokenizer(b['text']), batched=True)` or keep its `text` column."
        )

    @staticmethod
    def _prompt_mask(example: dict[str, Any], length: int) -> list[bool]:
        if "prompt_mask" in example:
            mask = [bool(v) for v in example["prompt_mask"]]
            if len(mask) != length:
                raise ValueError(f"prompt_mask has {len(mask)} entries for an example of {length} tokens.")
            return mask
        prompt_length = int(example.get("prompt_length", 0))
        if not 0 <= prompt_length <= length:
            raise ValueError(f"prompt_length={prompt_length} does not fit an example of {length} tokens.")
        return [True] * prompt_length + [False] * (length - prompt_length)

    def _pad_like(self, rows: list[list[bool]], width: int) -> torch.Tensor:
        """Pad per-example boolean rows to `width` on the tokenizer's padding side (False on padding)."""
        padded = torch.zeros(len(rows), width, dtype=torch.bool)
        for i, row in enumerate(rows):
            row = torch.tensor(row, dtype=torch.bool)
            if self.tokenizer.padding_side == "left":
                padded[i, width - len(row) :] = row
            else:
                padded[i, : len(row)] = row
        return padded
