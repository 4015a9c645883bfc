"""DiTCheckpointFormat: the common part of the SEDD, MDLM and BD3-LM formats, which all store the same DiT.

Their weights carry the DiT's own module names (`DiTModel` uses them), under `backbone.` for MDLM and BD3-LM and bare
for SEDD, so loading needs at most a prefix; their config.json files differ, and none stores the [MASK] id: it is
the last id of the vocabulary (the absorbing state appended to GPT-2's 50257 tokens).

`save_original` writes a model back in the folder's own format: its config.json as it was read, and its weights under
the authors' names, so that their code (and anyone's copy of it) loads the folder. The authors' modeling files are not
ours to ship: copy them from the original repository next to the weights.
"""

import json
from pathlib import Path

from safetensors.torch import save_file
from transformers import GenerationConfig

from ..configuration_dit import DiTConfig
from ..generation.configuration import DiffusionGenerationConfig
from .base import CheckpointFormat


class DiTCheckpointFormat(CheckpointFormat):
    """Base class of the DiT formats: set `model_type`, `weight_prefix` (prepended to our backbone's names in the
    folder) and implement `mdm_config_kwargs` with `dit_kwargs`."""

    target_config_class = DiTConfig
    model_class_name = "DiTForMaskedDiffusion"
    weight_prefix = "backbone."

    @classmethod
    def mask_token_id(cls, raw):
        return raw.get("mask_token_id", raw["vocab_size"] - 1 if "vocab_size" in raw else None)

    @classmethod
    def dit_kwargs(cls, raw: dict, **architecture) -> dict:
        """DiTConfig keyword arguments: `architecture` plus the format's name and its config.json, kept to write back
        (without transformers' bookkeeping keys)."""
        original = {key: value for key, value in raw.items() if key not in ("dtype", "mask_token_id")}
        return dict(architecture, checkpoint_format=cls.model_type, original_config=original)

    @classmethod
    def to_generation_config(cls, generation_config: "GenerationConfig | dict") -> DiffusionGenerationConfig:
        """The authors sample ancestrally (SEDD's analytic/Euler predictors, MDLM's ddpm_cache, BD3-LM's block
        sampler): unless the folder says otherwise, `generate()` uses `strategy="random", do_sample=True`, the
        ancestral sampler of the model's (log-linear) schedule; `published_samplers` reproduces their draws exactly."""
        if isinstance(generation_config, GenerationConfig):
            generation_config = generation_config.to_dict()
        config = DiffusionGenerationConfig.from_dict(generation_config)
        config.update(strategy="random", do_sample=True, defaults_only=True)
        return config

    @classmethod
    def original_name(cls, name: str) -> str:
        """Our parameter name -> the folder's."""
        return cls.weight_prefix + name.removeprefix("backbone.") if name.startswith("backbone.") else name

    @classmethod
    def save_original(cls, model, save_directory) -> None:
        """Write `model` in this format: config.json as read (refused if the architecture changed since) and
        model.safetensors under the authors' names."""
        config = model.config
        reread = cls.to_mdm_config(config.original_config)
        changed = [
            field
            for field in (
                "vocab_size",
                "hidden_size",
                "cond_dim",
                "num_hidden_layers",
                "num_attention_heads",
                "max_position_embeddings",
                "time_conditioning",
                "output_parametrization",
                "block_size",
                "mask_token_id",
            )  # fmt: skip
            if getattr(reread, field) != getattr(config, field)
        ]
        if changed:
            raise ValueError(
                f"The model's {changed} differ from the {cls.model_type} config.json it was read from, so that file "
                "would describe other weights. Save it as an hf-mdm folder (original_format=False)."
            )
        folder = Path(save_directory)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps(config.original_config, indent=2, sort_keys=True) + "\n")
        state = {cls.original_name(name): tensor.detach().contiguous() for name, tensor in model.state_dict().items()}
        save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})


__all__ = ["DiTCheckpointFormat"]
