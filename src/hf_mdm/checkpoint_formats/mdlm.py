"""MDLM checkpoints (kuleshov-group/mdlm-owt, model_type "mdlm"): the DiT under `backbone.`, logits output, no time
conditioning (sigma replaced by 0, adaLN still applied), [MASK] = the last id. Sampling: `published_samplers`'
`mdlm_ddpm_cache`, or any `generate()` strategy (SUBS: log_softmax of our logits, whose [MASK] column is -inf)."""

from transformers import PreTrainedConfig

from .base import register_checkpoint_format, unsupported
from .dit_format import DiTCheckpointFormat


class MDLMFormatConfig(PreTrainedConfig):
    """The fields of an MDLM config.json, read without MDLM's remote code (only converted, never instantiated)."""

    model_type = "mdlm"


@register_checkpoint_format
class MDLMFormat(DiTCheckpointFormat):
    model_type = "mdlm"
    config_class = MDLMFormatConfig

    @classmethod
    def mdm_config_kwargs(cls, raw: dict) -> dict:
        return cls.dit_kwargs(raw, **cls.backbone_kwargs(raw))

    @classmethod
    def backbone_kwargs(cls, raw: dict) -> dict:
        """The DiT fields of the flat MDLM/BD3-LM config (`hidden_dim`, `n_blocks`, `n_heads`, `cond_dim`, ...)."""
        if raw.get("mlp_ratio", 4) != 4:
            raise unsupported(cls.model_type, "mlp_ratio", raw["mlp_ratio"])
        return dict(
            vocab_size=raw["vocab_size"],
            hidden_size=raw["hidden_dim"],
            cond_dim=raw["cond_dim"],
            num_hidden_layers=raw["n_blocks"],
            num_attention_heads=raw["n_heads"],
            max_position_embeddings=raw["model_length"],
            hidden_dropout=float(raw.get("dropout", 0.1)),
            time_conditioning=bool(raw.get("time_conditioning", False)),
            output_parametrization="logits",
            mask_token_id=raw["mask_token_id"],
        )


__all__ = ["MDLMFormat", "MDLMFormatConfig"]
