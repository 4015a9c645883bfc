"""Input handling shared by the metric modules: optional references and scoring symbol sequences by a language."""

import evaluate
import torch


class OptionalReferencesMetric(evaluate.Metric):
    """An `evaluate.Metric` whose `references` may be omitted (then stored as nulls, one per prediction).

    Checks the inputs before anything is written: no empty batch, as many references as predictions. A subclass sets
    DESCRIPTION, INPUTS_DESCRIPTION and FEATURES (the accepted input layouts); `_info` is built from them.
    """

    DESCRIPTION: str
    INPUTS_DESCRIPTION: str
    FEATURES: list

    def _info(self):
        return evaluate.MetricInfo(
            description=self.DESCRIPTION,
            citation="",
            inputs_description=self.INPUTS_DESCRIPTION,
            features=self.FEATURES,
        )

    def add_batch(self, *, predictions=None, references=None, **kwargs):
        """Add predictions and, optionally, references."""
        if predictions is None or len(predictions) == 0:
            raise ValueError(f"{self.name} got no predictions; pass at least one.")
        if references is None:
            references = [None] * len(predictions)
        elif len(references) != len(predictions):
            raise ValueError(
                f"{self.name} got {len(predictions)} predictions but {len(references)} references; pass one "
                "reference per prediction (or none, with language=... or valid=...)."
            )
        return super().add_batch(predictions=predictions, references=references, **kwargs)


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
