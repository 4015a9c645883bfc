"""Diffusion LMs that bring their own decoder, measured like ours: one small adapter class each, found by name.

`sweep_steps`, `ModelCard.from_sweep`, `hf-mdm sweep`/`card` and the lm-eval model type `hf-mdm` decode our models
with hf-mdm's `generate()`. A model whose decoding loop is its own (transformers' DiffusionGemma `generate()`,
diffusers' `LLaDA2Pipeline`) is decoded by that loop, through an `OwnDecoder` adapter registered in `OWN_DECODERS`
(`@register_own_decoder(name)`); `own_decoder(model)` finds the adapter of a model. The contract:

    decode(input_ids, attention_mask, steps, length, block_size, suppress_tokens, seed, **options)
        -> (ids (B, length), forwards (B,))

the `length` generated ids of every row and the model forwards each row took, in `steps` total reverse steps
(a budget over the ceil(length / block_size) blocks: `steps / blocks` per block, the sweep's `steps_per_block`),
never generating the ids in `suppress_tokens` (a task's non-symbols; None: none).
The sweep scores the ids as it scores ours and reports tokens per forward = generated tokens / forwards.

`check(strategy, length, steps, block_size, options)` refuses, before any cell runs, what the decoder cannot honour
(another strategy than its own, a length or step budget it cannot split, an option it does not read), naming the fix.
"""

from transformers import PreTrainedConfig

from . import diffusion_gemma, llada2_pipeline  # noqa: F401  (registers the adapters)
from .base import OWN_DECODERS, OwnDecoder, register_own_decoder


def own_decoder_class(source) -> type[OwnDecoder] | None:
    """The adapter of a model folder (by its config.json `model_type`, before loading it) or of a model instance,
    else None."""
    if isinstance(source, str):
        model_type = PreTrainedConfig.get_config_dict(source)[0].get("model_type")
        return next((adapter for adapter in OWN_DECODERS.values() if model_type in adapter.model_types), None)
    decoder = own_decoder(source)
    return None if decoder is None else type(decoder)


def load_own_decoder_model(model_name_or_path: str, **from_pretrained_kwargs):
    """The model of a folder whose config.json `model_type` an adapter loads (DiffusionGemma's), else None."""
    adapter = own_decoder_class(model_name_or_path)
    return None if adapter is None else adapter.from_pretrained(model_name_or_path, **from_pretrained_kwargs)


def own_decoder(model) -> OwnDecoder | None:
    """The adapter of a model that brings its own decoder (the model itself when it is an adapter), else None."""
    if isinstance(model, OwnDecoder):
        return model
    for name, adapter in OWN_DECODERS.items():
        if adapter.wraps(model):
            return OWN_DECODERS.build(name, model=model)
    return None


__all__ = [
    "OWN_DECODERS",
    "OwnDecoder",
    "load_own_decoder_model",
    "own_decoder",
    "own_decoder_class",
    "register_own_decoder",
]
