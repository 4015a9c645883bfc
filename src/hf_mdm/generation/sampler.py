"""DiffusionSampler: the reverse process as a state machine, in the spirit of diffusers' schedulers.

Built from a generation config (`DiffusionSampler.from_config`), it owns the decoding plan of a run:

* `prepare(input_ids, ...)` builds the canvas (the prompt, then `max_new_tokens` [MASK]) and calls `set_timesteps`,
  which fixes the per-row block plan and the time grid (`blocks`, `timesteps`): the blocks (`block_plan`: on a
  bidirectional model they end at the same canvas position for every row and block 0 starts at the row's own first
  position to fill; on a block-causal model they are the model's blocks, with each row's own start and end), each
  block's share of the budget, and block k's step j running t_j = 1 - j/K -> t_{j+1}. The budget is
  `steps_per_block` steps per block, or `steps` split over the blocks (the first `steps mod num_blocks` get one
  more); unset, one step per position to fill (on a block-causal model: `block_size` steps per block).
* `begin_block(state, block)` enters a block: the window, the strategy's plan of the block (its reveal counts, or
  its drawn reveal steps), and the cache's refresh.
* `model_request(state)` builds the next forward's `DenoiseRequest`: the rows whose canvas changed since their last
  forward and the window columns they need scored (exact reuse: the other rows keep their candidates and spend no
  forward); None when no row needs one. The caller runs the denoiser (or the model) on it.
* `step(state, logits, request)`: candidates x̂ ~ p(. | x_t) after the logits processors (argmax when not sampling)
  and the strategy's scores for the rows that ran; the strategy picks positions to reveal (and, if it revises,
  revealed positions to remask or edit); the canvas is updated; rows that revealed EOS and everything before it
  finish, their [MASK] after EOS become pad (a row stops at the first block holding its EOS and costs no forward
  after it; under a strategy that `finishes_block_at_eos`, once that block is done). A row keeps decoding a block
  with no [MASK] left while the strategy's `continues_complete_block` says so (a revising strategy's remaining
  steps, `threshold_editing`'s editing steps). Returns a `DiffusionSamplerOutput`.

For a ranked strategy that never revises, a step whose count is 0 changes nothing (no reveal, no forward), so each
row's zero-count steps are dropped when the block begins: `steps` beyond the masked positions cost nothing. A strategy
that draws reveal steps (`random`) draws each masked position's step when the block begins, and `step` jumps to the
next step where some active row reveals a position: any budget costs one visit per reveal event.

`generate()` is this loop; a user can drive it by hand for research (examples/drive_sampler_by_hand.py).
"""

import copy

import torch
from transformers import (
    LogitsProcessorList,
    SuppressTokensLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)
from transformers.utils import logging

from ..schedules import get_schedule
from .block_plan import BlockPlan, model_block_spans, semi_autoregressive_spans
from .caches import CACHES, BlockCache
from .configuration import DiffusionGenerationConfig, check_block_length, check_one_budget
from .denoisers import DenoiseRequest
from .outputs import DiffusionSamplerOutput
from .reveal_counts import get_reveal_count_rule
from .sampling import RowRandomness, sample_categorical
from .state import DiffusionState
from .strategies import MAX_STEPS_PER_POSITION, STRATEGIES, RevealStep, get_strategy


logger = logging.get_logger(__name__)


def skip_empty_steps(counts: torch.LongTensor) -> torch.LongTensor:
    """(B, K) reveal counts -> (B, K') with each row's nonzero counts first, in order, K' = the most nonzero counts
    of any row (at least 1). Exact for ranked strategies that never revise: a step that reveals nothing is a no-op."""
    nonzero = counts > 0
    order = (~nonzero).long().argsort(dim=1, stable=True)
    kept = max(int(nonzero.sum(1).max()) if counts.numel() else 0, 1)
    return counts.gather(1, order)[:, :kept]


class DiffusionSampler:
    """One decoding run's strategy, count rule, schedule, block cache, logits processors, randomness, stopping tokens
    and plan (`blocks`, after `set_timesteps`). `block_size`: the block size of a block-causal model (its blocks are
    the plan's), None for a bidirectional one."""

    def __init__(self, strategy, count_rule, schedule, cache: BlockCache | None = None,
                 processors: LogitsProcessorList | None = None, do_sample: bool = False, generator=None,
                 eos: torch.LongTensor | None = None, pad_token_id: int | None = None,
                 mask_token_id: int | None = None, steps: int | None = None, block_length: int | None = None,
                 num_return_sequences: int = 1, steps_per_block: int | None = None,
                 block_size: int | None = None, time_conditioned: bool = False):  # fmt: skip
        self.strategy, self.count_rule, self.schedule = strategy, count_rule, schedule
        self.cache = cache if cache is not None else CACHES.build("exact" if block_size else "none")
        self.processors = processors if processors is not None else LogitsProcessorList()
        self.do_sample, self.generator = do_sample, generator
        self.eos, self.pad_token_id, self.mask_token_id = eos, pad_token_id, mask_token_id
        self.steps, self.block_length, self.num_return_sequences = steps, block_length, num_return_sequences
        self.steps_per_block, self.block_size = steps_per_block, block_size
        self.time_conditioned = time_conditioned
        self.randomness: RowRandomness | None = None  # per batch row: set by `prepare`
        self.blocks: list[BlockPlan] = []
        check_model_blocks(block_size, block_length, steps, steps_per_block)
        self.cache.check_attention(block_size)
        self.strategy.check_cache(self.cache)

    @classmethod
    def from_config(cls, config: DiffusionGenerationConfig, *, mask_token_id: int | None = None, schedule=None,
                    logits_processor=None, generator=None, device=None, block_size: int | None = None,
                    time_conditioned: bool = False) -> "DiffusionSampler":  # fmt: skip
        """The sampler a (resolved) generation config describes. `schedule`: the noise schedule when the config names
        none (generate() passes the model's training schedule; default linear). `logits_processor`: the caller's
        processors, run after `suppress_tokens` and before the sampling warpers. `block_size`: the model's, when it
        is block-causal (`MDMConfig(block_size=B)`): the plan decodes the model's blocks and the cache defaults to
        `"exact"`. `time_conditioned`: the model's logits depend on the step's time (SEDD): every step runs a forward
        at its own t instead of reusing the logits of an unchanged canvas."""
        if not isinstance(config, DiffusionGenerationConfig):
            raise TypeError(
                f"DiffusionSampler.from_config needs a DiffusionGenerationConfig, got {type(config).__name__}; build "
                "one with DiffusionGenerationConfig(steps=..., strategy=..., mask_token_id=...)."
            )
        config = copy.deepcopy(config)
        config.update(**DiffusionGenerationConfig.diffusion_defaults(block_size), defaults_only=True)
        if config.schedule is not None or schedule is None:
            schedule = get_schedule(config.schedule or "linear", **(config.schedule_kwargs or {}))
        mask_token_id = config.mask_token_id if mask_token_id is None else mask_token_id
        if mask_token_id is None:
            raise ValueError("No [MASK] token id: set `mask_token_id` in the generation config.")
        STRATEGIES.check(config.strategy)
        strategy = get_strategy(config.strategy, schedule=schedule, **config.strategy_arguments())
        eos, pad_token_id = resolve_eos_and_pad(config, device, mask_token_id)
        return cls(
            strategy,
            get_reveal_count_rule(config.reveal_counts, **(config.reveal_counts_kwargs or {})),
            schedule,
            cache=CACHES.build(config.cache),
            processors=logits_processors(config, logits_processor, device),
            do_sample=config.do_sample,
            generator=generator,
            eos=eos,
            pad_token_id=pad_token_id,
            mask_token_id=mask_token_id,
            steps=config.steps,
            block_length=config.block_length,
            num_return_sequences=config.num_return_sequences,
            steps_per_block=config.steps_per_block,
            block_size=block_size,
            time_conditioned=time_conditioned,
        )

    def prepare(self, input_ids, attention_mask=None, max_new_tokens: int = 0, model_order=None) -> DiffusionState:
        """The decoding state of a left-padded (batch, prompt) `input_ids`: each row repeated `num_return_sequences`
        times, then `max_new_tokens` [MASK]; every [MASK] of a real token is filled. Sets the plan (`set_timesteps`),
        the randomness and an empty cache. `model_order`: the column order in which the model sees the canvas, if
        not its own."""
        check_prompt(input_ids, attention_mask, max_new_tokens)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if self.num_return_sequences > 1:
            input_ids = input_ids.repeat_interleave(self.num_return_sequences, dim=0)
            attention_mask = attention_mask.repeat_interleave(self.num_return_sequences, dim=0)
        rows, prompt_length = input_ids.shape
        canvas = torch.cat([input_ids, input_ids.new_full((rows, max_new_tokens), self.mask_token_id)], 1)
        attention_mask = torch.cat([attention_mask, attention_mask.new_ones((rows, max_new_tokens))], 1)
        fill = (canvas == self.mask_token_id) & attention_mask.bool()
        self.set_timesteps(self.steps, fill, prompt_length, attention_mask)
        self.randomness = RowRandomness(self.generator, rows)
        self.cache.reset()
        return DiffusionState(
            canvas=canvas,
            attention_mask=attention_mask,
            position_ids=(attention_mask.cumsum(1) - 1).clamp(min=0),
            fill=fill,
            mask_token_id=self.mask_token_id,
            prompt_length=prompt_length,
            done=~fill.any(1),
            nfe=canvas.new_zeros(rows),
            steps_per_block=canvas.new_zeros((rows, len(self.blocks))),
            model_order=model_order,
        )

    def check_model_order(self, model_order, sep_token_id) -> None:
        """Refuse, before `prepare`, a canvas the model would see in another column order (`model_order`: a prompt's
        trailing end marker moved after the generated region) when a block-causal model or the cache cannot."""
        if self.block_size is not None and model_order is not None:
            raise ValueError(
                f"The prompts end with the tokenizer's end marker (sep_token_id={sep_token_id}), which a "
                "bidirectional model sees after the generated region; a block-causal model (block_size="
                f"{self.block_size}) decodes left to right. Tokenize without the end marker "
                "(add_special_tokens=False)."
            )
        self.cache.check_model_order(model_order, sep_token_id)

    def set_timesteps(self, steps: int | None, fill: torch.BoolTensor, prompt_length: int,
                      attention_mask: torch.Tensor | None = None) -> None:  # fmt: skip
        """The plan of a canvas whose positions to fill are `fill` (B, L) after a `prompt_length` prompt, padded as
        `attention_mask` (B, L) says: its blocks (`block_plan`) and their share of the budget (`steps_per_block`,
        else `steps`, default one per position to fill of the fullest row; on a block-causal model `block_size` per
        block). Refuses, before any forward, a plan a row could not run: blocks that do not tile the region, fewer
        steps than blocks, a total `steps` that the rows of a block-causal model would split over different numbers
        of blocks, or (judged per row, so a batch is refused exactly when one of its rows would be alone) more steps
        than the strategy may pay for."""
        length = fill.shape[1]
        counts = None  # a block-causal model's rows: their numbers of blocks
        if self.block_size is None:
            check_block_length(self.block_length, length - prompt_length)
            spans = semi_autoregressive_spans(fill, prompt_length, self.block_length)
        else:
            if attention_mask is None:
                attention_mask = torch.ones_like(fill, dtype=torch.long)
            spans, counts = model_block_spans(fill, attention_mask, self.block_size)
            counts = counts[fill.any(1)]
        shares = self.block_steps(steps, fill, counts, len(spans))
        self.blocks = [
            BlockPlan(index, starts, ends, int(ends.max()) if ends.numel() else length, num_steps)
            for index, ((starts, ends), num_steps) in enumerate(zip(spans, shares))
        ]

    def block_steps(self, steps: int | None, fill: torch.BoolTensor, counts: torch.LongTensor | None,
                    num_blocks: int) -> list[int]:  # fmt: skip
        """Each block's number of steps in a plan of `num_blocks` blocks, for rows that fill `fill.sum(1)` positions
        (on a block-causal model the rows with something to fill hold `counts` blocks); refuses a budget no row could
        run (`set_timesteps`)."""
        to_fill = fill.sum(1)
        to_fill = to_fill[to_fill > 0]
        fewest = int(to_fill.min()) if to_fill.numel() else None
        if self.steps_per_block is not None:
            if self.block_size is not None:
                most = self.strategy.max_steps(self.block_size, 1)
                rows = f"a block of block_size={self.block_size} positions"
            else:
                total = self.strategy.max_steps(fewest, num_blocks) if fewest is not None else None
                most = total // num_blocks if total is not None else None
                rows = f"a row that fills {fewest} positions in {num_blocks} blocks"
            self.check_budget("steps_per_block", self.steps_per_block, most, rows, "positions of a block")
            return [self.steps_per_block] * num_blocks
        if steps is None and self.block_size is not None:
            return [self.block_size] * num_blocks  # one step per position of a full block
        if steps is None:
            steps = max(int(fill.sum(1).max()) if fill.shape[0] else 0, 1)
        if counts is not None and counts.numel() and int(counts.min()) != int(counts.max()):
            raise ValueError(
                f"steps={steps} is a budget for the whole canvas, but on this block-causal model (block_size="
                f"{self.block_size}) the rows hold from {int(counts.min())} to {int(counts.max())} blocks (their "
                "prompt lengths differ modulo the block size), so each row would split it differently, and decode "
                "differently alone and in this batch. Pass steps_per_block instead (every block of every row gets "
                "that many steps)."
            )
        if steps < num_blocks:
            raise ValueError(
                f"steps={steps} is fewer than the {num_blocks} blocks; every block needs at least one step. Raise "
                "`steps` or `block_length`, or pass steps_per_block."
            )
        most = self.strategy.max_steps(fewest, num_blocks) if fewest is not None else None
        self.check_budget("steps", steps, most, f"a row that fills {fewest} positions", "positions")
        base, extra = divmod(steps, num_blocks)
        return [base + (index < extra) for index in range(num_blocks)]

    def check_budget(self, name: str, value: int, most: int | None, rows: str, one_each: str) -> None:
        """Refuse a budget above `most`, the steps the strategy may pay for on `rows`."""
        if most is not None and value > most:
            raise ValueError(
                f"{name}={value} is more than strategy {self.strategy.name!r} runs for {rows} (at most {most} here, "
                f"{MAX_STEPS_PER_POSITION} per position): it pays for each step (a ranked strategy's count rule, a "
                f"revising strategy's forward). Pass {name} <= {most} ({name} = the number of {one_each} decodes "
                "one token per step), or use the 'random' strategy, which costs nothing per step."
            )

    @staticmethod
    def timesteps(step: int, num_steps: int) -> tuple[float, float]:
        """(t, s) of step k of K: t = 1 - k/K, s = 1 - (k+1)/K."""
        return max(1.0 - step / num_steps, 0.0), max(1.0 - (step + 1) / num_steps, 0.0)

    def begin_block(self, state: DiffusionState, block: BlockPlan) -> None:
        """Enter `block`: its per-row spans and the window over every row still decoding, an empty set of candidates,
        every row stale, the strategy's plan (reveal counts or reveal steps), the cache's refresh."""
        state.block_index, state.block_starts, state.block_ends = block.index, block.starts, block.ends
        live = ~state.done
        if bool(live.any()):
            state.window_start, state.block_end = int(block.starts[live].min()), int(block.ends[live].max())
        else:
            state.window_start = state.block_end = block.end
        columns = state.positions[state.window][None, :]
        inside = (columns >= block.starts[:, None]) & (columns < block.ends[:, None])
        state.inside = inside & state.attention_mask[:, state.window].bool()
        state.refresh()
        state.num_steps, state.step = block.num_steps, 0
        width = state.block_end - state.window_start
        state.candidates = state.canvas.new_zeros((state.batch_size, width))
        state.scores = torch.zeros((state.batch_size, width), device=state.canvas.device)
        state.current_probs = torch.ones_like(state.scores)
        state.stale = torch.ones_like(state.done)
        state.complete_steps = torch.zeros_like(state.nfe)
        state.revised = torch.zeros_like(state.done)
        state.reveal_steps = self.strategy.plan_reveal_steps(state, self.randomness)
        state.counts = self.strategy.plan_counts(
            state.masked().sum(1), state.num_steps, self.count_rule, skip_empty_steps
        )
        if state.counts is not None:
            state.num_steps = state.counts.shape[1]
        self.cache.begin_block()
        self.update_active(state)

    def is_running(self, state: DiffusionState) -> bool:
        """Whether some row still decodes the current block."""
        return bool(state.active.any())

    def update_active(self, state: DiffusionState) -> None:
        """Rows still decoding: some [MASK] left, or steps left that the strategy uses; once per step."""
        busy = state.masked().any(1) | self.strategy.continues_complete_block(state)
        state.active = ~state.done & busy

    def model_request(self, state: DiffusionState) -> DenoiseRequest | None:
        """The next forward: the active rows whose canvas changed since their last forward and that have positions
        to score, at the window columns some of them need (None when no row needs a forward)."""
        check_in_block(state)
        scored = self.strategy.positions_to_score(state)
        needed = state.active & state.stale & scored.any(1)
        t = None  # the time of the step this forward serves: only a time-conditioned model reads it
        if self.time_conditioned:
            step = state.step
            if state.reveal_steps is not None:
                # drawn reveal steps: a row runs at its own reveal steps only (its logits at another step's time
                # would not be used, and drawing its candidates there would make it depend on its mates)
                step = self.next_reveal_step(state)
                needed &= ((state.reveal_steps == step) & state.masked()).any(1)
            t = self.timesteps(min(step, state.num_steps - 1), state.num_steps)[0]
        rows = needed.nonzero().squeeze(1)
        if rows.numel() == 0:
            return None
        columns = scored[rows].any(0).nonzero().squeeze(1)
        canvas, attention_mask, position_ids = state.canvas, state.attention_mask, state.position_ids
        if rows.numel() != state.batch_size:
            canvas, attention_mask, position_ids = canvas[rows], attention_mask[rows], position_ids[rows]
        keep = state.window_start + columns
        if state.model_order is not None:  # the model sees the columns in this order (no cache runs then)
            canvas, attention_mask = canvas[:, state.model_order], attention_mask[:, state.model_order]
            position_ids = (attention_mask.cumsum(1) - 1).clamp(min=0)
            keep = state.model_order.argsort()[keep]
        return DenoiseRequest(
            input_ids=canvas,
            attention_mask=attention_mask,
            position_ids=position_ids,
            keep=keep,
            block_starts=state.block_starts[rows],
            block_end=state.block_end,
            block_ends=state.block_ends[rows],
            rows=rows,
            batch_size=state.batch_size,
            cache=self.cache,
            columns=columns,
            t=t,
        )

    def probabilities(self, state: DiffusionState, logits: torch.Tensor, rows) -> tuple[torch.Tensor, torch.Tensor]:
        """(probs, bad) of rows `rows` from their (rows, positions, V) `logits`: p(. | x_t) = softmax of the float32
        logits with [MASK] at -inf, after the logits processors (which see each row's canvas once per position);
        `bad` (rows, positions) flags a position whose processed logits have NaN, +inf, or no finite token left."""
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
        bad = ~torch.isfinite(logits.amax(-1))  # a non-finite maximum: one read, no copy
        return logits.softmax(-1), bad

    def propose(self, state: DiffusionState, logits: torch.Tensor, rows, columns) -> None:
        """Candidates, scores (and current-token probabilities) of rows `rows` at window `columns` from `logits`."""
        vocab = logits.shape[-1]
        probs, bad = self.probabilities(state, logits, rows)  # once per forward, shared by sampling and the score
        # Non-finite positions are flagged without a sync and refused by generate() once at the end; until then they
        # take a placeholder token and the lowest score, so that every strategy still terminates.
        state.non_finite[rows] |= bad.any(-1)
        if self.do_sample:
            # noise for the row's whole block, so that its draws do not depend on which columns its mates need
            window = state.block_end - state.window_start
            noise = self.randomness.rand_in_spans(rows, state.offsets[rows], state.widths[rows], window, logits.device)
            candidates = sample_categorical(probs, noise[:, columns])
        else:
            candidates = probs.argmax(-1)
        candidates = candidates.masked_fill(bad, (state.mask_token_id + 1) % vocab)
        state.candidates[rows[:, None], columns] = candidates
        scores = self.strategy.score(probs, candidates)
        if scores is not None:
            state.scores[rows[:, None], columns] = scores.float().masked_fill(bad, float("-inf"))
        current = self.strategy.score_current(probs, state, rows, columns)
        if current is not None:
            state.current_probs[rows[:, None], columns] = current
        state.nfe[rows] += 1
        state.stale[rows] = False

    def step(self, state: DiffusionState, logits: torch.Tensor | None, request: DenoiseRequest | None = None):
        """One reverse step t_k -> t_{k+1} for every active row, from the logits of `request` (see the module
        docstring); returns a `DiffusionSamplerOutput`."""
        check_in_block(state)
        if request is not None:
            expected = (request.rows.numel(), request.columns.numel())
            if not isinstance(logits, torch.Tensor) or logits.dim() != 3 or tuple(logits.shape[:2]) != expected:
                got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
                raise ValueError(
                    f"step() needs the logits of its request, shape (rows, positions, vocab) = {(*expected, 'V')}, "
                    f"got {got}: run the model on request.input_ids and keep request.keep "
                    "(logits_to_keep=request.keep)."
                )
            self.propose(state, logits, request.rows, request.columns)
        elif logits is not None:
            raise ValueError("step() got logits without their request; pass the request model_request() returned.")
        active = state.active.nonzero().squeeze(1)
        if state.reveal_steps is not None:
            state.step = self.next_reveal_step(state)
        self.strategy.check_block_end(state.step, state.num_steps, active.numel() > 0)
        t, s = self.timesteps(state.step, state.num_steps)
        pick = slice(None) if active.numel() == state.batch_size else active  # views when every row is active
        masked = state.masked()[pick]
        revealed = state.revealed()[pick]
        view = RevealStep(
            masked=masked,
            scores=state.scores[pick],
            counts=state.counts[pick, state.step] if state.counts is not None else None,
            t=t,
            s=s,
            rows=active,
            randomness=self.randomness,
            widths=state.widths[pick],
            offsets=state.offsets[pick],
            revealed=revealed,
            candidates=state.candidates[pick],
            current_probs=state.current_probs[pick],
            index=state.step,
            reveal_steps=state.reveal_steps[pick] if state.reveal_steps is not None else None,
        )
        window = state.canvas[pick, state.window]
        reveal, remask, edit = self.strategy.transitions(view)
        updated = torch.where(reveal, view.candidates, window)
        if edit is not None:
            updated = torch.where(edit, view.candidates, updated)
        if remask is not None:
            updated = updated.masked_fill(remask, state.mask_token_id)
        differs = updated != window  # before the write below: `window` may be a view of the canvas
        changed = torch.zeros_like(state.done)
        changed[pick] = differs.any(1)
        if self.strategy.revises:  # what `continues_complete_block` reads; no strategy that never revises does
            state.complete_steps[pick] += ~masked.any(1)
            state.revised[pick] = (differs & revealed).any(1)
        if self.time_conditioned:
            changed[pick] = True  # the next step's logits are conditioned on its own time
        state.canvas[pick, state.window] = updated
        state.refresh()
        state.stale |= changed
        # a row's steps: those it went through, or (drawn reveal steps) those where it revealed a position
        state.steps_per_block[pick, state.block_index] += reveal.any(1) if state.reveal_steps is not None else 1
        state.step += 1
        self.finish_rows(state)
        self.update_active(state)
        revealed_now = torch.zeros_like(state.scores, dtype=torch.bool)
        revealed_now[pick] = reveal
        return DiffusionSamplerOutput(
            canvas=state.canvas,
            candidates=state.candidates,
            revealed=revealed_now,
            t=t,
            s=s,
            active=state.active,
            done=state.done,
        )

    @staticmethod
    def next_reveal_step(state: DiffusionState) -> int:
        """The first step, from the current one on, at which an active row reveals one of its masked positions."""
        pending = state.masked() & state.active[:, None]
        upcoming = state.reveal_steps.masked_fill(~pending, state.num_steps)
        return max(state.step, int(upcoming.min())) if upcoming.numel() else state.num_steps

    def decoded_tokens(self, state: DiffusionState) -> torch.LongTensor:
        """(B,) positions each row filled: its positions to fill up to and including its first EOS (pad after it is
        not decoded), all of them without EOS."""
        length = state.canvas.shape[1]
        last = torch.full_like(state.nfe, length)
        if self.eos is not None:
            eos = torch.isin(state.canvas, self.eos) & state.fill
            last = torch.where(eos, state.positions, length).min(1).values
        return (state.fill & (state.positions[None, :] <= last[:, None])).sum(1)

    def finish_rows(self, state: DiffusionState) -> None:
        """Rows with nothing left to fill, or that revealed EOS and everything before it (then pad after EOS)."""
        canvas, length, positions = state.canvas, state.canvas.shape[1], state.positions
        still_masked = (canvas == state.mask_token_id) & state.fill
        first_masked = torch.where(still_masked, positions, length).min(1).values
        continuing = self.strategy.continues_complete_block(state)  # e.g. a revising strategy's remaining steps
        finished = state.done | ((first_masked == length) & ~continuing)
        if self.eos is not None:
            first_eos = torch.where(torch.isin(canvas, self.eos) & state.fill, positions, length).min(1).values
            stopped = ~state.done & (first_eos < first_masked)
            if self.strategy.finishes_block_at_eos:
                stopped &= ~(state.masked().any(1) | continuing)
            # No host sync on stopped.any(): filling an all-false mask is a no-op.
            after_eos = state.fill & stopped[:, None] & (positions[None, :] > first_eos[:, None])
            canvas.masked_fill_(after_eos, self.pad_token_id)
            state.refresh()
            finished |= stopped
        state.done = finished


def check_model_blocks(block_size, block_length, steps, steps_per_block) -> None:
    """A block-causal model's blocks are the plan's: `block_length` may only repeat `block_size`. One budget."""
    if block_size is not None and block_length not in (None, block_size):
        raise ValueError(
            f"block_length={block_length}, but the model is block-causal with block_size={block_size}: generate() "
            f"decodes the model's own blocks (a token sees only its block and earlier ones). Drop block_length (it "
            f"is {block_size} on this model), or train a model with block_size={block_length}."
        )
    check_one_budget(steps, steps_per_block)


def check_input_ids(input_ids) -> None:
    """A prompt is a 2-D integer tensor (not a list, a 1-D tensor, floats or booleans)."""
    if (
        not isinstance(input_ids, torch.Tensor)
        or input_ids.dim() != 2
        or input_ids.is_floating_point()
        or input_ids.is_complex()
        or input_ids.dtype == torch.bool
    ):
        raise ValueError(
            "`input_ids` must be a 2-D integer tensor (batch, length) of token ids; add a batch dimension with "
            "input_ids[None] or tokenize with return_tensors='pt'."
        )


def check_prompt(input_ids, attention_mask, max_new_tokens) -> None:
    """`prepare`'s inputs: a 2-D integer prompt, a padding mask of its shape, a non-negative count of new tokens."""
    check_input_ids(input_ids)
    if attention_mask is not None and (
        not isinstance(attention_mask, torch.Tensor) or attention_mask.shape != input_ids.shape
    ):
        shape = tuple(attention_mask.shape) if isinstance(attention_mask, torch.Tensor) else type(attention_mask)
        raise ValueError(
            f"`attention_mask` must be a tensor of the prompt's shape {tuple(input_ids.shape)}, got {shape}."
        )
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(
            f"`max_new_tokens` must be a non-negative integer (0: fill only the prompt's [MASK]), got "
            f"{max_new_tokens!r}."
        )


def check_in_block(state: DiffusionState) -> None:
    """`model_request` and `step` run inside a block."""
    if state.active is None:
        raise RuntimeError("No block has begun: call sampler.begin_block(state, block) for block in sampler.blocks.")


def resolve_eos_and_pad(config, device, mask_token_id) -> tuple[torch.LongTensor | None, int | None]:
    """(EOS ids as a tensor, the pad id written after EOS): `pad_token_id`, else the first EOS id; never [MASK]."""
    if config.eos_token_id is None:
        return None, config.pad_token_id
    eos = torch.tensor(config.eos_token_id, device=device).reshape(-1)
    pad_token_id = config.pad_token_id
    if pad_token_id is None:
        pad_token_id = int(eos[0])
        logger.warning_once(f"`pad_token_id` is not set: positions after EOS are filled with eos ({pad_token_id}).")
    if pad_token_id == mask_token_id:
        raise ValueError(
            f"pad_token_id={pad_token_id} is the [MASK] id: positions after EOS would look undecoded. Pass the "
            "tokenizer's pad_token_id (or its eos_token_id)."
        )
    return eos, pad_token_id


def logits_processors(config, logits_processor, device) -> LogitsProcessorList:
    """transformers' `SuppressTokensLogitsProcessor` for `suppress_tokens`, the caller's processors, then (when
    sampling) transformers' temperature, top-k and top-p warpers."""
    processors = LogitsProcessorList()
    if config.suppress_tokens:
        processors.append(SuppressTokensLogitsProcessor(config.suppress_tokens, device=device))
    processors.extend(logits_processor or [])
    if config.do_sample:
        if config.temperature is not None and config.temperature != 1.0:
            processors.append(TemperatureLogitsWarper(config.temperature))
        if config.top_k:
            processors.append(TopKLogitsWarper(config.top_k))
        if config.top_p is not None and config.top_p < 1.0:
            processors.append(TopPLogitsWarper(config.top_p))
    return processors


__all__ = ["BlockPlan", "DiffusionSampler", "skip_empty_steps"]
