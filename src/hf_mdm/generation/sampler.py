"""DiffusionSampler: the reverse process as a state machine, in the spirit of diffusers' schedulers.

`set_timesteps(steps, num_blocks)` fixes, once, how many steps each block gets and its grid t_k = 1 - k/K; the reveal
counts of a block come from the count rule when the block begins (`begin_block`). For a ranked strategy that never
revises, a step whose count is 0 changes nothing (no reveal, no forward), so each row's zero-count steps are dropped
there: the row runs its nonzero counts in order, and `steps` beyond the masked positions cost nothing. A strategy that
draws reveal steps (`random`) draws each masked position's step when the block begins, and `step` jumps to the next
step where some active row reveals a position: any budget costs one visit per reveal event.
Each reverse step t_k -> t_{k+1}:

1. `denoise_request(state)`: the rows whose canvas changed since their last forward and the window columns they
   need scored (exact reuse: the other rows keep their candidates and spend no forward);
2. the caller runs the denoiser on those rows and columns (the model call and the cache sit outside the sampler);
3. `step(state, logits, rows, columns)`: candidates x̂ ~ p(. | x_t) after the logits processors (argmax when not
   sampling) and the strategy's scores for the rows that ran; the strategy picks positions to reveal (and, for
   strategies that revise, revealed positions to remask or edit); the canvas is updated; rows that revealed EOS and
   everything before it finish, their [MASK] after EOS become pad.

`generate()` is this loop; a user can drive it by hand for research (docs/generation.md).
"""

import torch

from .sampling import RowRandomness, sample_categorical
from .state import DiffusionState
from .strategies import RevealStep


def skip_empty_steps(counts: torch.LongTensor) -> torch.LongTensor:
    """(B, K) reveal counts -> (B, K') with each row's nonzero counts first, in order, K' = the most nonzero counts
    of any row (at least 1). Exact for ranked strategies that never revise: a step that reveals nothing is a no-op."""
    nonzero = counts > 0
    order = (~nonzero).long().argsort(dim=1, stable=True)
    kept = max(int(nonzero.sum(1).max()) if counts.numel() else 0, 1)
    return counts.gather(1, order)[:, :kept]


class DiffusionSampler:
    """One decoding run's strategy, count rule, schedule, logits processors, randomness and stopping tokens."""

    def __init__(self, strategy, count_rule, schedule, processors, randomness: RowRandomness, do_sample: bool,
                 eos: torch.LongTensor | None = None, pad_token_id: int | None = None):  # fmt: skip
        self.strategy, self.count_rule, self.schedule = strategy, count_rule, schedule
        self.processors, self.randomness, self.do_sample = processors, randomness, do_sample
        self.eos, self.pad_token_id = eos, pad_token_id
        self.block_ends: list[int] = []
        self.block_steps: list[int] = []

    def set_timesteps(self, steps: int, block_ends: list[int]) -> None:
        """Split `steps` over the blocks (the first `steps mod num_blocks` blocks get one more)."""
        base, extra = divmod(steps, len(block_ends))
        self.block_ends = list(block_ends)
        self.block_steps = [base + (index < extra) for index in range(len(block_ends))]

    @staticmethod
    def timesteps(step: int, num_steps: int) -> tuple[float, float]:
        """(t, s) of step k of K: t = 1 - k/K, s = 1 - (k+1)/K."""
        return max(1.0 - step / num_steps, 0.0), max(1.0 - (step + 1) / num_steps, 0.0)

    def begin_block(self, state: DiffusionState, index: int, first_starts: torch.LongTensor) -> None:
        """Enter block `index`: its per-row span, an empty set of candidates, every row stale, the reveal counts."""
        end = self.block_ends[index]
        previous_end = self.block_ends[index - 1] if index > 0 else None
        starts = first_starts.clamp(max=end) if index == 0 else torch.full_like(first_starts, previous_end)
        state.enter_block(index, starts, end)
        state.num_steps, state.step = self.block_steps[index], 0
        width = state.block_end - state.window_start
        state.candidates = state.canvas.new_zeros((state.batch_size, width))
        state.scores = torch.zeros((state.batch_size, width), device=state.canvas.device)
        state.current_probs = torch.ones_like(state.scores)
        state.stale = torch.ones_like(state.done)
        masked = state.masked()
        state.counts = state.reveal_steps = None
        if self.strategy.draws_reveal_steps:
            rows = (~state.done & masked.any(1)).nonzero().squeeze(1)
            uniform = self.randomness.rand_right_aligned(rows, state.widths[rows], width, masked.device)
            state.reveal_steps = torch.full_like(state.candidates, state.num_steps)
            state.reveal_steps[rows] = self.strategy.reveal_steps(uniform, state.num_steps)
        if self.strategy.uses_counts:
            state.counts = self.count_rule(masked.sum(1), state.num_steps, self.schedule)
            if not self.strategy.revises:
                state.counts = skip_empty_steps(state.counts)
                state.num_steps = state.counts.shape[1]
        self.update_active(state)

    def active_rows(self, state: DiffusionState) -> torch.BoolTensor:
        """(B,) rows still decoding this block, as of the last `begin_block` / `step`."""
        return state.active

    def update_active(self, state: DiffusionState) -> None:
        """Rows still decoding: some [MASK] left, or (revising strategies) steps left; once per step."""
        busy = state.masked().any(1)
        if self.strategy.revises:
            busy |= state.step < state.num_steps
        state.active = ~state.done & busy

    def denoise_request(self, state: DiffusionState) -> tuple[torch.LongTensor, torch.LongTensor]:
        """(rows, columns): batch rows to run and the window columns some of them need scored."""
        scored = state.masked()
        if self.strategy.scores_revealed:
            scored = scored | state.revealed()  # not in place: masked() is the state's own tensor
        need = (self.active_rows(state) & state.stale & scored.any(1)).nonzero().squeeze(1)
        return need, scored[need].any(0).nonzero().squeeze(1)

    def propose(self, state: DiffusionState, logits: torch.Tensor, rows, columns) -> None:
        """Candidates, scores (and current-token probabilities) of rows `rows` at window `columns` from `logits`."""
        num_rows, width, vocab = logits.shape
        logits = logits.float()
        logits[..., state.mask_token_id] = float("-inf")
        if len(self.processors) > 0:
            row_ids = state.canvas[rows].unsqueeze(1).expand(-1, width, -1).reshape(num_rows * width, -1)
            processed = self.processors(row_ids, logits.reshape(num_rows * width, vocab))
            if processed.shape != (num_rows * width, vocab):
                raise ValueError(
                    f"A logits processor returned shape {tuple(processed.shape)}; it must return the scores it got, "
                    f"shape {(num_rows * width, vocab)} (one row per scored position)."
                )
            logits = processed.view(num_rows, width, vocab)
        # NaN anywhere, +inf, or every token removed: a non-finite maximum (one read, no copy). Flagged without a sync
        # and refused by generate() once at the end; until then such positions take a placeholder token and the
        # lowest score, so that every strategy still terminates.
        bad = ~torch.isfinite(logits.amax(-1))
        state.non_finite[rows] |= bad.any(-1)
        probs = logits.softmax(-1)  # once per forward, shared by sampling and the strategy's score
        if self.do_sample:
            # noise for the row's whole block, so that its draws do not depend on which columns its mates need
            window = state.block_end - state.window_start
            noise = self.randomness.rand_right_aligned(rows, state.widths[rows], window, logits.device)
            candidates = sample_categorical(probs, noise[:, columns])
        else:
            candidates = probs.argmax(-1)
        candidates = candidates.masked_fill(bad, (state.mask_token_id + 1) % vocab)
        state.candidates[rows[:, None], columns] = candidates
        scores = self.strategy.score(probs, candidates)
        if scores is not None:
            state.scores[rows[:, None], columns] = scores.float().masked_fill(bad, float("-inf"))
        if self.strategy.scores_revealed:
            current = state.canvas[rows][:, state.window_start + columns]
            state.current_probs[rows[:, None], columns] = probs.gather(-1, current.unsqueeze(-1)).squeeze(-1)
        state.nfe[rows] += 1
        state.stale[rows] = False

    def step(self, state: DiffusionState, logits: torch.Tensor | None, rows, columns) -> None:
        """One reverse step t_k -> t_{k+1} for every active row (see the module docstring)."""
        if rows.numel() > 0:
            self.propose(state, logits, rows, columns)
        active = self.active_rows(state).nonzero().squeeze(1)
        if state.reveal_steps is not None:
            state.step = self.next_reveal_step(state)
        if state.step >= state.num_steps and self.strategy.fixed_steps and active.numel() > 0:
            raise RuntimeError(
                f"Strategy {self.strategy.name!r} left [MASK] tokens after the last step of a block; a strategy must "
                "reveal every masked position by s = 0 (or set `fixed_steps = False`)."
            )
        t, s = self.timesteps(state.step, state.num_steps)
        pick = slice(None) if active.numel() == state.batch_size else active  # views when every row is active
        masked = state.masked()[pick]
        revealed = state.revealed()[pick] if self.strategy.revises else None
        view = RevealStep(
            masked=masked,
            scores=state.scores[pick],
            counts=state.counts[pick, state.step] if state.counts is not None else None,
            t=t,
            s=s,
            rows=active,
            randomness=self.randomness,
            widths=state.widths[pick],
            revealed=revealed,
            candidates=state.candidates[pick],
            current_probs=state.current_probs[pick] if self.strategy.scores_revealed else None,
            index=state.step,
            reveal_steps=state.reveal_steps[pick] if state.reveal_steps is not None else None,
        )
        window = state.canvas[pick, state.window]
        reveal = self.strategy.select(view) & masked
        updated = torch.where(reveal, view.candidates, window)
        if self.strategy.revises:
            remask, edit = self.strategy.revise(view)
            updated = torch.where(edit & revealed, view.candidates, updated)
            updated = updated.masked_fill(remask & revealed, state.mask_token_id)
        changed = torch.zeros_like(state.done)
        changed[pick] = (updated != window).any(1)  # before the write below: `window` may be a view of the canvas
        state.canvas[pick, state.window] = updated
        state.refresh()
        state.stale |= changed
        # a row's steps: those it went through, or (drawn reveal steps) those where it revealed a position
        state.steps_per_block[pick, state.block_index] += reveal.any(1) if state.reveal_steps is not None else 1
        state.step += 1
        self.finish_rows(state)
        self.update_active(state)

    @staticmethod
    def next_reveal_step(state: DiffusionState) -> int:
        """The first step, from the current one on, at which an active row reveals one of its masked positions."""
        pending = state.masked() & state.active[:, None]
        upcoming = state.reveal_steps.masked_fill(~pending, state.num_steps)
        return max(state.step, int(upcoming.min())) if upcoming.numel() else state.num_steps

    def finish_rows(self, state: DiffusionState) -> None:
        """Rows with nothing left to fill, or that revealed EOS and everything before it (then pad after EOS)."""
        canvas, length, positions = state.canvas, state.canvas.shape[1], state.positions
        still_masked = (canvas == state.mask_token_id) & state.fill
        first_masked = torch.where(still_masked, positions, length).min(1).values
        complete = first_masked == length
        if self.strategy.revises and state.step < state.num_steps:
            complete = torch.zeros_like(complete)  # a revising strategy uses the block's remaining steps
        finished = state.done | complete
        if self.eos is not None:
            first_eos = torch.where(torch.isin(canvas, self.eos) & state.fill, positions, length).min(1).values
            stopped = ~state.done & (first_eos < first_masked)
            # No host sync on stopped.any(): filling an all-false mask is a no-op.
            after_eos = state.fill & stopped[:, None] & (positions[None, :] > first_eos[:, None])
            canvas.masked_fill_(after_eos, self.pad_token_id)
            state.refresh()
            finished |= stopped
        state.done = finished


__all__ = ["DiffusionSampler"]
