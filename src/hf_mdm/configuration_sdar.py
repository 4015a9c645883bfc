"""SDARConfig: the configuration of SDAR (JetAstra, "Synergistic Diffusion-AutoRegression"), a Qwen3 decoder run
block-causally as a block-diffusion LM.

SDAR's published config.json is a Qwen3 config (`model_type "sdar"`) with two diffusion keys, `block_size` and
`mask_token_id`, and training flags of the authors' code (`fuse_cross_entropy`, `micro_forward`, `skip_checkpoint`,
`use_deepep`, `ep_size`, `debug`), which are kept as attributes and written back. Its `attn_implementation:
"flex_attention"` is the authors' *training* attention (inference in their code is SDPA/flash with a block mask): it
is kept as `training_attn_implementation` (written back under its published name) and not used, so the model runs
transformers' default backend (SDPA, or eager) with the block-causal mask of `diffusion_attention`.
"""

from huggingface_hub.dataclasses import strict
from transformers import Qwen3Config

from .configuration_mdm import NoiseScheduleConfigMixin, check_mask_token_id
from .schedules import get_schedule


# config.json's `attn_implementation`: the authors' training kernel, not their inference attention.
TRAINING_ATTENTION = "flex_attention"
# The published `architectures` of these weights (the authors' class; serving engines dispatch on it).
PUBLISHED_ARCHITECTURE = "SDARForCausalLM"


@strict
class SDARConfig(NoiseScheduleConfigMixin, Qwen3Config):
    r"""
    Configuration of [`SDARForMaskedDiffusion`]: every field of transformers' `Qwen3Config`, plus

    Args:
        block_size: The block size B the checkpoint was trained at (config.json; 4 for SDAR-*-Chat, 8 to 64 for the
            "b8"... variants). Attention is bidirectional inside a block of B tokens and causal across blocks
            (block = index among a row's real tokens // B; for the authors' unpadded rows, position // B). Required.
        mask_token_id: Id of `<MASK>` (151669 in the published tokenizer). Required, inside the vocabulary.
        schedule, schedule_kwargs, loss_weighting: hf-mdm's training objective, as `MDMConfig`'s. The default,
            the linear schedule with ELBO weights 1/t, is the authors' loss (cross-entropy weighted by 1/p_mask).
        training_attn_implementation: config.json's `attn_implementation` (`"flex_attention"`, the authors'
            training kernel), kept to be written back; inference never reads it.
    """

    model_type = "sdar"
    keys_to_ignore_at_inference = ["t"]
    # `mask_token_id` and `block_size` are required (see MDMConfig and transformers_compat).
    has_no_defaults_at_init = True

    block_size: int | None = None
    mask_token_id: int | None = None
    schedule: str = "linear"
    schedule_kwargs: dict | None = None
    loss_weighting: str = "elbo"
    training_attn_implementation: str | None = None

    def __post_init__(self, **kwargs):
        if kwargs.get("attn_implementation") == TRAINING_ATTENTION:
            self.training_attn_implementation = kwargs.pop("attn_implementation")
        super().__post_init__(**kwargs)
        self.validate_sdar_fields()

    def validate_sdar_fields(self):
        """Raise a ValueError that names the fix for a missing block size or [MASK] id, or an unsupported key."""
        if self.block_size is None or self.block_size < 1:
            raise ValueError(
                f"SDARConfig needs block_size, the positive block size the checkpoint was trained at (config.json's "
                f"`block_size`, e.g. 4), got {self.block_size!r}."
            )
        check_mask_token_id(self)
        if self.use_sliding_window:
            raise ValueError(
                "This SDAR config sets use_sliding_window=True, which hf-mdm does not implement (SDAR attends "
                "block-causally over the whole sequence); set use_sliding_window=False."
            )
        get_schedule(self.schedule, **(self.schedule_kwargs or {}))
        if self.loss_weighting not in ("elbo", "uniform"):
            raise ValueError(f"loss_weighting must be 'elbo' or 'uniform', got {self.loss_weighting!r}.")

    def to_dict(self):
        """The config as SDAR's config.json has it: transformers' dict plus the published keys the authors' code
        (transformers 4.52) reads instead of `rope_parameters` (`rope_theta`, `rope_scaling`), and
        `attn_implementation` under its published name; `architectures` is the published class name. (`torch_dtype`
        is written as `dtype`, its name since transformers 4.56: writing both makes transformers warn on every save;
        the authors' code loads the folder either way.)"""
        output = super().to_dict()
        if output.get("architectures") == ["SDARForMaskedDiffusion"]:
            output["architectures"] = [PUBLISHED_ARCHITECTURE]
        rope = dict(output.get("rope_parameters") or {})
        if "rope_theta" in rope:
            output["rope_theta"] = rope.pop("rope_theta")
            output["rope_scaling"] = None if rope.get("rope_type", "default") == "default" else rope
        attention = output.pop("training_attn_implementation", None)
        if attention is not None:
            output["attn_implementation"] = attention
        return output


__all__ = ["SDARConfig"]
