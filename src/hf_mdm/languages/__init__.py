"""Formal languages with exact probabilities: the testbed where token and sequence error are computed, not estimated.

Symbols 0..V-1 of a language are token ids 0..V-1 of `language.tokenizer()`; <mask>, <pad>, <bos>, <eos> follow.
"""

from .base import EntropyRate, FormalLanguage
from .copy_language import CopyLanguage
from .hidden_markov import HiddenMarkovLanguage
from .hmm import HMMLanguage
from .language_registry import LANGUAGES, LanguageOptions, build_language, describe_language, register_language
from .ngram import NGramLanguage
from .oracle import OracleDenoiser
from .research_languages import RESEARCH_LANGUAGES, describe_research_language, research_language
from .tokenization import SPECIAL_TOKENS, build_tokenizer, special_token_ids


__all__ = [
    "FormalLanguage",
    "EntropyRate",
    "HiddenMarkovLanguage",
    "NGramLanguage",
    "HMMLanguage",
    "CopyLanguage",
    "OracleDenoiser",
    "LANGUAGES",
    "LanguageOptions",
    "register_language",
    "build_language",
    "describe_language",
    "RESEARCH_LANGUAGES",
    "research_language",
    "describe_research_language",
    "SPECIAL_TOKENS",
    "build_tokenizer",
    "special_token_ids",
]
