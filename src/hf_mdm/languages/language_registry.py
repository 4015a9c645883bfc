"""Formal languages by name (`--language <name>`): a language class registers itself with
`@register_language(name)` and says how the shared options build and describe it, so a new language is one file.

The options are the same for every language (`LanguageOptions`); each class uses the ones it needs.
"""

from typing import NamedTuple

from ..registry import Registry


class LanguageOptions(NamedTuple):
    """The options a language is built from by name: symbols, n-gram order (also a copy's base), allowed successors
    or emissions per context or state (None: all), hidden states of an HMM, and the seed of the random
    probabilities."""

    vocab_size: int = 8
    order: int = 2
    support: int | None = None
    states: int = 4
    seed: int = 0


LANGUAGES = Registry("formal language", "hf_mdm.languages.register_language", "options")
register_language = LANGUAGES.register


def build_language(name: str, options: LanguageOptions):
    """The language registered as `name`, built from `options` (a ValueError naming the choices for another name)."""
    LANGUAGES.check(name)
    return LANGUAGES[name].from_options(options)


def describe_language(name: str, options: LanguageOptions) -> str:
    """One line naming the language that `build_language(name, options)` builds."""
    LANGUAGES.check(name)
    return LANGUAGES[name].describe_options(options)
