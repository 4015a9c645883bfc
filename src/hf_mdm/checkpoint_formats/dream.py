"""Dream checkpoints (Dream-org/Dream-v0-*-7B, model_type "Dream"): Qwen2 without the causal mask.

Dream keeps the next-token alignment of the Qwen2.5 it was initialised from: raw logits[:, i] predict token i + 1, so
the converted config sets `logits_shift=1` and `logits[:, i]` of our model predicts token i, as its samplers expect.
Its generation_config.json (a `DreamGenerationConfig`) is mapped onto a `DiffusionGenerationConfig` that selects the
same sampler (`DreamFormat.to_generation_config`).
"""

from transformers import GenerationConfig, PreTrainedConfig
from transformers.utils import logging

from ..generation.configuration import DiffusionGenerationConfig
from .base import CheckpointFormat, register_checkpoint_format, unsupported


logger = logging.get_logger(__name__)

# Dream's `alg` -> our strategy. `origin` is the ancestral sampler of the linear schedule; the others rank.
DREAM_ALGORITHMS = {"origin": "random", "maskgit_plus": "confidence", "topk_margin": "margin", "entropy": "entropy"}

# `DreamGenerationConfig`'s defaults, with the fields of ours that already decide each. Dream's `diffusion_generate`
# starts from them (it builds its config from config.json, `DreamGenerationConfig.from_model_config`), whatever
# generation_config.json holds; Dream-Coder's generation_config.json, transformers' copy of config.json's token ids,
# sets none of them.
DREAM_GENERATION_DEFAULTS = {
    "alg": ("origin", ("strategy",)),
    "eps": (1e-3, ("reveal_counts",)),
    "steps": (512, ("steps_per_block",)),
    "temperature": (0.0, ("do_sample",)),
}


class DreamFormatConfig(PreTrainedConfig):
    """The fields of a Dream config.json, read without Dream's remote code (only converted, never instantiated).

    Dream's config.json carries `rope_scaling: null` (the field transformers >= 5.24 deprecates in favour of
    `rope_parameters`): null is dropped, any other value is refused here, since the converted model has no scaling.
    """

    model_type = "Dream"

    def __init__(self, rope_scaling=None, **kwargs):
        if rope_scaling:
            raise unsupported("Dream", "rope_scaling", rope_scaling)
        super().__init__(**kwargs)


@register_checkpoint_format
class DreamFormat(CheckpointFormat):
    model_type = "Dream"
    config_class = DreamFormatConfig
    key_mapping = {}  # Dream uses the Qwen2 names, which are ours

    @classmethod
    def mdm_config_kwargs(cls, raw: dict) -> dict:
        if raw.get("use_sliding_window"):
            raise unsupported("Dream", "use_sliding_window", True)
        if raw.get("rope_scaling"):
            raise unsupported("Dream", "rope_scaling", raw["rope_scaling"])
        if raw.get("eos_penalty"):  # Dream-Coder's RL workers store it here, where its sampler reads its defaults
            raise unsupported("Dream", "eos_penalty", raw["eos_penalty"])
        if "logits_shift" in raw and raw["logits_shift"] not in (1, True):
            raise ValueError(
                f"This Dream config.json sets logits_shift={raw['logits_shift']!r}, but Dream checkpoints predict "
                "token i+1 at position i (shift 1). Remove the field, or convert the folder to model_type 'mdm' and "
                "set logits_shift explicitly if the weights really are unshifted."
            )
        return dict(
            vocab_size=raw["vocab_size"],
            hidden_size=raw["hidden_size"],
            intermediate_size=raw["intermediate_size"],
            num_hidden_layers=raw["num_hidden_layers"],
            num_attention_heads=raw["num_attention_heads"],
            num_key_value_heads=raw.get("num_key_value_heads") or raw["num_attention_heads"],
            hidden_act=raw.get("hidden_act", "silu"),
            max_position_embeddings=raw["max_position_embeddings"],
            rms_norm_eps=raw.get("rms_norm_eps", 1e-6),
            rope_theta=float(raw.get("rope_theta", 10000.0)),
            tie_word_embeddings=bool(raw.get("tie_word_embeddings", False)),
            attention_dropout=float(raw.get("attention_dropout", 0.0)),
            initializer_range=raw.get("initializer_range", 0.02),
            qkv_bias=True,
            mask_token_id=raw["mask_token_id"],
            pad_token_id=raw.get("pad_token_id"),
            eos_token_id=raw.get("eos_token_id"),
            bos_token_id=raw.get("bos_token_id"),
            logits_shift=1,
        )

    @classmethod
    def to_generation_config(cls, generation_config: "GenerationConfig | dict") -> DiffusionGenerationConfig:
        r"""
        A `DiffusionGenerationConfig` that runs Dream's `diffusion_generate` from the fields of a Dream
        generation_config.json (as loaded, or its dict); fields that already have our names (`steps`, `top_p`,
        `top_k`, `max_length`, `max_new_tokens`, `num_return_sequences`, `output_history`, the token ids) are kept.

        * `alg` -> `strategy`: `origin` -> `random` (each masked position revealed w.p. 1 - s/t, the linear schedule's
          ancestral sampler; our grid ends at 0 instead of `eps`), `maskgit_plus` -> `confidence` (max p),
          `topk_margin` -> `margin` (p1 - p2), `entropy` -> `entropy` (sum p log p).
        * `eps` -> `reveal_counts="dream"`, `reveal_counts_kwargs={"eps": eps}`: Dream's truncated counts
          n_k = int(r_k (1 - t_{k+1}/t_k)) on linspace(1, eps, steps + 1), used by every ranked strategy.
        * `temperature`: 0 or None -> `do_sample=False` (argmax); t > 0 -> `do_sample=True, temperature=t`.
        * `alg_temp` -> `strategy_temperature`: Dream draws the reveal set from softmax(score / alg_temp) without
          replacement, which is the top-k of score + alg_temp * Gumbel noise.
        * `return_dict` (the dllm copy's name) -> `return_dict_in_generate`; `generation_kwargs` is dropped.
        * A field the file does not set takes `DreamGenerationConfig`'s default, which Dream's own sampler uses:
          `alg="origin"`, `eps=1e-3`, `steps=512`, `temperature=0` (Dream-Coder's and DiffuCoder's folders rely on
          them), unless one of our fields already decides it.
        * `eos_penalty` (Dream-Coder's generation utils: a step-dependent penalty on the [EOS]/pad logit) 0 is
          dropped; any other value is refused, since hf-mdm does not implement it.

        Any other field is ignored with a warning, so `generate()` never accepts an argument it would not use.
        """
        if isinstance(generation_config, GenerationConfig):
            generation_config = generation_config.to_dict()
        fields = {
            key: value
            for key, value in generation_config.items()
            if value is not None and not key.startswith("_") and key != "transformers_version"
        }
        for name, (default, ours) in DREAM_GENERATION_DEFAULTS.items():
            if not any(key in fields for key in (name, *ours)):
                fields[name] = default
        eos_penalty = fields.pop("eos_penalty", 0)
        if eos_penalty:
            raise ValueError(
                f"This Dream generation config sets eos_penalty={eos_penalty!r} (Dream-Coder's penalty on the "
                "[EOS]/pad logit), which hf-mdm does not implement: set it to 0 or delete it (and decode without it)."
            )
        alg = fields.pop("alg", None)
        eps = fields.pop("eps", None)
        alg_temp = fields.pop("alg_temp", None)
        temperature = fields.pop("temperature", None)
        return_dict = fields.pop("return_dict", None)
        fields.pop("generation_kwargs", None)
        if alg is not None:
            if alg not in DREAM_ALGORITHMS:
                raise ValueError(
                    f"This Dream generation_config.json sets alg={alg!r}; hf-mdm maps {sorted(DREAM_ALGORITHMS)}. Set "
                    "one of them, or pass `strategy=` to generate()."
                )
            fields["strategy"] = DREAM_ALGORITHMS[alg]
        if fields.get("reveal_counts") is None:
            fields["reveal_counts"] = "dream"
            if eps is not None:
                fields["reveal_counts_kwargs"] = {"eps": eps}
        if alg_temp:
            fields["strategy_temperature"] = alg_temp
        if temperature is not None:
            fields["do_sample"] = temperature > 0
            if temperature > 0:
                fields["temperature"] = temperature
        if return_dict is not None:
            fields.setdefault("return_dict_in_generate", return_dict)
        config = DiffusionGenerationConfig()
        ignored = config.update(**fields)
        if ignored:
            logger.warning(
                f"Ignoring fields of the Dream generation_config.json that hf-mdm does not use: {sorted(ignored)}."
            )
        return config
