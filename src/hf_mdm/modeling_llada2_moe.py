"""LLaDA 2.0 / 2.1 (inclusionAI's block-diffusion MoE, model_type "llada2_moe") as a native hf-mdm model.

Module names are the published weight names, so a published folder loads with no remote code and saves back
unchanged. The architecture is the authors' (`modeling_llada2_moe.py` of their Hub repositories, read in the copy
vendored by ZHZisZZ/dllm@ca176752), in transformers' order (layers -> `LLaDA2MoePreTrainedModel` -> `LLaDA2MoeModel`
-> `LLaDA2MoeForMaskedDiffusion`):

* pre-norm decoder layers: h = h + dense(attention(RMSNorm(h))), then h = h + mlp(RMSNorm(h));
* attention: one fused projection `query_key_value` -> heads [q (nH) | k (nKV) | v (nKV)], per-head RMSNorm on q and k
  (`query_layernorm`, `key_layernorm`), then RoPE on the first int(head_dim * partial_rotary_factor) channels of
  each head (the rest pass through), grouped-query attention scaled by head_dim^-1/2, output projection `dense`;
* mlp: a SwiGLU for the first `first_k_dense_replace` layers, else a MoE (`LLaDA2MoeSparseMoeBlock`): routed experts
  chosen by `LLaDA2MoeGate` plus shared experts;
* head: `lm_head(norm(h))` in float32, no logit shift (logits[:, i] are about token i).

Attention is block-causal over `config.block_size` blocks through `diffusion_attention` (as MDM and DiT): a token
sees its own block and the earlier ones. **A 2-D attention_mask is padding only here.** The authors' forward turns a
2-D mask into a *causal* mask (`_prepare_4d_causal_attention_mask_for_sdpa`) and no mask into a bidirectional one;
their generate() passes a 4-D block-causal mask, which is what this model computes from a 2-D padding mask (or none).
A prepared 4-D mask is used as given. As in every hf-mdm model the [MASK] column of the logits is the dtype's minimum
(the model never predicts [MASK]); the other columns are the authors' logits.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import MoeModelOutputWithPast

from .checkpoint_formats.pretrained_mixin import DiffusionPretrainedMixin
from .configuration_llada2_moe import LLaDA2MoeConfig
from .diffusion_attention import diffusion_stack_inputs
from .generation.configuration import DiffusionGenerationConfig
from .generation.llada2_generation_config import llada2_generation_config
from .generation.mixin import DiffusionGenerationMixin
from .masked_diffusion_objective import config_loss, forward_training_inputs
from .modeling_mdm import MaskedDiffusionOutput, kept_positions
from .transformers_compat import (
    Cache,
    DeepseekV3MLP,
    Glm4MoeRotaryEmbedding,
    GradientCheckpointingLayer,
    LlamaRMSNorm,
    OutputRecorder,
    accepts_legacy_cache_name,
    apply_partial_rotary_pos_emb,
    attention_function,
    can_return_tuple,
    capture_outputs,
    merge_with_config_defaults,
)


@dataclass
class LLaDA2MoeMaskedDiffusionOutput(MaskedDiffusionOutput):
    r"""
    `MaskedDiffusionOutput` plus router_logits: with `output_router_logits=True` (or the config's), one (N, E) float32
    tensor per MoE layer, the gate logits W x before the sigmoid of the forward's N tokens (as the authors return).
    """

    router_logits: tuple[torch.FloatTensor, ...] | None = None


class LLaDA2MoeRMSNorm(LlamaRMSNorm):
    """w * x / sqrt(mean(x^2) + eps), computed in float32 (the authors' RMSNorm is LLaMA's)."""


class LLaDA2MoeMLP(DeepseekV3MLP):
    """SwiGLU of a given width: down(silu(gate(x)) * up(x)), no biases (dense layers, experts, shared experts)."""


class RopeConfigView:
    """The config as transformers' rotary embeddings read it: `rope_parameters` built from the published `rope_theta`
    and `partial_rotary_factor` (LLaDA 2.x's config.json has no `rope_parameters`)."""

    def __init__(self, config: LLaDA2MoeConfig):
        self.config = config
        self.rope_parameters = {
            "rope_type": "default",
            "rope_theta": config.rope_theta,
            "partial_rotary_factor": config.partial_rotary_factor,
        }

    def __getattr__(self, name):
        if name == "config":  # not set yet (copy.deepcopy builds the view without __init__)
            raise AttributeError(name)
        return getattr(self.config, name)


class LLaDA2MoeRotaryEmbedding(Glm4MoeRotaryEmbedding):
    """RoPE on the first int(head_dim * partial_rotary_factor) channels: inv_freq = 1 / theta^(2i / rope_dim)."""

    def __init__(self, config: LLaDA2MoeConfig):
        super().__init__(RopeConfigView(config))


class LLaDA2MoeGate(nn.Module):
    """The router (DeepSeek-V3's group-limited "noaux_tc" routing, under the published names `weight`, `expert_bias`).

    For a token x, in float32: s = sigmoid(W x) (E scores); the choice uses s + expert_bias: the experts split into
    `n_group` groups, a group's score is the sum of its two best, the `topk_group` best groups stay, and the top
    `num_experts_per_tok` experts among them are chosen. Their weights are the *unbiased* s, divided by their sum
    (+1e-20) when more than one is chosen, times `routed_scaling_factor`. transformers' DeepseekV3TopkRouter computes
    the same, but names the bias `e_score_correction_bias` and renormalises on `norm_topk_prob`, not on top_k > 1.
    """

    def __init__(self, config: LLaDA2MoeConfig):
        super().__init__()
        self.top_k = config.num_experts_per_tok
        self.num_experts, self.n_group, self.topk_group = config.num_experts, config.n_group, config.topk_group
        self.routed_scaling_factor = config.routed_scaling_factor
        self.weight = nn.Parameter(torch.empty(config.num_experts, config.hidden_size))
        self.register_buffer("expert_bias", torch.zeros(config.num_experts))

    def forward(self, hidden_states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.LongTensor]:
        """(router_logits (N, E) float32, weights (N, top_k) float32, expert ids (N, top_k)) for N tokens."""
        hidden_states = hidden_states.reshape(-1, hidden_states.shape[-1])
        router_logits = F.linear(hidden_states.float(), self.weight.float())
        scores = router_logits.sigmoid()
        scores_for_choice = scores + self.expert_bias
        per_group = scores_for_choice.view(-1, self.n_group, self.num_experts // self.n_group)
        group_scores = per_group.topk(2, dim=-1).values.sum(dim=-1)
        groups = group_scores.topk(self.topk_group, dim=-1, sorted=False).indices
        group_mask = torch.zeros_like(group_scores, dtype=torch.bool).scatter_(1, groups, True)
        expert_mask = group_mask.unsqueeze(-1).expand_as(per_group).reshape(-1, self.num_experts)
        chosen = scores_for_choice.masked_fill(~expert_mask, float("-inf")).topk(self.top_k, dim=-1).indices
        weights = scores.gather(1, chosen)
        if self.top_k > 1:
            weights = weights / (weights.sum(dim=-1, keepdim=True) + 1e-20)
        return router_logits, weights * self.routed_scaling_factor, chosen


class LLaDA2MoeSparseMoeBlock(nn.Module):
    """sum_k w_k expert_{i_k}(x) over the router's choice (accumulated in float32), plus the shared experts' SwiGLU."""

    def __init__(self, config: LLaDA2MoeConfig):
        super().__init__()
        self.experts = nn.ModuleList(
            [LLaDA2MoeMLP(config, config.moe_intermediate_size) for _ in range(config.num_experts)]
        )
        self.gate = LLaDA2MoeGate(config)
        if config.num_shared_experts:
            self.shared_experts = LLaDA2MoeMLP(config, config.moe_intermediate_size * config.num_shared_experts)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        _, weights, chosen = self.gate(hidden_states)
        tokens = hidden_states.reshape(-1, hidden_states.shape[-1])
        routed = torch.zeros(tokens.shape, dtype=torch.float32, device=tokens.device)
        for expert_idx in chosen.unique().tolist():
            token_idx, slot = torch.where(chosen == expert_idx)
            expert_output = self.experts[expert_idx](tokens[token_idx]).float()
            routed.index_add_(0, token_idx, expert_output * weights[token_idx, slot, None])
        output = routed.to(hidden_states.dtype).view_as(hidden_states)
        if hasattr(self, "shared_experts"):
            output = output + self.shared_experts(hidden_states)
        return output


class LLaDA2MoeAttention(nn.Module):
    """Grouped-query attention from the fused `query_key_value` projection, q/k RMSNorm per head, partial RoPE, no
    causal mask (the mask carries the block-causal pattern), through transformers' attention-function registry."""

    is_causal = False

    def __init__(self, config: LLaDA2MoeConfig, layer_idx: int):
        super().__init__()
        self.config, self.layer_idx = config, layer_idx
        self.head_dim = config.head_dim
        self.num_heads, self.num_key_value_heads = config.num_attention_heads, config.num_key_value_heads
        self.num_key_value_groups = self.num_heads // self.num_key_value_heads
        self.scaling = self.head_dim**-0.5
        self.query_key_value = nn.Linear(
            config.hidden_size, (self.num_heads + 2 * self.num_key_value_heads) * self.head_dim,
            bias=config.use_qkv_bias,
        )  # fmt: skip
        if config.use_qk_norm:
            self.query_layernorm = LLaDA2MoeRMSNorm(self.head_dim, eps=config.rms_norm_eps)
            self.key_layernorm = LLaDA2MoeRMSNorm(self.head_dim, eps=config.rms_norm_eps)
        self.dense = nn.Linear(self.num_heads * self.head_dim, config.hidden_size, bias=config.use_bias)

    def forward(self, hidden_states, position_embeddings, attention_mask=None, cache: Cache | None = None, **kwargs):
        input_shape = hidden_states.shape[:-1]
        qkv = self.query_key_value(hidden_states).view(*input_shape, -1, self.head_dim)
        query, key, value = qkv.split([self.num_heads, self.num_key_value_heads, self.num_key_value_heads], dim=-2)
        if self.config.use_qk_norm:
            query, key = self.query_layernorm(query), self.key_layernorm(key)
        query, key, value = query.transpose(1, 2), key.transpose(1, 2), value.transpose(1, 2)
        cos, sin = position_embeddings
        query, key = apply_partial_rotary_pos_emb(query, key, cos, sin)
        if cache is not None:
            key, value = cache.update(key, value, self.layer_idx)
        attention_interface: Callable = attention_function(self.config)
        attn_output, attn_weights = attention_interface(
            self,
            query,
            key,
            value,
            attention_mask,
            dropout=0.0 if not self.training else self.config.attention_dropout,
            scaling=self.scaling,
            **kwargs,
        )
        return self.dense(attn_output.reshape(*input_shape, -1).contiguous()), attn_weights


class LLaDA2MoeDecoderLayer(GradientCheckpointingLayer):
    """Pre-norm block: h + attention(norm(h)), then h + mlp(norm(h)); mlp dense or MoE by `config.is_moe_layer`."""

    def __init__(self, config: LLaDA2MoeConfig, layer_idx: int):
        super().__init__()
        self.attention = LLaDA2MoeAttention(config, layer_idx)
        if config.is_moe_layer(layer_idx):
            self.mlp = LLaDA2MoeSparseMoeBlock(config)
        else:
            self.mlp = LLaDA2MoeMLP(config, config.intermediate_size)
        self.input_layernorm = LLaDA2MoeRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.post_attention_layernorm = LLaDA2MoeRMSNorm(config.hidden_size, eps=config.rms_norm_eps)

    def forward(self, hidden_states, position_embeddings, attention_mask=None, cache=None, **kwargs) -> torch.Tensor:
        attn_output, _ = self.attention(
            self.input_layernorm(hidden_states), position_embeddings, attention_mask, cache, **kwargs
        )
        hidden_states = hidden_states + attn_output
        return hidden_states + self.mlp(self.post_attention_layernorm(hidden_states))


class LLaDA2MoePreTrainedModel(PreTrainedModel):
    config: LLaDA2MoeConfig
    config_class = LLaDA2MoeConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["LLaDA2MoeDecoderLayer"]
    _supports_flash_attn = True
    _supports_sdpa = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _can_record_outputs = {
        "hidden_states": LLaDA2MoeDecoderLayer,
        "attentions": LLaDA2MoeAttention,
        "router_logits": OutputRecorder(LLaDA2MoeGate, index=0),
    }

    @torch.no_grad()
    def _init_weights(self, module):
        """transformers' normal initialisation, plus the router: normal weight, zero `expert_bias`."""
        super()._init_weights(module)
        if isinstance(module, LLaDA2MoeGate):
            nn.init.normal_(module.weight, std=self.config.initializer_range)
            nn.init.zeros_(module.expert_bias)


class LLaDA2MoeModel(LLaDA2MoePreTrainedModel):
    """The bare block-causal stack: word_embeddings -> N x LLaDA2MoeDecoderLayer -> RMSNorm."""

    def __init__(self, config: LLaDA2MoeConfig):
        super().__init__(config)
        self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, config.pad_token_id)
        self.layers = nn.ModuleList([LLaDA2MoeDecoderLayer(config, i) for i in range(config.num_hidden_layers)])
        self.norm = LLaDA2MoeRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.rotary_emb = LLaDA2MoeRotaryEmbedding(config)
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self):
        return self.word_embeddings

    def set_input_embeddings(self, value):
        self.word_embeddings = value

    @merge_with_config_defaults
    @capture_outputs
    @accepts_legacy_cache_name
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        clean_input_ids: torch.LongTensor | None = None,
        **kwargs,
    ) -> MoeModelOutputWithPast:
        r"""
        attention_mask: 2-D padding mask (1 = real token; padding only, never causal, unlike the authors' forward)
            or a prepared 4-D mask (used as given). The blocks are numbered from the 2-D mask, which with a cache
            covers the cached keys too.
        position_ids, cache (or `past_key_values`), clean_input_ids: as `MDMModel.forward`.
        output_router_logits (keyword, default `config.output_router_logits`): also return each MoE layer's router
            logits.
        """
        hidden_states, attention_mask, position_ids = diffusion_stack_inputs(
            self.config, self.word_embeddings, input_ids, inputs_embeds, attention_mask, position_ids, cache,
            clean_input_ids,
        )  # fmt: skip
        position_embeddings = self.rotary_emb(hidden_states, position_ids=position_ids)
        for layer in self.layers:
            hidden_states = layer(
                hidden_states,
                position_embeddings=position_embeddings,
                attention_mask=attention_mask,
                cache=cache,
                **kwargs,
            )
        return MoeModelOutputWithPast(last_hidden_state=self.norm(hidden_states))


class LLaDA2MoeForMaskedDiffusion(
    DiffusionPretrainedMixin, LLaDA2MoePreTrainedModel, DiffusionGenerationMixin
):  # fmt: skip
    """LLaDA2MoeModel with the LM head `lm_head`, the masked-diffusion objective and `generate()`;
    `AutoModel.from_pretrained` returns it for a LLaDA 2.0 / 2.1 folder (architectures `LLaDA2MoeModelLM`).

    The forward contract is `MDMForMaskedGeneration`'s (`denoiser_adapter = "mdm"`): `generate()` decodes block by
    block with the exact block cache, and the Trainer trains it with BD3-LM's block objective (labels from
    `DataCollatorForMaskedDiffusion(block_size=config.block_size)`).
    """

    generation_config_class = DiffusionGenerationConfig
    denoiser_adapter = "mdm"
    _tied_weights_keys = {"lm_head.weight": "model.word_embeddings.weight"}
    accepts_loss_kwargs = True

    def __init__(self, config: LLaDA2MoeConfig):
        super().__init__(config)
        self.model = LLaDA2MoeModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def get_output_embeddings(self):
        return self.lm_head

    def set_output_embeddings(self, new_embeddings):
        self.lm_head = new_embeddings

    def adjust_generation_fn(self, *args, **kwargs):
        """`from_pretrained` hook: the folder's generation_config.json read in LLaDA 2.x's dialect (their generate()
        keywords: `gen_length`, `block_length`, `steps`, `threshold`, ...; `generation.llada2_generation_config`),
        the authors' defaults (threshold 0.95, greedy) where it sets none."""
        super().adjust_generation_fn(*args, **kwargs)
        self.generation_config = llada2_generation_config(self.generation_config, self.config)

    @can_return_tuple
    @accepts_legacy_cache_name
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        clean_input_ids: torch.LongTensor | None = None,
        t: torch.FloatTensor | None = None,
        logits_to_keep: int | slice | torch.Tensor = 0,
        num_items_in_batch: torch.Tensor | int | None = None,
        prompt_length: torch.LongTensor | None = None,
        prompt_mask: torch.Tensor | None = None,
        mask_probability: torch.Tensor | None = None,
        **kwargs,
    ) -> LLaDA2MoeMaskedDiffusionOutput:
        r"""
        As `MDMForMaskedGeneration.forward` (labels select BD3-LM's block objective over [x_t ; x_0]; `t`,
        `mask_probability`, `prompt_length`/`prompt_mask`, `logits_to_keep`, `num_items_in_batch` likewise).
        Logits are float32, as the authors return them, with the [MASK] column at float32's minimum.
        """
        labels, loss_tokens, t, clean_input_ids = forward_training_inputs(
            self.config, labels, clean_input_ids, input_ids, inputs_embeds, attention_mask, t=t,
            num_items_in_batch=num_items_in_batch, prompt_length=prompt_length, prompt_mask=prompt_mask,
            mask_probability=mask_probability,
        )  # fmt: skip
        outputs = self.model(
            input_ids, attention_mask, position_ids, cache, inputs_embeds, clean_input_ids=clean_input_ids, **kwargs
        )
        hidden_states = outputs.last_hidden_state
        if clean_input_ids is not None:
            hidden_states = hidden_states[:, : hidden_states.shape[1] // 2]  # the x_t half of [x_t ; x_0]
        logits = self.lm_head(hidden_states[:, kept_positions(logits_to_keep), :]).float()
        logits[..., self.config.mask_token_id] = torch.finfo(logits.dtype).min
        loss = None
        if labels is not None:
            loss = config_loss(self.config, logits, labels, loss_tokens, t, num_items_in_batch)
        return LLaDA2MoeMaskedDiffusionOutput(
            loss=loss, logits=logits, t=t, hidden_states=outputs.hidden_states, attentions=outputs.attentions,
            router_logits=outputs.router_logits,
        )  # fmt: skip


__all__ = [
    "LLaDA2MoeForMaskedDiffusion",
    "LLaDA2MoeMaskedDiffusionOutput",
    "LLaDA2MoeModel",
    "LLaDA2MoePreTrainedModel",
]
