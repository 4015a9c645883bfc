"""Generation: `DiffusionGenerationMixin.generate`, its config, strategies, reveal-count rules, block caches and
denoiser adapters."""

from .caches import (
    CACHES,
    BlockCache,
    DiffusionBlockCache,
    DualBlockCache,
    ExactBlockCache,
    NoBlockCache,
    PrefixBlockCache,
    register_cache,
)
from .callbacks import DecodingCallback, HistoryCallback, StreamerCallback
from .configuration import DiffusionGenerationConfig
from .denoisers import DENOISERS, DenoiserAdapter, DenoiseRequest, MaskedLMDenoiser, MDMDenoiser, register_denoiser
from .enable_diffusion_generation import enable_diffusion_generation
from .mixin import DiffusionGenerationMixin
from .outputs import DiffusionGenerationOutput, DiffusionSamplerOutput
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
from .sampler import BlockPlan, DiffusionSampler
from .sampling import RowRandomness, sample_categorical
from .state import DiffusionState
from .strategies import (
    STRATEGIES,
    ConfidenceStrategy,
    EditingStrategy,
    EntropyStrategy,
    MarginStrategy,
    RandomStrategy,
    RankedStrategy,
    RemaskingStrategy,
    RevealStep,
    RevealStrategy,
    ThresholdEditingStrategy,
    ThresholdStrategy,
    get_strategy,
    register_strategy,
)


__all__ = [
    "CACHES",
    "BlockCache",
    "DualBlockCache",
    "ExactBlockCache",
    "NoBlockCache",
    "PrefixBlockCache",
    "register_cache",
    "DecodingCallback",
    "HistoryCallback",
    "StreamerCallback",
    "BlockPlan",
    "DiffusionSampler",
    "DiffusionSamplerOutput",
    "DiffusionState",
    "EditingStrategy",
    "RemaskingStrategy",
    "DENOISERS",
    "DenoiseRequest",
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
    "ThresholdEditingStrategy",
    "ThresholdStrategy",
    "enable_diffusion_generation",
    "get_reveal_count_rule",
    "get_strategy",
    "register_reveal_counts",
    "register_strategy",
    "sample_categorical",
]
