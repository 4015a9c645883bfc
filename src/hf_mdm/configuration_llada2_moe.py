"""LLaDA2MoeConfig: the configuration of LLaDA 2.0 / 2.1 (inclusionAI's block-diffusion MoE, model_type "llada2_moe").

The published config.json is read unchanged: every key the authors' `LLaDA2MoeConfig` takes, with the authors'
defaults (so a key missing from a folder means what it means to their code), plus the keys their config.json carries
that their modeling code hard-codes (`score_function`, `router_dtype`, `norm_topk_prob`, ...): those are checked
against what the code does, and a value that asks for an architecture neither their code nor hf-mdm runs is a
ValueError naming the key. Unknown keys are kept as attributes and saved back; `save_pretrained` writes the published
`architectures` (`LLaDA2MoeModelLM`) and an `auto_map` to the authors' Hub code (`to_dict`).

hf-mdm's own fields are `mask_token_id` (the authors' generate() default 156895 when the vocabulary is the published
157184 one; required otherwise) and `block_size` (the authors' `block_length` default, 32): the model is block-causal
over blocks of `block_size` tokens. The training objective is hf-mdm's masked-diffusion NELBO under the linear
schedule (class constants `schedule`, `loss_weighting`, as `MDMConfig`'s defaults).
"""

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig

from .configuration_mdm import NoiseScheduleConfigMixin, check_mask_token_id


PUBLISHED_VOCAB_SIZE = 157184  # inclusionAI/LLaDA2.0-mini, -flash, LLaDA2.1-mini, -flash
PUBLISHED_MASK_TOKEN_ID = 156895  # `mask_id` default of their generate()
BLOCK_LENGTH_DEFAULT = 32  # `block_length` default of their generate()
PUBLISHED_ARCHITECTURES = ["LLaDA2MoeModelLM"]  # what SGLang and vLLM pick their LLaDA 2.x model by
# `auto_map` to the authors' code on the Hub, which `trust_remote_code=True` readers (transformers, SGLang's config
# loading) fetch for a saved folder; hf-mdm's own Auto classes map model_type "llada2_moe" without it.
AUTHORS_CODE_REPO = "inclusionAI/LLaDA2.0-mini"
AUTHORS_AUTO_MAP = {
    "AutoConfig": f"{AUTHORS_CODE_REPO}--configuration_llada2_moe.LLaDA2MoeConfig",
    "AutoModel": f"{AUTHORS_CODE_REPO}--modeling_llada2_moe.LLaDA2MoeModel",
    "AutoModelForCausalLM": f"{AUTHORS_CODE_REPO}--modeling_llada2_moe.LLaDA2MoeModelLM",
}

# config.json keys that the authors' modeling code does not read but hard-codes: the value their code implements.
HARD_CODED = {
    "score_function": "sigmoid",
    "router_dtype": "fp32",
    "moe_router_enable_expert_bias": True,
    "norm_topk_prob": True,
    "use_rmsnorm": True,
    "norm_head": False,
    "norm_softmax": False,
    "using_split_qkv_in_self_attention": False,
    "use_sliding_window": False,
}


def unsupported_value(field: str, value, supported) -> ValueError:
    return ValueError(
        f"This llada2_moe config sets {field}={value!r}, which neither the authors' modeling code "
        f"(inclusionAI LLaDA 2.x) nor hf-mdm implements (it runs {field}={supported!r}); set {field}={supported!r} "
        "or use the checkpoint's own code."
    )


@strict
class LLaDA2MoeConfig(NoiseScheduleConfigMixin, PreTrainedConfig):
    r"""
    Configuration of [`LLaDA2MoeModel`] and [`LLaDA2MoeForMaskedDiffusion`], read from a published LLaDA 2.x
    config.json. Defaults are the authors' class defaults (not a published model's); the published LLaDA2.0-mini is
    `hidden_size=2048, intermediate_size=5120, num_hidden_layers=20, num_attention_heads=16, num_key_value_heads=4,
    head_dim=128, num_experts=256, num_experts_per_tok=8, num_shared_experts=1, moe_intermediate_size=512,
    first_k_dense_replace=1, rope_theta=600000, rms_norm_eps=1e-6, use_bias=False, vocab_size=157184`.

    Args:
        vocab_size, hidden_size, num_hidden_layers, num_attention_heads, head_dim (None: hidden_size / heads),
        max_position_embeddings, rms_norm_eps, initializer_range, hidden_act, tie_word_embeddings: as in LLaMA.
        num_key_value_heads: grouped-query attention's key/value heads; 0 means `num_attention_heads` (LLaDA 2.1's
            config class does this mapping; 2.0's would divide by zero).
        intermediate_size: SwiGLU width of the dense layers (`layer < first_k_dense_replace`, or all layers when
            `num_experts` is None).
        use_qkv_bias, use_bias: bias on the fused query_key_value projection, on the output projection `dense`.
        use_qk_norm: per-head RMSNorm on queries and keys, before RoPE.
        rope_theta, partial_rotary_factor: RoPE base; RoPE turns the first `int(head_dim * partial_rotary_factor)`
            channels of each head, the rest pass through. `rotary_dim` (their config.json's redundant copy) must agree.
        rope_scaling: must be None (no scaled RoPE in the published checkpoints; refused otherwise).
        attention_dropout: dropout on attention probabilities (training only). `embedding_dropout`, `output_dropout`,
            `sliding_window`, `max_window_layers`, `use_cache`: kept, not read (as the authors' code, which with sdpa
            attention ignores the sliding window too).
        output_router_logits: the forward's default for returning each MoE layer's router logits.
        num_experts (None: a dense model), num_experts_per_tok, moe_intermediate_size, num_shared_experts (0 or
            None: none; else one shared SwiGLU of width `moe_intermediate_size * num_shared_experts`), n_group,
            topk_group, routed_scaling_factor, first_k_dense_replace: the MoE layers and their router (sigmoid
            scores, `gate.expert_bias` added for the choice only, `topk_group` groups of the best by the sum of
            their two best scores, then the top `num_experts_per_tok` experts; weights renormalised when more than
            one and scaled by `routed_scaling_factor`).
        score_function, router_dtype, moe_router_enable_expert_bias, norm_topk_prob, use_rmsnorm, norm_head,
            norm_softmax, using_split_qkv_in_self_attention, use_sliding_window: the published values are the only
            ones implemented (module constant `HARD_CODED`); any other is a ValueError.
        mask_token_id: id of [MASK]; default 156895 for the published 157184-token vocabulary, required otherwise.
        block_size: tokens per block of the block-causal attention and of decoding (`block_length`), default 32.
    """

    model_type = "llada2_moe"
    keys_to_ignore_at_inference = ["t"]
    has_no_defaults_at_init = True
    # The masked-diffusion objective (hf_mdm.masked_diffusion_objective) reads these, as on MDMConfig.
    schedule = "linear"
    schedule_kwargs = None
    loss_weighting = "elbo"
    logits_shift = 0

    vocab_size: int = 30592
    hidden_size: int = 1024
    intermediate_size: int | None = None
    num_hidden_layers: int = 24
    num_attention_heads: int = 16
    num_key_value_heads: int = 0
    head_dim: int | None = None
    hidden_act: str = "silu"
    use_qkv_bias: bool = False
    use_qk_norm: bool = True
    use_bias: bool = True
    rms_norm_eps: float = 1e-5
    tie_word_embeddings: bool = False
    embedding_dropout: float = 0.1
    attention_dropout: float = 0.1
    output_dropout: float = 0.1
    initializer_range: float = 0.02
    max_position_embeddings: int = 16384
    rope_theta: int | float = 10000.0
    rope_scaling: dict | None = None
    partial_rotary_factor: float = 0.5
    rotary_dim: int | None = None
    use_cache: bool = True
    sliding_window: int | None = 4096
    max_window_layers: int = 28
    pad_token_id: int | None = 126081
    eos_token_id: int | list[int] | None = None
    num_experts: int | None = 16
    num_shared_experts: int | None = 0
    num_experts_per_tok: int = 2
    n_group: int = 8
    topk_group: int = 4
    routed_scaling_factor: float = 2.5
    moe_intermediate_size: int | None = None
    first_k_dense_replace: int = 0
    output_router_logits: bool = False
    score_function: str = "sigmoid"
    router_dtype: str = "fp32"
    moe_router_enable_expert_bias: bool = True
    norm_topk_prob: bool = True
    use_rmsnorm: bool = True
    norm_head: bool = False
    norm_softmax: bool = False
    using_split_qkv_in_self_attention: bool = False
    use_sliding_window: bool = False
    mask_token_id: int | None = None
    block_size: int = BLOCK_LENGTH_DEFAULT

    def __post_init__(self, **kwargs):
        if self.num_key_value_heads == 0:
            self.num_key_value_heads = self.num_attention_heads
        if self.head_dim is None and self.num_attention_heads > 0:
            self.head_dim = self.hidden_size // self.num_attention_heads
        if self.mask_token_id is None and self.vocab_size == PUBLISHED_VOCAB_SIZE:
            self.mask_token_id = PUBLISHED_MASK_TOKEN_ID
        self.validate_llada2_fields()
        super().__post_init__(**kwargs)

    @classmethod
    def from_dict(cls, config_dict, **kwargs):
        """`PreTrainedConfig.from_dict`, with hf-mdm's fields among the keyword arguments read before validation: a
        published folder has no `mask_token_id`, so `from_pretrained(path, mask_token_id=...)` must supply it."""
        own = {key: kwargs.pop(key) for key in ("mask_token_id", "block_size") if key in kwargs}
        return super().from_dict({**config_dict, **own}, **kwargs)

    def to_dict(self) -> dict:
        """`PreTrainedConfig.to_dict` in the published dialect (what `save_pretrained` writes): `architectures` is the
        authors' class, whatever class saved it, and `auto_map` points at the authors' code on the Hub
        (`AUTHORS_AUTO_MAP`), which `trust_remote_code=True` readers such as SGLang's config loading fetch; hf-mdm's
        Auto classes map model_type "llada2_moe" without it."""
        output = super().to_dict()
        if output.get("architectures") is not None:
            output["architectures"] = list(PUBLISHED_ARCHITECTURES)
        output["auto_map"] = dict(AUTHORS_AUTO_MAP)
        return output

    def is_moe_layer(self, layer_idx: int) -> bool:
        """Whether layer `layer_idx` is a MoE layer (else a dense SwiGLU), as the authors' decoder layer decides."""
        return self.num_experts is not None and layer_idx >= self.first_k_dense_replace

    @property
    def rope_dim(self) -> int:
        """Channels of each head that RoPE turns: int(head_dim * partial_rotary_factor)."""
        return int(self.head_dim * self.partial_rotary_factor)

    def validate_llada2_fields(self):
        """Raise a ValueError naming the key and the fix for a config the model cannot run as the authors' code."""
        if self.mask_token_id is None:
            raise ValueError(
                f"This llada2_moe config has no mask_token_id and its vocabulary ({self.vocab_size} tokens) is not "
                f"the published one ({PUBLISHED_VOCAB_SIZE}, whose [MASK] is {PUBLISHED_MASK_TOKEN_ID}); pass the id "
                "of the tokenizer's [MASK] token: from_pretrained(path, mask_token_id=...), or add it to config.json."
            )
        check_mask_token_id(self)
        for field, supported in HARD_CODED.items():
            if getattr(self, field) != supported:
                raise unsupported_value(field, getattr(self, field), supported)
        if self.rope_scaling is not None:
            raise unsupported_value("rope_scaling", self.rope_scaling, None)
        if self.hidden_act != "silu":
            raise unsupported_value("hidden_act", self.hidden_act, "silu")
        if self.block_size < 1:
            raise ValueError(f"block_size must be a positive number of tokens, got {self.block_size!r}.")
        if self.num_attention_heads <= 0 or self.num_key_value_heads <= 0 or self.head_dim <= 0:
            raise ValueError(
                "num_attention_heads, num_key_value_heads and head_dim must be positive, got "
                f"{self.num_attention_heads}, {self.num_key_value_heads}, {self.head_dim}."
            )
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(
                f"num_attention_heads ({self.num_attention_heads}) must be a multiple of num_key_value_heads "
                f"({self.num_key_value_heads}) for grouped-query attention."
            )
        if self.rope_dim < 2 or self.rope_dim % 2 or not 0 < self.partial_rotary_factor <= 1:
            raise ValueError(
                f"RoPE turns int(head_dim * partial_rotary_factor) = {self.rope_dim} channels per head; it must be "
                f"even and positive with 0 < partial_rotary_factor <= 1 (got {self.partial_rotary_factor})."
            )
        if self.rotary_dim is not None and self.rotary_dim != self.rope_dim:
            raise ValueError(
                f"rotary_dim={self.rotary_dim} disagrees with int(head_dim * partial_rotary_factor) = "
                f"{self.rope_dim}, which the authors' code uses; fix rotary_dim (or partial_rotary_factor) in "
                "config.json."
            )
        dense_layers = self.num_hidden_layers if self.num_experts is None else self.first_k_dense_replace
        if dense_layers > 0 and not self.intermediate_size:
            raise ValueError("This config has dense layers but no intermediate_size; set it (the dense SwiGLU width).")
        if self.num_experts is not None and self.first_k_dense_replace < self.num_hidden_layers:
            self.check_router()

    def check_router(self):
        """The grouped top-k router needs whole groups of at least two experts and enough experts to choose from."""
        if not self.moe_intermediate_size:
            raise ValueError("This config has MoE layers but no moe_intermediate_size; set the expert SwiGLU width.")
        if self.num_experts < 1 or self.n_group < 1 or self.num_experts % self.n_group:
            raise ValueError(
                f"num_experts ({self.num_experts}) must be a positive multiple of n_group ({self.n_group}): the "
                "router ranks whole groups of experts."
            )
        if self.num_experts // self.n_group < 2:
            raise ValueError(
                f"The router scores a group by the sum of its two best experts, so every group needs at least two: "
                f"num_experts / n_group = {self.num_experts // self.n_group}; lower n_group."
            )
        if not 1 <= self.topk_group <= self.n_group:
            raise ValueError(f"topk_group must be in [1, n_group={self.n_group}], got {self.topk_group}.")
        reachable = self.topk_group * (self.num_experts // self.n_group)
        if not 1 <= self.num_experts_per_tok <= reachable:
            raise ValueError(
                f"num_experts_per_tok must be in [1, {reachable}] (the experts of topk_group={self.topk_group} "
                f"groups), got {self.num_experts_per_tok}."
            )


__all__ = ["LLaDA2MoeConfig"]
