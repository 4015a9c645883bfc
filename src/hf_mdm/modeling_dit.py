"""DiTModel and DiTForMaskedDiffusion: the diffusion transformer of SEDD, MDLM and BD3-LM, conditioned on the noise.

One block (`DiTBlock`), for hidden states x and conditioning c = silu(sigma_map(sigma)) (B, cond_dim):

    shift1, scale1, gate1, shift2, scale2, gate2 = adaLN_modulation(c)          (6 x (B, 1, hidden))
    x = x + gate1 * attn_out(attention(rotary(qkv(LN(x) * (1 + scale1) + shift1))))
    x = x + gate2 * mlp(LN(x) * (1 + scale2) + shift2)                          (mlp: Linear, GELU-tanh, Linear)

LN is LayerNorm without bias, in float32; the head is `linear(LN(x) * (1 + scale) + shift)` with its own 2-way adaLN,
untied from the embedding, and there is no logit shift (logits[:, i] are about token i). `sigma_map` embeds sigma as
[cos(sigma f_k), sin(sigma f_k)], f_k = 10000^(-k/128), then an MLP. Module names are the authors', so their
state dicts load by name (`checkpoint_formats.sedd`, `mdlm`, `bd3lm`).

Attention is bidirectional over real tokens (the authors' have no padding mask: an unpadded row is exactly theirs),
block-causal with `config.block_size` (BD3-LM; `diffusion_attention`), and runs through transformers' attention
registry; `cache=` takes generation's block caches. Model code only; the loaders live in `checkpoint_formats/`.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.modeling_outputs import BaseModelOutput

from .checkpoint_formats.dit_pretrained_mixin import DiTPretrainedMixin
from .configuration_dit import DiTConfig
from .diffusion_attention import diffusion_stack_inputs
from .generation.configuration import DiffusionGenerationConfig
from .generation.mixin import DiffusionGenerationMixin
from .masked_diffusion_objective import config_loss, forward_training_inputs
from .modeling_mdm import MaskedDiffusionOutput, kept_positions
from .transformers_compat import (
    Cache,
    GradientCheckpointingLayer,
    accepts_legacy_cache_name,
    apply_rotary_pos_emb,
    attention_function,
    can_return_tuple,
)


FREQUENCY_EMBEDDING_SIZE = 256


@dataclass
class DiTModelOutput(BaseModelOutput):
    """The hidden states before the head, and the adaLN conditioning c (B, cond_dim) the head needs too."""

    conditioning: torch.FloatTensor | None = None


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN: x * (1 + scale) + shift."""
    return x * (1 + scale) + shift


class DiTLayerNorm(nn.LayerNorm):
    """torch's LayerNorm without bias, computed in float32 whatever the input's dtype (as the authors run it under
    autocast): w * (x - mean) / sqrt(var + 1e-5)."""

    def __init__(self, dim: int):
        super().__init__(dim, bias=False)

    def forward(self, x):
        return F.layer_norm(x.float(), self.normalized_shape, self.weight.float(), None, self.eps).to(x.dtype)


class DiTEmbedding(nn.Module):
    """Token embedding as the authors store it: a bare `embedding` parameter (V, hidden), looked up."""

    def __init__(self, vocab_size: int, hidden_size: int):
        super().__init__()
        self.embedding = nn.Parameter(torch.empty(vocab_size, hidden_size))

    def forward(self, input_ids):
        return self.embedding[input_ids]


class DiTTimestepEmbedder(nn.Module):
    """sigma (B,) -> MLP([cos(sigma f), sin(sigma f)]) (B, cond_dim), f_k = 10000^(-k/128), k < 128."""

    def __init__(self, cond_dim: int):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(FREQUENCY_EMBEDDING_SIZE, cond_dim), nn.SiLU(), nn.Linear(cond_dim, cond_dim)
        )

    def forward(self, sigma: torch.Tensor) -> torch.Tensor:
        half = FREQUENCY_EMBEDDING_SIZE // 2
        frequencies = torch.exp(
            -math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=sigma.device) / half
        )
        angles = sigma[:, None].float() * frequencies[None]
        embedding = torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)
        return self.mlp(embedding.to(self.mlp[0].weight.dtype))


class DiTRotaryEmbedding(nn.Module):
    """Rotate-half RoPE, inv_freq = 1 / theta^(2i/d) stored as a persistent buffer, as in the authors' state dicts."""

    def __init__(self, config: DiTConfig):
        super().__init__()
        head_dim = config.head_dim
        inv_freq = 1.0 / (config.rope_theta ** (torch.arange(0, head_dim, 2).float() / head_dim))
        self.register_buffer("inv_freq", inv_freq)

    @torch.no_grad()
    def forward(self, position_ids: torch.LongTensor, dtype: torch.dtype):
        angles = position_ids[..., None].float() * self.inv_freq.float()
        embedding = torch.cat([angles, angles], dim=-1)
        return embedding.cos().to(dtype), embedding.sin().to(dtype)


class DiTBlock(GradientCheckpointingLayer):
    """adaLN-modulated pre-norm block (module docstring): multi-head attention from one fused qkv projection with
    rotary q and k, through transformers' attention registry, then the MLP; residual dropout `hidden_dropout` in
    training."""

    is_causal = False  # read by the attention backends: the mask carries the pattern (bidirectional or block-causal)

    def __init__(self, config: DiTConfig, layer_idx: int):
        super().__init__()
        hidden = config.hidden_size
        self.config, self.layer_idx = config, layer_idx
        self.num_heads, self.head_dim = config.num_attention_heads, config.head_dim
        self.num_key_value_groups = 1
        self.scaling = self.head_dim**-0.5
        self.norm1 = DiTLayerNorm(hidden)
        self.attn_qkv = nn.Linear(hidden, 3 * hidden, bias=False)
        self.attn_out = nn.Linear(hidden, hidden, bias=False)
        self.norm2 = DiTLayerNorm(hidden)
        self.mlp = nn.Sequential(
            nn.Linear(hidden, config.mlp_ratio * hidden), nn.GELU(approximate="tanh"),
            nn.Linear(config.mlp_ratio * hidden, hidden),
        )  # fmt: skip
        self.adaLN_modulation = nn.Linear(config.cond_dim, 6 * hidden)
        self.dropout = nn.Dropout(config.hidden_dropout)

    def attention(self, hidden_states, position_embeddings, attention_mask, cache, **kwargs) -> torch.Tensor:
        """softmax(q k^T / sqrt(d) + mask) v over the heads, q and k rotated; the cache may supply earlier keys."""
        batch_size, length = hidden_states.shape[:2]
        qkv = self.attn_qkv(hidden_states).view(batch_size, length, 3, self.num_heads, self.head_dim)
        query, key, value = (part.transpose(1, 2) for part in qkv.unbind(2))
        cos, sin = position_embeddings
        query, key = apply_rotary_pos_emb(query, key, cos, sin)
        if cache is not None:
            key, value = cache.update(key, value, self.layer_idx)
        attention_interface: Callable = attention_function(self.config)
        output, _ = attention_interface(
            self, query, key, value, attention_mask, dropout=0.0, scaling=self.scaling, **kwargs
        )
        return self.attn_out(output.reshape(batch_size, length, -1).contiguous())

    def forward(self, hidden_states, conditioning, position_embeddings, attention_mask=None, cache=None, **kwargs):
        modulation = self.adaLN_modulation(conditioning)[:, None].chunk(6, dim=2)
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = modulation
        attn_output = self.attention(
            modulate(self.norm1(hidden_states), shift_msa, scale_msa), position_embeddings, attention_mask, cache,
            **kwargs,
        )  # fmt: skip
        hidden_states = hidden_states + gate_msa * self.dropout(attn_output)
        mlp_output = self.mlp(modulate(self.norm2(hidden_states), shift_mlp, scale_mlp))
        return hidden_states + gate_mlp * self.dropout(mlp_output)


class DiTFinalLayer(nn.Module):
    """The head: linear(LN(x) * (1 + scale) + shift), (shift, scale) = adaLN_modulation(c); bias on the logits."""

    def __init__(self, config: DiTConfig):
        super().__init__()
        self.norm_final = DiTLayerNorm(config.hidden_size)
        self.linear = nn.Linear(config.hidden_size, config.vocab_size)
        self.adaLN_modulation = nn.Linear(config.cond_dim, 2 * config.hidden_size)

    def forward(self, hidden_states, conditioning):
        shift, scale = self.adaLN_modulation(conditioning)[:, None].chunk(2, dim=2)
        return self.linear(modulate(self.norm_final(hidden_states), shift, scale))


class DiTPreTrainedModel(PreTrainedModel):
    config: DiTConfig
    config_class = DiTConfig
    base_model_prefix = "backbone"
    supports_gradient_checkpointing = True
    _no_split_modules = ["DiTBlock"]
    _supports_sdpa = True
    _supports_flex_attn = True
    _supports_attention_backend = True

    @torch.no_grad()
    def _init_weights(self, module):
        """DiT's initialisation: normal linear weights and embeddings, zero biases, and zero adaLN projections (each
        block starts as the identity: gates are 0)."""
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, DiTEmbedding):
            nn.init.normal_(module.embedding, std=std)
        elif isinstance(module, DiTLayerNorm):
            nn.init.ones_(module.weight)
        elif isinstance(module, DiTRotaryEmbedding):
            head_dim = self.config.head_dim
            module.inv_freq.copy_(1.0 / (self.config.rope_theta ** (torch.arange(0, head_dim, 2).float() / head_dim)))
        if isinstance(module, (DiTBlock, DiTFinalLayer)):  # after their Linear children were initialised
            nn.init.zeros_(module.adaLN_modulation.weight)
            nn.init.zeros_(module.adaLN_modulation.bias)


class DiTModel(DiTPreTrainedModel):
    """The DiT from token ids and the noise level sigma to logits (the head is part of the authors' backbone)."""

    def __init__(self, config: DiTConfig):
        super().__init__(config)
        self.vocab_embed = DiTEmbedding(config.vocab_size, config.hidden_size)
        self.sigma_map = DiTTimestepEmbedder(config.cond_dim)
        self.rotary_emb = DiTRotaryEmbedding(config)
        self.blocks = nn.ModuleList([DiTBlock(config, i) for i in range(config.num_hidden_layers)])
        self.output_layer = DiTFinalLayer(config)
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self):
        return self.vocab_embed

    def conditioning(self, sigma: torch.Tensor) -> torch.Tensor:
        """c = silu(sigma_map(sigma)) (B, cond_dim); sigma is replaced by 0 without `time_conditioning`."""
        if not self.config.time_conditioning:
            sigma = torch.zeros_like(sigma)
        return F.silu(self.sigma_map(sigma))

    @accepts_legacy_cache_name
    def forward(
        self,
        input_ids: torch.LongTensor,
        sigma: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        clean_input_ids: torch.LongTensor | None = None,
        **kwargs,
    ) -> DiTModelOutput:
        r"""
        Hidden states before the head (the head runs in `DiTForMaskedDiffusion`, on the kept positions only).
        sigma: (B,) total noise of each row. attention_mask, position_ids, cache, clean_input_ids: as `MDMModel`.
        """
        inputs_embeds, attention_mask, position_ids = diffusion_stack_inputs(
            self.config, self.vocab_embed, input_ids, None, attention_mask, position_ids, cache, clean_input_ids
        )
        conditioning = self.conditioning(sigma)
        position_embeddings = self.rotary_emb(position_ids, inputs_embeds.dtype)
        hidden_states = inputs_embeds
        for block in self.blocks:
            hidden_states = block(
                hidden_states,
                conditioning,
                position_embeddings=position_embeddings,
                attention_mask=attention_mask,
                cache=cache,
                **kwargs,
            )
        return DiTModelOutput(last_hidden_state=hidden_states, conditioning=conditioning)


class DiTForMaskedDiffusion(DiTPretrainedMixin, DiTPreTrainedModel, DiffusionGenerationMixin):
    """The DiT with the masked-diffusion objective and `generate()`; `AutoModel.from_pretrained` returns it for SEDD,
    MDLM and BD3-LM folders (their own formats) and for hf-mdm's `mdm-dit` folders.

    `logits` are those of p(x_0 | x_t) ([MASK] column at the dtype's minimum): the head's output for
    `output_parametrization="logits"`, and raw - log(V - 1) for SEDD's `"score"` (then exp(logits) is SEDD's
    unnormalised p̂; softmax normalises it).
    """

    generation_config_class = DiffusionGenerationConfig
    denoiser_adapter = "dit"
    accepts_loss_kwargs = True

    def __init__(self, config: DiTConfig):
        super().__init__(config)
        self.backbone = DiTModel(config)
        if config.noise_interval_buffers:
            # BD3-LM's clipped noise interval, stored in its checkpoints (training only; sampling ignores it).
            self.register_buffer("sampling_eps_min", torch.tensor(1e-3))
            self.register_buffer("sampling_eps_max", torch.tensor(0.999))
        self.post_init()

    def get_output_embeddings(self):
        return self.backbone.output_layer.linear

    def noise_level(self, batch_size: int, t=None, sigma=None, device=None) -> torch.Tensor:
        """(B,) the sigma the backbone is conditioned on: `sigma` as given, else sigma(t) = -log alpha(t) under the
        config's schedule; zeros for a model without `time_conditioning` (the authors' constant conditioning)."""
        if t is not None and sigma is not None:
            raise ValueError("Pass the diffusion time `t` or the noise level `sigma`, not both.")
        if sigma is None and t is not None:
            if t.dim() == 2 and self.config.time_conditioning:
                raise ValueError(
                    "A time-conditioned DiT is conditioned on one noise level per row; got a per-token t of shape "
                    f"{tuple(t.shape)}. Draw one time per row (DataCollatorForMaskedDiffusion(block_size=None))."
                )
            sigma = self.config.noise_schedule.total_noise(t.reshape(batch_size, -1)[:, 0].float())
        if sigma is None:
            if self.config.time_conditioning:
                raise ValueError(
                    "This DiT is time-conditioned (SEDD): pass the diffusion time `t` (B,) or the noise level `sigma` "
                    "(B,) of the input; generate() and the collator pass t."
                )
            return torch.zeros(batch_size, device=device)
        sigma = torch.as_tensor(sigma, device=device).float().reshape(-1)
        if sigma.numel() == 1:
            sigma = sigma.expand(batch_size)
        if sigma.numel() != batch_size:
            raise ValueError(f"sigma has {sigma.numel()} values for {batch_size} rows; give one per row.")
        return sigma

    @can_return_tuple
    @accepts_legacy_cache_name
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        t: torch.FloatTensor | None = None,
        sigma: torch.FloatTensor | None = None,
        labels: torch.LongTensor | None = None,
        clean_input_ids: torch.LongTensor | None = None,
        logits_to_keep: int | slice | torch.Tensor = 0,
        num_items_in_batch: torch.Tensor | int | None = None,
        prompt_length: torch.LongTensor | None = None,
        prompt_mask: torch.Tensor | None = None,
        mask_probability: torch.Tensor | None = None,
        **kwargs,
    ) -> MaskedDiffusionOutput:
        r"""
        t: diffusion time in (0, 1], (B,) (or (B, L) per block of a block model without time conditioning): the
            conditioning sigma(t) of a time-conditioned model and the NELBO weights with `labels`.
        sigma: (B,) (or a scalar) noise level given directly instead of `t` (the authors' samplers pass sigma).
        labels, clean_input_ids, logits_to_keep, num_items_in_batch, prompt_length, prompt_mask, mask_probability,
            cache: as `MDMForMaskedGeneration.forward`.
        """
        if input_ids is None:
            raise ValueError("DiTForMaskedDiffusion needs input_ids (its embedding is looked up by id).")
        labels, loss_tokens, t, clean_input_ids = forward_training_inputs(
            self.config,
            labels,
            clean_input_ids,
            input_ids,
            None,
            attention_mask,
            t=t,
            num_items_in_batch=num_items_in_batch,
            prompt_length=prompt_length,
            prompt_mask=prompt_mask,
            mask_probability=mask_probability,
        )
        noise = self.noise_level(input_ids.shape[0], t=t, sigma=sigma, device=input_ids.device)
        outputs = self.backbone(
            input_ids,
            noise,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            clean_input_ids=clean_input_ids,
            **kwargs,
        )
        hidden_states = outputs.last_hidden_state[:, : input_ids.shape[1]]  # the x_t half of BD3-LM's layout
        logits = self.backbone.output_layer(hidden_states[:, kept_positions(logits_to_keep)], outputs.conditioning)
        if self.config.output_parametrization == "score":
            logits = logits - math.log(self.config.vocab_size - 1)
        logits[..., self.config.mask_token_id] = torch.finfo(logits.dtype).min
        loss = None
        if labels is not None:
            loss = config_loss(self.config, logits, labels, loss_tokens, t, num_items_in_batch)
        return MaskedDiffusionOutput(loss=loss, logits=logits, t=t)


__all__ = ["DiTForMaskedDiffusion", "DiTModel", "DiTPreTrainedModel"]
