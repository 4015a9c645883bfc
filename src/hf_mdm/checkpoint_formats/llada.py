"""LLaDA checkpoints (GSAI-ML/LLaDA-8B-*, model_type "llada"): a bidirectional OLMo-style LLaMA, no logit shift."""

from transformers import GenerationConfig, PreTrainedConfig

from ..configuration_llada_moe import LLaDAMoEConfig, is_llada_moe_config
from ..generation.configuration import DiffusionGenerationConfig
from .base import CheckpointFormat, register_checkpoint_format, unsupported


class LLaDAFormatConfig(PreTrainedConfig):
    """The fields of a LLaDA config.json, read without LLaDA's remote code (only converted, never instantiated)."""

    model_type = "llada"

    @classmethod
    def from_dict(cls, config_dict, **kwargs):
        """A LLaDA-MoE config.json also declares model_type "llada" (its Hub `configuration_lladamoe.py` does): it is
        read as a `LLaDAMoEConfig`, so that the Auto classes load it as `LLaDAMoEForMaskedDiffusion`."""
        if is_llada_moe_config(config_dict):
            moe_dict = {key: value for key, value in config_dict.items() if key != "model_type"}
            return LLaDAMoEConfig.from_dict(moe_dict, **kwargs)
        return super().from_dict(config_dict, **kwargs)


@register_checkpoint_format
class LLaDAFormat(CheckpointFormat):
    model_type = "llada"
    config_class = LLaDAFormatConfig
    key_mapping = {
        r"^model\.transformer\.wte\.": "model.embed_tokens.",
        r"^model\.transformer\.blocks\.(\d+)\.attn_norm\.": r"model.layers.\1.input_layernorm.",
        r"^model\.transformer\.blocks\.(\d+)\.q_proj\.": r"model.layers.\1.self_attn.q_proj.",
        r"^model\.transformer\.blocks\.(\d+)\.k_proj\.": r"model.layers.\1.self_attn.k_proj.",
        r"^model\.transformer\.blocks\.(\d+)\.v_proj\.": r"model.layers.\1.self_attn.v_proj.",
        r"^model\.transformer\.blocks\.(\d+)\.attn_out\.": r"model.layers.\1.self_attn.o_proj.",
        r"^model\.transformer\.blocks\.(\d+)\.ff_norm\.": r"model.layers.\1.post_attention_layernorm.",
        r"^model\.transformer\.blocks\.(\d+)\.ff_proj\.": r"model.layers.\1.mlp.gate_proj.",
        r"^model\.transformer\.blocks\.(\d+)\.up_proj\.": r"model.layers.\1.mlp.up_proj.",
        r"^model\.transformer\.blocks\.(\d+)\.ff_out\.": r"model.layers.\1.mlp.down_proj.",
        r"^model\.transformer\.ln_f\.": "model.norm.",
        r"^model\.transformer\.ff_out\.": "lm_head.",
    }

    @classmethod
    def to_mdm_config(cls, raw):
        """`CheckpointFormat.to_mdm_config`, after refusing a LLaDA-MoE folder (whose config.json declares "llada")."""
        if is_llada_moe_config(raw if isinstance(raw, dict) else raw.to_dict()):
            raise ValueError(
                "This is a LLaDA-MoE folder (its config.json says model_type 'llada', as the Hub's does): load it "
                "with AutoModel.from_pretrained or hf_mdm.LLaDAMoEForMaskedDiffusion.from_pretrained."
            )
        return super().to_mdm_config(raw)

    @classmethod
    def mdm_config_kwargs(cls, raw: dict) -> dict:
        required = {
            "block_type": "llama",
            "layer_norm_type": "rms",
            "rope": True,
            "alibi": False,
            "scale_logits": False,
            "input_emb_norm": False,
            "attention_layer_norm": False,
            "include_bias": False,
            "include_qkv_bias": False,
        }
        for field, expected in required.items():
            if raw.get(field, expected) != expected:
                raise unsupported("LLaDA", field, raw[field])
        if raw.get("activation_type", "silu") not in ("silu", "swiglu"):
            raise unsupported("LLaDA", "activation_type", raw["activation_type"])
        if raw.get("block_group_size", 1) != 1:
            raise unsupported("LLaDA", "block_group_size", raw["block_group_size"])
        d_model, n_heads = raw["d_model"], raw["n_heads"]
        if raw.get("multi_query_attention"):
            n_kv_heads = 1
        else:
            n_kv_heads = raw.get("n_kv_heads") or n_heads
        return dict(
            vocab_size=raw.get("embedding_size") or raw["vocab_size"],
            hidden_size=d_model,
            intermediate_size=raw.get("mlp_hidden_size") or raw.get("mlp_ratio", 4) * d_model,
            num_hidden_layers=raw["n_layers"],
            num_attention_heads=n_heads,
            num_key_value_heads=n_kv_heads,
            max_position_embeddings=raw.get("max_sequence_length", 2048),
            rms_norm_eps=raw.get("rms_norm_eps", 1e-5),
            rope_theta=float(raw.get("rope_theta", 10000.0)),
            tie_word_embeddings=bool(raw.get("weight_tying", False)),
            initializer_range=raw.get("init_std", 0.02),
            mask_token_id=raw["mask_token_id"],
            pad_token_id=raw.get("pad_token_id"),
            eos_token_id=raw.get("eos_token_id"),
            bos_token_id=raw.get("bos_token_id"),
            logits_shift=0,
        )

    @classmethod
    def to_generation_config(cls, generation_config: "GenerationConfig | dict") -> DiffusionGenerationConfig:
        """LLaDA's generation_config.json holds only eos/pad ids (its `generate.py` takes everything else as
        arguments); unless the folder says otherwise, rank as LLaDA's low-confidence remasking does:
        `strategy="confidence"` (p(x̂)) with `reveal_counts="llada"` (its per-block `get_num_transfer_tokens`)."""
        if isinstance(generation_config, GenerationConfig):
            generation_config = generation_config.to_dict()
        config = DiffusionGenerationConfig.from_dict(generation_config)
        config.update(strategy="confidence", reveal_counts="llada", defaults_only=True)
        return config
