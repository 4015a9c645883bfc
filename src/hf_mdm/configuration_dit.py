"""DiTConfig: the diffusion transformer (DiT) of SEDD, MDLM and BD3-LM, with adaLN conditioning on the noise level."""

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig

from .configuration_mdm import NoiseScheduleConfigMixin, check_mask_token_id
from .schedules import get_schedule


OUTPUT_PARAMETRIZATIONS = ("logits", "score")


@strict
class DiTConfig(NoiseScheduleConfigMixin, PreTrainedConfig):
    r"""
    Configuration of [`DiTModel`] and [`DiTForMaskedDiffusion`]: the "DDiT" backbone SEDD introduced and MDLM and
    BD3-LM reuse. Each block is pre-LayerNorm (weight only) attention with rotary embeddings and a GELU-tanh MLP, both
    modulated by adaLN from c = silu(MLP(sinusoid(sigma))), sigma the total noise of the input; the head is untied.

    Args:
        vocab_size: Token ids, the [MASK] id included (GPT-2's 50257 + 1 for the published checkpoints).
        hidden_size, cond_dim, num_hidden_layers, num_attention_heads: Width, adaLN conditioning width, blocks, heads.
        mlp_ratio: MLP width / hidden_size (4 in every published checkpoint).
        max_position_embeddings: Longest sequence (the checkpoints' `model_length` / `length`, 1024).
        rope_theta: Rotary base (1e4).
        hidden_dropout: Residual dropout of the blocks (training only; the checkpoints' `dropout`).
        time_conditioning: Condition adaLN on sigma(t) (SEDD). False (MDLM, BD3-LM): sigma is replaced by 0 and adaLN
            still runs, with that constant conditioning, as the authors' code does.
        output_parametrization: `"logits"` (MDLM, BD3-LM): the head's output are logits of p(x_0 | x_t).
            `"score"` (SEDD, absorbing graph, `scale_by_sigma`): the head's output is a log-score up to a sigma term;
            the model returns logits = raw - log(V - 1), whose exp is SEDD's p̂_j = s_j (e^sigma - 1) (see
            `checkpoint_formats.sedd`).
        block_size: None: bidirectional. An int B: block-causal (BD3-LM), as `MDMConfig.block_size`.
        mask_token_id: Id of [MASK] (the last id, 50257, in the published checkpoints). Required.
        schedule, schedule_kwargs: The noise schedule alpha(t); the conditioning is sigma(t) = -log alpha(t) (the
            checkpoints' log-linear noise, eps = 1e-3: sigma(t) = -log(1 - (1 - eps) t)).
        loss_weighting: `"elbo"` or `"uniform"`, as `MDMConfig`.
        noise_interval_buffers: Keep BD3-LM's `sampling_eps_min` / `sampling_eps_max` buffers (the clipped noise
            interval its training searched; stored in its checkpoints, unused by sampling) so that they load and
            save back.
        checkpoint_format: The format the folder was read from (`"sedd"`, `"mdlm"`, `"bd3lm"`) or None;
            `save_pretrained(original_format=True)` writes that format back.
        original_config: That folder's config.json, kept to write it back unchanged.
        initializer_range: Standard deviation of the normal initialisation of the linear layers.
    """

    model_type = "mdm-dit"
    keys_to_ignore_at_inference = ["t"]
    has_no_defaults_at_init = True

    vocab_size: int = 50258
    hidden_size: int = 768
    cond_dim: int = 128
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    mlp_ratio: int = 4
    max_position_embeddings: int = 1024
    rope_theta: float = 10000.0
    hidden_dropout: float = 0.0
    time_conditioning: bool = False
    output_parametrization: str = "logits"
    block_size: int | None = None
    mask_token_id: int | None = None
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None
    schedule: str = "log-linear"
    schedule_kwargs: dict | None = None
    loss_weighting: str = "elbo"
    noise_interval_buffers: bool = False
    checkpoint_format: str | None = None
    original_config: dict | None = None
    initializer_range: float = 0.02
    tie_word_embeddings: bool = False

    def __post_init__(self, **kwargs):
        if self.schedule_kwargs is None and self.schedule == "log-linear":
            self.schedule_kwargs = {"eps": 1e-3}
        self.validate_dit_fields()
        super().__post_init__(**kwargs)

    def validate_dit_fields(self):
        """Raise a ValueError that names the fix for a bad [MASK] id, head layout or parametrization."""
        check_mask_token_id(self)
        if self.num_attention_heads <= 0 or self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be a multiple of num_attention_heads "
                f"({self.num_attention_heads})."
            )
        if (self.hidden_size // self.num_attention_heads) % 2:
            raise ValueError("The rotary embedding needs an even head width (hidden_size / num_attention_heads).")
        if self.output_parametrization not in OUTPUT_PARAMETRIZATIONS:
            raise ValueError(
                f"output_parametrization must be one of {OUTPUT_PARAMETRIZATIONS}, got "
                f"{self.output_parametrization!r}."
            )
        if self.output_parametrization == "score" and self.mask_token_id != self.vocab_size - 1:
            raise ValueError(
                "The score parametrization is SEDD's absorbing graph, whose [MASK] is the last id: set "
                f"mask_token_id={self.vocab_size - 1} (got {self.mask_token_id})."
            )
        if self.block_size is not None and self.block_size < 1:
            raise ValueError(f"block_size must be a positive number of tokens or None, got {self.block_size!r}.")
        if self.loss_weighting not in ("elbo", "uniform"):
            raise ValueError(f"loss_weighting must be 'elbo' or 'uniform', got {self.loss_weighting!r}.")
        get_schedule(self.schedule, **(self.schedule_kwargs or {}))

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads


__all__ = ["DiTConfig"]
