"""Dream checkpoints (Dream-org/Dream-v0-*-7B, model_type "Dream"): Qwen2 without the causal mask.

Dream keeps the next-token alignment of the Qwen2.5 it was initialised from: raw logits[:, i] predict token i + 1, so
the converted config sets `logits_shift=1` and `logits[:, i]` of our model predicts token i, as its samplers expect.
"""

from transformers import PreTrainedConfig

from .base import CheckpointFormat, register_checkpoint_format, unsupported


class DreamFormatConfig(PreTrainedConfig):
    """The fields of a Dream config.json, read without Dream's remote code (only converted, never instantiated)."""

    model_type = "Dream"


@register_checkpoint_format
class DreamFormat(CheckpointFormat):
    model_type = "Dream"
    config_class = DreamFormatConfig
    key_mapping = {}  # Dream uses the Qwen2 names, which are ours

    @classmethod
    def mdm_config_kwargs(cls, raw: dict) -> dict:
        if raw.get("use_sliding_window"):
            raise unsupported("Dream", "use_sliding_window", True)
        if raw.get("rope_scaling"):
            raise unsupported("Dream", "rope_scaling", raw["rope_scaling"])
        if "logits_shift" in raw and raw["logits_shift"] not in (1, True):
            raise ValueError(
                f"This Dream config.json sets logits_shift={raw['logits_shift']!r}, but Dream checkpoints predict "
                "token i+1 at position i (shift 1). Remove the field, or convert the folder to model_type 'mdm' and "
                "set logits_shift explicitly if the weights really are unshifted."
            )
        return dict(
            vocab_size=raw["vocab_size"],
            hidden_size=raw["hidden_size"],
            intermediate_size=raw["intermediate_size"],
            num_hidden_layers=raw["num_hidden_layers"],
            num_attention_heads=raw["num_attention_heads"],
            num_key_value_heads=raw.get("num_key_value_heads") or raw["num_attention_heads"],
            hidden_act=raw.get("hidden_act", "silu"),
            max_position_embeddings=raw["max_position_embeddings"],
            rms_norm_eps=raw.get("rms_norm_eps", 1e-6),
            rope_theta=float(raw.get("rope_theta", 10000.0)),
            tie_word_embeddings=bool(raw.get("tie_word_embeddings", False)),
            attention_dropout=float(raw.get("attention_dropout", 0.0)),
            initializer_range=raw.get("initializer_range", 0.02),
            qkv_bias=True,
            mask_token_id=raw["mask_token_id"],
            pad_token_id=raw.get("pad_token_id"),
            eos_token_id=raw.get("eos_token_id"),
            bos_token_id=raw.get("bos_token_id"),
            logits_shift=1,
        )
