"""Loading a model folder (or Hub id) whatever its format, for the command line and lm-evaluation-harness.

`diffusion_model_class`: the hf-mdm class a folder loads as (`hf-mdm train` and `hf-mdm sweep` fine-tune or sweep it).
`load_for_diffusion_generation`: the folder's model with diffusion `generate()`.

`AutoModelForMaskedLM` loads hf-mdm folders (`MDMForMaskedGeneration`, `DiTForMaskedDiffusion`), the families read
natively (LLaDA 2.x, LLaDA-MoE, SDAR), the foreign formats whose config.json names a registered `model_type` (LLaDA,
Dream, MDLM, BD3-LM) and any other masked LM (BERT,
RoBERTa, ModernBERT, ...), which `enable_diffusion_generation(model, tokenizer)` then gives `generate()`. A format
without a `model_type` (SEDD's nested config) is recognised by its keys and loaded by the class it converts to.
"""

from torch import nn
from transformers import AutoModelForMaskedLM, PreTrainedConfig

from .checkpoint_formats.base import find_checkpoint_format
from .configuration_llada_moe import is_llada_moe_config
from .generation.enable_diffusion_generation import enable_diffusion_generation
from .generation.mixin import DiffusionGenerationMixin
from .model_source import check_model_source
from .modeling_dit import DiTForMaskedDiffusion
from .modeling_llada2_moe import LLaDA2MoeForMaskedDiffusion
from .modeling_llada_moe import LLaDAMoEForMaskedDiffusion
from .modeling_mdm import MDMForMaskedGeneration
from .modeling_sdar import SDARForMaskedDiffusion


MODEL_CLASSES = {
    cls.__name__: cls
    for cls in (
        MDMForMaskedGeneration,
        DiTForMaskedDiffusion,
        LLaDA2MoeForMaskedDiffusion,
        SDARForMaskedDiffusion,
        LLaDAMoEForMaskedDiffusion,
    )
}


NATIVE_MODEL_CLASSES = {cls.config_class.model_type: cls for cls in MODEL_CLASSES.values()}


def diffusion_model_class(model_name_or_path: str) -> type:
    """The class whose config's `model_type` the folder declares (hf-mdm's MDM and DiT, LLaDA 2.x, LLaDA-MoE, SDAR),
    the class a foreign format converts to (LLaDA, Dream -> `MDMForMaskedGeneration`; SEDD, MDLM, BD3-LM ->
    `DiTForMaskedDiffusion`), `MDMForMaskedGeneration` otherwise (whose `from_pretrained` refuses what it cannot
    read, naming the formats)."""
    return model_class_of(PreTrainedConfig.get_config_dict(model_name_or_path)[0])


def model_class_of(raw: dict) -> type:
    """`diffusion_model_class` of a config.json's contents (a LLaDA-MoE folder declaring LLaDA's model_type "llada",
    as the Hub's do, is LLaDA-MoE)."""
    if is_llada_moe_config(raw):
        return LLaDAMoEForMaskedDiffusion
    if raw.get("model_type") in NATIVE_MODEL_CLASSES:
        return NATIVE_MODEL_CLASSES[raw["model_type"]]
    checkpoint_format = find_checkpoint_format(raw)
    if checkpoint_format is not None:
        return MODEL_CLASSES[checkpoint_format.model_class_name]
    return MDMForMaskedGeneration


def load_for_diffusion_generation(model_name_or_path: str, tokenizer, **from_pretrained_kwargs) -> nn.Module:
    """The folder's model, with diffusion `generate()` (module docstring)."""
    check_model_source(model_name_or_path, required_file="config.json")
    raw, _ = PreTrainedConfig.get_config_dict(model_name_or_path)
    # Auto classes dispatch on model_type; a config.json without one can only be a format recognised by its keys.
    loader = AutoModelForMaskedLM if "model_type" in raw else model_class_of(raw)
    try:
        model = loader.from_pretrained(model_name_or_path, **from_pretrained_kwargs)
    except ValueError as error:
        raise ValueError(
            f"{model_name_or_path} is neither an hf-mdm folder, nor a folder in a format hf-mdm reads (LLaDA, Dream, "
            f"SEDD, MDLM, BD3-LM), nor a masked LM that AutoModelForMaskedLM loads: {error.args[0].splitlines()[0]}"
        ) from None
    return model if isinstance(model, DiffusionGenerationMixin) else enable_diffusion_generation(model, tokenizer)


__all__ = ["diffusion_model_class", "load_for_diffusion_generation"]
