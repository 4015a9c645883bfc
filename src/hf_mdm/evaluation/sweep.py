"""sweep_steps: decode a task over a grid of (strategy, length, steps) and score every cell.

Each cell generates `num_samples` sequences of `length` tokens in `steps` reverse steps and scores them with the task
(`ser` with its Wilson interval, token-error columns), with the mean NFE per sequence, the latency of one `generate()`
batch and the generated tokens per second. With `autoregressive_model`, one row per length decodes the same task with
that causal LM (`strategy="autoregressive"`, steps = NFE = length): the AR row of the table.

Every sample has its own generator, seeded from (seed, strategy, length, sample index), so a cell's numbers do not
depend on the batch size or on which process ran it: under `accelerate launch` the cells are split across processes
(accelerate's `PartialState` and `gather_object`) and the table is the single-process table. With `output_path`, each
finished cell is appended to a JSON-lines file at once, and `resume=True` skips the cells already there, after checking
that the file was written by the same sweep (`sweep_resume`).

Every row records how its samples were generated: `seed` and `generation`, a JSON object holding the keyword
arguments of the cell's `generate()` calls (`"generate"`: strategy, steps, sampling, the suppressed tokens and the
caller's `generation_kwargs`; a value that is not JSON reads "<not recorded: its type>") and, for a diffusion cell,
its first samples' generator seeds and prompts (`"samples"`), so a card's usage snippet reruns that cell exactly.
"""

import json
import time
import zlib
from pathlib import Path

import torch
from accelerate import PartialState
from accelerate.utils import gather_object
from datasets import Dataset
from tqdm.auto import tqdm

from ..generation import DiffusionGenerationConfig
from ..tokenizer_checks import check_mask_token
from .argument_checks import check_int, check_names, check_positive_int, check_positive_ints
from .sweep_columns import CELL_COLUMNS, COLUMNS, names
from .sweep_resume import append_rows, open_resume_file, sweep_identity
from .sweep_tasks import LanguageTask, PromptTask


AUTOREGRESSIVE = "autoregressive"


def cell_key(row: dict) -> tuple:
    """The row's cell of the grid, (strategy, length, steps) (`CELL_COLUMNS`), its integers as ints."""
    return tuple(int(row[c]) if COLUMNS[c].kind == "positive integer" else row[c] for c in CELL_COLUMNS)


# What sweep_steps passes to a diffusion cell's generate() itself: `generation_kwargs` may not set it.
SET_BY_THE_SWEEP = ("input_ids", "attention_mask", "max_new_tokens", "steps", "strategy", "do_sample", "temperature",
                    "top_k", "top_p", "suppress_tokens", "generator", "return_dict_in_generate")  # fmt: skip
# How many of a cell's first samples its `generation` record describes (the card's snippet reruns them).
RECORDED_SAMPLES = 1


def sample_seeds(seed: int, strategy: str, length: int, indices) -> list[int]:
    """The seed of each sample's generator, from the cell and the sample index (not from the batch or the process)."""
    base = zlib.crc32(f"{seed}/{strategy}/{length}".encode())
    return [base * 1_000_003 + index for index in indices]


def sample_generators(seed: int, strategy: str, length: int, indices: list[int]) -> list[torch.Generator]:
    """One generator per sample, seeded by `sample_seeds`."""
    return [torch.Generator().manual_seed(value) for value in sample_seeds(seed, strategy, length, indices)]


def diffusion_generate_kwargs(model, task, tokenizer, strategy, length, steps, generation_kwargs) -> dict:
    """A diffusion cell's generate() keywords besides its prompts and generators: sampling at temperature 1 from the
    whole distribution, the task's non-symbols suppressed (those the model's logits have: ids past its vocab_size are
    never generated), then the caller's `generation_kwargs`."""
    vocab_size = getattr(getattr(model, "config", None), "vocab_size", None)
    suppressed = [i for i in task.suppressed_ids(tokenizer) if vocab_size is None or i < vocab_size]
    return dict(max_new_tokens=length, steps=steps, strategy=strategy, do_sample=True, temperature=1.0, top_k=None,
                top_p=None, suppress_tokens=suppressed or None, **generation_kwargs)  # fmt: skip


def autoregressive_generate_kwargs(task, tokenizer, length) -> dict:
    """The autoregressive row's generate() keywords: exactly `length` tokens sampled from the whole distribution."""
    return dict(do_sample=True, temperature=1.0, top_k=0, top_p=1.0, min_new_tokens=length, max_new_tokens=length,
                suppress_tokens=task.suppressed_ids(tokenizer) or None,
                pad_token_id=tokenizer.pad_token_id)  # fmt: skip


def generation_record(generate_kwargs: dict, samples: dict | None = None) -> str:
    """A row's `generation` column: its generate() keywords (and first samples) as sorted JSON."""
    record = {"generate": generate_kwargs, **({"samples": samples} if samples is not None else {})}
    return json.dumps(record, sort_keys=True, default=lambda value: f"<not recorded: {type(value).__name__}>")


def _diffusion_batch(model, tokenizer, task, indices, seed, generate_kwargs):
    output = model.generate(
        **task.inputs(tokenizer, indices),
        **generate_kwargs,
        generator=sample_generators(seed, generate_kwargs["strategy"], generate_kwargs["max_new_tokens"], indices),
        return_dict_in_generate=True,
    )
    return output.sequences[:, -generate_kwargs["max_new_tokens"] :], output.nfe.float()


def _autoregressive_batch(model, tokenizer, task, length, indices, seed, generate_kwargs):
    # transformers' generate() samples from the global RNG: seed it per batch, and restore the caller's state after.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(zlib.crc32(f"{seed}/{AUTOREGRESSIVE}/{length}/{indices[0]}".encode()))
        sequences = model.generate(**task.prompt(tokenizer, indices), **generate_kwargs)
    return sequences[:, -length:], torch.full((len(indices),), float(length))


def run_cell(
    model, tokenizer, task, strategy, length, steps, num_samples, seed, batch_size, generation_kwargs
) -> dict:
    """Generate and score one cell; `strategy == "autoregressive"` decodes with the causal `model`."""
    if strategy == AUTOREGRESSIVE:
        generate_kwargs, samples = autoregressive_generate_kwargs(task, tokenizer, length), None
    else:
        generate_kwargs = diffusion_generate_kwargs(model, task, tokenizer, strategy, length, steps, generation_kwargs)
        first = list(range(min(num_samples, RECORDED_SAMPLES)))
        samples = {"seeds": sample_seeds(seed, strategy, length, first), "prompts": task.prompt_texts(first)}
    generated, nfe, elapsed, batches = [], [], 0.0, 0
    for start in range(0, num_samples, batch_size):
        indices = list(range(start, min(start + batch_size, num_samples)))
        began = time.perf_counter()
        with torch.no_grad():
            if strategy == AUTOREGRESSIVE:
                sequences, row_nfe = _autoregressive_batch(model, tokenizer, task, length, indices, seed,
                                                           generate_kwargs)  # fmt: skip
            else:
                sequences, row_nfe = _diffusion_batch(model, tokenizer, task, indices, seed, generate_kwargs)
        elapsed += time.perf_counter() - began
        batches += 1
        generated += sequences.tolist()
        nfe.append(row_nfe)
    scores = task.score(tokenizer, generated, list(range(num_samples)))
    return {
        "strategy": strategy,
        "length": length,
        "steps": steps,
        "nfe": float(torch.cat(nfe).mean()),
        "num_samples": num_samples,
        **scores,
        "latency_s": elapsed / batches,
        "tokens_per_s": num_samples * length / elapsed,
        "seed": seed,
        "generation": generation_record(generate_kwargs, samples),
    }


def sweep_steps(
    model,
    tokenizer,
    task: "LanguageTask | PromptTask",
    steps: list[int],
    strategies: list[str] = ("confidence",),
    lengths: list[int] = (32,),
    num_samples: int = 64,
    seed: int = 0,
    batch_size: int = 32,
    autoregressive_model=None,
    output_path: "str | Path | None" = None,
    resume: bool = False,
    progress: bool = True,
    cells: "list[tuple[str, int, int]] | None" = None,
    **generation_kwargs,
) -> Dataset:
    """Run the (strategy x length x steps) grid; return the table as a `datasets.Dataset`, one row per cell.

    Args:
        model: a model with the diffusion `generate()` (MDMForMaskedGeneration, or any masked LM after
            `enable_diffusion_generation`, or a language's oracle denoiser).
        tokenizer: its tokenizer (a formal language's `tokenizer()` for a `LanguageTask`).
        task: a `LanguageTask` (exact TER and SER) or a `PromptTask` (SER = wrong final answers).
        steps, strategies, lengths: the grid; `lengths` are generated tokens per sample.
        num_samples: sequences per cell; `seed`: base seed; `batch_size`: sequences per `generate()` call.
        autoregressive_model: optional causal LM for the AR row of every length.
        output_path: JSON-lines file that receives each finished cell; `resume=True` keeps the cells already in it
            when it was written by the same sweep (same weights, task, seed, num_samples and generation arguments),
            and refuses it otherwise.
        cells: run only these (strategy, length, steps) cells of the grid (e.g. the next probe of several searches);
            the autoregressive rows still come with `autoregressive_model`.
        **generation_kwargs: passed to every `generate()` (e.g. `block_length`, `schedule`, `cache`); not the
            arguments the sweep sets itself (`SET_BY_THE_SWEEP`: it samples at temperature 1 with its own seeds).

    Every argument is checked before the first cell runs (a ValueError that names it).
    """
    steps, lengths = check_positive_ints("steps", steps), check_positive_ints("lengths", lengths)
    strategies = check_names("strategies", strategies)
    num_samples = check_positive_int("num_samples", num_samples)
    batch_size = check_positive_int("batch_size", batch_size)
    seed = check_int("seed", seed)
    if AUTOREGRESSIVE in strategies:
        raise ValueError("The autoregressive row comes from `autoregressive_model=`, not from `strategies`.")
    fixed = sorted(set(generation_kwargs) & set(SET_BY_THE_SWEEP))
    if fixed:
        raise ValueError(
            f"sweep_steps sets {fixed} itself (every cell samples at temperature 1 with per-sample seeds, the task's "
            "special tokens suppressed); drop them from the keyword arguments, or pass `steps`/`lengths`/`seed`."
        )
    for length in lengths:
        task.check_length(length)
    for strategy in strategies:  # every name and its arguments, before the first cell runs
        DiffusionGenerationConfig(strategy=strategy, **generation_kwargs).validate()
    check_mask_token(model, tokenizer)

    grid = [(strategy, length, n) for strategy in strategies for length in lengths for n in steps]
    if cells is not None:
        wanted = {(strategy, check_positive_int("a cell's length", length), check_positive_int("a cell's steps", n))
                  for strategy, length, n in cells}  # fmt: skip
        if not wanted <= set(grid):
            raise ValueError(f"cells {sorted(wanted - set(grid))} are not in the grid of strategies, lengths, steps.")
        grid = [cell for cell in grid if cell in wanted]
    cells = grid
    if autoregressive_model is not None:
        cells += [(AUTOREGRESSIVE, length, length) for length in lengths]
    # On a CPU-only model the processes still form a group (gloo); PartialState needs to be told.
    state = PartialState(cpu=getattr(model, "device", torch.device("cpu")).type == "cpu")
    rows = []
    if output_path is not None:
        row_columns = names(source="sweep", resume_checked=True) + names(source="record", resume_checked=True)
        identity = sweep_identity(model, task, seed, num_samples, generation_kwargs, autoregressive_model, row_columns)
        # The main process checks and rewrites the file first; the others then read the file it wrote.
        with state.main_process_first():
            main = state.is_main_process
            rows = open_resume_file(output_path, identity, resume=resume or not main, write=main)
    finished = {cell_key(row) for row in rows}
    pending = [cell for cell in cells if cell not in finished]

    bar = tqdm(total=len(cells), initial=len(cells) - len(pending), desc="sweep cells",
               disable=not progress or not state.is_main_process)  # fmt: skip
    for round_start in range(0, len(pending), state.num_processes):
        chunk = pending[round_start : round_start + state.num_processes]
        mine = chunk[state.process_index] if state.process_index < len(chunk) else None
        row = None
        if mine is not None:
            strategy, length, n = mine
            decoder = autoregressive_model if strategy == AUTOREGRESSIVE else model
            row = run_cell(decoder, tokenizer, task, strategy, length, n, num_samples, seed, batch_size,
                           generation_kwargs)  # fmt: skip
        new_rows = [r for r in gather_object([row]) if r is not None]
        rows += new_rows
        if output_path is not None and state.is_main_process:
            append_rows(output_path, identity, new_rows)
        bar.update(len(chunk))
    bar.close()
    order = {cell: i for i, cell in enumerate(cells)}
    rows = sorted((r for r in rows if cell_key(r) in order), key=lambda r: order[cell_key(r)])
    return Dataset.from_list(rows)
