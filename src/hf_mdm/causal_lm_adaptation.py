"""AR -> MDM adaptation: turn a LLaMA-layout causal LM (Llama, Mistral, Qwen2, Qwen3) into an MDMForMaskedGeneration.

The weights are copied unchanged (the layer names are the same), attention becomes bidirectional and a [MASK] token is
added. The converted model keeps the causal LM's next-token alignment (`logits_shift=1`, as Dream does when it starts
from Qwen2.5): hidden state i still predicts token i + 1, and the head shifts it so that `logits[:, i]` predicts
token i. With `block_size=B` attention becomes block-causal instead (SDAR and Fast-dLLM v2 turn Qwen causal LMs into
block-diffusion models this way): with B = 1 the converted model computes exactly the source's logits, shifted.
A new [MASK] embedding row starts at the mean of the existing rows (transformers' mean resizing).
"""

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase
from transformers.utils import logging

from .configuration_mdm import MDMConfig


logger = logging.get_logger(__name__)

SUPPORTED_CAUSAL_LMS = ("llama", "mistral", "qwen2", "qwen3")


def mdm_config_from_causal(config, mask_token_id: int, logits_shift: int, block_size: int | None = None) -> MDMConfig:
    """MDMConfig with the causal LM's dimensions, RoPE and special ids, plus the [MASK] id (and `block_size`)."""
    model_type = config.model_type
    sliding_window = getattr(config, "sliding_window", None)
    if getattr(config, "use_sliding_window", sliding_window is not None) and sliding_window:
        logger.warning(
            f"The source {model_type} uses sliding-window attention ({sliding_window} tokens); the converted MDM "
            "attends to the whole sequence, which is the same only for sequences up to that window."
        )
    return MDMConfig(
        vocab_size=config.vocab_size,
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        num_key_value_heads=config.num_key_value_heads,
        head_dim=getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads,
        hidden_act=config.hidden_act,
        max_position_embeddings=config.max_position_embeddings,
        initializer_range=config.initializer_range,
        rms_norm_eps=config.rms_norm_eps,
        rope_parameters=dict(config.rope_parameters),
        attention_bias=bool(getattr(config, "attention_bias", False)) and model_type != "qwen2",
        qkv_bias=model_type == "qwen2",
        qk_norm=model_type == "qwen3",
        mlp_bias=bool(getattr(config, "mlp_bias", False)),
        tie_word_embeddings=bool(config.tie_word_embeddings),
        mask_token_id=mask_token_id,
        pad_token_id=config.pad_token_id,
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        logits_shift=logits_shift,
        block_size=block_size,
        dtype=config.dtype,
    )


def add_mask_token(
    causal_lm: PreTrainedModel, tokenizer: PreTrainedTokenizerBase | None, mask_token: str | None
) -> int:
    """Add `mask_token` to the tokenizer (when it has none) and make room for it in the embeddings; return its id."""
    if tokenizer is None:
        raise ValueError(
            "Adapting a causal LM needs its tokenizer, to add the [MASK] token: pass `tokenizer=` (or a path that "
            "holds one)."
        )
    if tokenizer.mask_token is not None:
        if mask_token is not None and mask_token != tokenizer.mask_token:
            raise ValueError(
                f"The tokenizer already has the mask token {tokenizer.mask_token!r}, which disagrees with "
                f"mask_token={mask_token!r}; drop the argument or pass the tokenizer's own mask token."
            )
    elif mask_token is None:
        raise ValueError(
            "The tokenizer has no mask token and none was given; pass one to be added, e.g. "
            "`from_causal_lm(path, mask_token='<|mask|>')`."
        )
    else:
        tokenizer.add_special_tokens({"mask_token": mask_token})
    mask_token_id = tokenizer.mask_token_id
    embeddings = causal_lm.get_input_embeddings()
    if mask_token_id >= embeddings.num_embeddings:
        causal_lm.resize_token_embeddings(len(tokenizer), mean_resizing=True)
    else:
        # The vocabulary had room (padded embedding matrix): start the unused row at the mean embedding too.
        with torch.no_grad():
            embeddings.weight[mask_token_id] = embeddings.weight.mean(dim=0)
    return mask_token_id


def adapt_causal_lm(
    model_cls,
    model_or_path: "PreTrainedModel | str",
    tokenizer: PreTrainedTokenizerBase | None = None,
    mask_token: str | None = None,
    logits_shift: int = 1,
    block_size: int | None = None,
    **from_pretrained_kwargs,
):
    """Build `model_cls` (MDMForMaskedGeneration) from a causal LM instance or path; see the module docstring."""
    if isinstance(model_or_path, str) or hasattr(model_or_path, "__fspath__"):
        if tokenizer is None:
            tokenizer = AutoTokenizer.from_pretrained(model_or_path)
        causal_lm = AutoModelForCausalLM.from_pretrained(model_or_path, **from_pretrained_kwargs)
    elif isinstance(model_or_path, PreTrainedModel):
        causal_lm = model_or_path
    else:
        raise TypeError(f"Expected a causal LM or a path to one, got {type(model_or_path).__name__}.")
    model_type = causal_lm.config.model_type
    if model_type not in SUPPORTED_CAUSAL_LMS:
        raise ValueError(
            f"Cannot adapt a {model_type!r} model: from_causal_lm maps the LLaMA layout of {SUPPORTED_CAUSAL_LMS}."
        )
    mask_token_id = add_mask_token(causal_lm, tokenizer, mask_token)
    config = mdm_config_from_causal(causal_lm.config, mask_token_id, logits_shift, block_size)
    model = model_cls(config).to(dtype=causal_lm.dtype)
    model.load_state_dict(causal_lm.state_dict(), strict=True)
    return model
