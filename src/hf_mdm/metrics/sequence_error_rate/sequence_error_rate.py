"""Sequence error rate: the fraction of generated sequences that are wrong as a whole, with a Wilson 95% interval."""

import datasets
from scipy.stats import binomtest

from hf_mdm.metrics import inputs  # a module, not its classes: evaluate loads the first Metric class it finds


_DESCRIPTION = """
Sequence error rate (SER): the probability that a generated sequence is wrong as a whole, estimated as k / n over n
sequences with k wrong, reported with its Wilson score 95% interval

    (k + z^2/2) / (n + z^2)  +-  z * sqrt(k (n - k) / n + z^2 / 4) / (n + z^2),      z = 1.96.

A sequence is wrong when (exactly one source of truth):
- `references`: it differs from its reference after `normalizer` (e.g. extracting the final answer);
- `language`: it has probability 0 under a formal language of `hf_mdm.languages` (token ids = symbols);
- `valid`: its flag, computed elsewhere (a verifier, unit tests), is False.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: strings, or token-id sequences.
    references: optional; one per prediction, of the predictions' type.
    normalizer: optional callable applied to every prediction and reference before exact matching.
    language: optional `hf_mdm.languages.FormalLanguage`; predictions are then symbol-id sequences.
    valid: optional list of booleans (or 0/1), one per prediction; strings are refused.
Returns:
    sequence_error_rate, num_errors, num_sequences, ci_low, ci_high (Wilson 95%).
Examples:
    >>> ser = evaluate.load(hf_mdm.metrics.path("sequence_error_rate"))
    >>> ser.compute(predictions=["4", "5"], references=["4", "6"])["sequence_error_rate"]
    0.5
"""


def wilson_interval(errors: int, total: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of the binomial proportion errors / total (scipy's `binomtest(...).proportion_ci`)."""
    interval = binomtest(errors, total).proportion_ci(confidence_level=confidence, method="wilson")
    return float(interval.low), float(interval.high)


_SEQUENCE = datasets.Sequence(datasets.Value("int64"))


class SequenceErrorRate(inputs.OptionalReferencesMetric):
    """SER = k / n, the fraction of n sequences that are wrong as a whole, with its Wilson 95% interval; a sequence
    is wrong by `references` (after `normalizer`), by `language` (probability 0) or by `valid` flags."""

    DESCRIPTION = _DESCRIPTION
    INPUTS_DESCRIPTION = _KWARGS_DESCRIPTION
    FEATURES = [
        datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
        datasets.Features({"predictions": _SEQUENCE, "references": _SEQUENCE}),
        datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("null")}),
    ]

    def _compute(self, predictions, references, normalizer=None, language=None, valid=None):
        if normalizer is not None and not callable(normalizer):
            raise ValueError(f"normalizer= must be a function of one text, got {normalizer!r}.")
        if language is not None:
            inputs.check_language(self.name, language)
        given = {
            "references": inputs.has_references(references),
            "language": language is not None,
            "valid": valid is not None,
        }
        sources = [name for name, present in given.items() if present]
        if len(sources) != 1:
            raise ValueError(
                f"sequence_error_rate needs exactly one of references=, language= or valid=; got {sources or 'none'}."
            )
        if valid is not None:
            if len(valid) != len(predictions):
                raise ValueError(f"Got {len(valid)} validity flags for {len(predictions)} predictions; pass one each.")
            flags = [flag.item() if hasattr(flag, "item") else flag for flag in valid]  # numpy / torch scalars
            bad = [flag for flag in flags if not isinstance(flag, (bool, int)) or flag not in (True, False)]
            if bad:
                raise ValueError(
                    f"valid= must hold booleans (or 0/1), got {bad[:3]}; "
                    "convert them, e.g. valid=[answer == 'yes' for answer in answers]."
                )
            wrong = [not flag for flag in flags]
        elif language is not None:
            if any(isinstance(prediction, str) for prediction in predictions):
                raise ValueError(
                    "With language=, predictions are token-id sequences; encode text with language.tokenizer()."
                )
            flags = inputs.by_length(language, predictions, lambda lang, batch: lang.is_valid(batch).tolist())
            wrong = [not flag for flag in flags]
        else:
            normalize = normalizer or (lambda value: value)
            wrong = [normalize(p) != normalize(r) for p, r in zip(predictions, references)]
        errors, total = sum(wrong), len(wrong)
        low, high = wilson_interval(errors, total)
        return {
            "sequence_error_rate": errors / total,
            "num_errors": errors,
            "num_sequences": total,
            "ci_low": low,
            "ci_high": high,
        }
