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
"""

import time
import zlib
from pathlib import Path

import torch
from accelerate import PartialState
from accelerate.utils import gather_object
from datasets import Dataset
from tqdm.auto import tqdm
from transformers import LogitsProcessorList, SuppressTokensLogitsProcessor

from ..generation import DiffusionGenerationConfig
from ..tokenizer_checks import check_mask_token
from .sweep_resume import append_rows, open_resume_file, sweep_identity
from .sweep_tasks import LanguageTask, PromptTask


AUTOREGRESSIVE = "autoregressive"


def cell_key(row: dict) -> tuple:
    return (row["strategy"], int(row["length"]), int(row["steps"]))


def sample_generators(seed: int, strategy: str, length: int, indices: list[int]) -> list[torch.Generator]:
    """One generator per sample, seeded from the cell and the sample index (not from the batch or the process)."""
    base = zlib.crc32(f"{seed}/{strategy}/{length}".encode())
    return [torch.Generator().manual_seed(base * 1_000_003 + index) for index in indices]


def _diffusion_batch(model, tokenizer, task, strategy, length, steps, indices, seed, generation_kwargs):
    inputs = task.inputs(tokenizer, indices, length)
    suppress = LogitsProcessorList([SuppressTokensLogitsProcessor(task.suppressed_ids(tokenizer))])
    output = model.generate(
        **inputs,
        steps=steps,
        strategy=strategy,
        do_sample=True,
        temperature=1.0,
        top_k=None,
        top_p=None,
        logits_processor=suppress,
        generator=sample_generators(seed, strategy, length, indices),
        return_dict_in_generate=True,
        **generation_kwargs,
    )
    return output.sequences[:, -length:], output.nfe.float()


def _autoregressive_batch(model, tokenizer, task, length, indices, seed):
    # transformers' generate() samples from the global RNG: seed it per batch, and restore the caller's state after.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(zlib.crc32(f"{seed}/{AUTOREGRESSIVE}/{length}/{indices[0]}".encode()))
        sequences = model.generate(
            **task.prompt(tokenizer, indices),
            do_sample=True,
            temperature=1.0,
            top_k=0,
            top_p=1.0,
            min_new_tokens=length,
            max_new_tokens=length,
            suppress_tokens=task.suppressed_ids(tokenizer) or None,
            pad_token_id=tokenizer.pad_token_id,
        )
    return sequences[:, -length:], torch.full((len(indices),), float(length))


def run_cell(
    model, tokenizer, task, strategy, length, steps, num_samples, seed, batch_size, generation_kwargs
) -> dict:
    """Generate and score one cell; `strategy == "autoregressive"` decodes with the causal `model`."""
    generated, nfe, elapsed, batches = [], [], 0.0, 0
    for start in range(0, num_samples, batch_size):
        indices = list(range(start, min(start + batch_size, num_samples)))
        began = time.perf_counter()
        with torch.no_grad():
            if strategy == AUTOREGRESSIVE:
                sequences, row_nfe = _autoregressive_batch(model, tokenizer, task, length, indices, seed)
            else:
                sequences, row_nfe = _diffusion_batch(
                    model, tokenizer, task, strategy, length, steps, indices, seed, generation_kwargs
                )
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
        **generation_kwargs: passed to every `generate()` (e.g. `block_length`, `schedule`, `cache`).
    """
    if not steps or not strategies or not lengths:
        raise ValueError("steps, strategies and lengths must each list at least one value.")
    if num_samples < 1 or batch_size < 1:
        raise ValueError(f"num_samples and batch_size must be positive, got {num_samples} and {batch_size}.")
    if any(int(s) < 1 for s in steps):
        raise ValueError(f"Every step count must be >= 1, got {list(steps)}.")
    if AUTOREGRESSIVE in strategies:
        raise ValueError("The autoregressive row comes from `autoregressive_model=`, not from `strategies`.")
    for length in lengths:
        task.check_length(int(length))
    for strategy in strategies:  # every name and its arguments, before the first cell runs
        DiffusionGenerationConfig(strategy=strategy, **generation_kwargs).validate()
    check_mask_token(model, tokenizer)

    grid = [(strategy, int(length), int(n)) for strategy in strategies for length in lengths for n in steps]
    if cells is not None:
        wanted = {(strategy, int(length), int(n)) for strategy, length, n in cells}
        if not wanted <= set(grid):
            raise ValueError(f"cells {sorted(wanted - set(grid))} are not in the grid of strategies, lengths, steps.")
        grid = [cell for cell in grid if cell in wanted]
    cells = grid
    if autoregressive_model is not None:
        cells += [(AUTOREGRESSIVE, int(length), int(length)) for length in lengths]
    # On a CPU-only model the processes still form a group (gloo); PartialState needs to be told.
    state = PartialState(cpu=getattr(model, "device", torch.device("cpu")).type == "cpu")
    rows = []
    if output_path is not None:
        identity = sweep_identity(model, task, seed, num_samples, generation_kwargs, autoregressive_model)
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
