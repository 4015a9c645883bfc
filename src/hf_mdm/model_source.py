"""Where a model is read from: a local folder or a Hub repo id, told apart before anything is loaded or fetched."""

from pathlib import Path

from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id


def check_model_source(name_or_path: str, argument: str = "model", required_file: str | None = None) -> None:
    """Refuse a `name_or_path` that is neither a local folder nor possibly a Hub repo id.

    A path that does not exist and that `validate_repo_id` rejects (absolute, starting with `.` or `~`, more than one
    `/`, ...) raises `FileNotFoundError("No such folder: ...")`, instead of transformers' "Repo id must be in the
    form ..." about a name the user never meant as a repo id; a file raises too (a model is a folder), and so does a
    local folder without `required_file` (`config.json` for a model: otherwise its tokenizer, read first, fails with a
    message about tokenizer backends). A name that can be a repo id (`org/name`) is left to the Hub.
    """
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        if required_file is not None and not (path / required_file).is_file():
            raise FileNotFoundError(
                f"{argument} {name_or_path} has no {required_file}: it is not a model folder (one holds "
                f"{required_file} and the weights, as save_pretrained writes them)."
            )
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
