"""`hf-mdm eval` prints and writes the accuracy under parallelism of its rows (aup.md), one section per task."""

import pytest


pytest.importorskip("lm_eval")  # the [eval] extra; part of [dev]

from hf_mdm.evaluation import read_sweep_rows  # noqa: E402
from hf_mdm.evaluation.accuracy_under_parallelism import AUP_DEFINITION  # noqa: E402

from .test_lm_eval_cli import eval_command, task_and_model_folders  # noqa: E402


def test_eval_prints_and_writes_the_aup_of_each_task(tmp_path_factory, tmp_path, capsys):
    setup = task_and_model_folders(tmp_path_factory)
    assert eval_command(setup, tmp_path, "--steps", "1", "3") == 0
    out = capsys.readouterr().out
    aup = (tmp_path / "aup.md").read_text()
    assert aup.startswith(AUP_DEFINITION) and aup.strip() in out and "### language_continue\n\n" in aup
    rows = read_sweep_rows(tmp_path / "eval.jsonl")
    # each row's decoded tokens over its forwards (the task generates its whole length, so length / NFE)
    assert all(row["tokens_per_forward"] == pytest.approx(row["length"] / row["nfe"]) for row in rows)
    assert "| 3 | confidence | " in aup  # one curve: the task's length 3, over steps 1 and 3
