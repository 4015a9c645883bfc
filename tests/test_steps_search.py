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
        if result.reached:  # the threshold meets the target, the largest probe below does not; the interval holds it
            below = [s for s in at if s < result.steps]
            assert at[result.steps].fitted <= 0.2 and (result.steps == 1 or at[max(below)].fitted > 0.2)
            low, high = fit.needed_interval[length]
            assert low <= result.steps <= (high or 16)
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
        (dict(lengths=[8, 0]), "every entry of lengths must be a positive integer"),
        (dict(lengths=[8.5]), "every entry of lengths must be a positive integer"),
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


def test_each_length_is_one_search_from_the_predicted_start(language):
    """search_steps_needed reaches, per length, the decisions of search_steps run alone from the start the shorter
    lengths predict (behaviour change, issue P: a length no longer starts from S_min)."""
    model, tokenizer = enable_diffusion_generation(language.oracle_model()), language.tokenizer()
    task = LanguageTask(language)
    _, (fit,) = search_steps_needed(
        model, tokenizer, task, target=0.2, max_steps=16, strategies=["random"], lengths=[4, 8, 12],
        num_samples=16, progress=False,
    )  # fmt: skip
    starts = []
    for length in (4, 8, 12):

        def evaluate(steps, length=length):
            (row,) = sweep_steps(model, tokenizer, task, steps=[steps], strategies=["random"], lengths=[length],
                                 num_samples=16, progress=False)  # fmt: skip
            return round(row["ser"] * 16), 16

        shorter = {known: result for known, result in fit.needed.items() if known < length}
        start = steps_search.predicted_start(shorter, length, 1, 16)
        alone = steps_search.search_steps(evaluate, 0.2, max_steps=16, length=length, start=start)
        assert fit.needed[length].steps == alone.steps and fit.needed[length].interval == alone.interval
        assert [probe.steps for probe in fit.needed[length].probes] == [probe.steps for probe in alone.probes]
        starts.append(start)
    assert starts[0] == 1 and max(starts) > 1  # the longer lengths started where the shorter ones predict


def test_a_rerun_reads_its_probes_back_instead_of_generating(language, tmp_path, monkeypatch):
    model, tokenizer = enable_diffusion_generation(language.oracle_model()), language.tokenizer()
    arguments = dict(target=0.2, max_steps=16, strategies=["random"], lengths=[4, 8], num_samples=16,
                     progress=False, output_path=tmp_path / "probes.jsonl")  # fmt: skip
    table, (fit,) = search_steps_needed(model, tokenizer, LanguageTask(language), **arguments)

    def never(*args, **kwargs):
        raise AssertionError("a probe already in the file was generated again")

    monkeypatch.setattr(type(model), "generate", never)
    with pytest.raises(AssertionError, match="generated again"):  # the patch bites: a new file must generate
        search_steps_needed(model, tokenizer, LanguageTask(language), **{**arguments, "output_path": tmp_path / "new"})
    again, (refit,) = search_steps_needed(model, tokenizer, LanguageTask(language), **arguments)
    assert list(again) == list(table)
    assert {length: result.steps for length, result in refit.needed.items()} == {
        length: result.steps for length, result in fit.needed.items()
    }


@pytest.mark.bad_input
def test_sweep_cells_outside_the_grid_are_refused(language):
    model, tokenizer = enable_diffusion_generation(language.oracle_model()), language.tokenizer()
    with pytest.raises(ValueError, match="not in the grid"):
        sweep_steps(model, tokenizer, LanguageTask(language), steps=[2], strategies=["random"], lengths=[4],
                    cells=[("random", 4, 3)], progress=False)  # fmt: skip
