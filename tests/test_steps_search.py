"""search_steps_needed on the exact oracle: every probe is a sweep cell, and bad input fails before generation."""

import pytest

import hf_mdm.evaluation.steps_search as steps_search
from hf_mdm import NGramLanguage, enable_diffusion_generation
from hf_mdm.evaluation import LanguageTask, search_steps_needed, sweep_steps


@pytest.fixture(scope="module")
def language():
    return NGramLanguage(6, n=2, support=3, seed=0)


def test_search_runs_sweep_cells_and_fits_per_strategy(language):
    model, tokenizer = enable_diffusion_generation(language.oracle_model()), language.tokenizer()
    task = LanguageTask(language)
    table, fits = search_steps_needed(
        model, tokenizer, task, target=0.2, max_steps=16, strategies=["confidence"], lengths=[4, 8],
        num_samples=16, progress=False,
    )  # fmt: skip
    (fit,) = fits
    assert fit.strategy == "confidence" and set(fit.needed) == {4, 8}
    assert fit.exponent is None and "No exponent" in fit.describe()  # two lengths: no fit
    probes = {(row["length"], row["steps"]): row for row in table}
    for length, result in fit.needed.items():
        assert {(length, probe.steps) for probe in result.probes} <= set(probes)
        at = {probe.steps: probe for probe in result.probes}
        assert all(at[s].rate == probes[(length, s)]["ser"] for s in at)
        if result.reached:  # the threshold meets the target and the step count below it, probed, does not
            assert at[result.steps].fitted <= 0.2 and (result.steps == 1 or at[result.steps - 1].fitted > 0.2)
        else:
            assert max(at) == 16
    length, steps = next(iter(probes))
    (again,) = sweep_steps(model, tokenizer, task, steps=[steps], strategies=["confidence"], lengths=[length],
                           num_samples=16, progress=False)  # fmt: skip
    assert again["ser"] == probes[(length, steps)]["ser"]  # a probe is exactly the swept cell


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(target=1.0), "strictly between 0 and 1"),
        (dict(lengths=[8, 0]), "every length must be a positive integer"),
        (dict(lengths=[8.5]), "every length must be a positive integer"),
        (dict(max_steps=-4), "max_steps must be a positive integer"),
        (dict(min_steps=32), "must not exceed"),
        (dict(strategies=["autoregressive"]), "no steps to search"),
        (dict(lengths=[1]), "at least 2 tokens"),
    ],
)
def test_bad_input_fails_before_any_generation(language, monkeypatch, kwargs, match):
    def never(*args, **kwargs):
        raise AssertionError("generation ran before the input was checked")

    monkeypatch.setattr(steps_search, "sweep_steps", never)
    arguments = {**dict(target=0.1, max_steps=16, strategies=["confidence"], lengths=[8], progress=False), **kwargs}
    with pytest.raises(ValueError, match=match):
        search_steps_needed(language.oracle_model(), language.tokenizer(), LanguageTask(language), **arguments)
