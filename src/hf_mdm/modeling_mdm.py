"""MDMModel (a bidirectional LLaMA-style stack) and MDMForMaskedGeneration (LM head + masked-diffusion objective).

The layers are LLaMA's: RoPE, RMSNorm, SwiGLU MLP and grouped-query attention, reused from transformers where they
exist. Two things differ: attention is bidirectional (every position sees every non-pad position; with
`config.block_size`, block-causal: bidirectional inside a block, causal across blocks), and the head never predicts
[MASK]: its logit is set to the dtype's lowest value, so p([MASK] | x_t) = 0 exactly.

Model code only, in transformers' order (layers -> `MDMPreTrainedModel` -> `MDMModel` -> `MDMForMaskedGeneration`).
The loss and its input checks come from `masked_diffusion_objective` (which `training/` imports too); the Hub-facing
classmethods (LLaDA/Dream loading, `from_causal_lm`, `save_pretrained(remote_code=..., model_card=...)`,
`push_to_hub(model_card=...)`) from `checkpoint_formats.pretrained_mixin.MDMPretrainedMixin`, a layer below this file.
Nothing here imports a layer above it.
"""

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput, ModelOutput
from transformers.utils import logging

from .block_positions import block_ids
from .checkpoint_formats.pretrained_mixin import MDMPretrainedMixin
from .configuration_mdm import MDMConfig
from .diffusion_attention import diffusion_stack_inputs
from .generation.configuration import DiffusionGenerationConfig
from .generation.mixin import DiffusionGenerationMixin
from .logits_shift import previous_real_positions
from .masked_diffusion_objective import (
    config_loss,
    forward_training_inputs,
)
from .transformers_compat import (
    Cache,
    GradientCheckpointingLayer,
    LlamaMLP,
    LlamaRMSNorm,
    LlamaRotaryEmbedding,
    accepts_legacy_cache_name,
    apply_rotary_pos_emb,
    attention_function,
    can_return_tuple,
    capture_outputs,
    merge_with_config_defaults,
)


logger = logging.get_logger(__name__)


@dataclass
class MaskedDiffusionOutput(ModelOutput):
    r"""
    loss: per-token NELBO (or masked cross-entropy with `loss_weighting="uniform"`) when `labels` were given.
    logits: `logits[:, i]` is the distribution of token i given the noisy input; the [MASK] column is never chosen.
    t: the diffusion times the loss was computed at, passed through from the collator.
    """

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    t: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


class MDMRMSNorm(LlamaRMSNorm):
    """w * x / sqrt(mean(x^2) + eps), computed in float32 (LLaMA's RMSNorm)."""


class MDMRotaryEmbedding(LlamaRotaryEmbedding):
    """RoPE, rotate-half form, inv_freq = 1 / theta^(2i/d) (LLaMA's, all RoPE variants of transformers included)."""


class MDMMLP(LlamaMLP):
    """SwiGLU: down(act(gate(x)) * up(x))."""


class MDMAttention(nn.Module):
    """Grouped-query attention without a causal mask, dispatched through transformers' attention-function registry."""

    def __init__(self, config: MDMConfig, layer_idx: int):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.head_dim = config.head_dim
        self.num_key_value_groups = config.num_attention_heads // config.num_key_value_heads
        self.scaling = self.head_dim**-0.5
        self.attention_dropout = config.attention_dropout
        qkv_bias = config.attention_bias or config.qkv_bias
        self.q_proj = nn.Linear(config.hidden_size, config.num_attention_heads * self.head_dim, bias=qkv_bias)
        self.k_proj = nn.Linear(config.hidden_size, config.num_key_value_heads * self.head_dim, bias=qkv_bias)
        self.v_proj = nn.Linear(config.hidden_size, config.num_key_value_heads * self.head_dim, bias=qkv_bias)
        self.o_proj = nn.Linear(
            config.num_attention_heads * self.head_dim, config.hidden_size, bias=config.attention_bias
        )
        if config.qk_norm:
            self.q_norm = MDMRMSNorm(self.head_dim, eps=config.rms_norm_eps)
            self.k_norm = MDMRMSNorm(self.head_dim, eps=config.rms_norm_eps)

    @property
    def is_causal(self) -> bool:
        """Read by the attention backends; False except when checking a conversion against its causal source."""
        return self.config.is_causal

    def forward(
        self,
        hidden_states: torch.Tensor,
        position_embeddings: tuple[torch.Tensor, torch.Tensor],
        attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        **kwargs,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        input_shape = hidden_states.shape[:-1]
        hidden_shape = (*input_shape, -1, self.head_dim)
        query_states = self.q_proj(hidden_states).view(hidden_shape)
        key_states = self.k_proj(hidden_states).view(hidden_shape)
        if self.config.qk_norm:
            query_states, key_states = self.q_norm(query_states), self.k_norm(key_states)
        query_states, key_states = query_states.transpose(1, 2), key_states.transpose(1, 2)
        value_states = self.v_proj(hidden_states).view(hidden_shape).transpose(1, 2)

        cos, sin = position_embeddings
        query_states, key_states = apply_rotary_pos_emb(query_states, key_states, cos, sin)
        if cache is not None:
            key_states, value_states = cache.update(key_states, value_states, self.layer_idx)

        attention_interface: Callable = attention_function(self.config)
        attn_output, attn_weights = attention_interface(
            self,
            query_states,
            key_states,
            value_states,
            attention_mask,
            dropout=0.0 if not self.training else self.attention_dropout,
            scaling=self.scaling,
            **kwargs,
        )
        attn_output = attn_output.reshape(*input_shape, -1).contiguous()
        return self.o_proj(attn_output), attn_weights


class MDMDecoderLayer(GradientCheckpointingLayer):
    """Pre-norm block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, config: MDMConfig, layer_idx: int):
        super().__init__()
        self.self_attn = MDMAttention(config, layer_idx)
        self.mlp = MDMMLP(config)
        self.input_layernorm = MDMRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.post_attention_layernorm = MDMRMSNorm(config.hidden_size, eps=config.rms_norm_eps)

    def forward(
        self,
        hidden_states: torch.Tensor,
        position_embeddings: tuple[torch.Tensor, torch.Tensor],
        attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        **kwargs,
    ) -> torch.Tensor:
        attn_output, _ = self.self_attn(
            self.input_layernorm(hidden_states),
            position_embeddings=position_embeddings,
            attention_mask=attention_mask,
            cache=cache,
            **kwargs,
        )
        hidden_states = hidden_states + attn_output
        return hidden_states + self.mlp(self.post_attention_layernorm(hidden_states))


class MDMPreTrainedModel(PreTrainedModel):
    config: MDMConfig
    config_class = MDMConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _no_split_modules = ["MDMDecoderLayer"]
    _supports_flash_attn = True
    _supports_sdpa = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _can_compile_fullgraph = True
    _can_record_outputs = {"hidden_states": MDMDecoderLayer, "attentions": MDMAttention}


class MDMModel(MDMPreTrainedModel):
    """The bare stack (bidirectional; block-causal with `block_size`): embeddings -> N x MDMDecoderLayer -> RMSNorm."""

    def __init__(self, config: MDMConfig):
        super().__init__(config)
        self.padding_idx = config.pad_token_id
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size, self.padding_idx)
        self.layers = nn.ModuleList([MDMDecoderLayer(config, i) for i in range(config.num_hidden_layers)])
        self.norm = MDMRMSNorm(config.hidden_size, eps=config.rms_norm_eps)
        self.rotary_emb = MDMRotaryEmbedding(config=config)
        self.gradient_checkpointing = False
        self.post_init()

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
    ) -> BaseModelOutput:
        r"""
        attention_mask: 2-D padding mask (1 = real token) or a prepared 4-D mask; padded keys are never attended. With
            `config.block_size` and a cache, the 2-D mask covers the cached keys too (it numbers the blocks).
        position_ids: RoPE positions, `0..T-1` (offset by the cache length) when omitted.
        cache: a cache whose `update` returns the keys/values to attend to (used by cached decoding); the
            older name `past_key_values` is accepted too.
        clean_input_ids: block-diffusion models only, the training forward (BD3-LM): the clean sequence x_0 (B, T)
            of the noisy input. The stack then runs once over [x_t ; x_0] (2T columns, both halves with the same
            positions and padding) under `block_diffusion_mask` and returns the 2T hidden states.
        """
        hidden_states, attention_mask, position_ids = diffusion_stack_inputs(
            self.config, self.embed_tokens, input_ids, inputs_embeds, attention_mask, position_ids, cache,
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
        # The cache is the caller's (generation's block cache) and holds no new keys: it is not returned.
        return BaseModelOutput(last_hidden_state=self.norm(hidden_states))


def kept_positions(logits_to_keep: "int | slice | torch.Tensor") -> "slice | torch.Tensor":
    """The positions `logits_to_keep` selects: an int keeps the last k (0: all), a slice or index tensor is kept."""
    if isinstance(logits_to_keep, int):
        return slice(-logits_to_keep, None) if logits_to_keep else slice(None)
    return logits_to_keep


def gathered_positions(hidden_states: torch.Tensor, source: torch.LongTensor) -> torch.Tensor:
    """(B, K, H) the hidden states at positions `source` (B or 1, K) of each row."""
    batch_size, hidden_size = hidden_states.shape[0], hidden_states.shape[2]
    index = source.expand(batch_size, -1).unsqueeze(-1).expand(-1, -1, hidden_size)
    return hidden_states.gather(1, index)


class MDMForMaskedGeneration(MDMPretrainedMixin, MDMPreTrainedModel, DiffusionGenerationMixin):
    """MDMModel with an LM head and the masked-diffusion objective; `AutoModel.from_pretrained` returns this class.

    `generate()` (from `DiffusionGenerationMixin`) decodes by masked diffusion under a step budget; its defaults live
    in `generation_config` (a `DiffusionGenerationConfig`, saved as generation_config.json).
    """

    # PreTrainedModel's own (plain GenerationConfig) comes first in the MRO, so ours is set explicitly.
    generation_config_class = DiffusionGenerationConfig
    denoiser_adapter = "mdm"
    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}
    accepts_loss_kwargs = True

    def __init__(self, config: MDMConfig):
        super().__init__(config)
        self.model = MDMModel(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    @staticmethod
    def _shifted_hidden_states(hidden_states, attention_mask, cache, kept) -> torch.Tensor:
        """(B, K, H) the hidden states that predict the kept tokens: those of each one's previous real token.
        `hidden_states` covers the positions from the cache's length on; a 2-D `attention_mask` covers them all."""
        length = hidden_states.shape[1]
        past = cache.get_seq_length() if cache is not None else 0
        columns = torch.arange(length, device=hidden_states.device)[kept]
        padding = attention_mask if attention_mask is not None and attention_mask.dim() == 2 else None
        # A row's source can lie before the cached span only at a kept position that row does not need (the block
        # cache starts its span at the real token before each row's block); clamped, such a position reads any state.
        source = (previous_real_positions(padding, columns + past) - past).clamp(min=0)
        return gathered_positions(hidden_states, source)

    def _noisy_half_hidden_states(self, hidden_states, attention_mask, kept) -> torch.Tensor:
        """(B, K, H) from the 2T hidden states of [x_t ; x_0]: those that predict the kept tokens of x_t. Without a
        shift, token i's own noisy state. With `logits_shift=1`, the previous real token's (the row's first real
        token reads its own): in the noisy half inside a block, but for the first token of a block in the clean
        half, since decoding that block sees the clean earlier blocks."""
        length = hidden_states.shape[1] // 2
        columns = torch.arange(length, device=hidden_states.device)[kept]
        if not self.config.logits_shift:
            return hidden_states[:, columns, :]
        source = previous_real_positions(attention_mask, columns)
        blocks = block_ids(attention_mask, length, self.config.block_size, hidden_states.device)
        blocks = blocks.expand(source.shape[0], -1)
        in_earlier_block = blocks.gather(1, source) != blocks[:, columns]
        return gathered_positions(hidden_states, torch.where(in_earlier_block, source + length, source))

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
    ) -> MaskedDiffusionOutput:
        r"""
        labels: token ids at masked positions, -100 elsewhere (as `DataCollatorForMaskedDiffusion` returns them).
            Only masked, real tokens are scored: labels elsewhere (e.g. `labels=input_ids`) are ignored, and refused
            when `num_items_in_batch` is given, since that count included them. On a block-diffusion model
            (`config.block_size`) they select BD3-LM's objective: one forward over [x_t ; x_0] (x_0: the label at
            every masked real token, which must have one, the input elsewhere), in which each noisy block sees
            itself and the clean earlier blocks; the logits (and loss) are those of the x_t half.
        clean_input_ids: block-diffusion models, without labels: x_0 given directly (likelihood evaluation): the
            logits of x_t given the clean earlier blocks, from the same forward.
        t: diffusion time in (0, 1] at which the input was masked, per row (B,) or per token (B, L) (one time per
            block of the model, as `DataCollatorForMaskedDiffusion(block_size=B)` draws it); the NELBO weights.
        logits_to_keep: run the LM head only on these positions: an int keeps the last k, a slice or 1-D index
            tensor keeps those positions (generation asks only for the current block); 0 keeps all.
        prompt_length, prompt_mask: instruction tuning's prompt columns, named here so that the Trainer's default
            `remove_unused_columns=True` keeps them for `DataCollatorForMaskedDiffusion`, which consumes them (see
            `hf_mdm.masked_diffusion_objective`); the collator returns `prompt_mask` again. Given with `labels`, a
            labelled prompt token is an error and the loss divides by the response tokens only.
        mask_probability: the collator's masking probability 1 - alpha(t), shaped like `t`; with `labels` it must be
            the config's schedule's (a batch masked under another schedule would train on a wrong NELBO).
        """
        labels, loss_tokens, t, clean_input_ids = forward_training_inputs(
            self.config,
            labels,
            clean_input_ids,
            input_ids,
            inputs_embeds,
            attention_mask,
            t=t,
            num_items_in_batch=num_items_in_batch,
            prompt_length=prompt_length,
            prompt_mask=prompt_mask,
            mask_probability=mask_probability,
        )
        outputs = self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            inputs_embeds=inputs_embeds,
            clean_input_ids=clean_input_ids,
            **kwargs,
        )
        hidden_states = outputs.last_hidden_state
        kept = kept_positions(logits_to_keep)
        if clean_input_ids is not None:
            hidden_states = self._noisy_half_hidden_states(hidden_states, attention_mask, kept)
        elif self.config.logits_shift:
            # logits[:, i] must predict token i: a shifted model's prediction of token i sits at the previous real
            # token (the row's first real token reads its own), so padding never changes a row's logits.
            hidden_states = self._shifted_hidden_states(hidden_states, attention_mask, cache, kept)
        else:
            hidden_states = hidden_states[:, kept, :]
        logits = self.lm_head(hidden_states)
        logits[..., self.config.mask_token_id] = torch.finfo(logits.dtype).min

        loss = None
        if labels is not None:
            loss = config_loss(self.config, logits, labels, loss_tokens, t, num_items_in_batch)
        return MaskedDiffusionOutput(
            loss=loss,
            logits=logits,
            t=t,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
        )


__all__ = ["MDMPreTrainedModel", "MDMModel", "MDMForMaskedGeneration", "MaskedDiffusionOutput"]
