"""DiffusionGenerationConfig: the parameters of `DiffusionGenerationMixin.generate` (`generation_config.json`)."""

from typing import Any

from transformers import GenerationConfig

from ..schedules import get_schedule
from ..transformers_compat import FROM_MODEL_CONFIG
from .caches import CACHES
from .reveal_counts import REVEAL_COUNT_RULES, get_reveal_count_rule
from .strategies import STRATEGIES


MODEL_CONFIG_FIELDS = ("mask_token_id", "pad_token_id", "bos_token_id", "eos_token_id", "schedule", "schedule_kwargs")


# GenerationConfig fields of autoregressive decoding that diffusion generate() does not apply, with the values that
# mean "off". Setting one to anything else is refused rather than silently ignored.
UNSUPPORTED_FIELDS = {
    "min_p": (None,),
    "typical_p": (None, 1.0),
    "epsilon_cutoff": (None, 0.0),
    "eta_cutoff": (None, 0.0),
    "top_h": (None,),
    "repetition_penalty": (None, 1.0),
    "encoder_repetition_penalty": (None, 1.0),
    "no_repeat_ngram_size": (None, 0),
    "bad_words_ids": (None,),
    "sequence_bias": (None,),
    "begin_suppress_tokens": (None,),
    "min_new_tokens": (None, 0),
    "min_length": (None, 0),
    "num_beams": (None, 1),
    "diversity_penalty": (None, 0.0),
    "penalty_alpha": (None,),
    "guidance_scale": (None, 1.0),
    "exponential_decay_length_penalty": (None,),
    "forced_bos_token_id": (None,),
    "forced_eos_token_id": (None,),
}


def check_block_length(block_length: int | None, max_new_tokens: int) -> None:
    """Blocks tile the generated region exactly: block_length must divide max_new_tokens."""
    if block_length is not None and max_new_tokens % block_length != 0:
        raise ValueError(
            f"block_length={block_length} does not divide max_new_tokens={max_new_tokens}. Pick a block_length that "
            "divides it (or a max_new_tokens that is a multiple of it)."
        )


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class DiffusionGenerationConfig(GenerationConfig):
    r"""
    A [`GenerationConfig`] for masked diffusion decoding. The canvas is the prompt followed by `max_new_tokens` [MASK]
    tokens (plus any [MASK] already inside the prompt, which are filled too); `steps` reverse steps t -> s reveal it.

    Args:
        max_new_tokens (`int`, *optional*):
            [MASK] positions appended after the prompt. Unset: 0 when `input_ids` already holds [MASK] tokens (pure
            infilling), 32 otherwise.
        steps (`int`, *optional*):
            Reverse steps over the whole canvas, divided among the blocks. Unset: one per position to fill. Ranked
            strategies skip steps that would reveal nothing; more than 16 steps per position to fill is refused.
        block_length (`int`, *optional*):
            Semi-autoregressive block size: a block is decoded only once the block before it is complete. Must divide
            `max_new_tokens`. Unset: one block.
        schedule (`str`, *optional*):
            Noise schedule alpha(t) (see `hf_mdm.schedules`); unset: the model's training schedule, else `"linear"`.
        schedule_kwargs (`dict`, *optional*):
            Keyword arguments of that schedule.
        strategy (`str`, *optional*, defaults to `"confidence"`):
            Which masked positions a step reveals: `random` (exact ancestral sampler), `confidence`, `margin`,
            `entropy`, `threshold`, or any name registered with `@register_strategy`.
        reveal_counts (`str`, *optional*, defaults to `"schedule"`):
            How ranked strategies spread a block's masked positions over its steps: `schedule` (follow alpha),
            `even` (equal split, remainder first), `llada` / `dream` (the counts of LLaDA's and Dream's reference
            samplers), or any name registered with `@register_reveal_counts`.
        reveal_counts_kwargs (`dict`, *optional*):
            Keyword arguments of that rule, e.g. `{"eps": 1e-3}` for `dream`.
        threshold (`float`, *optional*, defaults to 0.9):
            Confidence tau of the `threshold` strategy, in (0, 1].
        strategy_temperature (`float`, *optional*, defaults to 0.0):
            Scale of the Gumbel noise added to the ranking scores of ranked strategies (0: deterministic ranking).
        strategy_kwargs (`dict`, *optional*):
            Further constructor arguments of the strategy (for strategies registered with their own parameters).
        mask_token_id (`int`, *optional*):
            Id of [MASK]; unset: the model config's `mask_token_id`.
        cache (`str`, *optional*, defaults to `"none"`):
            `"none"`, `"prefix"` (keys/values left of the block computed once per block) or `"dual"` (the suffix too);
            both approximate, Fast-dLLM style, and only for models whose forward takes `past_key_values`,
            `position_ids` and `logits_to_keep` (such as `MDMForMaskedGeneration`).
        output_history (`bool`, *optional*, defaults to `False`):
            Return the canvas after every step (needs `return_dict_in_generate=True`).

    Also used: `do_sample` (sample tokens from p(. | x_t) instead of taking the argmax), `temperature`, `top_k`,
    `top_p` (applied with transformers' logits warpers when sampling), `eos_token_id`, `pad_token_id`,
    `num_return_sequences`, `return_dict_in_generate`.
    """

    def __init__(self, **kwargs):
        self.steps = kwargs.pop("steps", None)
        self.block_length = kwargs.pop("block_length", None)
        self.schedule = kwargs.pop("schedule", None)
        self.schedule_kwargs = kwargs.pop("schedule_kwargs", None)
        self.strategy = kwargs.pop("strategy", None)
        self.reveal_counts = kwargs.pop("reveal_counts", None)
        self.reveal_counts_kwargs = kwargs.pop("reveal_counts_kwargs", None)
        self.threshold = kwargs.pop("threshold", None)
        self.strategy_temperature = kwargs.pop("strategy_temperature", None)
        self.strategy_kwargs = kwargs.pop("strategy_kwargs", None)
        self.mask_token_id = kwargs.pop("mask_token_id", None)
        self.cache = kwargs.pop("cache", None)
        self.output_history = kwargs.pop("output_history", None)
        super().__init__(**kwargs)

    def strategy_arguments(self) -> dict:
        """The strategy's constructor arguments: the config fields it declares (`config_fields`, unset ones left to
        its defaults), then `strategy_kwargs`."""
        fields = STRATEGIES[self.strategy].config_fields
        arguments = {name: getattr(self, name) for name in fields if getattr(self, name) is not None}
        return {**arguments, **(self.strategy_kwargs or {})}

    @staticmethod
    def diffusion_defaults() -> dict[str, Any]:
        """Values that `generate` uses for fields neither the call, the passed config nor the model config set."""
        return {
            "strategy": "confidence",
            "reveal_counts": "schedule",
            "threshold": 0.9,
            "strategy_temperature": 0.0,
            "cache": "none",
            "output_history": False,
            "return_dict_in_generate": False,
            "do_sample": False,
            "temperature": 1.0,
            "top_p": 1.0,
            "num_return_sequences": 1,
        }

    def validate(self, strict=False, user_set_attributes: set[str] | None = None):
        """Check every diffusion field (and the shared ones generate uses), then run `GenerationConfig.validate`."""
        for name in ("steps", "block_length", "num_return_sequences"):
            value = getattr(self, name)
            if value is not None and (not _is_int(value) or value < 1):
                raise ValueError(f"`{name}` must be a positive integer or None, got {value!r}.")
        if self.max_new_tokens is not None and (not _is_int(self.max_new_tokens) or self.max_new_tokens < 0):
            raise ValueError(
                f"`max_new_tokens` must be a non-negative integer (0: fill only the prompt's [MASK] tokens) or None, "
                f"got {self.max_new_tokens!r}."
            )
        if self.max_new_tokens is not None:
            check_block_length(self.block_length, self.max_new_tokens)
        if self.suppress_tokens is not None and (
            not isinstance(self.suppress_tokens, (list, tuple))
            or not all(_is_int(token) and token >= 0 for token in self.suppress_tokens)
        ):
            raise ValueError(
                f"`suppress_tokens` must be a list of token ids (non-negative integers), got {self.suppress_tokens!r}."
            )
        ignored = [name for name, off in UNSUPPORTED_FIELDS.items() if getattr(self, name, None) not in off]
        if ignored:
            raise ValueError(
                f"Diffusion generate() does not apply {ignored}; unset them, or pass the transformers logits "
                "processor that implements them as `logits_processor=LogitsProcessorList([...])`."
            )
        if self.schedule is not None:
            get_schedule(self.schedule, **(self.schedule_kwargs or {}))
        elif self.schedule_kwargs:
            raise ValueError("`schedule_kwargs` were given without `schedule`; pass the schedule name as well.")
        if self.strategy is not None:
            STRATEGIES.check(self.strategy)
        if self.strategy_kwargs:
            if self.strategy is None:
                raise ValueError("`strategy_kwargs` were given without `strategy`; pass the strategy name as well.")
            STRATEGIES.build(self.strategy, schedule=get_schedule("linear"), **self.strategy_arguments())
        if self.reveal_counts is not None:
            REVEAL_COUNT_RULES.check(self.reveal_counts)
        if self.reveal_counts_kwargs:
            if self.reveal_counts is None:
                raise ValueError(
                    "`reveal_counts_kwargs` were given without `reveal_counts`; pass the rule name as well."
                )
            get_reveal_count_rule(self.reveal_counts, **self.reveal_counts_kwargs)
        if self.threshold is not None and (isinstance(self.threshold, bool) or not 0.0 < self.threshold <= 1.0):
            raise ValueError(f"`threshold` must be in (0, 1], got {self.threshold!r}; 0.9 is a common choice.")
        if self.strategy_temperature is not None and (
            isinstance(self.strategy_temperature, bool) or not self.strategy_temperature >= 0.0
        ):
            raise ValueError(
                f"`strategy_temperature` must be >= 0 (0 = rank without noise), got {self.strategy_temperature!r}."
            )
        if self.cache is not None:
            CACHES.check(self.cache)
        for name in ("mask_token_id", "pad_token_id"):
            value = getattr(self, name)
            if value is not None and (not _is_int(value) or value < 0):
                raise ValueError(f"`{name}` must be a non-negative token id, got {value!r}.")
        eos = [self.eos_token_id] if _is_int(self.eos_token_id) else self.eos_token_id
        if eos is not None and (not isinstance(eos, list) or not all(_is_int(i) and i >= 0 for i in eos)):
            raise ValueError(f"`eos_token_id` must be a token id or a list of ids, got {self.eos_token_id!r}.")
        if self.do_sample and self.temperature is not None and not self.temperature > 0.0:
            raise ValueError(
                f"`temperature` must be > 0 when sampling, got {self.temperature!r}; for greedy decoding pass "
                "do_sample=False instead."
            )
        if self.top_k is not None and (not _is_int(self.top_k) or self.top_k < 0):
            raise ValueError(f"`top_k` must be a non-negative integer (0 disables it), got {self.top_k!r}.")
        if self.top_p is not None and not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"`top_p` must be in (0, 1] (1 disables it), got {self.top_p!r}.")
        if self.num_beams not in (None, 1):
            raise ValueError("Diffusion generation has no beam search; leave `num_beams` unset (or 1).")
        if self.output_history and self.return_dict_in_generate is False:
            raise ValueError("`output_history=True` needs `return_dict_in_generate=True` to return the history.")
        # GenerationConfig refuses max_new_tokens=0, which here means pure infilling (checked above).
        max_new_tokens = self.max_new_tokens
        self.max_new_tokens = max_new_tokens or None
        try:
            super().validate(strict=strict, user_set_attributes=user_set_attributes)
        finally:
            self.max_new_tokens = max_new_tokens

    @classmethod
    def from_model_config(cls, model_config) -> "DiffusionGenerationConfig":
        """Take the special token ids, the [MASK] id and the noise schedule from a model config (or its dict)."""
        config_dict = model_config if isinstance(model_config, dict) else model_config.to_dict()
        inherited = {key: config_dict[key] for key in MODEL_CONFIG_FIELDS if config_dict.get(key) is not None}
        return cls(**inherited, **FROM_MODEL_CONFIG)

    def get_generation_mode(self, *args, **kwargs):
        raise NotImplementedError("DiffusionGenerationConfig has no autoregressive generation mode.")


__all__ = ["DiffusionGenerationConfig"]
