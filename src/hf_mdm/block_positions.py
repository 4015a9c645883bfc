"""Blocks of a block-diffusion model: which block each token belongs to.

A token's position is its index among its row's real tokens (the running count of a 2-D padding mask, minus one), so
left or right padding changes no token's block; its block is `position // block_size`. The model's block-causal
attention, the collator's per-block noise and the decoder's block plan all read blocks from here.
"""

import torch


PAD_BLOCK = -1


def block_ids(attention_mask: torch.Tensor | None, length: int, block_size: int, device=None) -> torch.LongTensor:
    """(B, length) block of every token, `PAD_BLOCK` at padding; (1, length) when `attention_mask` is None (every
    token real, positions 0..length-1). A 2-D mask must cover all `length` tokens (cached keys included)."""
    if attention_mask is None:
        return (torch.arange(length, device=device) // block_size).unsqueeze(0)
    if attention_mask.shape[-1] != length:
        raise ValueError(
            f"A block-diffusion model reads each token's block from the 2-D attention_mask, which covers "
            f"{attention_mask.shape[-1]} tokens, but the keys are {length} tokens (cached ones included); pass the "
            "padding mask of the whole sequence."
        )
    real = attention_mask.bool()
    positions = real.long().cumsum(1) - 1
    return torch.where(real, positions.div(block_size, rounding_mode="floor"), PAD_BLOCK)


__all__ = ["PAD_BLOCK", "block_ids"]
