"""DiffusionState: everything decoding carries from one reverse step to the next, for a batch of B rows.

The canvas is (B, L): the prompt, then `max_new_tokens` positions, [MASK] where still unknown. Blocks are decoded one
after the other. On a bidirectional model block k ends at the same canvas position for every row, and it starts at
the previous block's end, except block 0, which starts at each row's own first position to fill (its first prompt
[MASK], else the first generated position). On a block-causal model the blocks are the model's own, cut at each
row's real positions that are multiples of its block size, so left padding and mixed prompt lengths give every row
its own block start and end. The per-block tensors cover the window [min over the rows still decoding of the block
start, max of the block end); a row's own block is window columns [offsets[r], offsets[r] + widths[r]), so nothing
a row sees depends on its batch mates.
"""

from dataclasses import dataclass, field

import torch


@dataclass
class DiffusionState:
    r"""
    canvas, attention_mask, position_ids: (B, L). fill: (B, L) positions generate() fills (prompt [MASK] and the
    generated region, real tokens only). done: (B,) rows with nothing left to do. nfe: (B,) forwards per row.
    steps_per_block: (B, num_blocks) steps each row went through per block.

    Current block (set by `DiffusionSampler.begin_block` from its block plan): `block_index`, `block_starts` and
    `block_ends` (B,), the window [`window_start`, `block_end`) (the least start and the greatest end over the rows
    still decoding), `num_steps` K
    and `step` k (the step runs t_k -> t_{k+1}); `candidates` (B, W) and `scores` (B, W) from each row's last forward,
    `current_probs` (B, W) p(current token) at revealed positions (for strategies that edit), `stale` (B,) rows whose
    canvas changed since their last forward, `counts` (B, K) scheduled reveals, `reveal_steps` (B, W) each
    position's reveal step (strategies that draw them; K where nothing is revealed). `inside` (B, W): the window
    positions of each row's own block (real tokens only), fixed per block; `block_masked` (B, W): those still [MASK],
    kept current by `refresh()` after every change of the canvas; `active` (B,) rows still decoding the block;
    `complete_steps` (B,) steps each row took in the block that began with no [MASK] left in it, `revised` (B,)
    rows whose last step changed a token revealed before it (what a strategy's `continues_complete_block` reads).
    `non_finite` (B,): rows whose
    p(. | x_t) held NaN or inf in some forward (checked once, at the end of decoding). `model_order` (L,): the order
    in which the model sees the canvas columns when it differs from the canvas's (a prompt's trailing end marker
    moved after the generated region), else None.
    """

    canvas: torch.LongTensor
    attention_mask: torch.LongTensor
    position_ids: torch.LongTensor
    fill: torch.BoolTensor
    mask_token_id: int
    prompt_length: int
    done: torch.BoolTensor
    nfe: torch.LongTensor
    steps_per_block: torch.LongTensor
    model_order: torch.LongTensor | None = None
    block_index: int = -1
    block_starts: torch.LongTensor | None = None
    block_ends: torch.LongTensor | None = None
    block_end: int = 0
    window_start: int = 0
    num_steps: int = 0
    step: int = 0
    candidates: torch.LongTensor | None = None
    scores: torch.Tensor | None = None
    current_probs: torch.Tensor | None = None
    stale: torch.BoolTensor | None = None
    counts: torch.LongTensor | None = None
    reveal_steps: torch.LongTensor | None = None
    inside: torch.BoolTensor | None = None
    block_masked: torch.BoolTensor | None = None
    active: torch.BoolTensor | None = None
    complete_steps: torch.LongTensor | None = None
    revised: torch.BoolTensor | None = None
    positions: torch.LongTensor = field(init=False)
    non_finite: torch.BoolTensor = field(init=False)

    def __post_init__(self):
        self.positions = torch.arange(self.canvas.shape[1], device=self.canvas.device)
        self.non_finite = torch.zeros_like(self.done)

    @property
    def batch_size(self) -> int:
        return self.canvas.shape[0]

    @property
    def window(self) -> slice:
        return slice(self.window_start, self.block_end)

    @property
    def widths(self) -> torch.LongTensor:
        """(B,) each row's block width."""
        return self.block_ends - self.block_starts

    @property
    def offsets(self) -> torch.LongTensor:
        """(B,) each row's first block column inside the window."""
        return self.block_starts - self.window_start

    def refresh(self) -> None:
        """Recompute `block_masked` from the canvas (call after changing the canvas by hand)."""
        self.block_masked = (self.canvas[:, self.window] == self.mask_token_id) & self.inside

    def masked(self) -> torch.BoolTensor:
        """(B, W) positions of the row's block still holding [MASK]."""
        return self.block_masked

    def revealed(self) -> torch.BoolTensor:
        """(B, W) positions of the row's block that decoding filled and that no longer hold [MASK]."""
        return self.fill[:, self.window] & self.inside & ~self.block_masked


__all__ = ["DiffusionState"]
