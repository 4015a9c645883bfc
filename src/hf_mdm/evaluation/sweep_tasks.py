"""What a step-vs-error sweep generates and how it scores it: a formal language (exact errors) or prompts with answers.

A task gives, for the samples of a cell, the `generate()` inputs (and their prompt texts, which a row records), and
scores the generated token ids:
`ser` with its Wilson interval and, where defined, token-error columns with their standard errors (`SCORE_COLUMNS`:
the `sweep_columns` of source "task", part of a resume file's identity). Both use the evaluate modules of
`hf_mdm.metrics`, loaded once per task.
"""

import functools
from collections.abc import Callable
from dataclasses import dataclass

import evaluate
import torch

from .. import metrics
from ..languages import FormalLanguage
from .sweep_columns import SCORE_COLUMNS


@functools.cache
def load_metric(name: str) -> evaluate.EvaluationModule:
    """An hf-mdm evaluate module, loaded once per process."""
    return evaluate.load(metrics.path(name))


def score_row(ser: dict, **scores) -> dict:
    """A task's scores: every `SCORE_COLUMNS` column, in its order; the SER columns from the sequence_error_rate
    result `ser`, then `scores`, and None for the columns the task does not define."""
    ser_columns = {"ser": ser["sequence_error_rate"], "ser_low": ser["ci_low"], "ser_high": ser["ci_high"]}
    return {**dict.fromkeys(SCORE_COLUMNS), **ser_columns, **scores}


@dataclass
class LanguageTask:
    """Unconditional samples of a formal language, scored exactly: SER = P(invalid sequence), TER against the
    language's entropy rate, each with its standard error (`log_perplexity_se`, `ter_gap_se`: over sequences, see
    the token_error_rate metric). Special tokens are suppressed so every generated id is a symbol of the language."""

    SCORE_COLUMNS = SCORE_COLUMNS
    language: FormalLanguage
    name: str = "formal language"

    def check_length(self, length: int) -> None:
        self.language.check_length(length)

    def inputs(self, tokenizer, indices: list[int]) -> dict:
        """No prompt: unconditional samples, one per generator."""
        return {"input_ids": None}

    def prompt_texts(self, indices: list[int]) -> None:
        return None

    def suppressed_ids(self, tokenizer) -> list[int]:
        return [i for i in range(len(tokenizer)) if i >= self.language.vocab_size]

    def prompt(self, tokenizer, indices: list[int]) -> dict:
        """The autoregressive baseline's prompt: <bos> alone."""
        return {"input_ids": torch.full((len(indices), 1), tokenizer.bos_token_id)}

    @functools.cached_property
    def entropy_rate(self):
        return self.language.entropy_rate()

    def score(self, tokenizer, generated: list[list[int]], indices: list[int]) -> dict:
        ser = load_metric("sequence_error_rate").compute(predictions=generated, language=self.language)
        ter = load_metric("token_error_rate").compute(
            predictions=generated, language=self.language, entropy_rate=self.entropy_rate
        )
        return score_row(
            ser,
            invalid_token_rate=ter["invalid_token_rate"],
            log_perplexity=ter["log_perplexity"],
            log_perplexity_se=ter["log_perplexity_standard_error"],
            entropy_rate=ter["entropy_rate"],
            ter_gap=ter["token_error_rate"],
            ter_gap_se=ter["token_error_rate_standard_error"],
        )


@dataclass
class PromptTask:
    """Prompts with reference answers: SER = wrong answers after `normalizer` (e.g. extract the final number),
    token error = position-wise disagreement of the normalised texts' words."""

    SCORE_COLUMNS = SCORE_COLUMNS
    dataset: object
    prompt_column: str = "prompt"
    reference_column: str = "answer"
    normalizer: Callable[[str], str] | None = None
    name: str = "prompts"

    def __post_init__(self):
        missing = {self.prompt_column, self.reference_column} - set(self.dataset.column_names)
        if missing:
            raise ValueError(
                f"The task dataset has no column {sorted(missing)}; columns: {self.dataset.column_names}."
            )

    def check_length(self, length: int) -> None:
        if length < 1:
            raise ValueError(f"Generated lengths must be positive, got {length}.")

    def prompt_texts(self, indices: list[int]) -> list[str]:
        """Sample i's prompt: row i modulo the dataset's length."""
        return [self.dataset[i % len(self.dataset)][self.prompt_column] for i in indices]

    def prompt(self, tokenizer, indices: list[int]) -> dict:
        return tokenizer(self.prompt_texts(indices), return_tensors="pt", padding=True, padding_side="left")

    def inputs(self, tokenizer, indices: list[int]) -> dict:
        return self.prompt(tokenizer, indices)

    def suppressed_ids(self, tokenizer) -> list[int]:
        return [tokenizer.mask_token_id] if tokenizer.mask_token_id is not None else []

    def score(self, tokenizer, generated: list[list[int]], indices: list[int]) -> dict:
        normalize = self.normalizer or (lambda text: text.strip())
        predictions = [normalize(text) for text in tokenizer.batch_decode(generated, skip_special_tokens=True)]
        references = [normalize(self.dataset[i % len(self.dataset)][self.reference_column]) for i in indices]
        ser = load_metric("sequence_error_rate").compute(predictions=predictions, references=references)
        ter = load_metric("token_error_rate").compute(predictions=predictions, references=references)
        return score_row(ser, token_error=ter["token_error_rate"])
