"""`hf-mdm eval`: one lm-eval run per (task, strategy, steps), rows that resume like a sweep and make a card."""

import json
import shutil

import pytest


pytest.importorskip("lm_eval")  # the [eval] extra; part of [dev]

from hf_mdm import ModelCard, NGramLanguage  # noqa: E402
from hf_mdm.cli import main  # noqa: E402
from hf_mdm.evaluation import read_sweep_rows  # noqa: E402

from .test_lm_eval_harness import save_tiny_model, write_tasks  # noqa: E402


def task_and_model_folders(tmp_path_factory):
    """(task folder, model folder): local tasks of a bigram language; a tiny untrained MDM with its tokenizer."""
    language = NGramLanguage(5, n=2, support=1, seed=0)
    tasks = tmp_path_factory.mktemp("tasks")
    write_tasks(tasks, language, num_docs=4)
    model = tmp_path_factory.mktemp("model")
    save_tiny_model(model, language.tokenizer())
    return tasks, model


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    return task_and_model_folders(tmp_path_factory)


def eval_command(setup, output_dir, *extra):
    tasks, model = setup
    arguments = ["eval", "--model_name_or_path", str(model), "--tasks", "language_continue"]
    return main([*arguments, "--include_path", str(tasks), "--output_dir", str(output_dir), *extra])


def test_one_row_per_step_budget_that_resumes_and_makes_a_card(setup, tmp_path, capsys):
    assert eval_command(setup, tmp_path, "--steps", "1", "3") == 0
    rows = read_sweep_rows(tmp_path / "eval.jsonl")
    assert [(row["task"], row["strategy"], row["steps"], row["length"]) for row in rows] == [
        ("language_continue", "confidence", 1, 3),
        ("language_continue", "confidence", 3, 3),
    ]
    for row in rows:
        assert row["num_samples"] == 4 and 0 < row["nfe"] <= row["steps"]
        assert row["ser"] == pytest.approx(1 - row["accuracy"]) and row["ser_low"] <= row["ser"] <= row["ser_high"]
    assert "| language_continue | confidence | 3 | 3 |" in capsys.readouterr().out

    assert eval_command(setup, tmp_path, "--steps", "1", "3") == 2  # the file exists and --resume was not given
    assert eval_command(setup, tmp_path, "--steps", "1", "3", "2", "--resume") == 0
    resumed = read_sweep_rows(tmp_path / "eval.jsonl")
    assert resumed[:2] == rows and [row["steps"] for row in resumed] == [1, 3, 2]
    assert len((tmp_path / "eval.jsonl").read_text().splitlines()) == 4  # header + three rows, none rerun

    card = ModelCard.from_sweep(resumed, task_name="language_continue")
    assert "| language_continue | confidence | 3 | 2 |" in card.content


def test_a_block_model_is_swept_over_per_block_budgets(setup, tmp_path, capsys):
    from hf_mdm import MDMConfig

    tasks, model = setup
    shutil.copytree(model, tmp_path / "block")  # the same weights and tokenizer, read as a block-diffusion model
    config = MDMConfig.from_pretrained(model)
    config.block_size = 2
    config.save_pretrained(tmp_path / "block")
    block_setup = (tasks, tmp_path / "block")
    assert eval_command(block_setup, tmp_path / "total", "--steps", "2") == 2
    assert "per_block" in capsys.readouterr().err
    assert eval_command(block_setup, tmp_path / "per_block", "--steps", "1", "--per_block") == 0
    (row,) = read_sweep_rows(tmp_path / "per_block" / "eval.jsonl")
    assert (row["steps_per_block"], row["steps"], row["length"]) == (1, 2, 3)


def test_a_resume_file_of_another_setting_is_refused(setup, tmp_path, capsys):
    assert eval_command(setup, tmp_path, "--steps", "1") == 0
    assert eval_command(setup, tmp_path, "--steps", "1", "--block_length", "3", "--resume") == 2
    assert "different sweep" in capsys.readouterr().err


def test_log_likelihood_tasks_are_refused_before_any_run(setup, tmp_path, capsys):
    tasks, model = setup
    arguments = ["eval", "--model_name_or_path", str(model), "--tasks", "language_choice", "--include_path"]
    assert main([*arguments, str(tasks), "--output_dir", str(tmp_path)]) == 2
    assert "no step count changes" in capsys.readouterr().err
    assert not (tmp_path / "eval.jsonl").exists()


def test_rows_of_several_tasks_make_no_single_card():
    rows = [
        {"task": name, "strategy": "confidence", "length": 4, "steps": 4, "num_samples": 10, "ser": 0.5}
        for name in ("a", "b")
    ]
    with pytest.raises(ValueError, match="one table or card is one task"):
        ModelCard.from_sweep(rows)
    json.dumps(rows)
