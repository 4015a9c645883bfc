"""generate()'s arguments: one validated `DiffusionGenerationConfig` from the call's keyword arguments, the
`generation_config=` passed and the model's `generation_config`, every conflict refused by name before any work.

Priority: call > passed config > model config > `DiffusionGenerationConfig.diffusion_defaults()`. A value the caller
gave (a keyword argument, or a field of the passed config that differs from the model's) is never dropped silently:

- a name that is no field is an error, with our name for it when it is Dream's or LLaDA's (`alg`, `gen_length`, ...);
- `max_new_tokens` and `max_length` set one length, `steps` and `steps_per_block` one budget: the caller giving
  both is an error, the caller's one replaces the model's;
- `temperature`, `top_k` and `top_p` need `do_sample=True` (temperature 0, Dream's and LLaDA's greedy, excepted);
- a strategy's own parameter (`threshold`, `strategy_temperature`, `reveal_counts`) needs a strategy that reads it;
- an EOS id in the caller's `suppress_tokens` could never be generated.

What the caller's choice makes irrelevant at the model's level is dropped: its `strategy_kwargs` when the call picks
another strategy (likewise `reveal_counts_kwargs`, `schedule_kwargs`), its sampling parameters when the call decodes
greedily, its length when the call gives one; EOS ids always pass the model's own suppress list (they end a row).
"""

import copy

from transformers import GenerationConfig
from transformers.utils import logging

from .configuration import DiffusionGenerationConfig, check_field_types, eos_ids, generation_fields
from .strategies import STRATEGIES


logger = logging.get_logger(__name__)

CALL, PASSED, MODEL = "call", "passed generation_config", "model.generation_config"
# Pairs of fields that set one quantity (the highest level that sets either sets it alone), with what they set.
ALTERNATIVE_FIELDS = {
    ("max_new_tokens", "max_length"): "the same length (max_length = prompt + max_new_tokens)",
    ("steps", "steps_per_block"): "the same budget (steps = steps_per_block x blocks)",
}
# A name and the keyword arguments of the class it names: the arguments belong to the choice at their level.
NAMED_WITH_KWARGS = (("strategy", "strategy_kwargs"), ("reveal_counts", "reveal_counts_kwargs"),
                     ("schedule", "schedule_kwargs"))  # fmt: skip
# Values of the sampling parameters that change nothing when decoding greedily.
SAMPLING_OFF = {"temperature": (1.0, 0.0), "top_k": (0,), "top_p": (1.0,)}

# Other projects' names (Dream's `diffusion_generate`, LLaDA's `generate.py`, transformers' autoregressive generate),
# with ours. An unknown argument with one of these names gets the hint in its error.
FOREIGN_ARGUMENTS = {
    "alg": "Dream's `alg` is `strategy` here: origin -> 'random', maskgit_plus -> 'confidence', topk_margin -> "
    "'margin', entropy -> 'entropy'",
    "alg_temp": "Dream's `alg_temp` is `strategy_temperature` here (with a ranked strategy)",
    "eps": "Dream's `eps` is reveal_counts='dream', reveal_counts_kwargs={'eps': eps} here",
    "gen_length": "LLaDA's `gen_length` is `max_new_tokens` here",
    "remasking": "LLaDA's `remasking` is `strategy` here: 'low_confidence' -> 'confidence', 'random' -> 'random'",
    "mask_id": "LLaDA's `mask_id` is `mask_token_id` here",
    "cfg_scale": "classifier-free guidance (LLaDA's `cfg_scale`) is not offered",
    "logits_eos_inf": "LLaDA's `logits_eos_inf` is suppress_tokens=[eos id] here",
    "confidence_eos_eot_inf": "LLaDA's `confidence_eos_eot_inf` is suppress_tokens=[eos id, eot id] here",
    "return_dict": "`return_dict_in_generate` here",
    "block_size": "the semi-autoregressive block is `block_length` here (`block_size` is the model config's)",
    "diffusion_steps": "`steps` here",
    "num_steps": "`steps` here",
    "stopping_criteria": "decoding stops at `eos_token_id`; a `DecodingCallback` (callbacks=[...]) sees every step",
    "prefix_allowed_tokens_fn": "restrict tokens with a `logits_processor`",
    "llada2_decoding": "LLaDA 2.x settings generate() does not follow (its `not_followed` says which): "
    "decode_like_authors(model, d['sampler'], input_ids, **d['options']) with d = generation_config.llada2_decoding, "
    "or delete it to decode with the mapped fields",
    "editing_threshold": "LLaDA 2.1's token editing is strategy='threshold_editing', "
    "strategy_kwargs={'editing_threshold': ...} here (not the `editing` strategy)",
    "max_post_steps": "LLaDA 2.1's editing steps are strategy='threshold_editing', "
    "strategy_kwargs={'max_post_steps': ...} here",
    "num_to_transfer": "LLaDA 2.1's fewest commits per step are strategy='threshold_editing', "
    "strategy_kwargs={'num_to_transfer': ...} here",
    "minimal_topk": "LLaDA 2.0's step cap: decode_like_authors(model, 'llada2_threshold', ...)",
    "eos_penalty": "Dream-Coder's step-dependent [EOS]/pad penalty is not offered",
    "number_transfer_tokens": "DreamOn's expand/delete infilling (a canvas that grows and shrinks) is not offered",
    "max_denoising_steps": "DiffusionGemma's cap on its canvas's steps (hf_mdm.own_decoders); LLaDA 2.x's maximum "
    "editing steps is `max_post_steps`",
}


def as_diffusion_config(config) -> DiffusionGenerationConfig:
    """A private copy of `config` as a `DiffusionGenerationConfig` (a plain `GenerationConfig` is converted)."""
    if config is None:
        return DiffusionGenerationConfig()
    if isinstance(config, DiffusionGenerationConfig):
        return copy.deepcopy(config)
    if not isinstance(config, GenerationConfig):
        raise TypeError(
            f"`generation_config` must be a GenerationConfig (e.g. a DiffusionGenerationConfig), got "
            f"{type(config).__name__}; pass its fields as keyword arguments, or DiffusionGenerationConfig(**fields)."
        )
    return DiffusionGenerationConfig.from_dict(config.to_dict())


def _hints(names) -> str:
    hints = [f"{name}: {FOREIGN_ARGUMENTS[name]}" for name in names if name in FOREIGN_ARGUMENTS]
    return "; ".join(hints) + "." if hints else "Check their spelling."


def check_argument_names(kwargs: dict) -> None:
    """Every keyword argument is a `DiffusionGenerationConfig` field (never a method or an unknown attribute)."""
    unknown = sorted(set(kwargs) - generation_fields())
    if unknown:
        raise ValueError(
            f"generate() got unexpected arguments {unknown}: they are neither generate() arguments nor "
            f"DiffusionGenerationConfig fields. {_hints(unknown)}"
        )


def _set_fields(config: DiffusionGenerationConfig, origin: str) -> dict:
    """The fields `config` sets (not None); a config with attributes nothing reads is refused, naming them."""
    unread = config.unread_fields()
    if unread:
        raise ValueError(
            f"The {origin} has fields that generate() does not read: {unread} (a generation_config.json key nothing "
            f"reads is kept as an attribute by from_pretrained). Delete them, or use our names. {_hints(unread)}"
        )
    fields = generation_fields() - {"transformers_version"}
    return {name: value for name, value in vars(config).items() if name in fields and value is not None}


def resolve_generation_config(call: dict, passed, model, block_size: int | None = None) -> DiffusionGenerationConfig:
    """The config generate() runs: `call` (keyword arguments) over `passed` (`generation_config=`) over `model` (the
    model's `generation_config`) over the diffusion defaults (those of a block-causal model of `block_size`), with the
    rules of the module docstring."""
    check_argument_names(call)
    model_fields = _set_fields(as_diffusion_config(model), MODEL) if model is not None else {}
    passed_fields = {}
    if passed is not None:
        passed_fields = _set_fields(as_diffusion_config(passed), PASSED)
        passed_fields = {name: value for name, value in passed_fields.items() if model_fields.get(name) != value}
    levels = ((CALL, call), (PASSED, passed_fields), (MODEL, model_fields))
    merged, source = {}, {}
    for level, fields in reversed(levels):
        merged.update(fields)
        source.update(dict.fromkeys(fields, level))
    check_field_types(merged)
    caller = {name for name, level in source.items() if level != MODEL}
    for names, what in ALTERNATIVE_FIELDS.items():
        _resolve_alternatives(levels, merged, names, what)
    for name, kwargs_name in NAMED_WITH_KWARGS:
        if kwargs_name in source and merged.get(name) != _in_effect(levels, name, source[kwargs_name]):
            merged.pop(kwargs_name)  # arguments of the choice at their level, which a higher level replaced
    defaults = DiffusionGenerationConfig.diffusion_defaults(block_size)
    _check_sampling_parameters(merged, caller)
    _check_strategy_parameters(merged, caller, defaults)
    _check_eos_is_not_suppressed(merged, caller)
    config = DiffusionGenerationConfig(**merged)
    config.update(**defaults, defaults_only=True)
    return config


def _in_effect(levels, name: str, level: str):
    """The value of `name` that `level` and the levels below it choose (None: the default)."""
    start = [other for other, _ in levels].index(level)
    return next((fields[name] for _, fields in levels[start:] if fields.get(name) is not None), None)


def _resolve_alternatives(levels, merged: dict, names: tuple[str, str], what: str) -> None:
    """The highest level that sets one of `names` (two fields that set `what`) sets it alone."""
    for level, fields in levels:
        given = {name: fields[name] for name in names if fields.get(name) is not None}
        if not given:
            continue
        if len(given) == 2:
            if level != MODEL or "max_length" not in given:  # transformers' own rule for a model's two lengths
                first, second = names
                raise ValueError(
                    f"{first}={given[first]} and {second}={given[second]} were both given (by the {level}); they set "
                    f"{what}. Pass one."
                )
            logger.warning_once(
                f"The model's generation_config sets both max_new_tokens={given['max_new_tokens']} and "
                f"max_length={given['max_length']}; max_new_tokens is used, as in transformers."
            )
            given.pop("max_length")
        merged.update(dict.fromkeys(names), **given)
        return


def _check_sampling_parameters(merged: dict, caller: set) -> None:
    """Refuse the caller's sampling parameters when decoding greedily; drop the model's."""
    if merged.get("do_sample") is True:
        return
    active = {name: merged[name] for name, off in SAMPLING_OFF.items() if merged.get(name) not in (None, *off)}
    given = {name: value for name, value in active.items() if name in caller}
    if given:
        raise ValueError(
            f"{given} only apply when sampling, but do_sample is not True: pass do_sample=True, or drop them "
            "(greedy decoding takes the argmax; LLaDA's and Dream's temperature=0 is do_sample=False here)."
        )
    for name in SAMPLING_OFF:
        merged.pop(name, None)


def _check_strategy_parameters(merged: dict, caller: set, defaults: dict) -> None:
    """Refuse the caller's parameters of other strategies than the one that runs."""
    name = merged.get("strategy") or defaults["strategy"]
    STRATEGIES.check(name)
    strategy = STRATEGIES[name]
    readers = {}
    for other in sorted(STRATEGIES):
        for field in STRATEGIES[other].config_fields:
            readers.setdefault(field, []).append(other)
    unread = {
        field: merged[field]
        for field in readers
        if field in caller and field not in strategy.config_fields and merged.get(field) not in (None, defaults[field])
    }
    if not strategy.reads_reveal_counts():
        readers["reveal_counts"] = sorted(other for other in STRATEGIES if STRATEGIES[other].reads_reveal_counts())
        unread.update({field: merged[field] for field in ("reveal_counts", "reveal_counts_kwargs")
                       if field in caller and merged.get(field) not in (None, defaults.get(field))})  # fmt: skip
    if unread:
        users = {field: readers[field.replace("_kwargs", "")] for field in unread}
        raise ValueError(
            f"strategy={name!r} does not read {unread}; they would be ignored. Drop them, or pick a strategy that "
            f"reads them: {users}."
        )


def _check_eos_is_not_suppressed(merged: dict, caller: set) -> None:
    """An EOS id the caller also suppresses is an error; the model's own suppress list lets EOS ids through."""
    eos, suppress = set(eos_ids(merged.get("eos_token_id"))), merged.get("suppress_tokens")
    if not eos or not suppress or not eos & set(suppress):
        return
    if "suppress_tokens" in caller and "eos_token_id" in caller:
        raise ValueError(
            f"eos_token_id {sorted(eos & set(suppress))} is in suppress_tokens: it could never be generated, so no "
            "row would stop. Remove it from suppress_tokens, or unset eos_token_id."
        )
    if "suppress_tokens" not in caller:
        merged["suppress_tokens"] = [token for token in suppress if token not in eos] or None


def check_token_ids(config: DiffusionGenerationConfig, vocab_size: int | None, mask_token_id: int) -> None:
    """Every id decoding reads lies inside the model's vocabulary, and EOS is not the [MASK] id (never generated)."""
    eos = eos_ids(config.eos_token_id)
    if mask_token_id in eos:
        raise ValueError(
            f"eos_token_id={config.eos_token_id} includes the [MASK] id {mask_token_id}, which is never generated, so "
            "no row would stop. Pass the tokenizer's eos_token_id."
        )
    if config.sep_token_id == mask_token_id:
        raise ValueError(
            f"sep_token_id={config.sep_token_id} is the [MASK] id; it names the end marker the tokenizer appends "
            "([SEP]). Pass the tokenizer's sep_token_id, or None."
        )
    if vocab_size is None:
        return
    named = {
        "eos_token_id": eos,
        "pad_token_id": [config.pad_token_id] if config.pad_token_id is not None else [],
        "suppress_tokens": list(config.suppress_tokens or []),
        "sep_token_id": [config.sep_token_id] if config.sep_token_id is not None else [],
    }
    for name, ids in named.items():
        outside = sorted(token for token in ids if token >= vocab_size)
        if outside:
            value = outside[0] if name in ("pad_token_id", "sep_token_id") else outside
            raise ValueError(
                f"{name}={value} is outside the model's vocabulary (vocab_size={vocab_size}); pass this model's "
                "tokenizer ids."
            )


__all__ = ["FOREIGN_ARGUMENTS", "as_diffusion_config", "check_token_ids", "resolve_generation_config"]
