"""Search for the steps a model needs to reach a target sequence error, length by length, then fit the exponent.

`search_steps(evaluate, target, max_steps)` finds the smallest S in [min_steps, max_steps] with SER(S) <= target,
where `evaluate(S) -> (errors, num_samples)` measures SER at S. After every probe all probes are refitted
monotonically (`steps_needed`), and

- no probe's fit meets the target: probe double the largest S (at most `max_steps`); if `max_steps` was probed, the
  answer is "not reached by S_max" (never an extrapolation);
- hi = the smallest S whose fit meets it. If no probe lies above hi, confirm it first: probe min(2 hi, max_steps).
  A lucky dip at hi that a larger S contradicts is then pooled with it, its fit rises over the target, and the
  search goes on (bisection alone only ever probes below hi, so it could never see the dip's contradiction);
- otherwise, lo = the largest probe below hi (with none, halve hi first): bisect, probing (lo + hi) // 2, until
  hi = lo + 1 or hi = min_steps.

Each round probes an S not probed before, so the search ends within max_steps probes, and after O(log S) of them on a
monotone curve. Probes are never discarded: every decision uses the monotone fit of all of them.

`search_steps_needed(model, tokenizer, task, ...)` runs that search for every (strategy, block size, length), each
probe one cell of `sweep_steps` (the same generation, seeding and scoring as a swept table; the lengths of a strategy
and block size advance together, one round of probes per `sweep_steps` call, resumable from its file), and fits
steps ~ c L^b per strategy and block size (`step_scaling.fit_exponent`). At block size B the search starts at
S_min = max(min_steps, ceil(L / B)), one step per block, the fewest `generate()` runs.
"""

from collections.abc import Callable
from pathlib import Path

from datasets import Dataset
from tqdm.auto import tqdm

from ..metrics.sequence_error_rate.sequence_error_rate import wilson_interval
from .argument_checks import check_names, check_positive_int, check_positive_ints
from .step_scaling import StepScaling, check_target, fit_exponent
from .steps_needed import StepsNeeded, decide_steps_needed
from .sweep import AUTOREGRESSIVE, block_count, cell_block_size, check_block_sizes, model_block_size, sweep_steps


def search_steps(
    evaluate: Callable[[int], tuple[int, int]],
    target: float,
    max_steps: int,
    min_steps: int = 1,
    length: int = 0,
) -> StepsNeeded:
    """The smallest S with monotone-fitted SER <= target, by doubling from `min_steps` then bisection.

    Args:
        evaluate: S -> (number of wrong sequences, number of sequences) at S steps.
        target: the SER to reach, in (0, 1).
        max_steps, min_steps: the range searched (S_max, S_min).
        length: recorded in the result (the sequence length `evaluate` generates).
    Returns the decision with every probe, its Wilson 95% interval and its monotone fit.
    """
    target = check_target(target)
    check_positive_int("max_steps", max_steps)
    check_positive_int("min_steps", min_steps)
    if min_steps > max_steps:
        raise ValueError(f"min_steps ({min_steps}) must not exceed max_steps ({max_steps}).")
    measured = {}
    steps = min_steps
    while steps is not None:
        result, steps = record_probe(measured, steps, *evaluate(steps), target, max_steps, min_steps, length)
    return result


def record_probe(measured: dict, steps: int, errors: int, total: int, target, max_steps, min_steps, length):
    """Add the probe (`errors` wrong of `total` at `steps`) to `measured`; return (the decision, next S or None)."""
    if not 0 <= errors <= total or total < 1:
        raise ValueError(f"evaluating {steps} steps returned {errors} errors out of {total} sequences.")
    measured[steps] = (errors / total, total, *wilson_interval(errors, total))
    result = decide_steps_needed(length, target, max_steps, measured)
    return result, next_probe(result.steps, sorted(measured), min_steps, max_steps)


def next_probe(hi: int | None, probed: list[int], min_steps: int, max_steps: int) -> int | None:
    """The next S to probe given the current decision `hi` (None: no fit meets the target) and the sorted probes;
    None when the search is done."""
    top = probed[-1]
    if hi is None:
        return None if top >= max_steps else min(2 * top, max_steps)
    if top == hi and hi < max_steps:
        return min(2 * hi, max_steps)
    below = [s for s in probed if s < hi]
    if not below:
        return None if hi == min_steps else max(min_steps, hi // 2)
    return None if hi - below[-1] == 1 else (below[-1] + hi) // 2


def search_steps_needed(
    model,
    tokenizer,
    task,
    target: float,
    max_steps: "int | dict[int, int]",
    strategies: list[str] = ("confidence",),
    lengths: list[int] = (32,),
    min_steps: int = 1,
    num_samples: int = 64,
    seed: int = 0,
    batch_size: int = 32,
    progress: bool = True,
    output_path: "str | Path | None" = None,
    block_sizes: "list[int | None] | None" = None,
    **generation_kwargs,
) -> tuple[Dataset, list[StepScaling]]:
    """Search the steps needed for SER <= `target` at every (strategy, block size, length), then fit the exponent of
    each strategy and block size.

    Arguments are those of `sweep_steps` (which runs every probe as one cell, so a probe's numbers equal that
    cell's in a swept table), plus the target and the search range [min_steps, max_steps]; `max_steps` may be a
    {length: S_max} dict (e.g. a bound per token: `generate()` refuses more than 16 steps per position). The
    lengths of a strategy are searched together: each round runs the next probe of every unfinished length as one
    `sweep_steps` call, so under `accelerate launch` the probes of a round are split across processes. With
    `output_path` every probe is appended to that sweep file and a rerun (same model, task, seed, samples and
    generation arguments) reads the probes already there instead of generating them again: an interrupted search
    resumes where it stopped.

    `block_sizes` is the block-size axis of `sweep_steps` (unset: `[block_length]` or the block-causal model's
    own size); at block size B a length is searched from max(min_steps, ceil(L / B)), and a `max_steps` below that
    is refused.

    Returns the table of every probe (a sweep table: `markdown_table`, `ModelCard.from_sweep` take it) and one
    `StepScaling` per strategy and block size, in that order (`describe()` prints the steps needed, b, its standard
    error and 95% interval).
    """
    target = check_target(target)
    min_steps = check_positive_int("min_steps", min_steps)
    strategies = check_names("strategies", strategies)
    lengths = check_positive_ints("lengths", lengths)
    if isinstance(max_steps, dict) and set(max_steps) != set(lengths):
        raise ValueError(f"max_steps gives bounds for lengths {sorted(max_steps)}, but the lengths are {lengths}.")
    max_steps = {length: max_steps[length] if isinstance(max_steps, dict) else max_steps for length in lengths}
    for length, bound in max_steps.items():
        check_positive_int("max_steps", bound)
    if AUTOREGRESSIVE in strategies:
        raise ValueError("The autoregressive baseline has no steps to search; list diffusion strategies only.")
    for length in lengths:
        task.check_length(length)
    generation_kwargs = dict(generation_kwargs)
    block_sizes = check_block_sizes(block_sizes, generation_kwargs, model)
    # S_min per (block size, length): one step per block at least
    lowest = {size: {length: max(min_steps, block_count(length, cell_block_size(model, size, length)))
                     for length in lengths} for size in block_sizes}  # fmt: skip
    for size in block_sizes:
        for length, bound in max_steps.items():
            if lowest[size][length] > bound:
                raise ValueError(
                    f"The search starts at {lowest[size][length]} steps at length {length}, block size "
                    f"{cell_block_size(model, size, length)} (min_steps, or one step per block), which must not "
                    f"exceed max_steps ({bound}); raise max_steps, or lower min_steps or the number of blocks."
                )

    rows, scalings = [], []
    bar = tqdm(total=len(strategies) * len(block_sizes) * len(lengths), desc="steps searches", disable=not progress)
    for strategy in strategies:
        for size in block_sizes:
            measured = {length: {} for length in lengths}
            needed, pending = {}, dict(lowest[size])
            while pending:  # one round: the next probe of every unfinished length, as one sweep
                table = sweep_steps(
                    model, tokenizer, task, steps=sorted(set(pending.values())), strategies=[strategy],
                    lengths=sorted(pending), num_samples=num_samples, seed=seed, batch_size=batch_size,
                    progress=False, cells=[(strategy, length, steps) for length, steps in pending.items()],
                    output_path=output_path, resume=True, block_sizes=[size], **generation_kwargs,
                )  # fmt: skip
                for row in table:
                    rows.append(row)
                    length, errors = row["length"], round(row["ser"] * row["num_samples"])
                    needed[length], pending[length] = record_probe(
                        measured[length], row["steps"], errors, row["num_samples"], target, max_steps[length],
                        lowest[size][length], length,
                    )  # fmt: skip
                    if pending[length] is None:
                        del pending[length]
                        bar.update()
            label = model_block_size(model) or size  # None: one block
            scalings.append(fit_exponent(strategy, "ser", target, dict(sorted(needed.items())), label))
    bar.close()
    return Dataset.from_list(rows), scalings
