"""LLaDAMoEConfig: the published config.json of LLaDA-MoE (inclusionAI/LLaDA-MoE-7B-A1B-*, model_type "lladamoe")."""

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig

from .configuration_mdm import NoiseScheduleConfigMixin, check_mask_token_id
from .schedules import get_schedule
from .transformers_compat import RopeParameters


PUBLISHED_VOCAB_SIZE = 157184  # the LLaDA-MoE tokenizer's embedding rows
PUBLISHED_MASK_TOKEN_ID = 156895  # `<|mask|>`, the model cards' `mask_id`
PUBLISHED_ARCHITECTURES = ["LLaDAMoEModelLM"]


def is_llada_moe_config(raw: dict) -> bool:
    """Whether a config.json's contents are LLaDA-MoE's, whatever `model_type` they declare: dllm's copies say
    "lladamoe", but the Hub folders' own `configuration_lladamoe.py` declares "llada" (LLaDA 1's model_type), so
    LLaDA-MoE is told by its architecture name or its MoE keys."""
    return (
        raw.get("model_type") == LLaDAMoEConfig.model_type
        or raw.get("architectures") == PUBLISHED_ARCHITECTURES
        or {"expert_intermediate_size", "moe_layer_freq"} <= set(raw)
    )


@strict
class LLaDAMoEConfig(NoiseScheduleConfigMixin, PreTrainedConfig):
    r"""
    Configuration of [`LLaDAMoEForMaskedDiffusion`]: every key of LLaDA-MoE's published config.json, read as the
    authors' modeling code (`modeling_lladamoe.py`) reads it, plus hf-mdm's diffusion fields. Defaults are the
    LLaDA-MoE-7B-A1B values.

    The architecture: a bidirectional OLMoE-style stack. Attention has separate q/k/v/o projections
    (`attention_bias` on all four), head_dim = hidden_size / num_attention_heads, grouped-query attention,
    `qk_layernorm` (an RMSNorm over each head's query and key), `clip_qkv` (q, k, v clamped to [-c, c] after the
    norm) and RoPE on the first `partial_rotary_factor * head_dim` channels. Layer i is dense (a SwiGLU MLP of
    `dense_intermediate_size`) when `moe_layer_freq[i] == 0`, else MoE: `num_experts` SwiGLU experts of
    `expert_intermediate_size`, routed as the authors' `LLaDAMoESparseMoeBlock` does,

        p = softmax(W_gate h) (float32);  s = p + expert_bias (when `moe_router_enable_expert_bias`);
        out = sum over the top-`num_experts_per_tok` e of s: s_e * expert_e(h)

    (the bias is part of the mixing weight, the weights are not renormalised), plus a shared expert of
    `shared_expert_intermediate_size` (None: none) on the MoE layers.

    Keys the authors' code does not read are kept (and saved back) but change nothing, exactly as there:
    `norm_topk_prob` (their block hard-codes no renormalisation), `routed_scaling_factor`, `router_num_group`,
    `router_topk_group`, `moe_router_score_function` (always softmax), `router_aux_loss_coef`, `use_cache`.
    `output_router_logits=True` is refused: the authors' forward then fails (its layers return no router logits).

    hf-mdm's fields: `mask_token_id` (the published 156895 when `vocab_size` is the published 157184, else
    required), the training `schedule` / `schedule_kwargs` / `loss_weighting` (as `MDMConfig`, LLaDA's linear
    schedule by default), and `block_size`, which must stay None: LLaDA-MoE is bidirectional (its samplers' blocks
    are a decoding order, `generate(block_length=...)`, not an attention pattern).
    """

    model_type = "lladamoe"
    keys_to_ignore_at_inference = ["t"]
    logits_shift = 0  # logits[:, i] predicts token i (no Dream-style shift), read by generation and the objective

    vocab_size: int = PUBLISHED_VOCAB_SIZE
    hidden_size: int = 2048
    dense_intermediate_size: int = 8192
    expert_intermediate_size: int = 1024
    shared_expert_intermediate_size: int | None = None
    num_hidden_layers: int = 16
    num_attention_heads: int = 16
    num_key_value_heads: int | None = None
    hidden_act: str = "silu"
    max_position_embeddings: int = 8192
    initializer_range: float | int = 0.02
    rms_norm_eps: float = 1e-5
    use_cache: bool = False
    pad_token_id: int | None = 156892
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = 156892
    tie_word_embeddings: bool = False
    rope_parameters: RopeParameters | dict | None = None
    attention_bias: bool = False
    attention_dropout: float | int = 0.0
    clip_qkv: float | int | None = None
    num_experts_per_tok: int = 8
    num_experts: int = 64
    output_router_logits: bool = False
    router_aux_loss_coef: float | int = 0.01
    norm_topk_prob: bool | None = None
    qk_layernorm: bool | None = True
    moe_layer_freq: list[int] | None = None
    moe_router_enable_expert_bias: bool | None = None
    moe_router_score_function: str | None = None
    routed_scaling_factor: float | int = 1
    router_num_group: int = -2
    router_topk_group: int = -2
    mask_token_id: int | None = None
    schedule: str = "linear"
    schedule_kwargs: dict | None = None
    loss_weighting: str = "elbo"
    block_size: int | None = None

    def __post_init__(self, **kwargs):
        kwargs.setdefault("rope_theta", 50000.0)
        if kwargs.get("rope_scaling") is not None:
            raise ValueError(
                f"This LLaDA-MoE config sets rope_scaling={kwargs['rope_scaling']!r}; hf-mdm reads LLaDA-MoE with "
                "plain RoPE only (the published rope_scaling is null). Drop rope_scaling."
            )
        if self.num_key_value_heads is None:
            self.num_key_value_heads = self.num_attention_heads
        if self.moe_layer_freq is None:
            self.moe_layer_freq = [1] * self.num_hidden_layers
        if self.mask_token_id is None:
            if self.vocab_size != PUBLISHED_VOCAB_SIZE:
                raise ValueError(
                    f"This LLaDA-MoE config has vocab_size={self.vocab_size}, not the published "
                    f"{PUBLISHED_VOCAB_SIZE} (whose [MASK] is {PUBLISHED_MASK_TOKEN_ID}), so its [MASK] id is "
                    "unknown: pass the tokenizer's mask token id, from_pretrained(path, mask_token_id=...), or add it "
                    "to config.json."
                )
            self.mask_token_id = PUBLISHED_MASK_TOKEN_ID
        super().__post_init__(**kwargs)
        self.validate_llada_moe_fields()

    def validate_llada_moe_fields(self):
        """A ValueError naming the key for a value the authors' code would reject, misread or silently not apply."""
        check_mask_token_id(self)
        if self.num_attention_heads <= 0 or self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be a multiple of num_attention_heads "
                f"({self.num_attention_heads}): LLaDA-MoE's head_dim is hidden_size / num_attention_heads."
            )
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(
                f"num_attention_heads ({self.num_attention_heads}) must be a multiple of num_key_value_heads "
                f"({self.num_key_value_heads})."
            )
        partial_rotary_factor = self.rope_parameters.get("partial_rotary_factor", 1.0)
        if not 0 < partial_rotary_factor <= 1 or int(self.head_dim * partial_rotary_factor) % 2:
            raise ValueError(
                f"partial_rotary_factor={partial_rotary_factor} must be in (0, 1] and rotate an even number of "
                f"channels of each head ({self.head_dim}); LLaDA-MoE's code turns other values into no RoPE at all."
            )
        if not isinstance(self.moe_layer_freq, list) or len(self.moe_layer_freq) != self.num_hidden_layers:
            raise ValueError(
                f"moe_layer_freq must list one entry per layer (num_hidden_layers={self.num_hidden_layers}), 0 for "
                f"a dense layer and 1 for an MoE layer; got {self.moe_layer_freq!r}."
            )
        if set(self.moe_layer_freq) - {0, 1}:
            raise ValueError(f"moe_layer_freq entries must be 0 (dense) or 1 (MoE), got {self.moe_layer_freq!r}.")
        if not 0 < self.num_experts_per_tok <= self.num_experts:
            raise ValueError(
                f"num_experts_per_tok ({self.num_experts_per_tok}) must be between 1 and num_experts "
                f"({self.num_experts})."
            )
        if self.clip_qkv is not None and self.clip_qkv <= 0:
            raise ValueError(f"clip_qkv must be positive or None, got {self.clip_qkv}.")
        if self.output_router_logits:
            raise ValueError(
                "output_router_logits=True is not implemented (LLaDA-MoE's own forward fails with it: its layers "
                "return no router logits, so no load-balancing loss exists to reproduce). Set it to False."
            )
        if self.block_size is not None:
            raise ValueError(
                f"block_size={self.block_size}: LLaDA-MoE is a bidirectional model. Decode block by block with "
                "generate(block_length=...); for block-causal attention use a block-diffusion family (LLaDA 2.x)."
            )
        get_schedule(self.schedule, **(self.schedule_kwargs or {}))
        if self.loss_weighting not in ("elbo", "uniform"):
            raise ValueError(f"loss_weighting must be 'elbo' or 'uniform', got {self.loss_weighting!r}.")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def is_moe_layer(self, layer_idx: int) -> bool:
        """Whether layer `layer_idx` is an MoE layer (else a dense SwiGLU), as the authors' decoder layer decides."""
        return self.moe_layer_freq[layer_idx] != 0

    @classmethod
    def from_dict(cls, config_dict, **kwargs):
        """`PreTrainedConfig.from_dict`, reading `mask_token_id` among the keyword arguments before validation: a
        published folder has none, so `from_pretrained(path, mask_token_id=...)` supplies it."""
        own = {"mask_token_id": kwargs.pop("mask_token_id")} if "mask_token_id" in kwargs else {}
        return super().from_dict({**config_dict, **own}, **kwargs)

    def to_dict(self) -> dict:
        """The published config.json: RoPE as the authors' `rope_theta`, `partial_rotary_factor` and
        `rope_scaling` keys (not transformers' `rope_parameters`), `architectures` as published, and no `auto_map`
        (it names the authors' .py files, which hf-mdm does not write)."""
        output = super().to_dict()
        output.pop("auto_map", None)
        rope = dict(output.pop("rope_parameters"))
        output["rope_theta"] = rope["rope_theta"]
        output["partial_rotary_factor"] = rope.get("partial_rotary_factor", 1.0)
        output["rope_scaling"] = None
        output["architectures"] = PUBLISHED_ARCHITECTURES
        return output


__all__ = ["LLaDAMoEConfig", "is_llada_moe_config"]
