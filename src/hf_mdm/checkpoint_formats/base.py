"""CheckpointFormat: how a foreign checkpoint folder (config.json and weight names) maps onto an hf-mdm model class.

A format is one registered class: the `model_type` its config.json declares (or, for a config.json without one, a
`matches` test on its keys), a config conversion into the hf-mdm config it loads as (`target_config_class`:
`MDMConfig` for LLaDA and Dream, `DiTConfig` for SEDD, MDLM and BD3-LM) and a regex key mapping from its weight names
to ours. Loading then goes through transformers' own `from_pretrained` with `key_mapping`, so sharding, dtypes and
devices behave as for any model.
"""

from transformers import PreTrainedConfig

from ..configuration_mdm import MDMConfig


CHECKPOINT_FORMATS: dict[str, type["CheckpointFormat"]] = {}
FORMAT_CONFIG_CLASSES: set[type] = set()  # the formats' `config_class`es, which only read a config.json


def register_checkpoint_format(cls: type["CheckpointFormat"]) -> type["CheckpointFormat"]:
    """Class decorator: read folders whose config.json says `model_type == cls.model_type`."""
    CHECKPOINT_FORMATS[cls.model_type] = cls
    FORMAT_CONFIG_CLASSES.add(cls.config_class)
    return cls


def find_checkpoint_format(raw: dict) -> "type[CheckpointFormat] | None":
    """The registered format a config.json's contents belong to (its `model_type`, else a format's `matches`)."""
    if raw.get("model_type") in CHECKPOINT_FORMATS:
        return CHECKPOINT_FORMATS[raw["model_type"]]
    return next((fmt for fmt in CHECKPOINT_FORMATS.values() if fmt.matches(raw)), None)


class CheckpointFormat:
    """Base class: set `model_type`, `key_mapping` and implement `mdm_config_kwargs` (the keyword arguments of
    `target_config_class`)."""

    model_type: str
    key_mapping: dict[str, str] = {}
    target_config_class = MDMConfig
    model_class_name = "MDMForMaskedGeneration"

    @classmethod
    def matches(cls, raw: dict) -> bool:
        """Whether a config.json without a registered `model_type` is in this format (SEDD's has none)."""
        return False

    @classmethod
    def mdm_config_kwargs(cls, raw: dict) -> dict:
        """`target_config_class` keyword arguments from the foreign config.json contents."""
        raise NotImplementedError

    @classmethod
    def to_generation_config(cls, generation_config):
        """Our generation config from the one loaded with the folder; identity unless a format overrides it."""
        return generation_config

    @classmethod
    def mask_token_id(cls, raw: dict) -> int | None:
        """The [MASK] id of a folder: its config.json's `mask_token_id` (formats whose [MASK] is implied override)."""
        return raw.get("mask_token_id")

    @classmethod
    def to_mdm_config(cls, raw: "dict | PreTrainedConfig"):
        """The `target_config_class` instance a foreign config.json converts to."""
        raw = raw.to_dict() if isinstance(raw, PreTrainedConfig) else dict(raw)
        raw["mask_token_id"] = cls.mask_token_id(raw)
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
        return cls.target_config_class(**kwargs)


def unsupported(model_type: str, field: str, value) -> ValueError:
    return ValueError(
        f"This {model_type} checkpoint sets {field}={value!r}, which hf-mdm does not implement; "
        "hf-mdm reads the published architectures of that family only."
    )


def known_formats() -> str:
    return ", ".join(["mdm, mdm-dit (hf-mdm)"] + [f"{name}" for name in sorted(CHECKPOINT_FORMATS)])
