"""SDARForMaskedDiffusion: SDAR (JetAstra) as hf-mdm's block-diffusion LM, on transformers' own `Qwen3Model`.

SDAR's published weights are exactly transformers' Qwen3 names (`model.*`, an untied `lm_head`) and its inference
math is Qwen3's; only the attention pattern differs: block-causal with the config's `block_size` B (a token sees its
own block both ways and every earlier block; block = index among the row's real tokens // B, which for the authors'
unpadded rows is position // B). So the decoder is `Qwen3Model` unchanged, given the mask of `diffusion_attention`
(the one MDM and the DiT use) as a prepared per-layer-type mask. Logits are not shifted (`logits[:, i]` is about
token i) and are returned in float32 as the authors' forward returns them, the [MASK] column included (the authors'
sampler can draw it; `generate()` never reveals [MASK]).

The forward contract is `MDMForMaskedGeneration`'s, so `generate()` (the "mdm" denoiser adapter, exact block cache),
`DataCollatorForMaskedDiffusion` with the masked-diffusion objective (BD3-LM's [x_t ; x_0] training forward, as the
authors train), `Trainer` and peft work unchanged.
"""

import torch
from torch import nn
from transformers import Qwen3Model, Qwen3PreTrainedModel

from .checkpoint_formats.pretrained_mixin import DiffusionPretrainedMixin
from .configuration_sdar import SDARConfig
from .diffusion_attention import diffusion_stack_inputs
from .generation.configuration import DiffusionGenerationConfig
from .generation.mixin import DiffusionGenerationMixin
from .generation.sdar_generation_config import sdar_generation_config
from .masked_diffusion_objective import config_loss, forward_training_inputs
from .modeling_mdm import MaskedDiffusionOutput, kept_positions
from .transformers_compat import Cache, accepts_legacy_cache_name, cache_keyword, can_return_tuple


class SDARForMaskedDiffusion(DiffusionPretrainedMixin, Qwen3PreTrainedModel, DiffusionGenerationMixin):
    """`Qwen3Model` + LM head under SDAR's block-causal attention, with the masked-diffusion objective and
    `generate()`; `AutoModel.from_pretrained(sdar_folder)` returns it, `save_pretrained` writes SDAR's format.

    Attention backends: SDPA (default) and eager, with the block mask. Flash attention cannot take a block mask and
    is refused; flex attention (config.json's `attn_implementation`, the authors' training kernel) is not used: that
    value, also when passed as `from_pretrained(attn_implementation="flex_attention")`, is read as the published
    training flag, and `set_attn_implementation("flex_attention")` is refused.
    """

    config_class = SDARConfig
    config: SDARConfig
    # PreTrainedModel's own (plain GenerationConfig) comes first in the MRO, so ours is set explicitly.
    generation_config_class = DiffusionGenerationConfig
    denoiser_adapter = "mdm"
    accepts_loss_kwargs = True
    _supports_flash_attn = False
    _supports_flex_attn = False
    _tied_weights_keys = {"lm_head.weight": "model.embed_tokens.weight"}

    def __init__(self, config: SDARConfig):
        super().__init__(config)
        self.model = Qwen3Model(config)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.post_init()

    def adjust_generation_fn(self, *args, **kwargs):
        """`from_pretrained` hook: the folder's generation_config.json read in SDAR's dialect
        (`generation.sdar_generation_config`: the authors' evaluation decoding when it has no diffusion field)."""
        super().adjust_generation_fn(*args, **kwargs)
        self.generation_config = sdar_generation_config(self.generation_config)

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
        Arguments as `MDMForMaskedGeneration.forward`: `attention_mask` is the 2-D padding mask (it numbers the
        blocks, cached keys included) or a prepared 4-D mask in the backend's format (SDPA and eager: additive
        float), used as given; `cache` (or `past_key_values`) a transformers `Cache` whose `update` returns the keys
        to attend to; `labels` select BD3-LM's training forward over [x_t ; x_0]; `clean_input_ids` give x_0 directly.
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
        length = (input_ids if inputs_embeds is None else inputs_embeds).shape[1]
        inputs_embeds, mask, position_ids = diffusion_stack_inputs(
            self.config, self.model.embed_tokens, input_ids, inputs_embeds, attention_mask, position_ids, cache,
            clean_input_ids,
        )  # fmt: skip
        outputs = self.model(
            inputs_embeds=inputs_embeds,
            attention_mask=dict.fromkeys(self.config.layer_types, mask),
            position_ids=position_ids,
            use_cache=False,
            **cache_keyword(cache),
            **kwargs,
        )
        # The x_t half of the training layout; then the positions whose logits are asked for.
        hidden_states = outputs.last_hidden_state[:, :length][:, kept_positions(logits_to_keep)]
        logits = self.lm_head(hidden_states).float()
        loss = None
        if labels is not None:
            loss = config_loss(self.config, logits, labels, loss_tokens, t, num_items_in_batch)
        return MaskedDiffusionOutput(
            loss=loss, logits=logits, t=t, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


__all__ = ["SDARForMaskedDiffusion"]
