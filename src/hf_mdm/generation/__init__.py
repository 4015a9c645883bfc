"""Generation: `DiffusionGenerationMixin.generate`, its config, strategies, reveal-count rules, block caches and
denoiser adapters."""

from .caches import DiffusionBlockCache
from .configuration import CACHE_MODES, DiffusionGenerationConfig
from .denoisers import DENOISERS, DenoiserAdapter, MaskedLMDenoiser, MDMDenoiser, register_denoiser
from .enable_diffusion_generation import enable_diffusion_generation
from .mixin import DiffusionGenerationMixin
from .outputs import DiffusionGenerationOutput
from .reveal_counts import (
    REVEAL_COUNT_RULES,
    DreamRevealCounts,
    EvenRevealCounts,
    LLaDARevealCounts,
    RevealCountRule,
    ScheduleRevealCounts,
    get_reveal_count_rule,
    register_reveal_counts,
)
from .sampling import RowRandomness, sample_categorical
from .strategies import (
    STRATEGIES,
    ConfidenceStrategy,
    EntropyStrategy,
    MarginStrategy,
    RandomStrategy,
    RankedStrategy,
    RevealStep,
    RevealStrategy,
    ThresholdStrategy,
    get_strategy,
    register_strategy,
)


__all__ = [
    "CACHE_MODES",
    "DENOISERS",
    "DenoiserAdapter",
    "MaskedLMDenoiser",
    "MDMDenoiser",
    "register_denoiser",
    "REVEAL_COUNT_RULES",
    "STRATEGIES",
    "ConfidenceStrategy",
    "DiffusionBlockCache",
    "DiffusionGenerationConfig",
    "DiffusionGenerationMixin",
    "DiffusionGenerationOutput",
    "EntropyStrategy",
    "DreamRevealCounts",
    "EvenRevealCounts",
    "LLaDARevealCounts",
    "MarginStrategy",
    "RandomStrategy",
    "RankedStrategy",
    "RevealCountRule",
    "RevealStep",
    "RevealStrategy",
    "RowRandomness",
    "ScheduleRevealCounts",
    "ThresholdStrategy",
    "enable_diffusion_generation",
    "get_reveal_count_rule",
    "get_strategy",
    "register_reveal_counts",
    "register_strategy",
    "sample_categorical",
]
