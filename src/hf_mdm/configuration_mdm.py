"""MDMConfig: the configuration of a masked diffusion language model (a bidirectional LLaMA-style stack)."""

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig

from .schedules import NoiseSchedule, get_schedule
from .transformers_compat import RopeParameters


MASK_TOKEN_HELP = (
    "A masked diffusion model needs a [MASK] token inside its vocabulary. Add one to the tokenizer and make room in "
    "the embeddings, then pass its id:\n"
    "    tokenizer.add_special_tokens({'mask_token': '<|mask|>'})\n"
    "    model.resize_token_embeddings(len(tokenizer))   # or MDMConfig(vocab_size=len(tokenizer), ...)\n"
    "    config.mask_token_id = tokenizer.mask_token_id"
)


def check_mask_token_id(config) -> None:
    """A diffusion config's `mask_token_id` is set and inside its vocabulary, else a ValueError with the fix."""
    if config.mask_token_id is None:
        raise ValueError(f"{type(config).__name__} needs `mask_token_id`. {MASK_TOKEN_HELP}")
    if not 0 <= config.mask_token_id < config.vocab_size:
        raise ValueError(
            f"mask_token_id={config.mask_token_id} is outside the vocabulary (vocab_size={config.vocab_size}). "
            f"{MASK_TOKEN_HELP}"
        )


class NoiseScheduleConfigMixin:
    """`noise_schedule` for every hf-mdm config that trains with the masked-diffusion objective (its `schedule`
    and `schedule_kwargs` fields)."""

    @property
    def noise_schedule(self) -> NoiseSchedule:
        """The training schedule as an object: `get_schedule(schedule, **schedule_kwargs)`."""
        return get_schedule(self.schedule, **(self.schedule_kwargs or {}))


@strict
class MDMConfig(NoiseScheduleConfigMixin, PreTrainedConfig):
    r"""
    Configuration of [`MDMModel`] and [`MDMForMaskedGeneration`].

    The architecture is LLaMA's (RoPE, RMSNorm, SwiGLU MLP, grouped-query attention) with **bidirectional** attention.
    The diffusion-specific fields are `mask_token_id` (required, inside the vocabulary) and the training noise schedule
    (`schedule`, `schedule_kwargs`, see `hf_mdm.schedules`).

    Args:
        vocab_size: Number of token ids, the [MASK] id included.
        hidden_size: Width of the residual stream.
        intermediate_size: Width of the SwiGLU MLP.
        num_hidden_layers: Number of transformer blocks.
        num_attention_heads: Query heads.
        num_key_value_heads: Key/value heads (grouped-query attention); defaults to `num_attention_heads`.
        head_dim: Per-head width; defaults to `hidden_size // num_attention_heads`.
        hidden_act: MLP activation of the gate projection.
        max_position_embeddings: Longest sequence the model accepts.
        initializer_range: Standard deviation of the normal weight initialisation.
        rms_norm_eps: RMSNorm epsilon.
        rope_parameters: RoPE parameters as in LLaMA (`rope_theta` may also be passed directly).
        attention_bias: Biases on the q/k/v/o projections (LLaMA's switch).
        qkv_bias: Biases on the q/k/v projections only (Qwen2 and Dream).
        qk_norm: Per-head RMSNorm on queries and keys before RoPE (Qwen3).
        attention_dropout: Dropout on attention probabilities (training only).
        mlp_bias: Biases on the MLP projections.
        tie_word_embeddings: Share the input embedding matrix with the LM head.
        mask_token_id: Id of the [MASK] token. Required.
        schedule: Name of the training noise schedule alpha(t) (`linear`, `cosine`, `log-linear`, `polynomial`).
        schedule_kwargs: Keyword arguments of that schedule (e.g. `{"exponent": 2}` for `polynomial`).
        loss_weighting: `"elbo"` (NELBO weights -alpha'/(1-alpha), `exp(loss)` bounds perplexity) or `"uniform"`
            (plain masked cross-entropy).
        logits_shift: `0` when `logits[:, i]` predicts token i (MDLM, LLaDA); `1` when it predicts token i+1 (Dream,
            adapted causal LMs). The model's `logits[:, i]` always predict token i: with `1` they are read at the
            previous real token, and a row's first real token reads its own (padding changes nothing).
        is_causal: Run the stack with a causal mask. Only for checking an AR -> MDM conversion against its source.
        block_size: `None` (default): bidirectional attention over the whole sequence. An int B: a block-diffusion
            model (BD3-LM, SDAR, Fast-dLLM v2, LLaDA 2.x): the real tokens are cut into blocks of B (block =
            position // B, counting real tokens only), attention is bidirectional inside a block and causal across
            blocks, training noises every block at its own time given the clean earlier blocks, and `generate()`
            decodes block by block with an exact cache. B = 1 is an autoregressive model.
    """

    model_type = "mdm"
    # The Trainer drops these output keys from predictions: EvalPrediction.predictions is the logits, not (logits, t).
    keys_to_ignore_at_inference = ["t"]
    # `mask_token_id` is required, so `MDMConfig()` raises: transformers before 5.20 builds a default instance to diff
    # against unless told not to (5.20 dropped the flag, so it is inert there; see transformers_compat).
    has_no_defaults_at_init = True
    base_model_tp_plan = {
        "layers.*.self_attn.q_proj": "colwise",
        "layers.*.self_attn.k_proj": "colwise",
        "layers.*.self_attn.v_proj": "colwise",
        "layers.*.self_attn.o_proj": "rowwise",
        "layers.*.mlp.gate_proj": "colwise",
        "layers.*.mlp.up_proj": "colwise",
        "layers.*.mlp.down_proj": "rowwise",
    }
    base_model_pp_plan = {
        "embed_tokens": (["input_ids"], ["inputs_embeds"]),
        "layers": (["hidden_states", "attention_mask"], ["hidden_states"]),
        "norm": (["hidden_states"], ["hidden_states"]),
    }

    vocab_size: int = 32000
    hidden_size: int = 2048
    intermediate_size: int = 5632
    num_hidden_layers: int = 22
    num_attention_heads: int = 32
    num_key_value_heads: int | None = None
    head_dim: int | None = None
    hidden_act: str = "silu"
    max_position_embeddings: int = 2048
    initializer_range: float = 0.02
    rms_norm_eps: float = 1e-6
    rope_parameters: RopeParameters | dict | None = None
    attention_bias: bool = False
    qkv_bias: bool = False
    qk_norm: bool = False
    attention_dropout: float = 0.0
    mlp_bias: bool = False
    tie_word_embeddings: bool = False
    use_cache: bool = False
    mask_token_id: int | None = None
    pad_token_id: int | None = None
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None
    schedule: str = "linear"
    schedule_kwargs: dict | None = None
    loss_weighting: str = "elbo"
    logits_shift: int = 0
    is_causal: bool = False
    block_size: int | None = None

    def __post_init__(self, **kwargs):
        if self.head_dim is None:
            if self.num_attention_heads <= 0 or self.hidden_size % self.num_attention_heads:
                raise ValueError(
                    f"hidden_size ({self.hidden_size}) is not divisible by num_attention_heads "
                    f"({self.num_attention_heads}); choose sizes that divide, or set head_dim explicitly."
                )
            self.head_dim = self.hidden_size // self.num_attention_heads
        if self.num_key_value_heads is None:
            self.num_key_value_heads = self.num_attention_heads
        self.validate_diffusion_fields()
        super().__post_init__(**kwargs)

    def validate_diffusion_fields(self):
        """Raise a ValueError that names the fix for a bad [MASK] id, head layout or objective field."""
        check_mask_token_id(self)
        if self.head_dim <= 0:
            raise ValueError(f"head_dim must be positive, got {self.head_dim}; set head_dim or raise hidden_size.")
        if self.num_attention_heads % self.num_key_value_heads != 0:
            raise ValueError(
                f"num_attention_heads ({self.num_attention_heads}) must be a multiple of num_key_value_heads "
                f"({self.num_key_value_heads}) for grouped-query attention."
            )
        get_schedule(self.schedule, **(self.schedule_kwargs or {}))
        if self.loss_weighting not in ("elbo", "uniform"):
            raise ValueError(f"loss_weighting must be 'elbo' or 'uniform', got {self.loss_weighting!r}.")
        if self.logits_shift not in (0, 1):
            raise ValueError(f"logits_shift must be 0 or 1, got {self.logits_shift}.")
        if self.block_size is not None and self.block_size < 1:
            raise ValueError(
                f"block_size must be a positive number of tokens (or None for a bidirectional model), got "
                f"{self.block_size!r}."
            )
        if self.block_size is not None and self.is_causal:
            raise ValueError(
                "is_causal=True and block_size are two attention patterns; a causal model is block_size=1. Set one."
            )


__all__ = ["MDMConfig", "NoiseScheduleConfigMixin"]
