"""sweep_steps: decode a task over a grid of (strategy, length, steps, block size) and score every cell.

Each cell generates `num_samples` sequences of `length` tokens in `steps` reverse steps and scores them with the task
(`ser` with its Wilson interval, token-error columns), with the mean NFE per sequence, the tokens decoded per forward
pass (length / NFE unless rows stop at EOS), the latency of one `generate()` batch and the generated tokens per
second. With `autoregressive_model`, one row per length decodes the same task with that causal LM
(`strategy="autoregressive"`, steps = NFE = length, block size 1): the AR row of the table.

The block size B is a decoding block length: the cell decodes the generated region block by block
(`block_length=B`, ceil(length / B) blocks, `steps` split over them; `steps_per_block` = steps / blocks); B = 1 is
autoregressive decoding, B >= length (or None) one block, and the row then says the length. A block-causal model
(`MDMConfig(block_size=B)`) decodes its own blocks only: its rows carry its block size, and any other size is refused
before the first cell. A block-size axis over such models is one sweep per model.

Every sample has its own generator, seeded from (seed, strategy, length, sample index), so a cell's numbers do not
depend on the batch size or on which process ran it: under `accelerate launch` the cells are split across processes
(accelerate's `PartialState` and `gather_object`) and the table is the single-process table. With `output_path`, each
finished cell is appended to a JSON-lines file at once, and `resume=True` skips the cells already there, after checking
that the file was written by the same sweep (`sweep_resume`).

Every row records how its samples were generated: `seed` and `generation`, a JSON object holding the keyword
arguments of the cell's `generate()` calls (`"generate"`: strategy, steps, sampling, the suppressed tokens and the
caller's `generation_kwargs`; a value that is not JSON reads "<not recorded: its type>") and, for a diffusion cell,
its first samples' generator seeds and prompts (`"samples"`), so a card's usage snippet reruns that cell exactly.

A model that brings its own decoder (transformers' DiffusionGemma, diffusers' `LLaDA2Pipeline`: `hf_mdm.own_decoders`)
is decoded by that decoder through its adapter: the strategy is the decoder's own rule (the default), the block size
its own or the sweep's axis as the adapter says, `generation_kwargs` are the decoder's options, and everything it
cannot honour is refused before the first cell. Its rows are scored as ours; the forwards are the decoder's (its
adapter counts them) and, as its sampling uses one seed per batch (from the seed, the cell and the batch's first
sample), its numbers, like the autoregressive row's, depend on `batch_size`. Its `generation` record names the
`decoder` and holds the first batch's seed and prompts.
"""

import json
import math
import statistics
import time
import zlib
from pathlib import Path

import torch
from accelerate import PartialState
from accelerate.utils import gather_object
from datasets import Dataset
from tqdm.auto import tqdm

from ..generation import DiffusionGenerationConfig
from ..generation.denoisers import model_block_size as denoiser_block_size
from ..own_decoders import own_decoder
from ..tokenizer_checks import check_mask_token
from .argument_checks import check_int, check_list, check_names, check_positive_int, check_positive_ints
from .sweep_columns import CELL_COLUMNS, COLUMNS, names
from .sweep_resume import append_rows, open_resume_file, sweep_identity
from .sweep_table import ONE_BLOCK
from .sweep_tasks import LanguageTask, PromptTask


AUTOREGRESSIVE = "autoregressive"


def cell_key(row: dict) -> tuple:
    """The row's cell of the grid, (strategy, length, steps, block_size) (`CELL_COLUMNS`), its integers as ints (a
    column the row lacks, e.g. the block size of an lm-eval row, as None)."""
    return tuple(
        int(row[c]) if COLUMNS[c].kind == "positive integer" and row.get(c) is not None else row.get(c)
        for c in CELL_COLUMNS
    )


# What sweep_steps passes to a diffusion cell's generate() itself: `generation_kwargs` may not set it
# (`block_length` is the block-size axis: `block_sizes`).
SET_BY_THE_SWEEP = ("input_ids", "attention_mask", "max_new_tokens", "steps", "steps_per_block", "strategy",
                    "do_sample", "temperature", "top_k", "top_p", "suppress_tokens", "generator",
                    "return_dict_in_generate")  # fmt: skip


def model_block_size(model) -> int | None:
    """The block size of a block-causal model, None for a bidirectional one: for a model with its own decoder, its
    adapter's; otherwise what `generate()`'s denoiser adapter says (`denoisers.model_block_size`)."""
    decoder = own_decoder(model)
    return denoiser_block_size(model) if decoder is None else decoder.block_size()


def check_block_sizes(block_sizes, generation_kwargs: dict, model) -> list:
    """The block-size axis as a list of positive ints or None (one block; also said "L"); `block_length` in
    `generation_kwargs` is the one-size axis `[block_length]` (and is taken out of them). On a block-causal model the
    axis is its own size: another is a ValueError before any cell runs."""
    block_length = generation_kwargs.pop("block_length", None)
    if block_sizes is not None and block_length is not None:
        raise ValueError(
            f"block_length={block_length} and block_sizes={block_sizes} both set the block size; pass "
            f"block_sizes=[{block_length}] alone."
        )
    if block_sizes is None:
        block_sizes = [block_length]
    block_sizes = check_list("block_sizes", block_sizes, '[1, 4, "L"]')
    block_sizes = [None if b in (None, ONE_BLOCK) else check_positive_int("every entry of block_sizes", b)
                   for b in block_sizes]  # fmt: skip
    own = model_block_size(model)
    if own is not None and any(b not in (None, own) for b in block_sizes):
        raise ValueError(
            f"The model is block-causal with block_size={own}: generate() decodes its own blocks only, so "
            f"block_sizes={block_sizes} cannot be swept on it. Pass block_sizes=[{own}] (or leave it unset); a "
            "block-size axis over block-causal models is one sweep per model, each trained at its size "
            "(`MDMConfig(block_size=B)`, `hf-mdm train --block-size B`)."
        )
    return block_sizes


def cell_block_size(model, block_size: int | None, length: int) -> int:
    """The row's block size: the block-causal model's own, else `block_size`; the whole length for None or a size
    at or above it (one block)."""
    return model_block_size(model) or min(block_size or length, length)


def block_count(length: int, block_size: int) -> int:
    """Blocks of a generated region of `length` tokens: ceil(length / block_size)."""
    return -(-length // block_size)


# How many of a cell's first samples its `generation` record describes (the card's snippet reruns them).
RECORDED_SAMPLES = 1


def sample_seeds(seed: int, strategy: str, length: int, indices) -> list[int]:
    """The seed of each sample's generator, from the cell and the sample index (not from the batch or the process)."""
    base = zlib.crc32(f"{seed}/{strategy}/{length}".encode())
    return [base * 1_000_003 + index for index in indices]


def batch_seed(seed: int, strategy: str, length: int, indices: list[int]) -> int:
    """The seed of a batch whose sampler takes one seed (the autoregressive row, a model's own decoder): from the cell
    and the batch's first sample."""
    return zlib.crc32(f"{seed}/{strategy}/{length}/{indices[0]}".encode())


def ratio_standard_error(numerators: torch.Tensor, denominators: torch.Tensor) -> float:
    """Standard error of the ratio of sums R = sum(d) / sum(n) over n independent sequences (delta method):
    sqrt(sum((d_i - R n_i)^2) / (n (n - 1))) / mean(n_i); NaN for one sequence."""
    count = len(numerators)
    if count < 2:
        return float("nan")
    ratio = numerators.sum() / denominators.sum()
    residuals = numerators - ratio * denominators
    return float((residuals.square().sum() / (count * (count - 1))).sqrt() / denominators.mean())


def sample_generators(seed: int, strategy: str, length: int, indices: list[int]) -> list[torch.Generator]:
    """One generator per sample, seeded by `sample_seeds`."""
    return [torch.Generator().manual_seed(value) for value in sample_seeds(seed, strategy, length, indices)]


def block_length_kwargs(model, block_size: int, length: int) -> dict:
    """The cell's `block_length` keyword: none on a block-causal model (it decodes its own blocks) or for one block."""
    return {} if model_block_size(model) is not None or block_size >= length else {"block_length": block_size}


def diffusion_generate_kwargs(model, task, tokenizer, strategy, length, steps, generation_kwargs) -> dict:
    """A diffusion cell's generate() keywords besides its prompts and generators: sampling at temperature 1 from the
    whole distribution, the task's non-symbols suppressed (those the model's logits have: ids past its vocab_size are
    never generated), then the caller's `generation_kwargs` (with the cell's `block_length`)."""
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
    return output.sequences[:, -generate_kwargs["max_new_tokens"] :], output.nfe.float(), output.num_decoded_tokens


def _autoregressive_batch(model, tokenizer, task, length, indices, seed, generate_kwargs):
    # transformers' generate() samples from the global RNG: seed it per batch, and restore the caller's state after.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(batch_seed(seed, AUTOREGRESSIVE, length, indices))
        sequences = model.generate(**task.prompt(tokenizer, indices), **generate_kwargs)
    return sequences[:, -length:], torch.full((len(indices),), float(length)), torch.full((len(indices),), length)


def _own_decoder_batch(decoder, tokenizer, task, indices, seed, cell):
    inputs = task.prompt(tokenizer, indices)
    input_ids = inputs["input_ids"]
    attention_mask = inputs.get("attention_mask", torch.ones_like(input_ids))
    length = cell["length"]
    sequences, forwards = decoder.decode(input_ids, attention_mask, cell["steps"], length, cell["block_size"],
                                         cell["suppress_tokens"], batch_seed(seed, cell["strategy"], length, indices),
                                         **cell["options"])  # fmt: skip
    return sequences, forwards.float().cpu(), torch.full((len(indices),), length)


def run_cell(
    model, tokenizer, task, strategy, length, steps, block_size, num_samples, seed, batch_size, generation_kwargs
) -> dict:
    """Generate and score one cell (`block_size`: the row's, `cell_block_size`); `strategy == "autoregressive"`
    decodes with the causal `model`, a model with its own decoder with that decoder."""
    decoder = None if strategy == AUTOREGRESSIVE else own_decoder(model)
    if strategy == AUTOREGRESSIVE:
        generate_kwargs, samples = autoregressive_generate_kwargs(task, tokenizer, length), None
    elif decoder is not None:
        suppressed = diffusion_generate_kwargs(decoder.module, task, tokenizer, strategy, length, steps, {})
        generate_kwargs = {"decoder": decoder.name, "strategy": strategy, "steps": steps, "length": length,
                           "block_size": block_size, "suppress_tokens": suppressed["suppress_tokens"],
                           "options": generation_kwargs}  # fmt: skip
        first = list(range(min(num_samples, batch_size)))
        samples = {"seed": batch_seed(seed, strategy, length, first), "rows": len(first),
                   "prompts": task.prompt_texts(first)}  # fmt: skip
    else:
        generation_kwargs = {**generation_kwargs, **block_length_kwargs(model, block_size, length)}
        generate_kwargs = diffusion_generate_kwargs(model, task, tokenizer, strategy, length, steps, generation_kwargs)
        first = list(range(min(num_samples, RECORDED_SAMPLES)))
        samples = {"seeds": sample_seeds(seed, strategy, length, first), "prompts": task.prompt_texts(first)}
    generated, nfe, decoded, times = [], [], [], []
    for start in range(0, num_samples, batch_size):
        indices = list(range(start, min(start + batch_size, num_samples)))
        began = time.perf_counter()
        with torch.no_grad():
            if strategy == AUTOREGRESSIVE:
                sequences, row_nfe, row_decoded = _autoregressive_batch(model, tokenizer, task, length, indices,
                                                                        seed, generate_kwargs)  # fmt: skip
            elif decoder is not None:
                sequences, row_nfe, row_decoded = _own_decoder_batch(decoder, tokenizer, task, indices, seed,
                                                                     generate_kwargs)  # fmt: skip
            else:
                sequences, row_nfe, row_decoded = _diffusion_batch(model, tokenizer, task, indices, seed,
                                                                   generate_kwargs)  # fmt: skip
        times.append(time.perf_counter() - began)
        generated += sequences.tolist()
        nfe.append(row_nfe)
        decoded.append(row_decoded)
    scores = task.score(tokenizer, generated, list(range(num_samples)))
    nfe, decoded = torch.cat(nfe), torch.cat(decoded).float()
    return {
        "strategy": strategy,
        "length": length,
        "steps": steps,
        "block_size": block_size,
        "steps_per_block": steps / block_count(length, block_size),
        "nfe": float(nfe.mean()),
        "tokens_per_forward": float(decoded.sum() / nfe.sum()),
        "tokens_per_forward_standard_error": ratio_standard_error(decoded, nfe),
        "num_samples": num_samples,
        **scores,
        "latency_s": statistics.fmean(times),
        "latency_s_se": statistics.stdev(times) / math.sqrt(len(times)) if len(times) > 1 else None,
        "tokens_per_s": num_samples * length / sum(times),
        "seed": seed,
        "generation": generation_record(generate_kwargs, samples),
    }


def select_cells(grid: list[tuple], cells) -> list[tuple]:
    """The cells of `grid` (4-tuples) that `cells` names, each (strategy, length, steps, block_size), or
    (strategy, length, steps) when the grid has one block size at that length; any other is a ValueError."""
    wanted = set()
    for cell in check_list("cells", cells, '[("confidence", 32, 8, 4)]'):
        if not isinstance(cell, (tuple, list)) or len(cell) not in (3, 4):
            raise ValueError(f"A cell is (strategy, length, steps, block_size), got {cell!r}.")
        strategy, length, n = cell[0], check_positive_int("a cell's length", cell[1]), check_positive_int(
            "a cell's steps", cell[2])  # fmt: skip
        matches = [c for c in grid if c[:3] == (strategy, length, n)]
        if len(cell) == 4:
            matches = [c for c in matches if c[3] == check_positive_int("a cell's block size", cell[3])]
        elif len({c[3] for c in matches}) > 1:
            raise ValueError(
                f"The cell {cell!r} has block sizes {sorted(c[3] for c in matches)} in this grid; name one: "
                "(strategy, length, steps, block_size)."
            )
        if not matches:
            raise ValueError(f"The cell {cell!r} is not in the grid of strategies, lengths, steps and block sizes.")
        wanted.update(matches)
    return [cell for cell in grid if cell in wanted]


def sweep_steps(
    model,
    tokenizer,
    task: "LanguageTask | PromptTask",
    steps: list[int],
    strategies: "list[str] | None" = None,
    lengths: list[int] = (32,),
    num_samples: int = 64,
    seed: int = 0,
    batch_size: int = 32,
    autoregressive_model=None,
    output_path: "str | Path | None" = None,
    resume: bool = False,
    progress: bool = True,
    cells: "list[tuple] | None" = None,
    block_sizes: "list[int | None] | None" = None,
    **generation_kwargs,
) -> Dataset:
    """Run the (strategy x length x block size x steps) grid; return the table as a `datasets.Dataset`, one row per
    cell.

    Args:
        model: a model with the diffusion `generate()` (MDMForMaskedGeneration, or any masked LM after
            `enable_diffusion_generation`, or a language's oracle denoiser), or a model with its own decoder that an
            `hf_mdm.own_decoders` adapter wraps (DiffusionGemma, an `LLaDA2Pipeline`).
        tokenizer: its tokenizer (a formal language's `tokenizer()` for a `LanguageTask`).
        task: a `LanguageTask` (exact TER and SER) or a `PromptTask` (SER = wrong final answers).
        steps, strategies, lengths: the grid; `lengths` are generated tokens per sample. `strategies` unset:
            ["confidence"], or the own decoder's rule.
        num_samples: sequences per cell; `seed`: base seed; `batch_size`: sequences per `generate()` call.
        autoregressive_model: optional causal LM for the AR row of every length.
        output_path: JSON-lines file that receives each finished cell; `resume=True` keeps the cells already in it
            when it was written by the same sweep (same weights, task, seed, num_samples and generation arguments),
            and refuses it otherwise.
        cells: run only these (strategy, length, steps, block_size) cells of the grid (e.g. the next probe of several
            searches; (strategy, length, steps) when the grid has one block size); the autoregressive rows still come
            with `autoregressive_model`.
        block_sizes: the decoding block lengths (see the module docstring); None or "L" in it: one block (the row
            says the length). Unset: `[block_length]` of the generation keywords, or the block-causal model's own size.
        **generation_kwargs: passed to every `generate()` (e.g. `schedule`, `cache`); not the arguments the sweep
            sets itself (`SET_BY_THE_SWEEP`: it samples at temperature 1 with its own seeds, `steps` its budget).

    Every argument is checked before the first cell runs (a ValueError that names it), every cell of the grid too:
    a block size that does not divide a length, or fewer steps than a cell's blocks (each block needs one).
    """
    steps, lengths = check_positive_ints("steps", steps), check_positive_ints("lengths", lengths)
    decoder = own_decoder(model)
    if strategies is None:
        strategies = ["confidence"] if decoder is None else [decoder.strategy]
    strategies = check_names("strategies", strategies)
    num_samples = check_positive_int("num_samples", num_samples)
    batch_size = check_positive_int("batch_size", batch_size)
    seed = check_int("seed", seed)
    if AUTOREGRESSIVE in strategies:
        raise ValueError("The autoregressive row comes from `autoregressive_model=`, not from `strategies`.")
    fixed = sorted(set(generation_kwargs) & set(SET_BY_THE_SWEEP))
    if fixed and decoder is None:
        raise ValueError(
            f"sweep_steps sets {fixed} itself (every cell samples at temperature 1 with per-sample seeds, the task's "
            "special tokens suppressed); drop them from the keyword arguments, or pass `steps`/`lengths`/`seed`."
        )
    generation_kwargs = dict(generation_kwargs)
    block_sizes = check_block_sizes(block_sizes, generation_kwargs, model)
    for length in lengths:
        task.check_length(length)
    sizes = {length: list(dict.fromkeys(cell_block_size(model, b, length) for b in block_sizes)) for length in lengths}
    for strategy in strategies if decoder is None else ():  # every name and its arguments, before any cell runs
        for length in lengths:
            for size in sizes[length]:
                DiffusionGenerationConfig(strategy=strategy, max_new_tokens=length, **generation_kwargs,
                                          **block_length_kwargs(model, size, length)).validate()  # fmt: skip
    if decoder is None:
        check_mask_token(model, tokenizer)

    # a cell listed twice (a step count, or two sizes that are one block) runs once
    grid = list(dict.fromkeys((strategy, length, n, size) for strategy in strategies for length in lengths
                              for size in sizes[length] for n in steps))  # fmt: skip
    if cells is not None:
        grid = select_cells(grid, cells)
    too_few = [cell for cell in grid if cell[2] < block_count(cell[1], cell[3])]
    if too_few:
        raise ValueError(
            f"The cells {too_few} (strategy, length, steps, block size) have fewer steps than blocks "
            "(ceil(length / block size)); every block needs at least one step. Raise `steps`, or run the possible "
            "cells only with cells=[...]."
        )
    for strategy, length, n, size in grid if decoder is not None else ():  # what the model's own decoder can run
        decoder.check(strategy, length, n, size, generation_kwargs)
    cells = grid
    if autoregressive_model is not None:
        cells += [(AUTOREGRESSIVE, length, length, 1) for length in lengths]
    # On a CPU-only model the processes still form a group (gloo); PartialState needs to be told.
    state = PartialState(cpu=getattr(model, "device", torch.device("cpu")).type == "cpu")
    rows = []
    if output_path is not None:
        row_columns = tuple(c for c in names(resume_checked=True) if COLUMNS[c].source in ("cell", "sweep", "record"))
        identity = sweep_identity(model if decoder is None else decoder.identity(), task, seed, num_samples,
                                  generation_kwargs, autoregressive_model, row_columns)  # fmt: skip
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
            strategy, length, n, size = mine
            decoder = autoregressive_model if strategy == AUTOREGRESSIVE else model
            row = run_cell(decoder, tokenizer, task, strategy, length, n, size, num_samples, seed, batch_size,
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
