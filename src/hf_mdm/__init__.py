"""hf-mdm: masked diffusion language models on the Hugging Face stack.

Importing the package registers model_type "mdm" with `AutoConfig`, `AutoModel` and `AutoModelForMaskedLM`, and
so the other model types hf-mdm reads natively ("mdm-dit", LLaDA 2.x's "llada2_moe", "lladamoe", "sdar").
`AutoModel.from_pretrained` returns `MDMForMaskedGeneration` (head included), as LLaDA and Dream map `AutoModel`.
`pipeline("text-generation", ...)` then also takes diffusion models (see `text_generation_pipeline`).
"""

from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM

from . import evaluation, languages, metrics
from .checkpoint_formats import CHECKPOINT_FORMATS, CheckpointFormat, register_checkpoint_format
from .configuration_dit import DiTConfig
from .configuration_llada2_moe import LLaDA2MoeConfig
from .configuration_llada_moe import LLaDAMoEConfig
from .configuration_mdm import MDMConfig
from .configuration_sdar import SDARConfig
from .evaluation import (
    LanguageTask,
    PromptTask,
    accuracy_under_parallelism,
    elbo_perplexity,
    sampler_distribution_error,
    sweep_steps,
    train_autoregressive_baseline,
)
from .generation import (
    DiffusionGenerationConfig,
    DiffusionGenerationMixin,
    DiffusionGenerationOutput,
    enable_diffusion_generation,
    register_reveal_counts,
    register_strategy,
)
from .hub import ModelCard
from .languages import CopyLanguage, HMMLanguage, NGramLanguage
from .modeling_dit import DiTForMaskedDiffusion, DiTModel, DiTPreTrainedModel
from .modeling_llada2_moe import LLaDA2MoeForMaskedDiffusion
from .modeling_llada_moe import LLaDAMoEForMaskedDiffusion
from .modeling_mdm import MaskedDiffusionOutput, MDMForMaskedGeneration, MDMModel, MDMPreTrainedModel
from .modeling_sdar import SDARForMaskedDiffusion
from .schedules import SCHEDULES, NoiseSchedule, get_schedule, register_schedule
from .text_generation_pipeline import (
    DiffusionTextGenerationPipeline,
    TextGenerationPipelineRouter,
    register_text_generation_pipeline,
)
from .training import DataCollatorForMaskedDiffusion, enable_diffusion_training, masked_diffusion_loss
from .transformers_compat import register_auto_model
from .weight_files import verify_sha256


__version__ = "0.1.0"

_MODEL_CLASSES = {
    MDMConfig: MDMForMaskedGeneration,
    DiTConfig: DiTForMaskedDiffusion,
    LLaDA2MoeConfig: LLaDA2MoeForMaskedDiffusion,
    SDARConfig: SDARForMaskedDiffusion,
    LLaDAMoEConfig: LLaDAMoEForMaskedDiffusion,
}
for _config_class, _model_class in _MODEL_CLASSES.items():
    AutoConfig.register(_config_class.model_type, _config_class, exist_ok=True)
    AutoModel.register(_config_class, _model_class, exist_ok=True)
    AutoModelForMaskedLM.register(_config_class, _model_class, exist_ok=True)
    # pipeline("text-generation", model=<folder or instance>) builds DiffusionTextGenerationPipeline for them.
    register_text_generation_pipeline(_model_class)
# Foreign folders (LLaDA, Dream; MDLM, BD3-LM) load through the Auto classes without remote code, as the class their
# format converts to (one model class, several configs). SEDD's config.json has no model_type: load it with
# DiTForMaskedDiffusion.from_pretrained.
for _format in CHECKPOINT_FORMATS.values():
    AutoConfig.register(_format.model_type, _format.config_class, exist_ok=True)
    for _auto_class in (AutoModel, AutoModelForMaskedLM):
        register_auto_model(_auto_class, _format.config_class, _MODEL_CLASSES[_format.target_config_class])

__all__ = [
    "DiTConfig",
    "DiTForMaskedDiffusion",
    "DiTModel",
    "DiTPreTrainedModel",
    "LLaDA2MoeConfig",
    "LLaDA2MoeForMaskedDiffusion",
    "LLaDAMoEConfig",
    "LLaDAMoEForMaskedDiffusion",
    "SDARConfig",
    "SDARForMaskedDiffusion",
    "MDMConfig",
    "DiffusionGenerationConfig",
    "DiffusionGenerationMixin",
    "DiffusionGenerationOutput",
    "DiffusionTextGenerationPipeline",
    "TextGenerationPipelineRouter",
    "enable_diffusion_generation",
    "register_reveal_counts",
    "register_strategy",
    "CHECKPOINT_FORMATS",
    "CheckpointFormat",
    "register_checkpoint_format",
    "MDMModel",
    "MDMPreTrainedModel",
    "MDMForMaskedGeneration",
    "MaskedDiffusionOutput",
    "NoiseSchedule",
    "SCHEDULES",
    "get_schedule",
    "register_schedule",
    "DataCollatorForMaskedDiffusion",
    "enable_diffusion_training",
    "masked_diffusion_loss",
    "evaluation",
    "languages",
    "metrics",
    "LanguageTask",
    "PromptTask",
    "elbo_perplexity",
    "sweep_steps",
    "train_autoregressive_baseline",
    "accuracy_under_parallelism",
    "sampler_distribution_error",
    "ModelCard",
    "NGramLanguage",
    "HMMLanguage",
    "CopyLanguage",
    "verify_sha256",
]
