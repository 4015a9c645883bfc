"""`PromptedPublishedSampler`: the base of the samplers published with prompted block-diffusion families (LLaDA 2.x,
SDAR), which continue a prompt, and `decode_like_authors`, their entry point.

    ids = decode_like_authors(model, "llada2_threshold", input_ids, gen_length=64, block_length=32, threshold=0.95)

The authors' samplers take one prompt (batch size 1, no padding). `decode` takes (B, P) prompts without padding and
runs each row as the authors' function would run it alone; the rows' outputs (the authors' return value for each
row, whose lengths can differ) are right-padded with the sampler's `pad_token_id` (LLaDA 2.x: eos, after which the
authors' output never continues). The rows run one after the other, as successive calls of the authors' function:
with one generator (or the global RNG) row 1's draws follow row 0's. The number of model forwards returned is the sum
over the rows.
"""

import torch

from .base import build_published_sampler


class CountedForward:
    """The model as a prompted sampler calls it: `logits(model, input_ids, **kwargs)`, forwards counted."""

    def __init__(self, model, logits):
        self.model, self.logits, self.device, self.calls = model, logits, model.device, 0

    def __call__(self, input_ids: torch.LongTensor, **kwargs) -> torch.Tensor:
        self.calls += 1
        return self.logits(self.model, input_ids, **kwargs)


class PromptedPublishedSampler:
    """A sampler published with a prompted block-diffusion family, reproduced decision for decision.

    Subclasses set `family` and implement `check_run` (refuse what the authors' sampler does not support, resolve
    the options against the model) and `run` (one row, as the authors' function, calling the model through the
    counted `logits`); `supports_padding` says whether the family's sampler takes a padded batch (then `decode` passes
    `attention_mask` to `run`, else it refuses padding).
    """

    name: str
    family: str
    prompted = True
    supports_padding = False

    def decode(self, model, input_ids, *, generator=None, attention_mask=None) -> tuple[torch.LongTensor, int]:
        """(ids as the authors' function returns them, number of model forwards); arguments checked first."""
        config = self.check_model(model)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise ValueError(
                f"generator must be None (the authors' global torch RNG) or a torch.Generator (the global RNG after "
                f"`torch.manual_seed(seed)` is `torch.Generator().manual_seed(seed)`), got {type(generator).__name__}."
            )
        if generator is not None and generator.device.type != model.device.type:
            raise ValueError(
                f"generator is on {generator.device} but the model on {model.device}: the draws are made where the "
                f"model's probabilities are; pass torch.Generator(device=model.device).manual_seed(seed)."
            )
        input_ids = self.check_input_ids(input_ids, config, model.device)
        attention_mask = self.check_attention_mask(attention_mask, input_ids)
        options = self.check_run(config, input_ids)
        counted = CountedForward(model, self.logits)
        with torch.no_grad():
            if self.supports_padding:
                ids = self.run(counted, config, input_ids, generator, attention_mask=attention_mask, **options)
            else:
                rows = [self.run(counted, config, row[None], generator, **options)[0] for row in input_ids]
                ids = right_pad(rows, options["pad_token_id"])
        return ids, counted.calls

    def check_model(self, model):
        """The model's config, after refusing a model without a [MASK] id or in training mode; subclasses add the
        family's own checks."""
        config = getattr(model, "config", None)
        if getattr(config, "mask_token_id", None) is None or not callable(model):
            raise ValueError(
                f"The {self.name!r} sampler needs a {self.family} model with a mask_token_id in its config (e.g. a "
                f"{self.family} checkpoint loaded with from_pretrained)."
            )
        if model.training:
            raise ValueError("The model is in training mode (dropout changes the logits): call model.eval() first.")
        return config

    def check_input_ids(self, input_ids, config, device) -> torch.LongTensor:
        """`input_ids` as a (B, P) long tensor on `device` of token ids other than [MASK], else a ValueError."""
        if not isinstance(input_ids, torch.Tensor) or input_ids.ndim != 2 or input_ids.shape[0] == 0:
            shape = tuple(input_ids.shape) if isinstance(input_ids, torch.Tensor) else type(input_ids).__name__
            raise ValueError(
                f"input_ids must be a (batch, prompt length) tensor of token ids with at least one row, got {shape}; "
                "pass tokenizer(text, return_tensors='pt').input_ids."
            )
        if input_ids.dtype == torch.bool or input_ids.is_floating_point() or input_ids.is_complex():
            raise ValueError(f"input_ids must hold integer token ids, got dtype {input_ids.dtype}.")
        if input_ids.numel() and (input_ids.min() < 0 or input_ids.max() >= config.vocab_size):
            raise ValueError(f"input_ids must be token ids in 0..{config.vocab_size - 1} (the model's vocabulary).")
        if (input_ids == config.mask_token_id).any():
            raise ValueError(
                f"input_ids contains the [MASK] id {config.mask_token_id}: the authors' sampler would decode it only "
                "in the prompt's last, partial block; a prompt must be text."
            )
        return input_ids.to(device=device, dtype=torch.long)

    def check_attention_mask(self, attention_mask, input_ids):
        """None, or a 0/1 mask of input_ids' shape; padding is refused unless the family's sampler takes it."""
        if attention_mask is None:
            return None
        if not isinstance(attention_mask, torch.Tensor) or attention_mask.shape != input_ids.shape:
            shape = tuple(attention_mask.shape) if isinstance(attention_mask, torch.Tensor) else attention_mask
            raise ValueError(
                f"attention_mask must be a tensor of input_ids' shape {tuple(input_ids.shape)}, got {shape}."
            )
        if not ((attention_mask == 0) | (attention_mask == 1)).all():
            raise ValueError("attention_mask must hold 0 (padding) and 1 (token) only.")
        if not self.supports_padding and (attention_mask == 0).any():
            raise ValueError(
                f"The authors' {self.family} sampler ({self.name!r}) takes one prompt without padding: pass the rows "
                "unpadded (one call per prompt length), or use model.generate(), which decodes padded batches."
            )
        return attention_mask.to(input_ids.device)

    def logits(self, model, input_ids, **kwargs) -> torch.Tensor:
        """The logits the authors' sampler reads: float32 `model(input_ids, **kwargs).logits`."""
        return model(input_ids, **kwargs).logits.float()

    def check_run(self, config, input_ids) -> dict:
        """Refuse what the authors' sampler does not support; return the options resolved against this model (with
        `pad_token_id`, the id right-padding shorter rows), which `run` gets as keywords."""
        raise NotImplementedError

    def run(self, model, config, input_ids, generator, **options) -> torch.LongTensor:
        """The authors' function on one prompt (1, P): its return value (1, n)."""
        raise NotImplementedError


def right_pad(rows: list, pad_token_id: int) -> torch.LongTensor:
    """The 1-D tensors `rows` stacked into (len(rows), longest), shorter ones right-padded with `pad_token_id`."""
    ids = torch.full((len(rows), max(len(row) for row in rows)), pad_token_id, dtype=torch.long, device=rows[0].device)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
    return ids


def check_flag(value, name: str) -> bool:
    """`value` if it is True or False, else a ValueError naming `name` (1 and "yes" are not flags)."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}.")
    return value


def decode_like_authors(
    model, name: str, input_ids, *, attention_mask=None, generator=None, return_model_calls=False, **sampler_kwargs
):
    """The continuation of `input_ids` (B, P) by the published prompted sampler `name` with options `sampler_kwargs`
    (see its class), as the authors' function returns it for each row; with `return_model_calls`, also the number of
    model forwards made. `generator` replaces the authors' global torch RNG (None: use it). Bad arguments raise a
    ValueError before any forward."""
    check_flag(return_model_calls, "return_model_calls")
    sampler = build_published_sampler(name, True, **sampler_kwargs)
    ids, calls = sampler.decode(model, input_ids, generator=generator, attention_mask=attention_mask)
    return (ids, calls) if return_model_calls else ids


__all__ = ["CountedForward", "PromptedPublishedSampler", "check_flag", "decode_like_authors", "right_pad"]
