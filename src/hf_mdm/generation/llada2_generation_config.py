"""LLaDA 2.x's generation dialect: the keywords of the authors' `generate()` (2.0 and 2.1; diffusers' `LLaDA2Pipeline`
and the model cards pass the same names) in a generation_config.json, mapped to a `DiffusionGenerationConfig` where
hf-mdm's `generate()` decodes as the authors' sampler does, and kept for `decode_like_authors` where it does not.

Each authors' key (their default) and what hf-mdm makes of it:

* `gen_length` -> `max_new_tokens` (absent: generate()'s own default, not their function's 2048).
* `block_length` (32): the model's `block_size`, which it must equal (else ValueError); not stored.
* `threshold` (0.95) -> `threshold` of the strategy below (2.0's `threshold` compares p >= tau, theirs p > tau;
  2.1's `threshold_editing` compares p > tau as theirs).
* The strategy: 2.0 (no 2.1 key) -> `strategy="threshold"`; 2.1 (a file with `editing_threshold`, `max_post_steps`
  or `num_to_transfer`) -> `strategy="threshold_editing"`, 2.1's decoding itself (threshold reveals with at least
  `num_to_transfer` a step, token-to-token editing, up to `max_post_steps` editing forwards once a block is
  complete), with `strategy_kwargs` = {editing_threshold, max_post_steps, num_to_transfer} (2.1's defaults 0.9, 16,
  1 where the file omits them; an editing_threshold outside [0, 1] is clipped to it, which decides the same edits).
* `steps` (per block), `minimal_topk` (1): 2.0: with s = min(steps, gen_length // minimal_topk) >= block_size every
  step commits at least one token, which is the threshold strategy (at most block_size forwards a block):
  `steps_per_block` = steps, which that strategy does not spend. s < block_size commits at least block_size // s
  tokens a step: not followed. 2.1: no effect in the authors' code, dropped.
* `temperature` (0.0): 0 -> `do_sample=False` (argmax); > 0 -> `do_sample=True`, `temperature`.
* `top_k`, `top_p`: when sampling -> `top_k` (> 0), `top_p` (< 1), transformers' warpers in the authors' order
  (temperature, top-k, top-p); greedy: dropped (the authors ignore them).
* `eos_id` (156892) -> `eos_token_id`; `mask_id` (156895) must be the model's `mask_token_id` (else ValueError).
* `eos_early_stop`: dropped; it saves forwards, the returned text (cut after the first eos) is the same.
* `num_to_transfer` (2.1, 1) = 0: not followed (a step may commit nothing, and the authors' loop may never end).

`max_denoising_steps` is not LLaDA 2.x's: it is transformers' DiffusionGemma generation field (the cap on its
canvas's denoising steps); LLaDA 2.x's "maximum editing steps" is `max_post_steps`. It is left as it is, so generate()
refuses it as a field it does not read.

Not followed means: the file's LLaDA 2.x keys are kept in the attribute `llada2_decoding` = {"sampler":
"llada2_threshold" or "llada21_editing", "options": {...}, "not_followed": [keys]}, which generate() refuses (a field
it does not read) instead of decoding otherwise; decode like the authors with
`decode_like_authors(model, d["sampler"], input_ids, **d["options"])`, or delete the attribute to decode with the
mapped fields. The sampler is 2.1's when the file has a 2.1 key (`editing_threshold`, `max_post_steps`,
`num_to_transfer`), else 2.0's (2.0 and 2.1 folders share `model_type`).

Where the mapping follows the authors, hf-mdm's decoding differs from theirs only in: p >= tau against p > tau (2.0);
ties of the "most confident" ones (within 1e-5, leftmost, against torch.topk's); hf-mdm's model never predicts
[MASK] (the authors' can, and their probabilities count it); the last block when prompt + gen_length is not a
multiple of block_size (the authors denoise the whole block and cut it, hf-mdm only the positions it returns);
forwards after the block holding the first eos (hf-mdm stops that row; the returned text is the same). A file
without any diffusion key (the published generation_config.json holds only eos/pad ids) gets the authors' defaults:
threshold 0.95, greedy (and `steps` = block_length: their defaults are 32 and 32). A file with one of hf-mdm's own
decoding fields
(`strategy`, `steps_per_block`, `max_new_tokens`, ...: one hf-mdm saved) is read as it is.
"""

from transformers import GenerationConfig

from .configuration import DiffusionGenerationConfig
from .published_samplers import PUBLISHED_SAMPLERS


LLADA2_ONLY_KEYS = (
    "gen_length",
    "minimal_topk",
    "eos_early_stop",
    "eos_id",
    "mask_id",
    "editing_threshold",
    "max_post_steps",
    "num_to_transfer",
)
SHARED_KEYS = ("block_length", "steps", "threshold", "temperature", "top_k", "top_p")  # in both dialects
LLADA21_KEYS = ("editing_threshold", "max_post_steps", "num_to_transfer")
# hf-mdm's own decoding choices: a file with one of them was written by hf-mdm (the model's facts mask_token_id,
# schedule, sep_token_id are not choices: a generation config made from the model config has them).
HF_MDM_DECODING_FIELDS = (
    "steps_per_block",
    "strategy",
    "reveal_counts",
    "reveal_counts_kwargs",
    "strategy_temperature",
    "strategy_kwargs",
    "cache",
    "output_history",
    "max_new_tokens",
    "max_length",
    "do_sample",
)
# The authors' generate() defaults that decide the mapping when a key is absent (both versions); `steps` defaults to
# block_length (their defaults, 32 and 32, commit one token per step at least).
AUTHORS_DEFAULTS = {"threshold": 0.95, "temperature": 0.0, "minimal_topk": 1, "gen_length": 2048}
AUTHORS_EDITING_DEFAULTS = {"editing_threshold": 0.9, "max_post_steps": 16, "num_to_transfer": 1}  # 2.1's


def set_values(generation_config) -> dict:
    """The keys a generation config sets (a dict, or a GenerationConfig whose unset fields are None)."""
    if isinstance(generation_config, GenerationConfig):
        generation_config = generation_config.to_dict()
    return {key: value for key, value in generation_config.items() if value is not None}


def authors_sampler(dialect: dict) -> tuple[str, dict]:
    """(published sampler name, its options) of the file's LLaDA 2.x keys, checked by building the sampler (a bad
    value raises its ValueError). 2.1's sampler has no `steps`/`minimal_topk` (no effect in the authors' 2.1)."""
    name = "llada21_editing" if any(key in dialect for key in LLADA21_KEYS) else "llada2_threshold"
    unused = ("mask_id", "steps", "minimal_topk") if name == "llada21_editing" else ("mask_id",)
    options = {key: value for key, value in dialect.items() if key not in unused}
    PUBLISHED_SAMPLERS.build(name, **options)
    return name, options


def not_followed(name: str, dialect: dict, block_size: int) -> list[str]:
    """The keys whose setting hf-mdm's generate() does not follow (module docstring)."""
    value = {**AUTHORS_DEFAULTS, "steps": block_size, **dialect}.get
    keys = [] if 0.0 < value("threshold") <= 1.0 else ["threshold"]
    if name == "llada2_threshold" and value("steps") < block_size:
        keys.append("steps")
    if name == "llada2_threshold" and value("gen_length") // value("minimal_topk") < block_size:
        keys += [key for key in ("gen_length", "minimal_topk") if key in dialect]
    if name == "llada21_editing" and dialect.get("num_to_transfer", 1) < 1:
        keys.append("num_to_transfer")
    if value("temperature") > 0 and dialect.get("top_p") is not None and dialect["top_p"] <= 0.0:
        keys.append("top_p")
    return keys


def editing_kwargs(dialect: dict) -> dict:
    """`threshold_editing`'s strategy_kwargs for a 2.1 file's keys (module docstring)."""
    kwargs = {**AUTHORS_EDITING_DEFAULTS, **{key: dialect[key] for key in AUTHORS_EDITING_DEFAULTS if key in dialect}}
    kwargs["editing_threshold"] = min(max(float(kwargs["editing_threshold"]), 0.0), 1.0)
    if kwargs["num_to_transfer"] < 1:
        del kwargs["num_to_transfer"]  # not followed: generate() refuses the config (llada2_decoding)
    return kwargs


def mapped_fields(name: str, dialect: dict) -> dict:
    """hf-mdm's fields for the keys it follows of a file for the authors' sampler `name` (module docstring)."""
    editing = name == "llada21_editing"
    fields = {"strategy": "threshold_editing", "strategy_kwargs": editing_kwargs(dialect)} if editing else {}
    fields.setdefault("strategy", "threshold")
    threshold = dialect.get("threshold", AUTHORS_DEFAULTS["threshold"])
    if 0.0 < threshold <= 1.0:
        fields["threshold"] = threshold
    if "gen_length" in dialect:
        fields["max_new_tokens"] = dialect["gen_length"]
    if "steps" in dialect and not editing:
        fields["steps_per_block"] = dialect["steps"]
    if "eos_id" in dialect:
        fields["eos_token_id"] = dialect["eos_id"]
    temperature = dialect.get("temperature", AUTHORS_DEFAULTS["temperature"])
    fields["do_sample"] = temperature > 0
    if temperature > 0:
        fields["temperature"] = temperature
        if dialect.get("top_k") and dialect["top_k"] > 0:
            fields["top_k"] = dialect["top_k"]
        if dialect.get("top_p") is not None and 0.0 < dialect["top_p"] < 1.0:
            fields["top_p"] = dialect["top_p"]
    return fields


def llada2_generation_config(generation_config, model_config) -> DiffusionGenerationConfig:
    """The `DiffusionGenerationConfig` of a LLaDA 2.x folder's generation config (a dict or a GenerationConfig) for
    the model config `model_config` (its `block_size` and `mask_token_id`); see the module docstring."""
    values = set_values(generation_config)
    if any(name in values for name in HF_MDM_DECODING_FIELDS):
        return DiffusionGenerationConfig.from_dict(values)
    dialect = {key: values.pop(key) for key in LLADA2_ONLY_KEYS + SHARED_KEYS if key in values}
    if dialect.get("block_length", model_config.block_size) != model_config.block_size:
        raise ValueError(
            f"generation_config.json has block_length={dialect['block_length']}, but the model is block-causal with "
            f"block_size={model_config.block_size}: the authors' sampler and the model would use different blocks. "
            f"Set block_length to {model_config.block_size} (or load with block_size={dialect['block_length']})."
        )
    if dialect.get("mask_id", model_config.mask_token_id) != model_config.mask_token_id:
        raise ValueError(
            f"generation_config.json has mask_id={dialect['mask_id']}, but the model's mask_token_id is "
            f"{model_config.mask_token_id}: fix one of them."
        )
    if "eos_id" in dialect and values.get("eos_token_id", dialect["eos_id"]) not in (
        dialect["eos_id"],
        [dialect["eos_id"]],
    ):
        raise ValueError(
            f"generation_config.json has eos_id={dialect['eos_id']} (the authors' sampler's) and eos_token_id="
            f"{values['eos_token_id']}: they must agree."
        )
    name, options = authors_sampler(dialect)
    config = DiffusionGenerationConfig.from_dict({**values, **mapped_fields(name, dialect)})
    keys = not_followed(name, dialect, model_config.block_size)
    if keys:
        config.llada2_decoding = {"sampler": name, "options": options, "not_followed": keys}
    return config


__all__ = ["llada2_generation_config"]
