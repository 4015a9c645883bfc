"""Token error rate: how likely each generated token is (against a formal language), or position-wise token error."""

import math

import datasets
import torch

from hf_mdm.metrics import inputs  # a module, not its classes: evaluate loads the first Metric class it finds


_DESCRIPTION = """
Token error rate (TER), in one of two modes.

Against a formal language (`language=`, an `hf_mdm.languages.FormalLanguage`; predictions are symbol-id sequences):
every token is scored by its exact conditional log p(x_i | x_<i) under the language (`language.token_log_probs`).

    log_perplexity   = mean over all generated tokens of -log p(x_i | x_<i)      (nats per token)
    entropy_rate     = h, the language's entropy rate (the log-perplexity of the language itself)
    token_error_rate = log_perplexity - entropy_rate                               (the gap: the paper's TER)

A token with conditional probability 0 is *invalid*: it is counted in `num_invalid_tokens` / `invalid_token_rate`
and scored at the floor `invalid_token_log_prob` (default log 1e-6, i.e. 13.8 nats) so the log-perplexity stays finite.
For finite length L the gap of exact samples is slightly positive (H(X_1..X_L) / L >= h, by O(1/L)).

Standard errors. The tokens of one sequence are not independent (they share its history); the sequences are. With
S_j the summed loss and n_j the number of tokens of sequence j (m sequences), log_perplexity = sum S_j / sum n_j is a
ratio estimator, whose delta-method standard error is

    log_perplexity_standard_error = sqrt( sum_j (S_j - log_perplexity * n_j)^2 / (m (m - 1)) ) / mean_j n_j

(with equal lengths: the standard error of the m per-sequence mean losses; NaN for a single sequence). The entropy
rate's own error is independent of the samples, so

    token_error_rate_standard_error = sqrt(log_perplexity_standard_error^2 + entropy_rate_standard_error^2).

Two token error rates against the same language share the entropy rate: the standard error of their difference is
that of the log-perplexities' difference, without the entropy rate's term.

Against references (`references=`): the fraction of positions whose token differs from the reference's
(strings are split on whitespace); positions beyond the shorter of the two count as errors.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: token-id sequences (or, with references, whitespace-separated strings).
    references: optional; one per prediction.
    language: optional formal language to score against.
    entropy_rate: optional precomputed entropy rate (a float or `EntropyRate`), to skip its computation; a value
        outside [0, log V] (V the language's symbols) or a negative standard error is refused.
    invalid_token_log_prob: the log-probability an invalid token is scored at (default log 1e-6).
Returns:
    against a language: token_error_rate, token_error_rate_standard_error, log_perplexity,
    log_perplexity_standard_error, perplexity, entropy_rate, entropy_rate_standard_error, invalid_token_rate,
    num_invalid_tokens, num_tokens;
    against references: token_error_rate, num_token_errors, num_tokens.
Examples:
    >>> ter = evaluate.load(hf_mdm.metrics.path("token_error_rate"))
    >>> ter.compute(predictions=[[0, 1, 1]], references=[[0, 1, 0]])["token_error_rate"]
    0.3333333333333333
"""

DEFAULT_INVALID_TOKEN_LOG_PROB = math.log(1e-6)


_SEQUENCE = datasets.Sequence(datasets.Value("int64"))


class TokenErrorRate(inputs.OptionalReferencesMetric):
    """Against a language: log-perplexity of the generated tokens minus the entropy rate (the paper's TER), with
    standard errors over sequences; against references: the position-wise token error rate."""

    TEXT_WITHOUT_REFERENCES = False
    DESCRIPTION = _DESCRIPTION
    INPUTS_DESCRIPTION = _KWARGS_DESCRIPTION
    FEATURES = [
        datasets.Features({"predictions": _SEQUENCE, "references": _SEQUENCE}),
        datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
    ]

    def _compute(self, predictions, references, language=None, entropy_rate=None, invalid_token_log_prob=None):
        with_references = inputs.has_references(references)
        if with_references == (language is not None):
            raise ValueError("token_error_rate needs exactly one of references= or language=.")
        if with_references:
            if entropy_rate is not None or invalid_token_log_prob is not None:
                raise ValueError("entropy_rate= and invalid_token_log_prob= apply only with language=.")
            return _against_references(predictions, references)
        language = inputs.check_language(self.name, language)
        floor = DEFAULT_INVALID_TOKEN_LOG_PROB if invalid_token_log_prob is None else invalid_token_log_prob
        if not inputs.is_real(floor) or not (math.isfinite(floor) and floor <= 0.0):
            raise ValueError(
                f"invalid_token_log_prob must be a finite log-probability <= 0, got {invalid_token_log_prob!r}; "
                "e.g. math.log(1e-6)."
            )
        entropy_rate = None if entropy_rate is None else check_entropy_rate(entropy_rate, language)
        return _against_language(predictions, language, entropy_rate, float(floor))


def check_entropy_rate(entropy_rate, language) -> tuple[float, float]:
    """(value, standard error) of a given entropy rate: a number or an `EntropyRate` / (value, SE) pair, with
    0 <= value <= log V (no language over V symbols has more entropy per token) and SE >= 0, all finite."""
    value, standard_error = entropy_rate if isinstance(entropy_rate, tuple) else (entropy_rate, 0.0)
    top = math.log(language.vocab_size)
    inputs.check_finite("token_error_rate", f"entropy_rate (nats per token, at most log {language.vocab_size})",
                        value, 0.0, top * (1 + 1e-9))  # fmt: skip
    inputs.check_finite("token_error_rate", "the entropy rate's standard error", standard_error, 0.0)
    return float(value), float(standard_error)


def _against_references(predictions, references):
    errors = total = 0
    for prediction, reference in zip(predictions, references):  # of one kind (inputs.OptionalReferencesMetric)
        if isinstance(prediction, str):
            prediction, reference = prediction.split(), reference.split()
        length = max(len(prediction), len(reference))
        errors += length - sum(p == r for p, r in zip(prediction, reference))
        total += length
    if total == 0:
        raise ValueError("All predictions and references are empty; there are no tokens to compare.")
    return {"token_error_rate": errors / total, "num_token_errors": errors, "num_tokens": total}


def ratio_standard_error(totals: torch.Tensor, counts: torch.Tensor) -> float:
    """Delta-method standard error of R = sum(totals) / sum(counts) over m independent units (the module's
    docstring); NaN for fewer than 2 units."""
    m = totals.numel()
    if m < 2:
        return math.nan
    ratio = totals.sum() / counts.sum()
    return float(((totals - ratio * counts).square().sum() / (m * (m - 1))).sqrt() / counts.mean())


def _against_language(predictions, language, entropy_rate, floor):
    if any(isinstance(prediction, str) for prediction in predictions):
        raise ValueError("With language=, predictions are token-id sequences; encode text with language.tokenizer().")
    per_sequence = inputs.by_length(language, predictions, lambda lang, batch: list(lang.token_log_probs(batch)))
    scores = torch.cat(per_sequence)
    if bool((scores.isnan() | (scores > 0)).any()):
        raise ValueError(
            f"{type(language).__name__}.token_log_probs returned NaN or positive log-probabilities; the language's "
            "parameters are not normalised probabilities: fix them before scoring."
        )
    invalid = torch.isneginf(scores)
    # per sequence: summed loss (invalid tokens at the floor) and token count; log_perplexity = their ratio
    totals = torch.stack(
        [-torch.where(torch.isneginf(sequence), floor, sequence).double().sum() for sequence in per_sequence]
    )
    counts = torch.tensor([float(sequence.numel()) for sequence in per_sequence], dtype=torch.float64)
    log_perplexity = float(totals.sum() / counts.sum())
    log_perplexity_standard_error = ratio_standard_error(totals, counts)
    value, standard_error = language.entropy_rate() if entropy_rate is None else entropy_rate
    return {
        "token_error_rate": log_perplexity - value,
        "token_error_rate_standard_error": math.hypot(log_perplexity_standard_error, standard_error),
        "log_perplexity": log_perplexity,
        "log_perplexity_standard_error": log_perplexity_standard_error,
        "perplexity": math.exp(log_perplexity),
        "entropy_rate": value,
        "entropy_rate_standard_error": standard_error,
        "invalid_token_rate": float(invalid.float().mean()),
        "num_invalid_tokens": int(invalid.sum()),
        "num_tokens": scores.numel(),
    }
