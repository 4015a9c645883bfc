"""The model arguments of lm-eval's `hf-mdm` model type, checked in one place before anything is loaded.

lm-eval hands `--model_args a=1,b=true` over as parsed by `lm_eval.utils.handle_arg_string`: `true`/`false` become
booleans, digits integers, what `float()` reads a float, anything else stays a string. So `steps=abc`, `mc_num=0`,
`do_sample=yes` (a string, which is truthy), `threshold=high` or a misspelled key all arrive here, and each is refused
with a message naming the fix, before the model is loaded and before any request runs. Python callers get the same
checks (`MaskedDiffusionLM(**kwargs)`).
"""

from dataclasses import dataclass

import torch
from transformers.utils import logging

from ..generation.configuration import DiffusionGenerationConfig


logger = logging.get_logger(__name__)


@dataclass(frozen=True)
class Rule:
    """What one argument accepts: a value of `kind` (`float` takes integers too; `bool` never counts as a number),
    at least `minimum`, or None when `optional`."""

    kind: type | tuple[type, ...]
    minimum: float | None = None
    optional: bool = True

    def accepts(self, value) -> bool:
        if value is None:
            return self.optional
        kinds = self.kind if isinstance(self.kind, tuple) else (self.kind,)
        numeric = tuple(int if kind is float else kind for kind in kinds if kind in (int, float))
        if isinstance(value, bool):
            return bool in kinds
        if not isinstance(value, kinds + numeric):
            return False
        return self.minimum is None or not isinstance(value, (int, float)) or value >= self.minimum

    def describe(self) -> str:
        kinds = self.kind if isinstance(self.kind, tuple) else (self.kind,)
        names = {int: "an integer", float: "a number", str: "a string", bool: "true or false", dict: "a dict",
                 list: "a list", torch.dtype: "a torch dtype"}  # fmt: skip
        text = " or ".join(names[kind] for kind in kinds)
        if self.minimum is not None:
            text += f" >= {self.minimum}"
        return text + (" (or none)" if self.optional else "")


# The model type's own arguments (generation fields are below). `pretrained` and `tokenizer` are checked by the loader.
MODEL_ARGUMENT_RULES = {
    "mc_num": Rule(int, 2, optional=False),
    "mc_groups": Rule(int, 2, optional=False),
    "batch_size": Rule(int, 1, optional=False),
    "mc_batch_size": Rule(int, 1),
    "max_length": Rule(int, 2),
    "max_gen_toks": Rule(int, 1, optional=False),
    "device": Rule(str),
    "dtype": Rule((str, torch.dtype)),
    "seed": Rule(int, 0, optional=False),
    "max_batch_size": Rule(int, 1),
}

# The `DiffusionGenerationConfig` fields that `generate_until` reads from model_args. Their types, ranges and names
# (strategy, cache, schedule, ...) are the config's own checks (`DiffusionGenerationConfig.validate`).
GENERATION_ARGUMENTS = (
    "steps", "steps_per_block", "block_length", "strategy", "reveal_counts", "reveal_counts_kwargs", "schedule",
    "schedule_kwargs", "strategy_kwargs", "threshold", "strategy_temperature", "cache", "do_sample", "temperature",
    "top_k", "top_p", "mask_token_id", "pad_token_id", "eos_token_id", "suppress_tokens",
)  # fmt: skip

# Generation fields the model type sets itself for every request: a value in model_args would be overridden.
SET_BY_THE_MODEL_TYPE = {
    "max_new_tokens": "each task sets its own max_gen_toks; pass max_gen_toks=N for the tasks that set none",
    "num_return_sequences": "lm-eval scores one answer per request",
    "return_dict_in_generate": "the model type reads the forward count from the returned dict",
    "output_history": "the model type keeps only the final text",
}

# Keys that lm-eval itself puts into model_args; accepted, with what they do here.
ACCEPTED_FROM_LM_EVAL = {
    "trust_remote_code": "lm-eval's --trust_remote_code (for datasets); hf-mdm runs no code from model folders",
}


def _batch_size(value):
    """lm-eval's command line passes --batch_size as text ("8"); `auto` has no meaning here."""
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, str) and value.startswith("auto"):
        raise ValueError(
            f"batch_size={value} is not supported by hf-mdm (its memory use depends on mc_num); give a number of "
            "requests per forward, e.g. batch_size=8, and mc_batch_size=N to cap the rows of a log-likelihood forward."
        )
    return value


def check_device(device, argument: str = "model_args device") -> None:
    """Refuse a device string torch cannot parse (`gpu`, `cuda:x`), naming the accepted forms."""
    if device is None:
        return
    try:
        torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"{argument} {device!r} is not a torch device; use e.g. cpu, cuda, cuda:0 or mps.") from None


def usable_device(device: str | None) -> torch.device:
    """`device` when this machine has it; else, with a warning, CUDA when available and the CPU otherwise, as lm-eval's
    own `hf` model type falls back (its command line passes `cuda:0` unless told otherwise)."""
    default = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device is None:
        return default
    try:
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as error:  # AssertionError: "Torch not compiled with CUDA enabled"
        logger.warning(
            f"hf-mdm: device {device!r} is not available here ({str(error).strip().splitlines()[0]}); running on "
            f"{default} instead. Pass device={default} (lm-eval: --device {default}) to silence this warning."
        )
        return default
    return torch.device(device)


def check_model_arguments(arguments: dict, generation_arguments: dict) -> tuple[dict, dict]:
    """Check the model type's own arguments and the generation fields of model_args; return both, normalised.

    Raises ValueError naming the argument, the value and the fix for: a wrong type (string booleans and numbers
    included), a value out of range, `mc_num` not a multiple of `mc_groups`, a field the model type sets itself, a key
    that is neither an argument nor a generation field (it would be silently ignored), and any generation field
    `DiffusionGenerationConfig.validate` refuses (a wrong type, an unknown strategy, threshold outside (0, 1], ...).
    """
    arguments = {**arguments, "batch_size": _batch_size(arguments.get("batch_size"))}
    for name, value in arguments.items():
        rule = MODEL_ARGUMENT_RULES.get(name)
        if rule is not None and not rule.accepts(value):
            raise ValueError(f"model_args {name}={value!r}: {name} must be {rule.describe()}.")
    mc_num, mc_groups = arguments["mc_num"], arguments["mc_groups"]
    if mc_num % mc_groups:
        raise ValueError(
            f"model_args mc_num={mc_num} must be a multiple of mc_groups={mc_groups} (the standard error comes from "
            f"mc_groups groups of equal size); e.g. mc_num={mc_num - mc_num % mc_groups or mc_groups},"
            f"mc_groups={mc_groups}."
        )
    check_device(arguments.get("device"))
    dtype = arguments.get("dtype")
    dtype = getattr(torch, dtype, dtype) if isinstance(dtype, str) and dtype != "auto" else dtype
    if not (dtype in (None, "auto") or isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise ValueError(
            f"model_args dtype={arguments['dtype']!r} is not a floating-point torch dtype; use e.g. float32, bfloat16 "
            "or auto (the checkpoint's)."
        )
    generation = {}
    for name, value in generation_arguments.items():
        if name in ACCEPTED_FROM_LM_EVAL:
            logger.info(f"hf-mdm: model_args {name}={value!r} accepted: {ACCEPTED_FROM_LM_EVAL[name]}.")
        elif name in SET_BY_THE_MODEL_TYPE:
            raise ValueError(f"model_args {name} is set by hf-mdm for each request ({SET_BY_THE_MODEL_TYPE[name]}).")
        elif name not in GENERATION_ARGUMENTS:
            known = sorted([*MODEL_ARGUMENT_RULES, "pretrained", "tokenizer", *GENERATION_ARGUMENTS])
            raise ValueError(
                f"Unknown model_args {name!r} for hf-mdm: neither its argument nor a generation field it reads, so "
                f"it would be ignored. Check its spelling; known: {', '.join(known)}."
            )
        elif value is not None:
            generation[name] = value
    try:
        DiffusionGenerationConfig(**generation).validate()
    except ValueError as error:
        raise ValueError(f"model_args: {error}") from None
    return arguments, generation


__all__ = ["check_device", "check_model_arguments", "usable_device"]
