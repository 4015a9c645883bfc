"""Sweep tables, fits and cards are checked as a class: every entry point that reads rows (ModelCard.from_sweep,
fit_step_scaling, fixed_steps_trend_table, latency_at_matched_quality, hf-mdm card) refuses impossible rows and rows
that contradict each other; a name that selects nothing (a misspelled strategy, metric or column) is refused with the
names that exist; sweep_steps and search_steps_needed refuse arguments of the wrong type before any cell runs."""

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hf_mdm.evaluation.steps_search as steps_search
import hf_mdm.evaluation.sweep as sweep_module
from hf_mdm import NGramLanguage, enable_diffusion_generation
from hf_mdm.cli import main
from hf_mdm.evaluation import (
    LanguageTask,
    fit_step_scaling,
    latency_at_matched_quality,
    read_sweep_rows,
    search_steps_needed,
    sweep_steps,
)
from hf_mdm.evaluation.step_scaling import fixed_steps_trend_table
from hf_mdm.hub import ModelCard
from hf_mdm.metrics.sequence_error_rate.sequence_error_rate import wilson_interval


def row(strategy="confidence", length=8, steps=4, errors=5, num_samples=100, **changes):
    """A consistent sweep row: SER = errors / num_samples inside its Wilson interval, the token columns in range."""
    low, high = wilson_interval(errors, num_samples)
    values = dict(strategy=strategy, length=length, steps=steps, nfe=float(min(steps, length)),
                  num_samples=num_samples, ser=errors / num_samples, ser_low=low, ser_high=high,
                  invalid_token_rate=0.01, log_perplexity=1.2, log_perplexity_se=0.01, entropy_rate=1.1, ter_gap=0.1,
                  ter_gap_se=0.01, token_error=None, latency_s=0.01, tokens_per_s=800.0, seed=0)  # fmt: skip
    return {**values, **changes}


def table():
    """Three lengths of confidence and random, and an autoregressive row at length 8."""
    rows = [row(strategy, length, steps, errors=5 if steps >= length else 60)
            for strategy in ("confidence", "random") for length in (8, 16, 32)
            for steps in (4, 8, 16, 32)]  # fmt: skip
    return rows + [row("autoregressive", 8, 8, errors=3, nfe=8.0, latency_s=0.02)]


def at_length_8(rows):
    """The rows of length 8, and any broken row (the comparison at one length must see it)."""
    return [r for r in rows if not isinstance(r, dict) or r.get("length") not in (16, 32)]


# Each entry point that reads rows, as a function of the rows.
ENTRY_POINTS = {
    "card": lambda rows: ModelCard.from_sweep(rows),
    "fit": lambda rows: fit_step_scaling(rows, "confidence"),
    "trend": lambda rows: fixed_steps_trend_table(rows, "confidence"),
    "latency": lambda rows: latency_at_matched_quality(at_length_8(rows), "confidence"),
}


def edit(index, **changes):
    def apply(rows):
        rows[index] = {**rows[index], **changes}
        return rows

    return apply


def duplicate(index, **changes):
    return lambda rows: rows + [{**rows[index], **changes}]


# (how to break a good table, what the message says)
IMPOSSIBLE = [
    pytest.param(edit(1, steps=0), "steps must be a positive integer, got 0", id="steps_0"),
    pytest.param(edit(1, steps=2.5), "steps must be a positive integer, got 2.5", id="steps_float"),
    pytest.param(edit(1, steps="4"), "steps must be a positive integer, got '4'", id="steps_string"),
    pytest.param(edit(1, length=-8), "length must be a positive integer", id="length_negative"),
    pytest.param(edit(1, num_samples=0), "num_samples must be a positive integer", id="num_samples_0"),
    pytest.param(edit(1, num_samples=True), "num_samples must be a positive integer", id="num_samples_bool"),
    pytest.param(edit(1, ser=1.2), "SER must be a finite rate in", id="ser_above_1"),
    pytest.param(edit(1, ser=-0.05), "SER must be a finite rate in", id="ser_negative"),
    pytest.param(edit(1, ser=math.nan), "SER must be a finite rate in", id="ser_nan"),
    pytest.param(edit(1, ser="0.05"), "SER must be a finite rate in", id="ser_string"),
    pytest.param(edit(1, ser=True), "SER must be a finite rate in", id="ser_bool"),
    pytest.param(edit(1, ser=0.055), "is 5.500 wrong sequences, not a whole number", id="ser_not_k_over_n"),
    pytest.param(edit(1, ser_low=0.2), "lies outside its interval", id="interval_above_ser"),
    pytest.param(edit(1, ser_high=1.5), "ser_high must be a rate in", id="interval_above_1"),
    pytest.param(edit(1, invalid_token_rate=1.5), "invalid_token_rate must be a rate in", id="invalid_rate_above_1"),
    pytest.param(edit(1, log_perplexity=-0.1), "log_perplexity must be a finite number >= 0", id="log_ppl_negative"),
    pytest.param(edit(1, entropy_rate=math.inf), "entropy_rate must be a finite number >= 0", id="entropy_inf"),
    pytest.param(edit(1, ter_gap=math.nan), "ter_gap must be finite", id="ter_gap_nan"),
    pytest.param(edit(1, ter_gap_se=-0.01), "ter_gap_se must be a finite number >= 0", id="se_negative"),
    pytest.param(edit(1, latency_s=-1.0), "latency_s must be a finite number >= 0", id="latency_negative"),
    pytest.param(edit(1, nfe=math.nan), "nfe must be a finite number >= 0", id="nfe_nan"),
    pytest.param(edit(1, strategy=3), "strategy must be a name", id="strategy_number"),
    pytest.param(edit(1, strategy=None), r"has no \['strategy'\]", id="strategy_missing"),
    pytest.param(edit(1, steps=None), r"has no \['steps'\]", id="steps_missing"),
    pytest.param(lambda rows: rows + ["confidence,8,4"], "is a str, not a dict", id="row_not_a_dict"),
    pytest.param(duplicate(1), "same cell .* with the same values", id="same_cell_twice"),
    pytest.param(duplicate(1, ser=0.06), "same cell .* with different values", id="same_cell_contradicting"),
    pytest.param(duplicate(1, seed=1, steps=64), "2 values of 'seed'.*one sweep", id="two_seeds"),
    pytest.param(duplicate(1, entropy_rate=1.3, steps=64), "one language", id="two_languages"),
    pytest.param(duplicate(1, task="gsm8k", steps=64), "one task", id="two_tasks"),
]


@pytest.mark.bad_input
@pytest.mark.parametrize("entry_point", sorted(ENTRY_POINTS))
@pytest.mark.parametrize("breaking, message", IMPOSSIBLE)
def test_every_entry_point_refuses_impossible_or_contradictory_rows(entry_point, breaking, message):
    rows = breaking(table())
    with pytest.raises(ValueError, match=message):
        ENTRY_POINTS[entry_point](rows)


@pytest.mark.bad_input
@pytest.mark.parametrize("entry_point", ["card", "fit", "latency"])
@pytest.mark.parametrize("column", ["ser", "num_samples"])
def test_entry_points_that_read_the_ser_refuse_rows_without_it(entry_point, column):
    rows = edit(1, **{column: None})(table())
    with pytest.raises(ValueError, match=rf"has no \['{column}'\]"):
        ENTRY_POINTS[entry_point](rows)


def test_the_trend_table_reads_rows_with_only_the_cell_and_its_metric():
    rows = [{"strategy": "random", "length": length, "steps": 4, "ter_gap": 0.1 * length} for length in (8, 16, 32)]
    assert "| 4 | [8, 16, 32] |" in fixed_steps_trend_table(rows, "random")


@pytest.mark.parametrize("entry_point", sorted(ENTRY_POINTS))
def test_the_good_table_passes_every_entry_point(entry_point):
    assert ENTRY_POINTS[entry_point](table()) is not None


@pytest.mark.parametrize("entry_point", sorted(ENTRY_POINTS))
def test_numpy_scalars_are_numbers_in_every_entry_point(entry_point):
    # Rows built with numpy (np.mean, a pandas column) hold numpy scalars; np.float32 and np.int64 are not Python
    # float/int subclasses, and were once refused as "SER must be a finite rate" / "nfe must be a finite number".
    def as_numpy(value):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return value
        return np.int64(value) if isinstance(value, int) else np.float32(value)

    rows = [{key: as_numpy(value) for key, value in r.items()} for r in table()]
    assert isinstance(rows[0]["ser"], np.float32) and isinstance(rows[0]["length"], np.int64)
    assert ENTRY_POINTS[entry_point](rows) is not None


def test_rows_of_two_processes_agree_to_rounding():
    rows = table()
    rows[1]["entropy_rate"] = rows[0]["entropy_rate"] * (1 + 1e-13)  # a stationary law computed by another process
    assert "## How to use" in ModelCard.from_sweep(rows).text


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "call, message",
    [
        pytest.param(lambda: fit_step_scaling(table(), "confidnce"), r"Unknown strategy 'confidnce'.*'confidence'",
                     id="fit_strategy"),
        pytest.param(lambda: fit_step_scaling(table(), "confidence", "sre"), r"Unknown error column 'sre'.*'ser'",
                     id="fit_metric"),
        pytest.param(lambda: fit_step_scaling(table(), "confidence", "token_error"),
                     r"'token_error': the confidence rows hold \['invalid_token_rate', 'ser', 'ter_gap'\]",
                     id="fit_metric_absent"),
        pytest.param(lambda: fit_step_scaling([], "confidence"), "No sweep rows", id="fit_no_rows"),
        pytest.param(lambda: fixed_steps_trend_table(table(), "randm"), "Unknown strategy 'randm'", id="trend"),
        pytest.param(lambda: fixed_steps_trend_table(table(), "random", "tergap"), "Unknown error column",
                     id="trend_metric"),
        pytest.param(lambda: latency_at_matched_quality(at_length_8(table()), "randon"), "Unknown strategy 'randon'",
                     id="latency_strategy"),
        pytest.param(lambda: latency_at_matched_quality(at_length_8(table()), "random", metrics="ser"),
                     "metrics must be a list", id="latency_metrics_string"),
        pytest.param(lambda: ModelCard.from_sweep(table(), step_scaling=[fit_step_scaling(
            [row("remdm", length, 4) for length in (8, 16)], "remdm")]), "Unknown step_scaling strategy 'remdm'",
                     id="card_fit_of_another_table"),
    ],
)  # fmt: skip
def test_a_name_that_selects_nothing_is_refused_with_the_known_ones(call, message):
    with pytest.raises(ValueError, match=message):
        call()


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        pytest.param(dict(model_name=3), TypeError, "model_name must be a string", id="model_name"),
        pytest.param(dict(task_name=["a"]), TypeError, "task_name must be a string", id="task_name"),
        pytest.param(dict(model_id=7), TypeError, "model_id must be a string", id="model_id"),
        pytest.param(dict(license=None, base_model=3), TypeError, "base_model must be a string", id="base_model"),
        pytest.param(dict(training="100 steps"), TypeError, "training must be a dict", id="training"),
        pytest.param(dict(step_scaling="confidence: L^1"), TypeError, "list of StepScaling", id="step_scaling"),
        pytest.param(dict(ser_target=True), ValueError, "strictly between 0 and 1", id="target_bool"),
    ],
)
def test_card_refuses_arguments_of_the_wrong_type(kwargs, error, message):
    with pytest.raises(error, match=message):
        ModelCard.from_sweep(table(), **kwargs)


# ---- sweep files ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def language():
    return NGramLanguage(6, n=2, support=3, seed=0)


@pytest.fixture(scope="module")
def sweep_file(language, tmp_path_factory):
    path = tmp_path_factory.mktemp("sweep") / "sweep.jsonl"
    sweep_steps(enable_diffusion_generation(language.oracle_model()), language.tokenizer(), LanguageTask(language),
                steps=[2, 4], strategies=["random", "confidence"], lengths=[6], num_samples=4, output_path=path,
                progress=False)  # fmt: skip
    return path


def test_read_sweep_rows_filters_by_column(sweep_file):
    rows = read_sweep_rows(sweep_file, strategy="confidence", steps=4)
    assert [(r["strategy"], r["steps"]) for r in rows] == [("confidence", 4)]
    assert len(read_sweep_rows(sweep_file)) == 4


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "where, message",
    [
        pytest.param(dict(strategy="confidnce"), r"Unknown strategy 'confidnce'.*\['confidence', 'random'\]",
                     id="strategy"),
        pytest.param(dict(steps="4"), r"Unknown steps '4'.*\[2, 4\]", id="steps_as_string"),
        pytest.param(dict(length=8), r"Unknown length 8.*\[6\]", id="length_not_swept"),
        pytest.param(dict(stratgy="random"), r"Unknown column 'stratgy'.*'strategy'", id="column"),
        pytest.param(dict(strategy="random", steps=3), r"Unknown steps 3", id="second_filter"),
    ],
)  # fmt: skip
def test_read_sweep_rows_refuses_a_filter_that_selects_nothing(sweep_file, where, message):
    with pytest.raises(ValueError, match=message):
        read_sweep_rows(sweep_file, **where)


@pytest.mark.bad_input
def test_read_sweep_rows_refuses_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="No sweep file .*run `hf-mdm sweep`"):
        read_sweep_rows(tmp_path / "swep.jsonl")


def test_sweep_rows_record_their_seed_and_generate_keywords(sweep_file):
    (first,) = read_sweep_rows(sweep_file, strategy="random", steps=2)
    record = json.loads(first["generation"])
    assert first["seed"] == 0
    # the oracle's logits cover ids 0..9: of the tokenizer's non-symbols (6..10), 6..9 are suppressed
    assert record["generate"] == dict(max_new_tokens=6, steps=2, strategy="random", do_sample=True, temperature=1.0,
                                      top_k=None, top_p=None, suppress_tokens=[6, 7, 8, 9])  # fmt: skip
    assert record["samples"] == {"seeds": sweep_module.sample_seeds(0, "random", 6, [0]), "prompts": None}


@pytest.mark.bad_input
def test_hf_mdm_card_refuses_contradictory_rows_before_loading_a_model(sweep_file, tmp_path, capsys):
    rows = [json.loads(line) for line in sweep_file.read_text().splitlines()]
    rows.append(rows[1])  # the same cell twice
    path = tmp_path / "edited.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in rows) + "\n")
    arguments = ["card", "--sweep", str(path), "--output_dir", str(tmp_path / "card")]
    assert main([*arguments, "--model_name_or_path", str(tmp_path / "no-such-model")]) == 2
    assert "same cell" in capsys.readouterr().err  # the rows are read first: not the missing model's error
    assert not (tmp_path / "card").exists()


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "kwargs, message",
    [
        pytest.param(dict(steps=8), r"steps must be a list, got 8", id="steps_bare_int"),
        pytest.param(dict(steps=[2.5]), "every entry of steps must be a positive integer, got 2.5", id="steps_float"),
        pytest.param(dict(steps=["8"]), "every entry of steps must be a positive integer, got '8'", id="steps_str"),
        pytest.param(dict(steps=[True]), "every entry of steps must be a positive integer, got True", id="steps_bool"),
        pytest.param(dict(lengths=[0]), "every entry of lengths must be a positive integer", id="length_0"),
        pytest.param(dict(lengths=[]), "lengths must list at least one value", id="no_lengths"),
        pytest.param(dict(strategies="random"), "strategies must be a list, got 'random'", id="strategies_string"),
        pytest.param(dict(strategies=[None]), r"strategies must hold names \(strings\)", id="strategy_none"),
        pytest.param(dict(num_samples=2.5), "num_samples must be a positive integer", id="num_samples_float"),
        pytest.param(dict(num_samples=0), "num_samples must be a positive integer", id="num_samples_0"),
        pytest.param(dict(batch_size="8"), "batch_size must be a positive integer", id="batch_size_string"),
        pytest.param(dict(seed=1.5), "seed must be an integer, got 1.5", id="seed_float"),
        pytest.param(dict(seed="0"), "seed must be an integer", id="seed_string"),
        pytest.param(dict(temperature=0.5), r"sets \['temperature'\] itself", id="temperature"),
        pytest.param(dict(do_sample=False, top_k=5), r"sets \['do_sample', 'top_k'\] itself", id="greedy"),
        pytest.param(dict(suppress_tokens=[1]), r"sets \['suppress_tokens'\] itself", id="suppress_tokens"),
        pytest.param(dict(cells=[("random", 6.0, 2)]), "a cell's length must be a positive integer", id="cell_float"),
    ],
)
def test_sweep_steps_refuses_bad_arguments_before_any_cell(language, monkeypatch, kwargs, message):
    monkeypatch.setattr(sweep_module, "run_cell", lambda *a, **k: pytest.fail("a cell ran"))
    arguments = {**dict(steps=[2], strategies=["random"], lengths=[6], num_samples=4, progress=False), **kwargs}
    with pytest.raises(ValueError, match=message):
        sweep_steps(language.oracle_model(), language.tokenizer(), LanguageTask(language), **arguments)


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "kwargs, message",
    [
        pytest.param(dict(strategies="random"), "strategies must be a list", id="strategies_string"),
        pytest.param(dict(lengths=8), "lengths must be a list, got 8", id="lengths_bare_int"),
        pytest.param(dict(min_steps=1.0), "min_steps must be a positive integer", id="min_steps_float"),
        pytest.param(dict(max_steps={6: 4.5}), "max_steps must be a positive integer", id="max_steps_float"),
    ],
)
def test_search_steps_needed_refuses_bad_arguments_before_any_generation(language, monkeypatch, kwargs, message):
    monkeypatch.setattr(steps_search, "sweep_steps", lambda *a, **k: pytest.fail("a sweep ran"))
    arguments = {**dict(target=0.1, max_steps=8, strategies=["random"], lengths=[6], progress=False), **kwargs}
    with pytest.raises(ValueError, match=message):
        search_steps_needed(language.oracle_model(), language.tokenizer(), LanguageTask(language), **arguments)


# ---- properties ----------------------------------------------------------------------------------------------------
cells = st.lists(
    st.tuples(st.sampled_from(["confidence", "random"]), st.sampled_from([4, 8, 16]), st.sampled_from([2, 4, 8, 16]),
              st.integers(1, 64)),
    min_size=1, max_size=12, unique_by=lambda cell: cell[:3],
)  # fmt: skip


@settings(max_examples=40, deadline=None)
@given(cells=cells, data=st.data())
def test_any_consistent_table_makes_a_card_with_every_cell(cells, data):
    """Property: rows whose SER is k/n inside its interval make a card whose table and model-index hold every cell."""
    rows = [row(strategy, length, steps, errors=data.draw(st.integers(0, n)), num_samples=n)
            for strategy, length, steps, n in cells]  # fmt: skip
    card = ModelCard.from_sweep(rows)
    published = {r.metric_config for r in card.data.eval_results if r.metric_type == "sequence_error_rate"}
    assert published == {f"strategy={r['strategy']},length={r['length']},steps={r['steps']}" for r in rows}


IMPOSSIBLE_VALUES = {
    "ser": st.one_of(st.floats(1.0001, 1e6), st.floats(-1e6, -1e-9), st.just(math.nan), st.text(max_size=3)),
    "steps": st.one_of(st.integers(-100, 0), st.floats(0.5, 100).filter(lambda x: x != int(x)), st.booleans()),
    "length": st.one_of(st.integers(-100, 0), st.text(min_size=1, max_size=3)),
    "num_samples": st.one_of(st.integers(-100, 0), st.floats(1.5, 99.5)),
    "invalid_token_rate": st.one_of(st.floats(1.0001, 10), st.floats(-10, -1e-9), st.just(math.inf)),
    "latency_s": st.one_of(st.floats(-1e3, -1e-9), st.just(math.nan)),
}


@settings(max_examples=60, deadline=None)
@given(cells=cells, data=st.data())
def test_one_impossible_value_anywhere_is_refused_by_every_entry_point(cells, data):
    """Property: setting one column of one row to an impossible value makes every row-reading entry point refuse."""
    rows = [row(strategy, length, steps, errors=0, num_samples=n) for strategy, length, steps, n in cells]
    column = data.draw(st.sampled_from(sorted(IMPOSSIBLE_VALUES)))
    rows[data.draw(st.integers(0, len(rows) - 1))][column] = data.draw(IMPOSSIBLE_VALUES[column])
    rows.append(row("confidence", 4, 64, errors=0))  # every entry point finds its strategy
    for name in ("card", "fit", "trend"):
        with pytest.raises(ValueError, match="Sweep row"):
            ENTRY_POINTS[name](rows)
