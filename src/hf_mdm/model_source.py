"""Where a model is read from: a local folder or a Hub repo id, told apart before anything is loaded or fetched."""

from pathlib import Path

from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id


def check_model_source(name_or_path: str, argument: str = "model") -> None:
    """Refuse a `name_or_path` that is neither a local folder nor possibly a Hub repo id.

    A path that does not exist and that `validate_repo_id` rejects (absolute, starting with `.` or `~`, more than one
    `/`, ...) raises `FileNotFoundError("No such folder: ...")`, instead of transformers' "Repo id must be in the
    form ..." about a name the user never meant as a repo id; a file raises too (a model is a folder). A name that can
    be a repo id (`org/name`) is left to the Hub.
    """
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return
    if path.exists():
        raise NotADirectoryError(f"{argument} {name_or_path} is a file; pass the folder that holds its config.json.")
    try:
        validate_repo_id(str(name_or_path))
    except HFValidationError:
        raise FileNotFoundError(
            f"No such folder: {name_or_path}; pass an existing {argument} folder or a Hub repo id (org/name)."
        ) from None


__all__ = ["check_model_source"]
