"""LLaDA-MoE (inclusionAI/LLaDA-MoE-7B-A1B-*) as a native hf-mdm model, under the published weight names.

A bidirectional OLMoE-style mixture of experts (see `LLaDAMoEConfig` for the architecture and its router), read from
the published folder unchanged: `AutoModel.from_pretrained(folder)` returns `LLaDAMoEForMaskedDiffusion` without
remote code for a "lladamoe" folder (dllm's name), `LLaDAMoEForMaskedDiffusion.from_pretrained` also for a Hub folder
declaring the authors' "llada", and `save_pretrained` writes the format back (the authors' code loads it).

Numerics follow the authors' `modeling_lladamoe.py` (as vendored in ZHZisZZ/dllm@ca176752; the fixture
`tests/fixtures/llada-moe-tiny` holds its logits and the LLaDA sampler's generations): qk-norm before clip_qkv before
partial RoPE, the router in float32 with the expert bias inside the mixing weights, experts summed in expert order.
transformers' own pieces are reused where they compute the same numbers: Qwen2-MoE's SwiGLU MLP (any width), LLaMA's
RMSNorm, GLM-4-MoE's partial rotary embedding.

The stack's forward and the LM head's forward (masked-diffusion objective, `logits_to_keep`, the [MASK] logit never
chosen) are `MDMModel.forward` and `MDMForMaskedGeneration.forward` themselves: the same forward contract, so
`generate()` (the "mdm" denoiser adapter and its block caches), the collator, the Trainer and peft work unchanged.
Only the layers differ.
"""

import torch
from torch import nn
from transformers import PreTrainedConfig

from .checkpoint_formats.llada import LLaDAFormat
from .checkpoint_formats.pretrained_mixin import DiffusionPretrainedMixin
from .configuration_llada_moe import LLaDAMoEConfig, is_llada_moe_config
from .generation.configuration import DiffusionGenerationConfig
from .generation.mixin import DiffusionGenerationMixin
from .modeling_mdm import MDMForMaskedGeneration, MDMModel, MDMPreTrainedModel
from .transformers_compat import (
    Cache,
    Glm4MoeRotaryEmbedding,
    GradientCheckpointingLayer,
    LlamaRMSNorm,
    Qwen2MoeMLP,
    apply_partial_rotary_pos_emb,
    attention_function,
)


class LLaDAMoERMSNorm(LlamaRMSNorm):
    """w * x / sqrt(mean(x^2) + eps), computed in float32."""


class LLaDAMoERotaryEmbedding(Glm4MoeRotaryEmbedding):
    """RoPE, rotate-half form, on the first `partial_rotary_factor * head_dim` channels of each head."""


class LLaDAMoEMLP(Qwen2MoeMLP):
    """SwiGLU: down(act(gate(x)) * up(x)), of the given width (dense layer, expert or shared expert)."""


class LLaDAMoEAttention(nn.Module):
    """Grouped-query attention without a causal mask: per-head RMSNorm of q and k (`qk_layernorm`), then q, k, v
    clamped to [-clip_qkv, clip_qkv], then partial RoPE; dispatched through transformers' attention registry."""

    is_causal = False

    def __init__(self, config: LLaDAMoEConfig, layer_idx: int):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.head_dim = config.head_dim
        self.num_key_value_groups = config.num_attention_heads // config.num_key_value_heads
        self.scaling = self.head_dim**-0.5
        kv_width = config.num_key_value_heads * self.head_dim
        self.q_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=config.attention_bias)
        self.k_proj = nn.Linear(config.hidden_size, kv_width, bias=config.attention_bias)
        self.v_proj = nn.Linear(config.hidden_size, kv_width, bias=config.attention_bias)
        self.o_proj = nn.Linear(config.hidden_size, config.hidden_size, bias=config.attention_bias)
        if config.qk_layernorm:
            self.q_norm = LLaDAMoERMSNorm(self.head_dim, eps=config.rms_norm_eps)
            self.k_norm = LLaDAMoERMSNorm(self.head_dim, eps=config.rms_norm_eps)

    def forward(self, hidden_states, position_embeddings, attention_mask=None, cache: Cache | None = None, **kwargs):
        """(output, attention weights or None) for `hidden_states` (B, L, hidden); `position_embeddings` (cos, sin)."""
        hidden_shape = (*hidden_states.shape[:-1], -1, self.head_dim)
        states = [
            projection(hidden_states).view(hidden_shape) for projection in (self.q_proj, self.k_proj, self.v_proj)
        ]
        if self.config.qk_layernorm:
            states[0], states[1] = self.q_norm(states[0]), self.k_norm(states[1])
        if self.config.clip_qkv is not None:
            states = [state.clamp(min=-self.config.clip_qkv, max=self.config.clip_qkv) for state in states]
        query, key, value = (state.transpose(1, 2) for state in states)
        query, key = apply_partial_rotary_pos_emb(query, key, *position_embeddings)
        if cache is not None:
            key, value = cache.update(key, value, self.layer_idx)
        dropout = self.config.attention_dropout if self.training else 0.0
        attention = attention_function(self.config)
        output, weights = attention(
            self, query, key, value, attention_mask, dropout=dropout, scaling=self.scaling, **kwargs
        )
        return self.o_proj(output.reshape(*hidden_states.shape[:-1], -1).contiguous()), weights


class LLaDAMoESparseMoeBlock(nn.Module):
    """The routed experts of an MoE layer (the authors' `LLaDAMoESparseMoeBlock`):

        p = softmax(gate(h)) in float32;  s = p + expert_bias (if enabled);  E = top-k of s
        out = sum over e in E of s_e * expert_e(h)

    The bias shifts both the choice and the weights, which are not renormalised (`norm_topk_prob` is not read)."""

    def __init__(self, config: LLaDAMoEConfig):
        super().__init__()
        self.num_experts = config.num_experts
        self.top_k = config.num_experts_per_tok
        self.gate = nn.Linear(config.hidden_size, config.num_experts, bias=False)
        self.experts = nn.ModuleList(
            [LLaDAMoEMLP(config, config.expert_intermediate_size) for _ in range(config.num_experts)]
        )
        if config.moe_router_enable_expert_bias:
            self.register_buffer("expert_bias", torch.zeros(config.num_experts))
        else:
            self.expert_bias = None

    def route(self, hidden_states: torch.Tensor) -> tuple[torch.Tensor, torch.LongTensor]:
        """(weights, experts), each (tokens, top_k), for flattened `hidden_states` (tokens, hidden)."""
        scores = torch.softmax(self.gate(hidden_states), dim=-1, dtype=torch.float32)
        if self.expert_bias is not None:
            scores = scores + self.expert_bias
        weights, experts = torch.topk(scores, self.top_k, dim=-1)
        return weights.to(hidden_states.dtype), experts

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        shape = hidden_states.shape
        hidden_states = hidden_states.reshape(-1, shape[-1])
        weights, experts = self.route(hidden_states)
        output = torch.zeros_like(hidden_states)
        for expert_idx in experts.unique().tolist():
            tokens, slot = torch.where(experts == expert_idx)
            contribution = self.experts[expert_idx](hidden_states[tokens]) * weights[tokens, slot, None]
            output.index_add_(0, tokens, contribution)
        return output.reshape(shape)


class LLaDAMoEDecoderLayer(GradientCheckpointingLayer):
    """Pre-norm block: x + attn(norm(x)), then x + mlp(norm(x)) (+ shared_expert(norm(x)) on MoE layers)."""

    def __init__(self, config: LLaDAMoEConfig, layer_idx: int):
        super().__init__()
        self.self_attn = LLaDAMoEAttention(config, layer_idx)
        if config.is_moe_layer(layer_idx):
            self.mlp = LLaDAMoESparseMoeBlock(config)
            if config.shared_expert_intermediate_size is not None:
                self.shared_expert = LLaDAMoEMLP(config, config.shared_expert_intermediate_size)
        else:
            self.mlp = LLaDAMoEMLP(config, config.dense_intermediate_size)
        self.input_layernorm = LLaDAMoERMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.post_attention_layernorm = LLaDAMoERMSNorm(config.hidden_size, eps=config.rms_norm_eps)

    def forward(self, hidden_states, position_embeddings, attention_mask=None, cache: Cache | None = None, **kwargs):
        """The layer's output for `hidden_states` (B, L, hidden); `position_embeddings` (cos, sin)."""
        normed = self.input_layernorm(hidden_states)
        attn_output, _ = self.self_attn(normed, position_embeddings, attention_mask, cache, **kwargs)
        hidden_states = hidden_states + attn_output
        normed = self.post_attention_layernorm(hidden_states)
        shared = self.shared_expert(normed) if hasattr(self, "shared_expert") else 0
        return hidden_states + (self.mlp(normed) + shared)


class LLaDAMoEPreTrainedModel(MDMPreTrainedModel):
    """`MDMPreTrainedModel`'s switches (attention backends, activation checkpointing, output capture) for the
    LLaDA-MoE layers. The routed experts' loop runs only the experts some token chose, a data-dependent loop that
    does not compile to one graph."""

    config: LLaDAMoEConfig
    config_class = LLaDAMoEConfig
    _no_split_modules = ["LLaDAMoEDecoderLayer"]
    _can_compile_fullgraph = False
    _can_record_outputs = {"hidden_states": LLaDAMoEDecoderLayer, "attentions": LLaDAMoEAttention}


class LLaDAMoEModel(LLaDAMoEPreTrainedModel):
    """The bare bidirectional stack: embeddings -> N x LLaDAMoEDecoderLayer -> RMSNorm."""

    def __init__(self, config: LLaDAMoEConfig):
        super().__init__(config)
        self.padding_idx = config.pad_token_id
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, self.padding_idx)
        self.layers = nn.ModuleList([LLaDAMoEDecoderLayer(config, i) for i in range(config.num_hidden_layers)])
        self.norm = LLaDAMoERMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.rotary_emb = LLaDAMoERotaryEmbedding(config=config)
        self.gradient_checkpointing = False
        self.post_init()

    forward = MDMModel.forward


class LLaDAMoEForMaskedDiffusion(DiffusionPretrainedMixin, LLaDAMoEPreTrainedModel, DiffusionGenerationMixin):
    """LLaDAMoEModel with the LM head (`lm_head`) and the masked-diffusion objective of `MDMForMaskedGeneration`;
    `AutoModel.from_pretrained` returns this class for a "lladamoe" folder.

    `generate()` decodes as LLaDA's `generate.py` (low-confidence remasking, `block_length` blocks, LLaDA's per-block
    reveal counts) unless the generation config says otherwise.
    """

    generation_config_class = DiffusionGenerationConfig
    denoiser_adapter = "mdm"
    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}
    accepts_loss_kwargs = True

    def __init__(self, config: LLaDAMoEConfig):
        super().__init__(config)
        self.model = LLaDAMoEModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()
        self.generation_config = LLaDAFormat.to_generation_config(self.generation_config)

    forward = MDMForMaskedGeneration.forward

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, config=None, **kwargs):
        """`DiffusionPretrainedMixin.from_pretrained`, also for a Hub LLaDA-MoE folder whose config.json declares the
        authors' model_type "llada" (LLaDA 1's): it is read as a `LLaDAMoEConfig` (`is_llada_moe_config`)."""
        if config is None:
            hub_keys = ("cache_dir", "force_download", "local_files_only", "token", "revision", "subfolder")
            hub_kwargs = {key: kwargs[key] for key in hub_keys if key in kwargs}
            raw, _ = PreTrainedConfig.get_config_dict(pretrained_model_name_or_path, **hub_kwargs)
            if raw.get("model_type") != LLaDAMoEConfig.model_type and is_llada_moe_config(raw):
                raw = {key: value for key, value in raw.items() if key != "model_type"}
                config, kwargs = LLaDAMoEConfig.from_dict(raw, return_unused_kwargs=True, **kwargs)
        return super().from_pretrained(pretrained_model_name_or_path, *model_args, config=config, **kwargs)

    def adjust_generation_fn(self, *args, **kwargs):
        """`from_pretrained` hook: the folder's generation_config.json (eos/pad ids, as LLaDA's), with LLaDA's
        sampler as the default decoding (`LLaDAFormat.to_generation_config`) where it sets none."""
        super().adjust_generation_fn(*args, **kwargs)
        self.generation_config = LLaDAFormat.to_generation_config(self.generation_config)


__all__ = ["LLaDAMoEPreTrainedModel", "LLaDAMoEModel", "LLaDAMoEForMaskedDiffusion"]
