"""hf-mdm: masked diffusion language models on the Hugging Face stack.

Importing the package registers model_type "mdm" with `AutoConfig`, `AutoModel` and `AutoModelForMaskedLM`.
`AutoModel.from_pretrained` returns `MDMForMaskedGeneration` (head included), as LLaDA and Dream map `AutoModel`.
`pipeline("text-generation", ...)` then also takes diffusion models (see `text_generation_pipeline`).
"""

from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM

from . import evaluation, languages, metrics
from .checkpoint_formats import CHECKPOINT_FORMATS, CheckpointFormat, register_checkpoint_format
from .configuration_mdm import MDMConfig
from .evaluation import LanguageTask, PromptTask, elbo_perplexity, sweep_steps, train_autoregressive_baseline
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
from .modeling_mdm import MaskedDiffusionOutput, MDMForMaskedGeneration, MDMModel, MDMPreTrainedModel
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

AutoConfig.register(MDMConfig.model_type, MDMConfig, exist_ok=True)
AutoModel.register(MDMConfig, MDMForMaskedGeneration, exist_ok=True)
AutoModelForMaskedLM.register(MDMConfig, MDMForMaskedGeneration, exist_ok=True)
# LLaDA and Dream folders load through the Auto classes without remote code (one model class, several configs).
for _format in CHECKPOINT_FORMATS.values():
    AutoConfig.register(_format.model_type, _format.config_class, exist_ok=True)
    for _auto_class in (AutoModel, AutoModelForMaskedLM):
        register_auto_model(_auto_class, _format.config_class, MDMForMaskedGeneration)
# pipeline("text-generation", model=<folder or instance>) builds DiffusionTextGenerationPipeline for diffusion models.
register_text_generation_pipeline(MDMForMaskedGeneration)

__all__ = [
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
    "ModelCard",
    "NGramLanguage",
    "HMMLanguage",
    "CopyLanguage",
    "verify_sha256",
]
