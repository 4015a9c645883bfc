"""lm_eval_step_sweep from Python: the rows `hf-mdm eval` writes, an identity that names the lm-eval tasks, and every
argument checked before a run."""

import json

import pytest
import torch


pytest.importorskip("lm_eval")  # the [eval] extra; part of [dev]

from hf_mdm.evaluation.lm_eval_sweep import LMEvalTasks, lm_eval_step_sweep  # noqa: E402
from hf_mdm.evaluation.sweep_columns import COLUMNS  # noqa: E402
from hf_mdm.evaluation.sweep_table import check_sweep_rows  # noqa: E402
from hf_mdm.integrations.lm_eval_harness import load_masked_lm  # noqa: E402

from .conftest import tiny_config  # noqa: E402
from .test_lm_eval_cli import task_and_model_folders  # noqa: E402


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder, model = task_and_model_folders(tmp_path_factory)
    return LMEvalTasks.load(["language_continue"], include_path=str(folder)), *load_masked_lm(str(model)), str(folder)


def test_rows_hold_registered_columns_and_the_identity_names_the_tasks(setup, tmp_path):
    tasks, model, tokenizer, _ = setup
    path = tmp_path / "eval.jsonl"
    table = lm_eval_step_sweep(model, tokenizer, tasks, steps=[1, 3], limit=2, output_path=path)
    rows = list(table)
    check_sweep_rows(rows)
    assert [(row["task"], row["steps"], row["length"], row["num_samples"]) for row in rows] == [
        ("language_continue", 1, 3, 2),
        ("language_continue", 3, 3, 2),
    ]
    assert set(table.column_names) <= set(COLUMNS)
    header = json.loads(path.read_text().splitlines()[0])["sweep_identity"]
    assert header["task"] == "lm-eval: language_continue" and header["num_samples"] == 2
    resumed = lm_eval_step_sweep(model, tokenizer, tasks, steps=[1, 3], limit=2, output_path=path, resume=True)
    assert list(resumed) == rows  # nothing reran: the rows come back from the file
    other_metric = LMEvalTasks(tasks.names, tasks.task_files_sha256, "acc", None)
    other_metric.tasks, other_metric.task_manager = tasks.tasks, tasks.task_manager
    with pytest.raises(ValueError, match="different sweep .*task_sha256"):
        lm_eval_step_sweep(model, tokenizer, other_metric, steps=[1], limit=2, output_path=path, resume=True)


def block_model(tokenizer, block_size=2):
    from hf_mdm import MDMForMaskedGeneration

    ids = dict(mask_token_id=tokenizer.mask_token_id, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    return MDMForMaskedGeneration(tiny_config(vocab_size=len(tokenizer), block_size=block_size, **ids)).eval()


def test_a_block_model_sweeps_per_block_budgets(setup, tmp_path):
    tasks, _, tokenizer, _ = setup
    model, path = block_model(tokenizer), tmp_path / "eval.jsonl"
    rows = list(lm_eval_step_sweep(model, tokenizer, tasks, steps=[1, 2], limit=2, output_path=path, per_block=True))
    check_sweep_rows(rows)
    # max_gen_toks=3 in blocks of 2: 2 blocks, so the nominal totals are 2 and 4
    assert [(row["steps_per_block"], row["steps"]) for row in rows] == [(1, 2), (2, 4)]
    resumed = lm_eval_step_sweep(model, tokenizer, tasks, steps=[1, 2], limit=2, output_path=path, per_block=True,
                                 resume=True)  # fmt: skip
    assert list(resumed) == rows  # nothing reran


@pytest.mark.bad_input
def test_a_block_model_refuses_total_step_budgets_before_any_run(setup, tmp_path):
    tasks, _, tokenizer, _ = setup
    with pytest.raises(ValueError, match=r"block_size=2.*per_block=True"):
        lm_eval_step_sweep(block_model(tokenizer), tokenizer, tasks, steps=[2], output_path=tmp_path / "eval.jsonl")
    assert not (tmp_path / "eval.jsonl").exists()


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "arguments, message",
    [
        pytest.param(dict(tasks=["language_continue"]), "tasks must be LMEvalTasks", id="task_names"),
        pytest.param(dict(steps=8), "steps must be a list", id="steps_bare"),
        pytest.param(dict(steps=[0]), "positive integer, got 0", id="steps_0"),
        pytest.param(dict(steps=[2, 2]), r"steps lists \[2\] more than once", id="steps_twice"),
        pytest.param(dict(block_length=2), "max_gen_toks=3 tokens: block_length=2 does not divide", id="block_2"),
        pytest.param(dict(strategies="confidence"), "strategies must be a list", id="strategies_bare"),
        pytest.param(dict(strategies=["confidnce"]), "confidnce", id="strategy_unknown"),
        pytest.param(dict(block_length=0), "block_length", id="block_length_0"),
        pytest.param(dict(limit=0), "limit must be a positive integer", id="limit_0"),
        pytest.param(dict(batch_size=1.5), "batch_size must be a positive integer", id="batch_size_float"),
        pytest.param(dict(seed="0"), "seed must be an integer", id="seed_string"),
        pytest.param(dict(per_block="yes"), "per_block must be True or False", id="per_block_string"),
        pytest.param(
            dict(steps=[1], block_length=2, per_block=True), "block_length=2 does not divide", id="per_block_2"
        ),
    ],
)
def test_arguments_are_refused_before_any_run(setup, tmp_path, arguments, message):
    tasks, model, tokenizer, _ = setup
    arguments = {"tasks": tasks, "steps": [1], "output_path": tmp_path / "eval.jsonl", **arguments}
    with pytest.raises((ValueError, TypeError), match=message):
        lm_eval_step_sweep(model, tokenizer, **arguments)
    assert not (tmp_path / "eval.jsonl").exists()


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "names, kwargs, message",
    [
        pytest.param(["language_continu"], {}, "did you mean", id="misspelled"),
        pytest.param(["language_choice"], {}, "no step count changes", id="log_likelihood_task"),
        pytest.param(["language_continue"], {"metric": "acc"}, "no metric 'acc'", id="metric_absent"),
        pytest.param("language_continue", {}, "tasks must be a list", id="names_bare"),
    ],
)
def test_tasks_are_checked_when_loaded(setup, names, kwargs, message):
    with pytest.raises(ValueError, match=message):
        LMEvalTasks.load(names, include_path=setup[3], **kwargs)
