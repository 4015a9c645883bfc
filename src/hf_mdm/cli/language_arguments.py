"""Command-line description of a formal language (`--language <registered name> ...`), shared by train, sweep and
demo; the choices are the languages registered with `@register_language` (see `languages.language_registry`)."""

from dataclasses import dataclass, field

from ..languages import LANGUAGES, FormalLanguage, LanguageOptions, build_language, describe_language


def language_choices() -> str:
    """The registered language names, sorted and comma-separated, for messages."""
    return ", ".join(sorted(LANGUAGES))


@dataclass
class LanguageArguments:
    language: str | None = field(
        default=None,
        metadata={"help": f"Train/evaluate on a formal language instead of a dataset: {tuple(sorted(LANGUAGES))}."},
    )
    language_vocab_size: int = field(default=8, metadata={"help": "Symbols of the formal language."})
    language_order: int = field(default=2, metadata={"help": "n of the n-gram language (also the copy's base)."})
    language_support: int | None = field(
        default=None, metadata={"help": "Allowed successors per context (sparse languages have invalid sequences)."}
    )
    language_states: int = field(default=4, metadata={"help": "Hidden states of the HMM language."})
    language_seed: int = field(default=0, metadata={"help": "Seed of the language's random probabilities."})

    def options(self) -> LanguageOptions:
        """The options of `--language_<option>`, e.g. `--language_order` -> `order`."""
        return LanguageOptions(**{name: getattr(self, f"language_{name}") for name in LanguageOptions._fields})

    def check(self) -> None:
        if self.language not in LANGUAGES:
            raise ValueError(f"--language must be one of {language_choices()}, got {self.language!r}.")

    def build(self) -> FormalLanguage:
        """The formal language these arguments describe."""
        self.check()
        return build_language(self.language, self.options())

    def describe(self) -> str:
        self.check()
        return describe_language(self.language, self.options())
