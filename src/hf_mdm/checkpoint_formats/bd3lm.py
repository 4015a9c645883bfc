"""BD3-LM checkpoints (kuleshov-group/bd3lm-owt-block_size{4,8,16}, model_type "bd3lm"): MDLM's DiT made block-causal
(`block_size`), plus the top-level buffers `sampling_eps_min/max` (its clipped training noise interval).

The published configs set `cross_attn` (the 2L training layout, our `clean_input_ids` forward), `adaln` and
`attn_backend: "flex"`; attention is the same math in every backend, so the backend field is not read. `causal`
(the AR baseline) and `adaln: false` are refused."""

from transformers import PreTrainedConfig

from .base import register_checkpoint_format, unsupported
from .mdlm import MDLMFormat


class BD3LMFormatConfig(PreTrainedConfig):
    """The fields of a BD3-LM config.json, read without its remote code (only converted, never instantiated)."""

    model_type = "bd3lm"


@register_checkpoint_format
class BD3LMFormat(MDLMFormat):
    model_type = "bd3lm"
    config_class = BD3LMFormatConfig

    @classmethod
    def mdm_config_kwargs(cls, raw: dict) -> dict:
        for field, expected in {"adaln": True, "causal": False}.items():
            if raw.get(field, expected) != expected:
                raise unsupported("bd3lm", field, raw[field])
        return cls.dit_kwargs(
            raw,
            **cls.backbone_kwargs(raw),
            block_size=raw["block_size"],
            noise_interval_buffers=bool(raw.get("var_min", True)),
        )


__all__ = ["BD3LMFormat", "BD3LMFormatConfig"]
