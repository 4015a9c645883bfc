"""The languages of the project's research measurements, by name: the benchmarks, `hf-mdm reproduce` and the trained
checkpoints all mean the same language when they say `trigram` or `hmm`."""

from .base import FormalLanguage
from .hmm import HMMLanguage
from .ngram import NGramLanguage


# name: (description, builder)
RESEARCH_LANGUAGES = {
    "trigram": (
        "trigram over 32 symbols, 8 successors per context",
        lambda: NGramLanguage(32, n=3, support=8, seed=0),
    ),
    "hmm": (
        "HMM, 16 states, 32 symbols, 4 moves and 8 emissions per state",
        lambda: HMMLanguage(16, 32, 4, 8, seed=0),
    ),
}


def research_language(name: str) -> FormalLanguage:
    """The research language called `name` (`trigram` or `hmm`)."""
    if name not in RESEARCH_LANGUAGES:
        raise ValueError(f"Unknown research language {name!r}; choose one of {sorted(RESEARCH_LANGUAGES)}.")
    return RESEARCH_LANGUAGES[name][1]()


def describe_research_language(name: str) -> str:
    research_language(name)  # the same error for an unknown name
    return RESEARCH_LANGUAGES[name][0]
