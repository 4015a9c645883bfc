"""Search for the steps a model needs to reach a target sequence error, length by length, then fit the exponent.

`search_steps(evaluate, target, max_steps)` finds the smallest S in [min_steps, max_steps] with SER(S) <= target,
where `evaluate(S) -> (errors, num_samples)` measures SER at S, and brackets it with a 95% interval
(`steps_needed`: a probe whose Wilson interval lies above the target is significantly too few, one whose interval
lies at or below it significantly enough). After every probe all probes are refitted monotonically, and, d being
the smallest probed S whose fit meets the target:

1. no fit meets the target: probe double the largest S (at most `max_steps`); if `max_steps` was probed, the
   answer is "not reached by S_max" (never an extrapolation);
2. no probe lies above d: confirm it, probe min(2 d, max_steps). A lucky dip at d that a larger S contradicts is
   then pooled with it, its fit rises over the target, and the search goes on;
3. no probe is significantly enough: probe double the largest S (the interval's high end; none above `max_steps`);
4. no probe is significantly too few: probe half the smallest S (the interval's low end; none below `min_steps`);
5. otherwise bisect between lo, the largest probe below d, and d, until d = lo + 1, or until neither lo nor d
   differs significantly from the target: the rates between them are within the sampling noise of n samples, so
   further probes there could not be told apart (the bracket is as tight as the noise allows).

Each round probes an S not probed before, so the search ends within max_steps probes, and after O(log S) of them on a
monotone curve. Probes are never discarded: every decision uses the monotone fit of all of them. The first probe is
`start` (default `min_steps`).

`search_steps_needed(model, tokenizer, task, ...)` runs that search for every (strategy, block size, length), each
probe one cell of `sweep_steps` (the same generation, seeding and scoring as a swept table, resumable from its file),
and fits steps ~ c L^b per strategy and block size (`step_scaling.fit_exponent`). The lengths are searched in
increasing order, each starting where the lengths already decided predict: S_last (L / L_last)^b, b the slope
between the last two decided lengths (1, the SER prediction, after the first), instead of doubling from S_min. At
block size B the search floor is S_min = max(min_steps, ceil(L / B)), one step per block.
"""

import math
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
    start: int | None = None,
) -> StepsNeeded:
    """The smallest S with monotone-fitted SER <= target and its 95% interval, by the rounds of the module docstring.

    Args:
        evaluate: S -> (number of wrong sequences, number of sequences) at S steps.
        target: the SER to reach, in (0, 1).
        max_steps, min_steps: the range searched (S_max, S_min).
        length: recorded in the result (the sequence length `evaluate` generates).
        start: the first S probed, in [min_steps, max_steps] (default `min_steps`), e.g. a prediction.
    Returns the decision with every probe, its Wilson 95% interval and its monotone fit.
    """
    target = check_target(target)
    check_positive_int("max_steps", max_steps)
    check_positive_int("min_steps", min_steps)
    if min_steps > max_steps:
        raise ValueError(f"min_steps ({min_steps}) must not exceed max_steps ({max_steps}).")
    steps = min_steps if start is None else check_positive_int("start", start)
    if not min_steps <= steps <= max_steps:
        raise ValueError(f"start ({start}) must lie in [min_steps, max_steps] = [{min_steps}, {max_steps}].")
    measured = {}
    while steps is not None:
        result, steps = record_probe(measured, steps, *evaluate(steps), target, max_steps, min_steps, length)
    return result


def record_probe(measured: dict, steps: int, errors: int, total: int, target, max_steps, min_steps, length):
    """Add the probe (`errors` wrong of `total` at `steps`) to `measured`; return (the decision, next S or None)."""
    if not 0 <= errors <= total or total < 1:
        raise ValueError(f"evaluating {steps} steps returned {errors} errors out of {total} sequences.")
    measured[steps] = (errors / total, total, *wilson_interval(errors, total))
    result = decide_steps_needed(length, target, max_steps, measured, min_steps)
    return result, next_probe(result, min_steps, max_steps)


def next_probe(result: StepsNeeded, min_steps: int, max_steps: int) -> int | None:
    """The next S to probe given the current decision (rounds 1-5 of the module docstring); None when done."""
    probes, hi, target = result.probes, result.steps, result.target
    bottom, top = probes[0].steps, probes[-1].steps
    if hi is None:
        return None if top >= max_steps else min(2 * top, max_steps)
    if top == hi and hi < max_steps:
        return min(2 * hi, max_steps)
    if not any(probe.enough(target) for probe in probes) and top < max_steps:
        return min(2 * top, max_steps)
    if not any(probe.too_few(target) for probe in probes) and bottom > min_steps:
        return max(min_steps, bottom // 2)
    below = [probe for probe in probes if probe.steps < hi]
    if not below or hi - below[-1].steps == 1:
        return None
    at_hi = next(probe for probe in probes if probe.steps == hi)
    if not below[-1].too_few(target) and not at_hi.enough(target):
        return None  # both ends within the sampling noise of the target
    return (below[-1].steps + hi) // 2


def predicted_start(needed: dict[int, StepsNeeded], length: int, floor: int, ceiling: int) -> int:
    """The first S to probe at `length`: S_last (length / L_last)^b from the decided shorter lengths (b the slope
    between the last two, 1 after one), within [floor, ceiling]; `floor` when none is decided."""
    decided = sorted((known, result.steps) for known, result in needed.items() if known < length and result.reached)
    if not decided:
        return floor
    (last_length, last_steps), exponent = decided[-1], 1.0
    if len(decided) > 1:
        (before_length, before_steps) = decided[-2]
        exponent = math.log(last_steps / before_steps) / math.log(last_length / before_length)
    return min(ceiling, max(floor, round(last_steps * (length / last_length) ** exponent)))


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
    lengths are searched in increasing order, each from the steps the shorter ones predict (module docstring); each
    probe is one `sweep_steps` call of one cell (under `accelerate launch` one process runs it). With
    `output_path` every probe is appended to that sweep file and a rerun (same model, task, seed, samples and
    generation arguments) reads the probes already there instead of generating them again: an interrupted search
    resumes where it stopped.

    `block_sizes` is the block-size axis of `sweep_steps` (unset: `[block_length]` or the block-causal model's
    own size); at block size B a length is searched from max(min_steps, ceil(L / B)), and a `max_steps` below that
    is refused.

    Returns the table of every probe (a sweep table: `markdown_table`, `ModelCard.from_sweep` take it) and one
    `StepScaling` per strategy and block size, in that order (`describe()` prints the steps needed with their 95%
    intervals, b, its standard error and 95% interval).
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
            needed = {}
            for length in sorted(set(lengths)):
                measured, floor = {}, lowest[size][length]
                steps = predicted_start(needed, length, floor, max_steps[length])
                while steps is not None:
                    (row,) = sweep_steps(
                        model, tokenizer, task, steps=[steps], strategies=[strategy], lengths=[length],
                        num_samples=num_samples, seed=seed, batch_size=batch_size, progress=False,
                        output_path=output_path, resume=True, block_sizes=[size], **generation_kwargs,
                    )  # fmt: skip
                    rows.append(row)
                    needed[length], steps = record_probe(
                        measured, steps, round(row["ser"] * row["num_samples"]), row["num_samples"], target,
                        max_steps[length], floor, length,
                    )  # fmt: skip
                bar.update()
            label = model_block_size(model) or size  # None: one block
            scalings.append(fit_exponent(strategy, "ser", target, needed, label))
    bar.close()
    return Dataset.from_list(rows), scalings
