"""A folder as the operations of one Hub commit (what transformers' push_to_hub commits, minus its README rewrite)."""

from pathlib import Path

from huggingface_hub import CommitOperationAdd


def folder_operations(folder: "str | Path") -> list[CommitOperationAdd]:
    """One `CommitOperationAdd` per file under `folder`, at its path relative to the folder."""
    files = sorted(path for path in Path(folder).rglob("*") if path.is_file())
    return [
        CommitOperationAdd(path_in_repo=path.relative_to(folder).as_posix(), path_or_fileobj=str(path))
        for path in files
    ]
