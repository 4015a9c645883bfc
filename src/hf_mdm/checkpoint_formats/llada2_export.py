"""Export a block-diffusion `MDMForMaskedGeneration` as a LLaDA 2.x folder (model_type "llada2_moe"), the format that
SGLang serves and the authors' `LLaDA2MoeModelLM` (inclusionAI/LLaDA2.0-mini's remote code) loads.

The format is a MoE stack whose first `first_k_dense_replace` layers are dense; an MDM is written with every layer
dense (`first_k_dense_replace = num_hidden_layers`, so the MoE fields are never read), and the same numbers come out:

* attention: `query_key_value` = [W_q; W_k; W_v] stacked on the output axis (the authors split the heads q | k | v),
  `dense` = W_o, per-head RMSNorm on q and k before RoPE (`use_qk_norm`, MDM's `qk_norm`), RoPE on every channel
  (`partial_rotary_factor` 1.0: theirs rotates the first head_dim * factor channels, rotate-half, inv_freq
  1/theta^(2i/d), which at factor 1 is LLaMA's RoPE, MDM's);
* MLP: SwiGLU `mlp.{gate,up,down}_proj`, no bias; RMSNorm in float32; `lm_head` (absent when tied);
* attention pattern: the authors' forward takes the 4-D mask their generate() builds, block-causal with
  `block_length` = MDM's `block_size`; logits[:, i] predict token i (no shift).

One difference cannot be written: MDM pins the [MASK] logit to the lowest float, the format has no bias to carry it.
Every other logit is equal; a sampler of the format (theirs, SGLang's) may then propose [MASK] where hf-mdm cannot.

Refused before anything is written, each naming the fix: a bidirectional model (no `block_size`), a logit shift,
biases the readers disagree on (`attention_bias`: SGLang reads `use_bias` as MLP biases too; `mlp_bias`), RoPE other
than the default, and weights other than MDM's own (a model with PEFT/LoRA layers: merge them first).
"""

import json
import re
from pathlib import Path

import torch
from huggingface_hub import save_torch_state_dict
from transformers.utils import logging

from ..configuration_llada2_moe import AUTHORS_AUTO_MAP
from ..generation.configuration import DiffusionGenerationConfig
from ..generation.strategies import STRATEGIES
from ..schedules import get_schedule


logger = logging.get_logger(__name__)

LLADA2_FORMAT = "llada2"
LLADA2_MODEL_TYPE = "llada2_moe"
# The [MASK] id SGLang hard-codes for LLaDA2MoeModelLM (python/sglang/srt/dllm/config.py, DLLM_PARAMS).
SGLANG_MASK_ID = 156895

# MDM weight name -> LLaDA 2.x weight name; q/k/v projections are fused separately (FUSED_QKV).
RENAMES = (
    (r"model\.embed_tokens\.weight", r"model.word_embeddings.weight"),
    (r"model\.layers\.(\d+)\.self_attn\.o_proj\.weight", r"model.layers.\1.attention.dense.weight"),
    (r"model\.layers\.(\d+)\.self_attn\.q_norm\.weight", r"model.layers.\1.attention.query_layernorm.weight"),
    (r"model\.layers\.(\d+)\.self_attn\.k_norm\.weight", r"model.layers.\1.attention.key_layernorm.weight"),
    (r"model\.layers\.(\d+)\.(input_layernorm|post_attention_layernorm)\.weight", r"model.layers.\1.\2.weight"),
    (r"model\.layers\.(\d+)\.mlp\.(gate_proj|up_proj|down_proj)\.weight", r"model.layers.\1.mlp.\2.weight"),
    (r"model\.norm\.weight", r"model.norm.weight"),
    (r"lm_head\.weight", r"lm_head.weight"),
)
FUSED_QKV = re.compile(r"model\.layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)")


def check_llada2_exportable(model) -> None:
    """A ValueError naming the fix unless `model`'s architecture is one the LLaDA 2.x format expresses exactly."""
    config = model.config
    if config.model_type != "mdm":
        raise ValueError(
            f"checkpoint_format='llada2' exports an MDMForMaskedGeneration; this is a {type(model).__name__}. "
            "Save it as an hf-mdm folder (a DiT saves back in the format it was read from with original_format=True)."
        )
    problems = []
    if config.block_size is None:
        problems.append(
            "the model is bidirectional (block_size=None) and LLaDA 2.x is block diffusion: train a block-diffusion "
            "model (MDMConfig(block_size=32), or from_causal_lm(..., block_size=32, logits_shift=0))"
        )
    if config.logits_shift != 0:
        problems.append(
            f"logits_shift={config.logits_shift}: LLaDA 2.x reads token i's prediction at position i; export a model "
            "trained with logits_shift=0"
        )
    if config.attention_bias:
        problems.append(
            "attention_bias=True puts a bias on the output projection (`use_bias`), which SGLang also reads as MLP "
            "biases; build the model with qkv_bias=True instead (q/k/v biases only, `use_qkv_bias`)"
        )
    if config.mlp_bias:
        problems.append("mlp_bias=True: the format's MLPs have no bias; build the model with mlp_bias=False")
    rope = dict(config.rope_parameters or {})
    if rope.get("rope_type", "default") != "default" or rope.get("partial_rotary_factor", 1.0) != 1.0:
        problems.append(f"rope_parameters={rope}: only default RoPE on all channels is exported")
    if problems:
        raise ValueError("This model cannot be written in LLaDA 2.x's format: " + "; ".join(problems) + ".")


def llada2_state_dict(model) -> dict[str, torch.Tensor]:
    """The model's weights under LLaDA 2.x's names (q/k/v fused as q | k | v); `lm_head` left out when tied, as the
    readers tie it themselves. A weight MDM does not have (e.g. a LoRA layer) is a ValueError."""
    state, fused, unknown = {}, {}, []
    for name, tensor in model.state_dict().items():
        match = FUSED_QKV.fullmatch(name)
        if match is not None:
            layer, part, kind = match.groups()
            fused.setdefault((layer, kind), {})[part] = tensor
            continue
        target = next((re.sub(p, r, name) for p, r in RENAMES if re.fullmatch(p, name)), None)
        if target is None:
            unknown.append(name)
        else:
            state[target] = tensor
    if unknown:
        fix = (
            "merge the adapter first (`model = peft_model.merge_and_unload()`, or `model.merge_adapter()` then "
            "`model.unload()`), then save the merged model"
            if any("lora_" in name or "base_layer" in name for name in unknown)
            else "save it as an hf-mdm folder instead"
        )
        raise ValueError(f"These weights have no place in LLaDA 2.x's format: {sorted(unknown)[:6]}...; {fix}.")
    for (layer, kind), parts in fused.items():
        state[f"model.layers.{layer}.attention.query_key_value.{kind}"] = torch.cat([parts[p] for p in "qkv"])
    if model.config.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    return state


def llada2_config_dict(model) -> dict:
    """config.json in LLaDA 2.x's keys: every layer dense, a consistent MoE description the code never reads, plus
    hf-mdm's `mask_token_id`, `block_size` and training objective (`schedule`, `schedule_kwargs`, `loss_weighting`)."""
    config = model.config
    layers = config.num_hidden_layers
    return {
        "architectures": ["LLaDA2MoeModelLM"],
        "auto_map": AUTHORS_AUTO_MAP,
        "model_type": LLADA2_MODEL_TYPE,
        "dtype": str(model.dtype).removeprefix("torch."),
        "vocab_size": config.vocab_size,
        "hidden_size": config.hidden_size,
        "intermediate_size": config.intermediate_size,
        "num_hidden_layers": layers,
        "num_attention_heads": config.num_attention_heads,
        "num_key_value_heads": config.num_key_value_heads,
        "head_dim": config.head_dim,
        "hidden_act": config.hidden_act,
        "max_position_embeddings": config.max_position_embeddings,
        "rope_theta": config.rope_parameters["rope_theta"],
        "rope_scaling": None,
        "partial_rotary_factor": 1.0,
        "rotary_dim": config.head_dim,
        "use_qkv_bias": config.qkv_bias,
        "use_bias": False,
        "use_qk_norm": config.qk_norm,
        "use_rmsnorm": True,
        "rms_norm_eps": config.rms_norm_eps,
        "norm_head": False,
        "norm_softmax": False,
        "tie_word_embeddings": config.tie_word_embeddings,
        "embedding_dropout": 0.0,
        "attention_dropout": config.attention_dropout,
        "output_dropout": 0.0,
        "initializer_range": config.initializer_range,
        "use_cache": False,
        "use_sliding_window": False,
        "sliding_window": None,
        "max_window_layers": layers,
        "using_split_qkv_in_self_attention": False,
        # Every layer dense: layer i is MoE only when i >= first_k_dense_replace. The router fields below are never
        # read; they are the smallest the readers' checks accept (one group of two experts, grouped top-1).
        "first_k_dense_replace": layers,
        "num_experts": 2,
        "num_experts_per_tok": 1,
        "num_shared_experts": 0,
        "n_group": 1,
        "topk_group": 1,
        "moe_intermediate_size": config.intermediate_size,
        "routed_scaling_factor": 1.0,
        "norm_topk_prob": True,
        "score_function": "sigmoid",
        "moe_router_enable_expert_bias": True,
        "router_dtype": "fp32",
        "output_router_logits": False,
        "pad_token_id": config.pad_token_id,
        "bos_token_id": config.bos_token_id,
        "eos_token_id": config.eos_token_id,
        "mask_token_id": config.mask_token_id,
        "block_size": config.block_size,
        # The training objective, for hf-mdm to fine-tune on as it was trained (the authors' code ignores these).
        "schedule": config.schedule,
        "schedule_kwargs": config.schedule_kwargs,
        "loss_weighting": config.loss_weighting,
    }


def llada2_generation_config_dict(model) -> dict:
    """generation_config.json in the dialect of the authors' generate() keywords: `block_length` (= block_size),
    `steps` (per block), `gen_length`, `threshold` and, when sampling, `temperature`, `top_k`, `top_p` (unset: their
    default temperature 0, argmax).

    Their sampler commits every masked position with p > threshold, else the most confident ones: hf-mdm's
    `threshold` strategy is that rule with at least one commit per step (tau = `threshold`, `steps` = block_length
    whatever its step budget, which it does not spend), its `confidence` strategy is it with no position ever above
    (tau = 1.0, their per-block `steps`), and its `threshold_editing` strategy is LLaDA 2.1's rule (written with
    `editing_threshold`, `max_post_steps` and `num_to_transfer`). Other strategies have no counterpart: refused."""
    generation = model.generation_config
    block_size = model.config.block_size
    unset = DiffusionGenerationConfig.diffusion_defaults(block_size)
    strategy = generation.strategy or unset["strategy"]
    if strategy not in ("confidence", "threshold", "threshold_editing"):
        raise ValueError(
            f"generation_config.strategy={strategy!r} has no counterpart in LLaDA 2.x's samplers (threshold decoding, "
            "2.1's with token editing); set generation_config.strategy to 'threshold', 'threshold_editing' or "
            "'confidence' before exporting (the exported folder is decoded with whatever its generation_config.json "
            "says)."
        )
    editing = {}
    if strategy == "threshold_editing":  # every setting of the strategy, its defaults included (2.1's differ)
        rule = STRATEGIES.build(strategy, schedule=get_schedule(model.config.noise_schedule),
                                threshold=generation.threshold or unset["threshold"],
                                **(generation.strategy_kwargs or {}))  # fmt: skip
        editing = {key: getattr(rule, key) for key in ("editing_threshold", "max_post_steps", "num_to_transfer")}
    steps_per_block = generation.steps_per_block
    total_steps, max_new_tokens = generation.steps, generation.max_new_tokens
    if total_steps is not None:
        blocks = max_new_tokens // block_size if max_new_tokens else 0
        if not blocks or max_new_tokens % block_size or total_steps % blocks:
            raise ValueError(
                f"generation_config.steps={total_steps} is a total over the blocks; LLaDA 2.x counts steps per "
                "block. Set generation_config.steps_per_block (and steps=None) before exporting."
            )
        steps_per_block = total_steps // blocks
    sampling = generation.do_sample
    values = {
        "block_length": block_size,
        # hf-mdm's threshold strategies spend no step budget: theirs with at least one commit per step.
        "steps": steps_per_block or block_size if strategy == "confidence" else block_size,
        "gen_length": max_new_tokens,
        "threshold": 1.0 if strategy == "confidence" else generation.threshold or unset["threshold"],
        **editing,
        "temperature": (generation.temperature or unset["temperature"]) if sampling else None,
        "top_k": generation.top_k if sampling else None,
        "top_p": generation.top_p if sampling else None,
        "bos_token_id": model.config.bos_token_id,
        "eos_token_id": model.config.eos_token_id,
        "pad_token_id": model.config.pad_token_id,
    }
    return {key: value for key, value in values.items() if value is not None}


def save_llada2(model, save_directory, max_shard_size: "int | str" = "5GB") -> None:
    """Write `model` as a LLaDA 2.x folder: config.json, generation_config.json and safetensors weights (sharded
    above `max_shard_size`, with an index). Every check runs before the first file is written."""
    check_llada2_exportable(model)
    state = llada2_state_dict(model)
    config = llada2_config_dict(model)
    generation = llada2_generation_config_dict(model)
    if model.config.mask_token_id != SGLANG_MASK_ID:
        logger.warning(
            f"mask_token_id={model.config.mask_token_id}: SGLang serves LLaDA2MoeModelLM with [MASK] = "
            f"{SGLANG_MASK_ID} (LLaDA 2.x's tokenizer) whatever config.json says; this folder decodes correctly "
            "with the authors' generate(mask_id=...) and with hf-mdm, not with SGLang."
        )
    folder = Path(save_directory)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    (folder / "generation_config.json").write_text(json.dumps(generation, indent=2, sort_keys=True) + "\n")
    save_torch_state_dict(state, folder, max_shard_size=max_shard_size, metadata={"format": "pt"})


__all__ = ["LLADA2_FORMAT", "LLADA2_MODEL_TYPE", "check_llada2_exportable", "save_llada2"]
