"""DiffusionGenerationConfig: the parameters of `DiffusionGenerationMixin.generate` (`generation_config.json`)."""

import math
from typing import Any

from transformers import GenerationConfig

from ..schedules import get_schedule
from ..transformers_compat import FROM_MODEL_CONFIG
from .caches import CACHES
from .reveal_counts import REVEAL_COUNT_RULES, get_reveal_count_rule
from .strategies import STRATEGIES


MODEL_CONFIG_FIELDS = ("mask_token_id", "pad_token_id", "bos_token_id", "eos_token_id", "schedule", "schedule_kwargs")


# What generate() does with every GenerationConfig field that is not a diffusion field. A field is read
# (`SHARED_FIELDS`), inert (`INERT_FIELDS`: changes nothing in diffusion decoding, any valid value is accepted), or
# unsupported (`UNSUPPORTED_FIELDS`: any value but its "off" values is refused, with the hint that names the fix).
# tests/generation/test_config.py checks that every field of transformers' GenerationConfig is in one of them.
SHARED_FIELDS = (
    "max_length",
    "max_new_tokens",
    "do_sample",
    "temperature",
    "top_k",
    "top_p",
    "suppress_tokens",
    "num_return_sequences",
    "return_dict_in_generate",
    "pad_token_id",
    "eos_token_id",
)
INERT_FIELDS = {
    "bos_token_id": "a fact about the tokenizer; generate() adds no token",
    "decoder_start_token_id": "encoder-decoder models only",
    "use_cache": "diffusion decoding chooses its block cache with `cache`",
    "renormalize_logits": "p(. | x_t) is always the softmax of the processed logits",
    "disable_compile": "generate() compiles nothing; compile the model in place",
}
_PROCESSOR = (
    "pass the transformers logits processor that implements it as `logits_processor=LogitsProcessorList([...])`"
)
_BEAM = "diffusion generation has no beam search"
_AUTOREGRESSIVE = "it belongs to autoregressive decoding, which diffusion generate() does not run"
_OUTPUTS = (
    "diffusion generate() returns no per-token scores, logits, attentions or hidden states: `output_history=True` "
    "returns the canvas after every step, and `model(sequences).logits` gives p(. | x) of a returned sequence"
)
UNSUPPORTED_FIELDS = {
    **{name: ((None,), _PROCESSOR) for name in ("min_p", "top_h", "bad_words_ids", "sequence_bias")},
    **{name: ((None,), _PROCESSOR) for name in ("exponential_decay_length_penalty", "forced_bos_token_id")},
    "forced_eos_token_id": ((None,), _PROCESSOR),
    **{name: ((None, 1.0), _PROCESSOR) for name in ("typical_p", "repetition_penalty", "encoder_repetition_penalty")},
    **{name: ((None, 0.0), _PROCESSOR) for name in ("epsilon_cutoff", "eta_cutoff")},
    **{name: ((None, 0), _PROCESSOR) for name in ("no_repeat_ngram_size", "encoder_no_repeat_ngram_size")},
    "begin_suppress_tokens": ((None,), "every position is generated at once; use `suppress_tokens`"),
    **{
        name: ((None, 0), "the canvas has exactly `max_new_tokens` new positions; there is no minimum")
        for name in ("min_new_tokens", "min_length")
    },
    "num_beams": ((None, 1), _BEAM),
    "num_beam_groups": ((None, 1), _BEAM),
    "diversity_penalty": ((None, 0.0), _BEAM),
    "length_penalty": ((None, 1.0), _BEAM),
    "early_stopping": ((None, False), _BEAM),
    "constraints": ((None,), _BEAM),
    "force_words_ids": ((None,), _BEAM),
    **{name: ((None, False), _OUTPUTS) for name in ("output_scores", "output_logits")},
    **{name: ((None, False), _OUTPUTS) for name in ("output_attentions", "output_hidden_states")},
    "stop_strings": (
        (None,),
        "decoding stops at `eos_token_id`; a `DecodingCallback` (callbacks=[...]) sees every step",
    ),
    "remove_invalid_values": ((None, False), "NaN or infinite probabilities are refused with an error instead"),
    "guidance_scale": ((None, 1.0), "classifier-free guidance is not offered"),
    **{
        name: ((None,), _AUTOREGRESSIVE)
        for name in (
            "max_time",
            "cache_implementation",
            "cache_config",
            "max_cache_len",
            "compile_config",
            "continuous_batching_config",
            "prefill_chunk_size",
            "penalty_alpha",
            "dola_layers",
            "watermarking_config",
            "num_assistant_tokens",
            "num_assistant_tokens_schedule",
            "assistant_confidence_threshold",
            "prompt_lookup_num_tokens",
            "max_matching_ngram_size",
            "assistant_early_exit",
            "assistant_lookbehind",
            "target_lookbehind",
            "assistant_ensemble_weight",
            "speculation_type",
        )
    },
    **{name: ((None, False), _AUTOREGRESSIVE) for name in ("use_mtp", "low_memory", "is_assistant", "token_healing")},
}
# The diffusion fields (DiffusionGenerationConfig's own).
DIFFUSION_FIELDS = (
    "steps",
    "steps_per_block",
    "block_length",
    "schedule",
    "schedule_kwargs",
    "strategy",
    "reveal_counts",
    "reveal_counts_kwargs",
    "threshold",
    "strategy_temperature",
    "strategy_kwargs",
    "mask_token_id",
    "sep_token_id",
    "cache",
    "output_history",
)
# A float64 time grid t_k = 1 - k/K tells steps apart up to K = 2**53.
MAX_STEPS = 2**53
BOOLEAN_FIELDS = ("do_sample", "return_dict_in_generate", "output_history", "use_cache", "renormalize_logits")
POSITIVE_INTEGER_FIELDS = ("steps", "steps_per_block", "block_length", "num_return_sequences", "max_length")
TOKEN_ID_FIELDS = ("mask_token_id", "pad_token_id", "bos_token_id", "sep_token_id")
KEYWORD_FIELDS = ("schedule_kwargs", "strategy_kwargs", "reveal_counts_kwargs")
REAL_FIELDS = ("temperature", "top_p", "threshold", "strategy_temperature")
NAME_FIELDS = ("strategy", "reveal_counts", "cache")


def generation_fields() -> frozenset:
    """Every field of a `DiffusionGenerationConfig`: the diffusion fields, transformers' GenerationConfig fields and
    its metadata (`transformers_version`, private names)."""
    return frozenset((*DIFFUSION_FIELDS, *SHARED_FIELDS, *INERT_FIELDS, *UNSUPPORTED_FIELDS, "transformers_version"))


def eos_ids(eos_token_id) -> list:
    """`eos_token_id` (None, an id or a list of ids) as a list."""
    return [] if eos_token_id is None else eos_token_id if isinstance(eos_token_id, list) else [eos_token_id]


def check_block_length(block_length: int | None, max_new_tokens: int) -> None:
    """Blocks tile the generated region exactly: block_length must divide max_new_tokens."""
    if block_length is not None and max_new_tokens % block_length != 0:
        raise ValueError(
            f"block_length={block_length} does not divide max_new_tokens={max_new_tokens}. Pick a block_length that "
            "divides it (or a max_new_tokens that is a multiple of it; LLaDA's `gen_length` is `max_new_tokens`). A "
            "block-causal model decodes its own blocks: leave block_length unset there."
        )


def check_one_budget(steps: int | None, steps_per_block: int | None) -> None:
    """`steps` and `steps_per_block` set the same budget (steps = steps_per_block x blocks): at most one is given."""
    if steps is not None and steps_per_block is not None:
        raise ValueError(
            f"steps={steps} and steps_per_block={steps_per_block} set the same budget (steps = steps_per_block x "
            "blocks); pass one."
        )


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value) -> bool:
    """A finite int or float (not a bool, a string or a tensor)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_token_id(value) -> bool:
    return _is_int(value) and value >= 0


def _is_eos(value) -> bool:
    return _is_token_id(value) or (isinstance(value, list) and len(value) > 0 and all(map(_is_token_id, value)))


# (fields, test, what a value must be) for every field generate() reads.
TYPE_RULES = (
    (BOOLEAN_FIELDS, lambda value: isinstance(value, bool), "True or False (a string is not: 'false' is true)"),
    (POSITIVE_INTEGER_FIELDS, lambda value: _is_int(value) and value >= 1, "a positive integer or None"),
    (("max_new_tokens",), lambda value: _is_int(value) and value >= 0,
     "a non-negative integer (0: fill only the prompt's [MASK] tokens) or None"),
    (("top_k",), lambda value: _is_int(value) and value >= 0, "a non-negative integer (0 disables it)"),
    (REAL_FIELDS, _is_real, "a finite number"),
    (NAME_FIELDS, lambda value: isinstance(value, str), "a registered name (a string)"),
    (KEYWORD_FIELDS, lambda value: isinstance(value, dict), "a dict of keyword arguments"),
    (TOKEN_ID_FIELDS, _is_token_id, "a non-negative token id"),
    (("eos_token_id",), _is_eos, "a token id or a non-empty list of ids"),
    (("suppress_tokens",), lambda value: isinstance(value, (list, tuple)) and all(map(_is_token_id, value)),
     "a list of token ids (non-negative integers)"),
)  # fmt: skip


def check_field_types(values: dict) -> None:
    """Type and sign of every field generate() reads, in a dict of field values: a string boolean, a float count or a
    negative id is an error, never a value that happens to work."""
    for names, valid, expected in TYPE_RULES:
        for name in names:
            value = values.get(name)
            if value is not None and not valid(value):
                raise ValueError(f"`{name}` must be {expected}, got {value!r}.")


class DiffusionGenerationConfig(GenerationConfig):
    r"""
    A [`GenerationConfig`] for masked diffusion decoding. The canvas is the prompt followed by `max_new_tokens` [MASK]
    tokens (plus any [MASK] already inside the prompt, which are filled too); `steps` reverse steps t -> s reveal it.

    Args:
        max_new_tokens (`int`, *optional*):
            [MASK] positions appended after the prompt. Unset (and no `max_length`): 0 when `input_ids` already holds
            [MASK] tokens (pure infilling), else 32 cut to the positions the model has left after the prompt
            (`max_position_embeddings`) and to a multiple of `block_length`. Give `max_new_tokens` or `max_length`,
            not both.
        steps (`int`, *optional*):
            Reverse steps over the whole canvas, divided among the blocks. Unset: one per position to fill (on a
            block-causal model: `block_size` steps per block). `random` draws each position's reveal step directly,
            so any budget (up to 2**53) costs at most one forward per reveal event; ranked strategies skip steps that
            would reveal nothing; for them and the revising strategies more than 16 steps per position to fill (of
            any row) is refused. On a block-causal model whose rows hold different numbers of blocks (mixed prompt
            lengths) a total is refused: pass `steps_per_block`.
        steps_per_block (`int`, *optional*):
            Reverse steps of every block (of every row), instead of `steps`: `steps` = `steps_per_block` x blocks.
            More than 16 per position of a block is refused for the strategies that pay for each step.
        block_length (`int`, *optional*):
            Semi-autoregressive block size: a block is decoded only once the block before it is complete. Must divide
            `max_new_tokens`. Unset: one block. On a block-causal model (`MDMConfig(block_size=B)`) the blocks are
            the model's: unset or B.
        schedule (`str`, *optional*):
            Noise schedule alpha(t) (see `hf_mdm.schedules`); unset: the model's training schedule, else `"linear"`.
        schedule_kwargs (`dict`, *optional*):
            Keyword arguments of that schedule.
        strategy (`str`, *optional*, defaults to `"confidence"`):
            Which masked positions a step reveals: one of STRATEGY_NAMES (see `generation.strategies`; `random` is the
            exact ancestral sampler), or any name registered with `@register_strategy`.
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
        sep_token_id (`int`, *optional*):
            The end marker the tokenizer appends to every text (BERT's [SEP], RoBERTa's </s>); set by
            `enable_diffusion_generation(model, tokenizer)` when the tokenizer appends one. When every prompt ends with
            it, the model sees it after the generated region ([CLS] prompt new tokens [SEP], as in pretraining) while
            the returned sequence keeps the prompt as given, the new tokens after it.
        cache (`str`, *optional*, defaults to `"none"`, `"exact"` on a block-causal model):
            `"none"`, `"prefix"` (keys/values left of the block computed once per block) or `"dual"` (the suffix too),
            both approximate, Fast-dLLM style, for bidirectional models; `"exact"` (the finished blocks' keys/values
            stored once, exact) for block-causal models. The block caches need a model whose forward takes `cache`,
            `position_ids` and `logits_to_keep` (such as `MDMForMaskedGeneration`).
        output_history (`bool`, *optional*, defaults to `False`):
            Return the canvas after every step (needs `return_dict_in_generate=True`).

    Also used: `do_sample` (sample tokens from p(. | x_t) instead of taking the argmax), `temperature`, `top_k`,
    `top_p` (applied with transformers' logits warpers when sampling, and refused without `do_sample=True`),
    `eos_token_id`, `pad_token_id`, `suppress_tokens`, `num_return_sequences`, `return_dict_in_generate`
    (`SHARED_FIELDS`). Every other GenerationConfig field is either inert (`INERT_FIELDS`) or refused unless off
    (`UNSUPPORTED_FIELDS`), so that no value is silently ignored.
    """

    def __init__(self, **kwargs):
        self.steps = kwargs.pop("steps", None)
        self.steps_per_block = kwargs.pop("steps_per_block", None)
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
        self.sep_token_id = kwargs.pop("sep_token_id", None)
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
    def diffusion_defaults(block_size: int | None = None) -> dict[str, Any]:
        """Values that `generate` uses for fields neither the call, the passed config nor the model config set, for
        a bidirectional model or a block-causal one of `block_size` (whose cache is `"exact"`)."""
        return {
            "strategy": "confidence",
            "reveal_counts": "schedule",
            "threshold": 0.9,
            "strategy_temperature": 0.0,
            "cache": "none" if block_size is None else "exact",
            "output_history": False,
            "return_dict_in_generate": False,
            "do_sample": False,
            "temperature": 1.0,
            "top_p": 1.0,
            "num_return_sequences": 1,
        }

    def validate(self, strict=False, user_set_attributes: set[str] | None = None):
        """Check every field generate() reads (type, range, registered name), refuse unsupported fields that are not
        off, then run `GenerationConfig.validate`. Conflicts between fields of different sources are checked when
        generate() merges them (`generation.arguments`)."""
        check_field_types(vars(self))
        if self.max_new_tokens is not None:
            check_block_length(self.block_length, self.max_new_tokens)
        check_one_budget(self.steps, self.steps_per_block)
        for name in ("steps", "steps_per_block"):
            if getattr(self, name) is not None and getattr(self, name) > MAX_STEPS:
                raise ValueError(
                    f"{name}={getattr(self, name)} is more than 2**53, the most a float64 time grid tells apart; any "
                    "budget above that is the continuous-time sampler already."
                )
        ignored = {
            name: hint for name, (off, hint) in UNSUPPORTED_FIELDS.items() if getattr(self, name, None) not in off
        }
        if ignored:
            reasons = "; ".join(f"{name}: {hint}" for name, hint in ignored.items())
            raise ValueError(f"Diffusion generate() does not apply {sorted(ignored)}; unset them ({reasons}).")
        for name, kwargs_name in (("schedule", "schedule_kwargs"), ("strategy", "strategy_kwargs"),
                                  ("reveal_counts", "reveal_counts_kwargs")):  # fmt: skip
            if getattr(self, kwargs_name) and getattr(self, name) is None:
                raise ValueError(f"`{kwargs_name}` were given without `{name}`; pass the {name} name as well.")
        if self.schedule is not None:
            get_schedule(self.schedule, **(self.schedule_kwargs or {}))
        if self.strategy is not None:
            STRATEGIES.check(self.strategy)
        if self.strategy_kwargs:
            STRATEGIES.build(self.strategy, schedule=get_schedule("linear"), **self.strategy_arguments())
        if self.reveal_counts is not None:
            REVEAL_COUNT_RULES.check(self.reveal_counts)
        if self.reveal_counts_kwargs:
            get_reveal_count_rule(self.reveal_counts, **self.reveal_counts_kwargs)
        if self.cache is not None:
            CACHES.check(self.cache)
        if self.threshold is not None and not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"`threshold` must be in (0, 1], got {self.threshold!r}; 0.9 is a common choice.")
        if self.strategy_temperature is not None and not self.strategy_temperature >= 0.0:
            raise ValueError(
                f"`strategy_temperature` must be >= 0 (0 = rank without noise), got {self.strategy_temperature!r}."
            )
        if self.do_sample and self.temperature is not None and not self.temperature > 0.0:
            raise ValueError(
                f"`temperature` must be > 0 when sampling, got {self.temperature!r}; for greedy decoding pass "
                "do_sample=False instead."
            )
        if self.temperature is not None and self.temperature < 0.0:
            raise ValueError(f"`temperature` must be > 0 (or 0 for greedy), got {self.temperature!r}.")
        if self.top_p is not None and not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"`top_p` must be in (0, 1] (1 disables it), got {self.top_p!r}.")
        if self.output_history and self.return_dict_in_generate is False:
            raise ValueError("`output_history=True` needs `return_dict_in_generate=True` to return the history.")
        # GenerationConfig refuses max_new_tokens=0, which here means pure infilling (checked above).
        max_new_tokens = self.max_new_tokens
        self.max_new_tokens = max_new_tokens or None
        try:
            super().validate(strict=strict, user_set_attributes=user_set_attributes)
        finally:
            self.max_new_tokens = max_new_tokens

    def update(self, defaults_only=False, allow_custom_entries=False, **kwargs):
        """`GenerationConfig.update` for known fields only: a name that is not a field (a typo, another project's
        argument, a method name such as `validate`) is returned unused, even when an attribute of that name exists
        (e.g. one that `from_pretrained` kept from an unknown key of generation_config.json)."""
        if allow_custom_entries:
            return super().update(defaults_only=defaults_only, allow_custom_entries=True, **kwargs)
        fields = generation_fields()
        known = {key: value for key, value in kwargs.items() if key in fields}
        unused = super().update(defaults_only=defaults_only, **known)
        return {**unused, **{key: value for key, value in kwargs.items() if key not in fields}}

    @classmethod
    def from_dict(cls, config_dict: dict[str, Any], **kwargs):
        """`GenerationConfig.from_dict`, keeping every key that is no field as an attribute (transformers drops them
        when the file says `_from_model_config`): generate() then refuses the config naming them, instead of a key
        nothing reads being ignored. A key that is a method's name cannot be kept and is refused here."""
        loaded = super().from_dict(config_dict, **kwargs)
        config = loaded[0] if isinstance(loaded, tuple) else loaded
        unknown = {key: value for key, value in config_dict.items() if key not in generation_fields()}
        unknown = {key: value for key, value in unknown.items() if not key.startswith("_") and key not in vars(config)}
        clashing = sorted(key for key in unknown if hasattr(config, key))
        if clashing:
            raise ValueError(f"The generation config has keys that are method names, not fields: {clashing}.")
        for key, value in unknown.items():
            setattr(config, key, value)
        return loaded

    def unread_fields(self) -> list[str]:
        """Attributes that are no field (kept by `from_pretrained` from unknown keys of generation_config.json, or
        set by hand): nothing reads them, so generate() refuses a config that has any."""
        return sorted(name for name in vars(self) if not name.startswith("_") and name not in generation_fields())

    @classmethod
    def from_model_config(cls, model_config) -> "DiffusionGenerationConfig":
        """Take the special token ids, the [MASK] id and the noise schedule from a model config (or its dict)."""
        config_dict = model_config if isinstance(model_config, dict) else model_config.to_dict()
        inherited = {key: config_dict[key] for key in MODEL_CONFIG_FIELDS if config_dict.get(key) is not None}
        return cls(**inherited, **FROM_MODEL_CONFIG)

    def get_generation_mode(self, *args, **kwargs):
        raise NotImplementedError("DiffusionGenerationConfig has no autoregressive generation mode.")


# The strategy names in the docstring come from the registry, so that a built-in strategy is never missing there.
DiffusionGenerationConfig.__doc__ = DiffusionGenerationConfig.__doc__.replace(
    "STRATEGY_NAMES", ", ".join(f"`{name}`" for name in STRATEGIES)
)

__all__ = ["DiffusionGenerationConfig"]
