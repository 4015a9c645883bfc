"""Where a shifted model's prediction of each token sits (`logits_shift=1`: Dream, adapted causal LMs).

Such a model predicts token i from the hidden state of the token before it. Padding is not a token: the prediction
of token i sits at the previous *real* position p(i) = max{j < i : mask_j = 1}, and a row's first real token, which
has none, reads its own hidden state (as position 0 of an unpadded row does). Reading position i - 1 instead would
make the first real token of a left-padded row read a pad's hidden state, so a padded row would decode differently
from the same row alone.
"""

import torch


def previous_real_positions(attention_mask: torch.Tensor | None, positions: torch.LongTensor) -> torch.LongTensor:
    """(B, K) absolute position of the hidden state that predicts each token at `positions`.

    attention_mask: (B, T) 1 for real tokens, over the whole sequence, or None (every token real; then the result has
    one row, which broadcasts). positions: absolute positions in [0, T), (K,) for every row or (B, K) per row.
    """
    if attention_mask is None:
        return (positions - 1).clamp(min=0).reshape(-1, positions.shape[-1])
    index = torch.arange(attention_mask.shape[1], device=attention_mask.device)
    # last_real[:, j] = the last real position <= j (-1 if none), a running maximum over the row
    last_real = torch.where(attention_mask.bool(), index, -1).cummax(dim=1).values
    before = torch.cat([last_real.new_full((last_real.shape[0], 1), -1), last_real[:, :-1]], dim=1)
    positions = positions.expand(before.shape[0], -1)
    before = before.gather(1, positions)
    return torch.where(before >= 0, before, positions)


__all__ = ["previous_real_positions"]
