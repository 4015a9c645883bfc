"""SDAR's generation-config dialect: its published generation_config.json mapped to a `DiffusionGenerationConfig`.

SDAR's generation_config.json (SDAR-4B/8B-Chat) holds Qwen3's autoregressive sampling defaults only
(`do_sample: true, temperature: 0.6, top_k: 20, top_p: 0.95`, eos `[<|im_end|>, <|endoftext|>]`, pad), no diffusion
field: the authors' block sampler (`generate.py::block_diffusion_generate`) takes everything as arguments, and the
authors evaluate SDAR greedily with `block_length = block_size`, `denoising_steps = block_size` and
`low_confidence_dynamic` at `confidence_threshold = 0.85` (generate.py's defaults; README "SDAR family: greedy
decoding with block_length = 4, denoising_steps = 4"). A file with no diffusion field is therefore read as:

* eos / pad / bos ids: kept (eos stops generation, as the authors' `stopping_criteria_idx` from this file);
* `do_sample`, `temperature`, `top_k`, `top_p`: Qwen3's AR defaults, which the authors' sampler does not read:
  replaced by greedy decoding (`do_sample=False`, the others unset);
* blocks: the model's `block_size` (generate() decodes a block-causal model's own blocks);
* steps: unset, i.e. `block_size` steps per block (generate()'s default on a block-causal model);
* `low_confidence_dynamic`, threshold 0.85 -> `strategy="threshold"`, `threshold=0.85`. With one token per step
  (steps = block size) the authors' rule (reveal every masked position with p > 0.85, else the most confident one)
  is hf-mdm's `threshold` strategy (p >= 0.85, at least the most confident one); they differ only at p = 0.85 exactly.

A generation_config.json that already has a diffusion field (one hf-mdm saved) is read as it is.
"""

from transformers import GenerationConfig

from .configuration import DiffusionGenerationConfig


# The authors' evaluation decoding (see the module docstring), applied to a file without diffusion fields.
SDAR_EVALUATION_DEFAULTS = {
    "do_sample": False,
    "temperature": None,
    "top_k": None,
    "top_p": None,
    "strategy": "threshold",
    "threshold": 0.85,
}
DIFFUSION_FIELDS = ("steps", "steps_per_block", "block_length", "strategy", "threshold", "reveal_counts", "cache")


def sdar_generation_config(generation_config: "GenerationConfig | dict") -> DiffusionGenerationConfig:
    """The `DiffusionGenerationConfig` of an SDAR folder's generation config (module docstring)."""
    if isinstance(generation_config, GenerationConfig):
        generation_config = generation_config.to_dict()
    config = DiffusionGenerationConfig.from_dict(generation_config)
    if all(generation_config.get(name) is None for name in DIFFUSION_FIELDS):
        for name, value in SDAR_EVALUATION_DEFAULTS.items():
            setattr(config, name, value)
    return config


__all__ = ["SDAR_EVALUATION_DEFAULTS", "sdar_generation_config"]
