"""The inputs and attention pattern of a diffusion LM's forward, shared by every hf-mdm stack (`MDMModel`,
`DiTModel`, `LLaDA2MoeModel`, SDAR's Qwen3 stack; `diffusion_stack_inputs` prepares them all at once).

* bidirectional: every position sees every real (non-pad) position;
* block-causal (`config.block_size = B`): a token sees the real tokens of its own block and of earlier ones, blocks
  numbered from the 2-D padding mask (`block_positions`), which then covers the cached keys too;
* causal (`config.is_causal`, a switch for checking an AR -> MDM conversion only);
* BD3-LM's training layout: one forward over [x_t ; x_0] (`noisy_and_clean_inputs`).
"""

import torch

from .block_positions import block_ids
from .masked_diffusion_objective import check_token_id_dtype
from .transformers_compat import bidirectional_mask, block_causal_mask, block_diffusion_mask, causal_mask


def diffusion_attention_mask(config, inputs_embeds, attention_mask, cache, position_ids, past_seen: int):
    """The backend's mask for `inputs_embeds` after `past_seen` cached keys: bidirectional over real tokens,
    block-causal with `config.block_size`, causal with `config.is_causal`. A 4-D mask is kept as given."""
    if config.block_size is not None and (attention_mask is None or attention_mask.dim() == 2):
        batch_size, keys = inputs_embeds.shape[0], past_seen + inputs_embeds.shape[1]
        blocks = block_ids(attention_mask, keys, config.block_size, inputs_embeds.device).expand(batch_size, -1)
        return block_causal_mask(config, inputs_embeds, attention_mask, cache, blocks)
    if getattr(config, "is_causal", False):
        return causal_mask(config, inputs_embeds, attention_mask, cache, position_ids)
    return bidirectional_mask(config, inputs_embeds, attention_mask, cache)


def diffusion_stack_inputs(config, embed, input_ids, inputs_embeds, attention_mask, position_ids, cache,
                           clean_input_ids):  # fmt: skip
    """(embeddings, backend mask, positions) of a stack's forward: `embed(input_ids)` (or `inputs_embeds`, exactly
    one of the two), positions `past_seen..past_seen + T - 1` after the cache's keys when not given, then the
    BD3-LM training layout with `clean_input_ids`, else `diffusion_attention_mask`. Refuses an empty sequence and
    positions beyond `config.max_position_embeddings` (counted on Python ints; given `position_ids` are read, with a
    device sync, only when the columns alone exceed it: padding columns hold no position)."""
    if (input_ids is None) == (inputs_embeds is None):
        raise ValueError("Pass exactly one of `input_ids` or `inputs_embeds`.")
    if inputs_embeds is None:
        check_token_id_dtype("input_ids", input_ids)
        inputs_embeds = embed(input_ids)
    length = inputs_embeds.shape[1]
    if length == 0:
        raise ValueError("The model got an empty sequence (length 0); pass at least one token per row.")
    past_seen = cache.get_seq_length() if cache is not None else 0
    longest = past_seen + length
    if position_ids is None:
        position_ids = torch.arange(past_seen, longest, device=inputs_embeds.device).unsqueeze(0)
    elif longest > config.max_position_embeddings:
        longest = int(position_ids.max()) + 1
    if longest > config.max_position_embeddings:
        raise ValueError(
            f"The sequence has {longest} positions but the model was built for "
            f"max_position_embeddings={config.max_position_embeddings}. Truncate the input (e.g. "
            "tokenizer(..., truncation=True, max_length=...)) or build the model with a larger "
            "max_position_embeddings."
        )
    if clean_input_ids is not None:
        return noisy_and_clean_inputs(
            config, inputs_embeds, clean_input_ids, embed, attention_mask, position_ids, cache
        )
    mask = diffusion_attention_mask(config, inputs_embeds, attention_mask, cache, position_ids, past_seen)
    return inputs_embeds, mask, position_ids


def noisy_and_clean_inputs(config, inputs_embeds, clean_input_ids, embed, attention_mask, position_ids, cache):
    """(embeddings, backend mask, positions) of [x_t ; x_0] for BD3-LM's training forward: 2T columns, both halves
    with the same positions and padding, a noisy block seeing itself and the clean earlier blocks. `embed` maps ids to
    embeddings; refuses a bidirectional model, a cache, a 4-D mask and clean ids of another shape."""
    if config.block_size is None:
        raise ValueError(
            "clean_input_ids is the training forward of a block-diffusion model, and this model is bidirectional "
            "(config.block_size is None); drop clean_input_ids, or build the model with block_size=B."
        )
    if cache is not None:
        raise ValueError("The block-diffusion training forward (clean_input_ids) reads no cache; drop `cache`.")
    if attention_mask is not None and attention_mask.dim() != 2:
        raise ValueError(
            "The block-diffusion training forward numbers the blocks from the 2-D padding mask; pass that mask, "
            "not a prepared 4-D one."
        )
    check_token_id_dtype("clean_input_ids", clean_input_ids)
    batch_size, length = inputs_embeds.shape[:2]
    if tuple(clean_input_ids.shape) != (batch_size, length):
        raise ValueError(
            f"clean_input_ids have shape {tuple(clean_input_ids.shape)} but the noisy input is "
            f"{(batch_size, length)}; give the clean token at every position of the noisy one."
        )
    blocks = block_ids(attention_mask, length, config.block_size, inputs_embeds.device)
    both_blocks = blocks.expand(batch_size, -1).repeat(1, 2)
    embeddings = torch.cat([inputs_embeds, embed(clean_input_ids)], dim=1)
    padding = attention_mask.repeat(1, 2) if attention_mask is not None else None
    mask = block_diffusion_mask(config, embeddings, padding, both_blocks, length)
    return embeddings, mask, position_ids.expand(batch_size, -1).repeat(1, 2)


__all__ = ["diffusion_attention_mask", "diffusion_stack_inputs", "noisy_and_clean_inputs"]
