"""`evaluate` modules shipped with hf-mdm, one folder each; load one offline with `evaluate.load(path(name))`.

import evaluate, hf_mdm
ser = evaluate.load(hf_mdm.metrics.path("sequence_error_rate"))
"""

from pathlib import Path


METRICS = ("sequence_error_rate", "token_error_rate", "generative_perplexity")


def path(name: str) -> str:
    """The folder of the evaluate module `name`, to pass to `evaluate.load`."""
    if name not in METRICS:
        raise ValueError(f"Unknown hf-mdm metric {name!r}; choose one of {list(METRICS)}.")
    return str(Path(__file__).parent / name)


__all__ = ["METRICS", "path"]
