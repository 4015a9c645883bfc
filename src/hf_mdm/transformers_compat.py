"""The one boundary between hf-mdm and transformers' private or fast-moving names.

Every transformers internal hf-mdm touches is imported or adapted here, with what it is for and since which version
it is needed; the rest of the package imports these names from this module and stays version-free. The version
checks of the package live here alone. `tests/test_transformers_compat.py` fails when another module imports a
`_`-prefixed transformers name.

Class attributes that transformers reads by convention stay on the classes that need them, listed here: `MDMConfig.
has_no_defaults_at_init` (read before 5.20, whose configs otherwise build `MDMConfig()` without the required
`mask_token_id`), and `MDMPreTrainedModel`'s `_supports_*`, `_no_split_modules`, `_can_record_outputs` and
`_tied_weights_keys` (PreTrainedModel's documented switches).

Supported: transformers >= TRANSFORMERS_FLOOR (pyproject.toml declares the same floor; CI runs the suite at the floor
and at the newest release).
"""

import functools
import importlib.metadata

from packaging.version import Version


# The oldest transformers on which the whole suite passes (CI proves it with ci/constraints-min.txt).
TRANSFORMERS_FLOOR = "5.18.0"
TRANSFORMERS_VERSION = Version(importlib.metadata.version("transformers"))
if TRANSFORMERS_VERSION < Version(TRANSFORMERS_FLOOR):
    raise ImportError(
        f"hf-mdm needs transformers>={TRANSFORMERS_FLOOR}, but transformers {TRANSFORMERS_VERSION} is installed. "
        f'Upgrade it: pip install -U "transformers>={TRANSFORMERS_FLOOR}"'
    )

# Imported after the floor check, so that an old transformers fails with the message above, not an ImportError below.
from transformers.cache_utils import Cache  # noqa: E402
from transformers.data.data_collator import pad_without_fast_tokenizer_warning  # noqa: E402
from transformers.masking_utils import create_bidirectional_mask, create_causal_mask  # noqa: E402
from transformers.modeling_layers import GradientCheckpointingLayer  # noqa: E402
from transformers.modeling_rope_utils import RopeParameters  # noqa: E402
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS  # noqa: E402

# The LLaDA 2.x and LLaDA-MoE building blocks whose numerics are the authors': DeepSeek-V3's and Qwen2-MoE's SwiGLU of
# a given width, GLM-4-MoE's partial RoPE (rotate-half on the first partial_rotary_factor * head_dim channels).
from transformers.models.deepseek_v3.modeling_deepseek_v3 import DeepseekV3MLP  # noqa: E402
from transformers.models.glm4_moe.modeling_glm4_moe import Glm4MoeRotaryEmbedding  # noqa: E402
from transformers.models.glm4_moe.modeling_glm4_moe import (  # noqa: E402
    apply_rotary_pos_emb as apply_partial_rotary_pos_emb,
)
from transformers.models.llama.modeling_llama import (  # noqa: E402
    LlamaMLP,
    LlamaRMSNorm,
    LlamaRotaryEmbedding,
    apply_rotary_pos_emb,
    eager_attention_forward,
)
from transformers.models.qwen2_moe.modeling_qwen2_moe import Qwen2MoeMLP  # noqa: E402
from transformers.pipelines import TextGenerationPipeline  # noqa: E402
from transformers.utils import can_return_tuple  # noqa: E402
from transformers.utils.deprecation import deprecate_kwarg  # noqa: E402
from transformers.utils.generic import merge_with_config_defaults  # noqa: E402
from transformers.utils.output_capturing import OutputRecorder, capture_outputs  # noqa: E402


# --- The cache argument's name ---------------------------------------------------------------------------------------
# transformers 5.24 renamed `past_key_values` to `cache` in forward signatures, mask factories and output fields (the
# old name is deprecated until 5.40); before 5.24 `cache` is unknown and swallowed silently by `**kwargs`.
CACHE_ARGUMENT = "cache" if TRANSFORMERS_VERSION >= Version("5.24.0.dev0") else "past_key_values"


def cache_keyword(cache) -> dict:
    """`{name: cache}` under the installed transformers' name for the cache argument of forwards and mask helpers."""
    return {CACHE_ARGUMENT: cache}


def accepts_legacy_cache_name(forward):
    """Decorator for hf-mdm's forwards, whose cache parameter is named `cache`: `past_key_values=` still works.

    From 5.24 it is transformers' own `deprecate_kwarg` (a FutureWarning, as stock models give); before 5.24
    `past_key_values` is the current name there, so it is renamed without a warning.
    """
    if CACHE_ARGUMENT == "cache":
        return deprecate_kwarg("past_key_values", "5.40.0", new_name="cache", raise_if_both_names=True)(forward)

    @functools.wraps(forward)
    def renamed(*args, **kwargs):
        if "past_key_values" in kwargs:
            if kwargs.get("cache") is not None:
                raise ValueError("Pass the cache once, as `cache=` (or `past_key_values=`), not both.")
            kwargs["cache"] = kwargs.pop("past_key_values")
        return forward(*args, **kwargs)

    return renamed


# --- Mask factories (transformers.masking_utils, since 5.0) ----------------------------------------------------------
def bidirectional_mask(config, inputs_embeds, attention_mask, cache):
    """The backend's padding-only mask (every position sees every non-pad key), for the cache's key length."""
    return create_bidirectional_mask(
        config=config, inputs_embeds=inputs_embeds, attention_mask=attention_mask, **cache_keyword(cache)
    )


def causal_mask(config, inputs_embeds, attention_mask, cache, position_ids):
    """The backend's causal mask; used only to check an AR -> MDM conversion against its causal source."""
    return create_causal_mask(
        config=config,
        inputs_embeds=inputs_embeds,
        attention_mask=attention_mask,
        position_ids=position_ids,
        **cache_keyword(cache),
    )


class CausalConfigView:
    """A model config as transformers' causal mask factory reads it, with `is_causal` True: the factory falls back to a
    bidirectional mask for a config that is not causal (as MDMConfig is), and would drop the block overlay."""

    is_causal = True

    def __init__(self, config):
        self.config = config

    def __getattr__(self, name):
        return getattr(self.config, name)


def block_causal_mask(config, inputs_embeds, attention_mask, cache, block_ids):
    """The backend's block-causal mask: a query sees the real keys of its own block (both ways) and of earlier ones.

    transformers' causal mask with its blockwise overlay (`create_causal_mask(block_sequence_ids=)`: causal OR same
    block), which for real tokens in column order is `block(key) <= block(query)`; padding keys are masked. It is
    built index-based: an `and_mask_function` makes transformers build it under vmap, which took two thirds of a
    cached decoding forward (`benchmarks/generate_cache.py`). `block_ids` (B, keys) numbers the blocks of every key,
    cached ones included (mask indices are absolute, the query's starting at the cache's length), -1 at padding."""
    return create_causal_mask(
        config=CausalConfigView(config),
        inputs_embeds=inputs_embeds,
        attention_mask=attention_mask,
        block_sequence_ids=block_ids,
        **cache_keyword(cache),
    )


def block_diffusion_mask(config, inputs_embeds, attention_mask, block_ids, noisy_length: int):
    """BD3-LM's training mask over [x_t ; x_0]: the first `noisy_length` columns are the noisy sequence, the rest its
    clean copy (same blocks, same padding). A noisy token of block b sees the noisy block b and the clean blocks < b;
    a clean token of block b sees the clean blocks <= b (the block-causal model on clean text); no clean token sees a
    noisy one. transformers' bidirectional (padding) mask intersected with that rule (its `and_mask_function`);
    `block_ids` (B, 2 * noisy_length) numbers the blocks of both halves."""

    def bd3lm_visible(batch_idx, head_idx, q_idx, kv_idx):
        query_block, key_block = block_ids[batch_idx, q_idx], block_ids[batch_idx, kv_idx]
        query_half, key_half = q_idx // noisy_length, kv_idx // noisy_length  # 0: noisy, 1: clean (integers: flex)
        return ((key_half == 1) & (key_block < query_block)) | ((key_half == query_half) & (key_block == query_block))

    return create_bidirectional_mask(
        config=config, inputs_embeds=inputs_embeds, attention_mask=attention_mask, and_mask_function=bd3lm_visible
    )


# --- Attention registry (ALL_ATTENTION_FUNCTIONS, since 4.48; `config._attn_implementation` is private) -------------
def attention_implementation(config) -> str | None:
    """The name of the attention backend a model config selects ("sdpa", "eager", ...), None when it has none."""
    return getattr(config, "_attn_implementation", None)


def attention_function(config):
    """The attention kernel the config selects (eager, sdpa, flash, flex, kernels), LLaMA's eager one by default."""
    return ALL_ATTENTION_FUNCTIONS.get_interface(attention_implementation(config), eager_attention_forward)


# --- Cache subclassing (transformers.cache_utils.Cache, layer-based since 4.56) --------------------------------------
class LayerlessCache(Cache):
    """Base for caches that keep no per-layer `CacheLayer` objects and implement `update`, `get_seq_length` and
    `get_mask_sizes` themselves (the block caches of diffusion decoding)."""

    def __init__(self):
        super().__init__(layers=[])

    @property
    def is_compileable(self) -> bool:
        return False


# --- Auto classes (the mapping's `register` is reached through a private attribute) ----------------------------------
def register_auto_model(auto_class, config_class, model_class) -> None:
    """Map `config_class` to `model_class` in `auto_class` even when `model_class.config_class` is another config.

    `auto_class.register` refuses that (one config per model class), but a format converted on load (LLaDA, Dream)
    needs one model class for several configs, so the lazy mapping is written directly.
    """
    auto_class._model_mapping.register(config_class, model_class, exist_ok=True)


# --- Weight conversions attached by from_pretrained (core_model_loading, since 5.0) ----------------------------------
def forget_weight_conversions(model) -> None:
    """Make `save_pretrained` write the model's own parameter names, not the checkpoint's it was converted from."""
    model._weight_conversions = []


# --- Activation checkpointing (`gradient_checkpointing_enable` is deprecated for v6 from 5.24; the new name exists
# since 5.23) ---------------------------------------------------------------------------------------------------------
def enable_activation_checkpointing(model, **kwargs) -> bool:
    """Recompute activations in the backward pass, under the installed transformers' current method name; returns
    whether the model reports it on."""
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(**kwargs)
        return model.is_activation_checkpointing
    model.gradient_checkpointing_enable(**kwargs)
    return model.is_gradient_checkpointing


# --- GenerationConfig ------------------------------------------------------------------------------------------------
# `_from_model_config` marks a config derived from the model config (GenerationConfig's own metadata field).
FROM_MODEL_CONFIG = {"_from_model_config": True}


def generation_config_load_kwargs(from_auto_class, from_pipeline) -> dict:
    """The private telemetry keywords `GenerationConfig.from_pretrained` takes inside `adjust_generation_fn`."""
    return {"_from_auto": from_auto_class, "_from_pipeline": from_pipeline}


# --- The text-generation pipeline ------------------------------------------------------------------------------------
class TextGenerationPipelineWithoutDefaults(TextGenerationPipeline):
    """`TextGenerationPipeline` that adds none of its generation defaults (max_new_tokens=256, do_sample=True,
    temperature=0.7): `generate()` runs with the model's generation_config, as a direct call does. `Pipeline.__init__`
    reads them from the class attribute `_default_generation_config` (since 4.50)."""

    _default_generation_config = None


__all__ = [
    "CACHE_ARGUMENT",
    "Cache",
    "CausalConfigView",
    "DeepseekV3MLP",
    "FROM_MODEL_CONFIG",
    "Glm4MoeRotaryEmbedding",
    "GradientCheckpointingLayer",
    "LayerlessCache",
    "LlamaMLP",
    "LlamaRMSNorm",
    "LlamaRotaryEmbedding",
    "OutputRecorder",
    "Qwen2MoeMLP",
    "RopeParameters",
    "TRANSFORMERS_FLOOR",
    "TRANSFORMERS_VERSION",
    "TextGenerationPipelineWithoutDefaults",
    "accepts_legacy_cache_name",
    "apply_partial_rotary_pos_emb",
    "apply_rotary_pos_emb",
    "attention_function",
    "attention_implementation",
    "bidirectional_mask",
    "block_causal_mask",
    "block_diffusion_mask",
    "cache_keyword",
    "can_return_tuple",
    "capture_outputs",
    "causal_mask",
    "enable_activation_checkpointing",
    "forget_weight_conversions",
    "generation_config_load_kwargs",
    "merge_with_config_defaults",
    "pad_without_fast_tokenizer_warning",
    "register_auto_model",
]
