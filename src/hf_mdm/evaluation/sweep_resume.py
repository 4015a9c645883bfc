"""The resume file of a sweep: JSON lines, an identity header first, then one checksummed row per finished cell.

The header holds what makes two sweeps the same (a SHA-256 of the model's weights, of the task, of the generation
arguments; the seed and `num_samples`; the columns the task scores): a resume file written by another sweep is
refused, never silently reused, and so is one whose rows lack columns this hf-mdm writes (e.g. `ter_gap_se`), which a
resumed table would otherwise hold for some cells only.
Each row carries a SHA-256 of its values and of that identity, so a row edited by hand is refused too. A line that
does not parse or lacks keys (a sweep killed mid-write) is skipped with a warning, and its cell runs again.
"""

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import torch
from datasets import Dataset
from transformers.utils import logging

from .argument_checks import check_known
from .sweep_columns import REQUIRED_CELL_COLUMNS
from .sweep_table import describe_cell


logger = logging.get_logger(__name__)

HEADER_KEY = "sweep_identity"
CHECKSUM_KEY = "checksum"


def _feed(digest, value, seen: dict) -> None:
    """Feed a canonical byte form of `value` to `digest` (weights, tensors, datasets, callables, plain objects).

    `seen` maps id -> object for the objects already fed (cycles are fed once); holding the objects keeps their ids
    from being reused by temporaries."""
    if isinstance(value, (str, int, float, bool, type(None))):
        digest.update(repr(value).encode())
        return
    if id(value) in seen:
        return
    seen[id(value)] = value
    digest.update(type(value).__qualname__.encode())
    if isinstance(value, torch.nn.Module):  # weights: bit for bit
        for name, tensor in value.state_dict().items():
            digest.update(f"{name}{tensor.dtype}{tuple(tensor.shape)}".encode())
            digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(value, torch.Tensor):
        # Other tensors may be derived with run-to-run rounding differences (e.g. a language's stationary
        # distribution): floats are compared at float32 with the 8 lowest mantissa bits dropped (~1e-5 relative).
        tensor = value.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{tensor.dtype}{tuple(value.shape)}".encode())
        if tensor.is_floating_point():
            tensor = tensor.to(torch.float32).view(torch.int32) & -256
        digest.update(tensor.view(torch.uint8).numpy().tobytes())
    elif isinstance(value, Dataset):
        digest.update(value._fingerprint.encode())
    elif isinstance(value, dict):
        for key in sorted(value, key=repr):
            _feed(digest, key, seen)
            _feed(digest, value[key], seen)
    elif isinstance(value, (list, tuple)):
        for item in value:
            _feed(digest, item, seen)
    elif hasattr(value, "__code__"):  # a function: its code and constants, not its address
        digest.update(value.__code__.co_code)
        _feed(digest, [c for c in value.__code__.co_consts if not hasattr(c, "co_code")], seen)
    elif dataclasses.is_dataclass(value):
        _feed(digest, {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}, seen)
    elif hasattr(value, "__dict__"):  # public attributes only: private ones are caches derived from them
        _feed(digest, {k: v for k, v in vars(value).items() if not k.startswith("_")}, seen)
    else:
        digest.update(repr(value).encode())


def fingerprint(value) -> str:
    """Hex SHA-256 of `value`'s content (for a model: its weights)."""
    digest = hashlib.sha256()
    _feed(digest, value, {})
    return digest.hexdigest()


def sweep_identity(model, task, seed, num_samples, generation_kwargs, autoregressive_model, row_columns=()) -> dict:
    """What two sweeps must share for one to reuse the other's cells; `row_columns`: columns its rows hold besides
    the task's scores (a file whose rows lack some is refused as written by an older hf-mdm)."""
    return {
        "model_sha256": fingerprint(model),
        "autoregressive_model_sha256": None if autoregressive_model is None else fingerprint(autoregressive_model),
        "task": getattr(task, "name", type(task).__name__),
        "task_sha256": fingerprint(task),
        "seed": int(seed),
        "num_samples": int(num_samples),
        "generation_kwargs_sha256": fingerprint(generation_kwargs),
        # None (as in headers written before the key existed) for tasks that do not declare their columns.
        "score_columns": list(getattr(task, "SCORE_COLUMNS", ())) + list(row_columns) or None,
    }


def row_checksum(identity: dict, row: dict) -> str:
    payload = json.dumps([identity, {k: v for k, v in row.items() if k != CHECKSUM_KEY}], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def _parsed_lines(path: Path) -> list:
    """Each line's JSON object, or None for a torn line (warned about)."""
    parsed = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            value = None
        if not isinstance(value, dict):
            logger.warning(
                f"{path}: line {number} is not a complete JSON object (a sweep stopped mid-write?); skipped."
            )
            value = None
        parsed.append(value)
    return parsed


def read_sweep_rows(path: "str | Path", **where) -> list[dict]:
    """The cell rows of a sweep's (or `hf-mdm eval`'s) JSON-lines file, without header and checksums.

    `where` keeps the rows whose columns equal the given values, e.g. `read_sweep_rows(path, strategy="confidence",
    length=32)`. A column the rows do not have, or a value none of them holds (a misspelled strategy), is refused
    with the values they do hold: a filter never silently selects nothing. A missing file is refused too.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No sweep file {path}; run `hf-mdm sweep` or sweep_steps(output_path=...) first.")
    rows = [value for value in _parsed_lines(path) if value is not None and HEADER_KEY not in value]
    rows = [{k: v for k, v in row.items() if k != CHECKSUM_KEY} for row in rows
            if all(k in row for k in REQUIRED_CELL_COLUMNS)]  # fmt: skip
    for column, value in where.items():
        check_known("column", column, {key for row in rows for key in row}, f"the rows of {path}")
        check_known(column, value, [row.get(column) for row in rows], f"the rows of {path}")
        rows = [row for row in rows if row.get(column) == value]
    return rows


def open_resume_file(path: "str | Path", identity: dict, resume: bool, write: bool) -> list[dict]:
    """The finished rows of `path` for this sweep, after checking it belongs to it; (re)writes a clean file when
    `write` (the main process), which also proves the path writable before any cell runs."""
    path = Path(path)
    if path.exists() and not resume:
        raise ValueError(f"{path} already exists; pass resume=True to continue it, or choose a new path.")
    rows = []
    parsed = _parsed_lines(path) if path.exists() else []
    if any(value is not None for value in parsed):
        header = parsed[0] if parsed[0] is not None else {}
        written = header.get(HEADER_KEY)
        if not isinstance(written, dict):
            raise ValueError(
                f"{path} has no sweep identity header (written by an older hf-mdm, or not a sweep file); delete it "
                "or choose another output path."
            )
        differing = sorted(key for key in identity.keys() | written.keys() if identity.get(key) != written.get(key))
        # Headers from before `score_columns` existed: the columns its rows hold.
        written_columns = written.get("score_columns") or set().union(*(row.keys() for row in parsed[1:] if row))
        missing = sorted(set(identity.get("score_columns") or ()) - set(written_columns))
        if differing == ["score_columns"] and missing:
            raise ValueError(
                f"{path} was written by an older hf-mdm whose rows lack the columns {missing}; its cells must run "
                "again: delete it or choose another output path."
            )
        if differing:
            raise ValueError(
                f"{path} was written by a different sweep (differs in {', '.join(differing)}); delete it or choose "
                "another output path."
            )
        for number, value in enumerate(parsed[1:], start=2):
            if value is None or not all(key in value for key in (*REQUIRED_CELL_COLUMNS, CHECKSUM_KEY)):
                if value is not None:
                    logger.warning(f"{path}: row {number} lacks cell keys (a sweep stopped mid-write?); skipped.")
                continue
            if value[CHECKSUM_KEY] != row_checksum(identity, value):
                raise ValueError(
                    f"{path}: row {number} ({describe_cell(value)}) does not match its checksum: its values were "
                    "edited. Delete the file or choose another path."
                )
            rows.append({k: v for k, v in value.items() if k != CHECKSUM_KEY})
    if write:
        try:
            temporary = path.with_name(path.name + ".tmp")
            temporary.write_text("".join(json.dumps(line) + "\n" for line in _lines(identity, rows)))
            os.replace(temporary, path)
        except OSError as error:
            raise ValueError(
                f"Cannot write the sweep file {path} ({error.strerror}); choose a writable path."
            ) from None
    return rows


def _lines(identity: dict, rows: list[dict]) -> list[dict]:
    return [{HEADER_KEY: identity}] + [{**row, CHECKSUM_KEY: row_checksum(identity, row)} for row in rows]


def append_rows(path: "str | Path", identity: dict, rows: list[dict]) -> None:
    """Append finished cells with their checksums."""
    with open(path, "a") as file:
        file.writelines(json.dumps(line) + "\n" for line in _lines(identity, rows)[1:])


__all__ = ["append_rows", "fingerprint", "open_resume_file", "read_sweep_rows", "sweep_identity"]
