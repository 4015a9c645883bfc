"""Command-line description of a formal language (`--language ngram|hmm|copy ...`), shared by train, sweep and demo."""

from dataclasses import dataclass, field

from ..languages import CopyLanguage, FormalLanguage, HMMLanguage, NGramLanguage


LANGUAGE_KINDS = ("ngram", "hmm", "copy")


@dataclass
class LanguageArguments:
    language: str | None = field(
        default=None, metadata={"help": f"Train/evaluate on a formal language instead of a dataset: {LANGUAGE_KINDS}."}
    )
    language_vocab_size: int = field(default=8, metadata={"help": "Symbols of the formal language."})
    language_order: int = field(default=2, metadata={"help": "n of the n-gram language (also the copy's base)."})
    language_support: int | None = field(
        default=None, metadata={"help": "Allowed successors per context (sparse languages have invalid sequences)."}
    )
    language_states: int = field(default=4, metadata={"help": "Hidden states of the HMM language."})
    language_seed: int = field(default=0, metadata={"help": "Seed of the language's random probabilities."})

    def build(self) -> FormalLanguage:
        """The formal language these arguments describe."""
        if self.language not in LANGUAGE_KINDS:
            raise ValueError(f"--language must be one of {', '.join(LANGUAGE_KINDS)}, got {self.language!r}.")
        if self.language == "hmm":
            return HMMLanguage(
                self.language_states,
                self.language_vocab_size,
                emission_support=self.language_support,
                seed=self.language_seed,
            )
        ngram = NGramLanguage(
            self.language_vocab_size, n=self.language_order, support=self.language_support, seed=self.language_seed
        )
        return CopyLanguage(ngram) if self.language == "copy" else ngram

    def describe(self) -> str:
        support = f", support {self.language_support}" if self.language_support else ""
        if self.language == "hmm":
            return f"HMM language ({self.language_states} states, {self.language_vocab_size} symbols{support})"
        kind = "copy of an " if self.language == "copy" else ""
        return f"{kind}{self.language_order}-gram language ({self.language_vocab_size} symbols{support})"
