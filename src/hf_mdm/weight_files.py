"""Checks on local weight files before loading: complete safetensors files, and an optional SHA-256 comparison.

safetensors checks that a file's header is well formed and covers the file, not that the tensor bytes are the ones
that were saved: a flipped byte in the data loads silently. `verify_sha256` compares a file with a hash you trust.
"""

import hashlib
from pathlib import Path

from safetensors import SafetensorError, safe_open


def check_safetensors_files(folder: "str | Path") -> None:
    """Raise an OSError naming the file when a `*.safetensors` file of `folder` is empty, truncated or corrupt."""
    for path in sorted(Path(folder).glob("*.safetensors")):
        try:
            with safe_open(path, framework="pt"):
                pass
        except SafetensorError as error:
            raise OSError(
                f"{path} ({path.stat().st_size} bytes) is not a complete safetensors file ({error}); it was truncated "
                "or damaged: save or download it again."
            ) from None


def sha256_of_file(path: "str | Path", chunk_size: int = 1 << 20) -> str:
    """The hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: "str | Path", expected: str) -> None:
    """Raise a ValueError unless the file's SHA-256 equals `expected` (hex, any case)."""
    found = sha256_of_file(path)
    if found != expected.strip().lower():
        raise ValueError(
            f"{path} has SHA-256 {found}, expected {expected.strip().lower()}: it is not the file you trust; "
            "download or copy it again."
        )


__all__ = ["check_safetensors_files", "sha256_of_file", "verify_sha256"]
