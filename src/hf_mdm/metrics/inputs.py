"""Input checks shared by the metric modules, and scoring symbol sequences by a language.

Every module checks its predictions (and references) in `add_batch`, before `evaluate` encodes and writes them: a
failed encoding there would leave the module's writer holding the wrong format, so that the next, correct `compute`
fails with a misleading "don't match the expected format". Predictions are texts or token-id sequences (lists,
tuples, numpy arrays or tensors of integers): a float id (`1.5` would be cast to 1), a boolean or a string where an
id belongs is refused, and so are an empty batch, a mixed batch and references of another kind.
"""

import math

import evaluate
import torch

from ..value_checks import is_integer, is_real


def as_plain(item):
    """A text as it is; a token-id sequence (list, tuple, array, tensor) as a list; anything else unchanged."""
    if isinstance(item, str):
        return item
    if isinstance(item, torch.Tensor) or hasattr(item, "tolist"):
        return item.tolist()
    return list(item) if isinstance(item, (list, tuple)) else item


def kind_of(metric: str, column: str, index: int, item) -> str:
    """ "text" or "ids" for one prediction or reference, or a ValueError naming what it is."""
    if isinstance(item, str):
        return "text"
    if isinstance(item, list):
        bad = [token for token in item if not is_integer(token)]
        if bad:
            raise ValueError(
                f"{metric}: {column}[{index}] holds {bad[:3]!r}, which are not token ids (integers: a float would be "
                "truncated, a bool or a string misread): pass the ids as integers, e.g. tensor.long().tolist()."
            )
        return "ids"
    raise ValueError(
        f"{metric}: {column}[{index}] is a {type(item).__name__}; pass texts (str) or token-id sequences (lists of "
        "integers)."
    )


def check_column(metric: str, column: str, values, kinds: tuple[str, ...]) -> tuple[list, str]:
    """`values` as plain texts or id lists, all of one of `kinds`; returns (values, their kind)."""
    if isinstance(values, (str, bytes)):
        raise ValueError(f"{metric}: {column} must be a list, got the string {values!r}: pass [{values!r}].")
    if values is None or not hasattr(values, "__len__") or len(values) == 0:
        raise ValueError(f"{metric} got no {column}; pass a non-empty list of them.")
    values = [as_plain(value) for value in values]
    found = sorted({kind_of(metric, column, index, value) for index, value in enumerate(values)})
    if len(found) > 1:
        raise ValueError(f"{metric}: {column} mix texts and token-id sequences; pass one kind.")
    if found[0] not in kinds:
        raise ValueError(f"{metric} takes {column} as {' or '.join(kinds)}, got {found[0]}.")
    return values, found[0]


class CheckedInputsMetric(evaluate.Metric):
    """An `evaluate.Metric` whose predictions are checked before they are written (`check_column`); a subclass sets
    DESCRIPTION, INPUTS_DESCRIPTION, FEATURES (the accepted input layouts) and PREDICTION_KINDS."""

    DESCRIPTION: str
    INPUTS_DESCRIPTION: str
    FEATURES: list
    PREDICTION_KINDS: tuple[str, ...] = ("text", "ids")

    def _info(self):
        return evaluate.MetricInfo(
            description=self.DESCRIPTION,
            citation="",
            inputs_description=self.INPUTS_DESCRIPTION,
            features=self.FEATURES,
        )

    def add_batch(self, *, predictions=None, **kwargs):
        """Add predictions (and, for a subclass, references), checked."""
        predictions, _ = check_column(self.name, "predictions", predictions, self.PREDICTION_KINDS)
        return super().add_batch(predictions=predictions, **kwargs)


class OptionalReferencesMetric(CheckedInputsMetric):
    """A checked metric whose `references` may be omitted (then stored as nulls, one per prediction): when given,
    one per prediction, all present, of the predictions' kind. Without them, texts are accepted only when
    TEXT_WITHOUT_REFERENCES (a metric that scores token ids against a language needs ids)."""

    TEXT_WITHOUT_REFERENCES = True

    def add_batch(self, *, predictions=None, references=None, **kwargs):
        """Add predictions and, optionally, references."""
        predictions, kind = check_column(self.name, "predictions", predictions, self.PREDICTION_KINDS)
        if references is None:
            if kind == "text" and not self.TEXT_WITHOUT_REFERENCES:
                raise ValueError(
                    f"{self.name} scores texts only against references=; with language=, predictions are token-id "
                    "sequences: encode text with language.tokenizer()."
                )
            references = [None] * len(predictions)
        else:
            if isinstance(references, (str, bytes)) or not hasattr(references, "__len__"):
                raise ValueError(f"{self.name}: references must be a list (one per prediction), got {references!r}.")
            if len(references) != len(predictions):
                raise ValueError(
                    f"{self.name} got {len(predictions)} predictions but {len(references)} references; pass one "
                    "reference per prediction (or none, with language=... or valid=...)."
                )
            missing = [index for index, reference in enumerate(references) if reference is None]
            if missing:
                raise ValueError(f"{self.name}: references {missing[:5]} are None; pass all of them, or none.")
            references, reference_kind = check_column(self.name, "references", references, self.PREDICTION_KINDS)
            if reference_kind != kind:
                raise ValueError(
                    f"{self.name}: the predictions are {kind} but the references {reference_kind}; pass both as "
                    "texts or both as token-id sequences."
                )
        return super().add_batch(predictions=predictions, references=references, **kwargs)


def check_language(metric: str, language):
    """`language` as a formal language of `hf_mdm.languages` (or a ValueError)."""
    from ..languages import FormalLanguage

    if not isinstance(language, FormalLanguage):
        raise ValueError(f"{metric}: language= must be a FormalLanguage of hf_mdm.languages, got {language!r}.")
    return language


def check_positive_int(metric: str, name: str, value) -> int:
    if not is_integer(value) or int(value) < 1:
        raise ValueError(f"{metric}: {name} must be a positive integer, got {value!r}.")
    return int(value)


def check_finite(metric: str, name: str, value, low: float = -math.inf, high: float = math.inf) -> float:
    """`value` as a finite float in [low, high]; booleans and strings are refused, not converted."""
    if not is_real(value) or not math.isfinite(value) or not low <= value <= high:
        raise ValueError(f"{metric}: {name} must be a finite number in [{low}, {high}], got {value!r}.")
    return float(value)


def has_references(references) -> bool:
    return any(reference is not None for reference in references)


def by_length(language, predictions, score) -> list:
    """`score(language, batch)` on each group of equal-length predictions, one result per prediction, in order."""
    groups: dict[int, list[int]] = {}
    for index, prediction in enumerate(predictions):
        groups.setdefault(len(prediction), []).append(index)
    results = [None] * len(predictions)
    for indices in groups.values():
        batch = torch.as_tensor([list(predictions[i]) for i in indices], dtype=torch.long)
        for i, value in zip(indices, score(language, batch)):
            results[i] = value
    return results
