"""CheckpointFormat: how a foreign checkpoint folder (config.json and weight names) maps onto MDMForMaskedGeneration.

A format is one registered class: the `model_type` its config.json declares, a config conversion into `MDMConfig`
and a regex key mapping from its weight names to ours. Loading then goes through transformers' own `from_pretrained`
with `key_mapping`, so sharding, dtypes and devices behave as for any model.
"""

from transformers import PreTrainedConfig

from ..configuration_mdm import MDMConfig


CHECKPOINT_FORMATS: dict[str, type["CheckpointFormat"]] = {}


def register_checkpoint_format(cls: type["CheckpointFormat"]) -> type["CheckpointFormat"]:
    """Class decorator: read folders whose config.json says `model_type == cls.model_type`."""
    CHECKPOINT_FORMATS[cls.model_type] = cls
    return cls


class CheckpointFormat:
    """Base class: set `model_type`, `key_mapping` and implement `mdm_config_kwargs`."""

    model_type: str
    key_mapping: dict[str, str] = {}

    @classmethod
    def mdm_config_kwargs(cls, raw: dict) -> dict:
        """MDMConfig keyword arguments from the foreign config.json contents."""
        raise NotImplementedError

    @classmethod
    def to_generation_config(cls, generation_config):
        """Our generation config from the one loaded with the folder; identity unless a format overrides it."""
        return generation_config

    @classmethod
    def to_mdm_config(cls, raw: "dict | PreTrainedConfig") -> MDMConfig:
        raw = raw.to_dict() if isinstance(raw, PreTrainedConfig) else dict(raw)
        if raw.get("mask_token_id") is None:
            raise ValueError(
                f"This {cls.model_type} config.json has no mask_token_id; add the [MASK] id of its tokenizer to it."
            )
        try:
            kwargs = cls.mdm_config_kwargs(raw)
        except KeyError as error:
            raise ValueError(
                f"This {cls.model_type} config.json has no {error.args[0]!r}, which hf-mdm needs to build the model; "
                "add it (from the checkpoint's original config.json)."
            ) from None
        kwargs["dtype"] = raw.get("torch_dtype") or raw.get("dtype")
        return MDMConfig(**kwargs)


def unsupported(model_type: str, field: str, value) -> ValueError:
    return ValueError(
        f"This {model_type} checkpoint sets {field}={value!r}, which MDMForMaskedGeneration does not implement; "
        "hf-mdm reads the published LLaDA/Dream architectures only."
    )


def known_formats() -> str:
    return ", ".join(["mdm (hf-mdm)"] + [f"{name}" for name in sorted(CHECKPOINT_FORMATS)])
