"""`hf-mdm reproduce` at a tiny preset: oracle and trained decoders, resumable outputs, and its one-line errors."""

import importlib.util
import json

import pytest
import torch
from transformers import AutoTokenizer

import hf_mdm.cli.reproduce as reproduce
from hf_mdm.cli import main
from hf_mdm.evaluation import StepScaling, StepsNeeded
from hf_mdm.evaluation.research_models import ResearchTraining, train_research_models, training_record
from hf_mdm.evaluation.step_scaling import fit_exponent, fixed_steps_trend_table, step_scaling_table
from hf_mdm.languages import research_language


TINY = reproduce.Preset(("hmm",), (4, 6, 8), ("confidence",), 8, 2, (1, 2, 4), train_lengths=(6, 8))
TINY_TRAINING = ["--train_steps", "2", "--batch_size", "8", "--progress", "false"]


@pytest.fixture
def tiny_preset(monkeypatch):
    monkeypatch.setitem(reproduce.PRESETS, "tiny", TINY)
    monkeypatch.setattr(reproduce, "ResearchTraining", lambda **kw: ResearchTraining(examples_per_length=16, **kw))


def test_reproduce_writes_fits_tables_cards_and_resumes(tiny_preset, tmp_path, monkeypatch):
    output = tmp_path / "out"
    assert main(["reproduce", "--preset", "tiny", "--output_dir", str(output), *TINY_TRAINING]) == 0
    summary = (output / "summary.md").read_text()
    for decoder in ("oracle", "trained"):
        folder = output / "hmm" / decoder
        results = (folder / "results.md").read_text()
        assert "| confidence | ser <= 0.05 |" in results and "| random | ter_gap <= 0.2 |" in results
        assert "| slope per doubling of L |" in results
        assert results.split("## Steps needed")[1].split("\n\n")[1] in summary  # the fits table, in the summary
        card = (folder / "README.md").read_text()
        assert "confidence: steps for ser <= 0.05" in card and "random: steps for ter_gap <= 0.2" in card
        assert (folder / "ser_probes-confidence.jsonl").is_file()
        # the steps needed with their intervals, drawn where matplotlib is installed and linked from results.md
        drawn = importlib.util.find_spec("matplotlib") is not None
        assert (folder / "steps_needed.png").is_file() == drawn == ("](steps_needed.png)" in results)
    trained_sweep = [json.loads(line) for line in (output / "hmm" / "trained" / "ter_sweep.jsonl").open()]
    assert {row["strategy"] for row in trained_sweep if "strategy" in row} == {"random", "autoregressive"}
    # next to the AR model the MDM is also swept at S = L, and results.md compares the pair at every length
    swept = {(row["length"], row["steps"]) for row in trained_sweep if row.get("strategy") == "random"}
    assert swept >= {(6, 6), (8, 8)}
    trained = (output / "hmm" / "trained" / "results.md").read_text()
    assert "## Quality of the pair" in trained and "\n| 6 | " in trained and "\n| 8 | " in trained
    assert trained.count("| latency ratio AR / MDM [95% interval] |") == 2  # one matched-quality table per length
    assert "## Quality of the pair" not in (output / "hmm" / "oracle" / "results.md").read_text()
    vocab = research_language("hmm").tokenizer().vocab
    for kind in ("mdm", "autoregressive"):
        assert training_record(output / "hmm" / "models" / kind)["train_steps"] == 2
        # each folder is a whole checkpoint: Trainer.save_model writes the collator's tokenizer with it
        assert AutoTokenizer.from_pretrained(output / "hmm" / "models" / kind).vocab == vocab

    def never(*args, **kwargs):
        raise AssertionError("a rerun generated or trained again")

    monkeypatch.setattr("transformers.Trainer.train", never)
    monkeypatch.setattr("hf_mdm.generation.mixin.DiffusionGenerationMixin.generate", never)
    with pytest.raises(AssertionError, match="generated or trained again"):  # the patches bite on a new folder
        main(["reproduce", "--preset", "tiny", "--output_dir", str(tmp_path / "new"), *TINY_TRAINING])
    assert main(["reproduce", "--preset", "tiny", "--output_dir", str(output), *TINY_TRAINING]) == 0
    assert (output / "summary.md").read_text() == summary


def test_lengths_pick_what_is_measured_while_models_train_on_all_of_theirs(tiny_preset, tmp_path, monkeypatch):
    measured, trained = [], []

    def measure(model, tokenizer, task, lengths, *args, **kwargs):
        measured.append(list(lengths))
        return [], [], []

    def train(language, lengths, *args, **kwargs):
        trained.append(list(lengths))
        return torch.nn.Identity(), torch.nn.Identity()

    monkeypatch.setattr(reproduce, "measure", measure)
    monkeypatch.setattr(reproduce, "train_research_models", train)
    monkeypatch.setattr(reproduce, "write_results", lambda *args, **kwargs: "")
    arguments = ["reproduce", "--preset", "tiny", "--output_dir", str(tmp_path), *TINY_TRAINING]
    assert main([*arguments, "--lengths", "4", "6"]) == 0
    assert (measured, trained) == ([[4, 6], [6]], [[6, 8]])
    measured.clear()
    assert main([*arguments, "--lengths", "4"]) == 0  # no trained length listed: no model is trained or measured
    assert (measured, trained) == ([[4]], [[6, 8]])


def test_an_interrupted_training_resumes_from_its_last_checkpoint(tmp_path):
    language = research_language("hmm")
    training = ResearchTraining(train_steps=3, examples_per_length=8, batch_size=4)
    train_research_models(language, [6], tmp_path, training)
    (tmp_path / "mdm" / "training_time.json").unlink()  # as if stopped after its last checkpoint
    train_research_models(language, [6], tmp_path, training)
    assert training_record(tmp_path / "mdm")["resumed_from"].endswith("checkpoint-3")
    assert training_record(tmp_path / "autoregressive")["resumed_from"] is None


def test_the_fixed_steps_trend_is_the_slope_per_doubling_with_its_interval():
    rows = [dict(strategy="random", steps=4, length=length, ter_gap=0.5 + 0.1 * k + 0.01 * (k % 2))
            for k, length in enumerate([8, 16, 32, 64])]  # fmt: skip
    rows += [dict(strategy="random", steps=8, length=8, ter_gap=0.2), dict(strategy="confidence", steps=4, length=8,
                                                                           ter_gap=9.0)]  # fmt: skip
    table = fixed_steps_trend_table(rows, "random").splitlines()
    assert table[2].startswith("| 4 | [8, 16, 32, 64] | 0.500, 0.610, 0.700, 0.810 | +0.102 |")
    assert table[2].endswith("| changes with L |")
    assert table[3] == "| 8 | [8] | 0.200 | - | - | - | no slope: 3 lengths needed |"


def test_the_fits_table_says_not_reached_and_why_there_is_no_exponent():
    def needed(length, steps):
        return StepsNeeded(length, 0.05, 64, (), steps)

    fitted = fit_exponent("confidence", "ser", 0.05, {8: needed(8, 2), 16: needed(16, 4), 32: needed(32, 8)})
    unfitted = StepScaling("random", "ser", 0.05, {8: needed(8, 20), 16: needed(16, None)})
    table = step_scaling_table([fitted, unfitted]).splitlines()
    assert table[0].startswith("| strategy | error <= target | L=8 | L=16 | L=32 | b |")
    assert table[2].startswith("| confidence | ser <= 0.05 | 2 | 4 | 8 | 1.00 | 0.00 |")
    assert "| random | ser <= 0.05 | 20 | not reached by 64 | - | - | - | - | no exponent (1 lengths" in table[3]


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--preset", "huge"], "--preset must be one of ['pair', 'paper', 'quick']"),
        (["--languages", "4gram"], "Unknown research language '4gram'"),
        (["--target", "1.5"], "strictly between 0 and 1"),
        (["--ter_target", "0"], "strictly between 0 and 1"),
        (["--batch_size", "0"], "positive integers"),
        (["--decoders", "teacher"], "--decoders must list some of ['oracle', 'trained']"),
        (["--decoders", "trained"], "--preset quick trains no model"),
        (["--strategies", "fastest"], "fastest"),
        (["--lengths", "48"], "--lengths must list some of the preset's lengths [32, 64, 128, 256], got [48]"),
        (["--lengths", "-64"], "--lengths must list some of the preset's lengths"),
    ],
)
def test_bad_arguments_fail_in_one_line_before_any_work(arguments, message, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(reproduce, "search_steps_needed", lambda *a, **k: pytest.fail("work started"))
    assert main(["reproduce", "--output_dir", str(tmp_path), *arguments]) == 2
    assert message in capsys.readouterr().err


def test_the_same_steps_at_every_length_fit_b_zero_with_zero_error_not_nan():
    needed = {length: StepsNeeded(length, 0.2, 64, (), 16) for length in (32, 64, 128, 256)}
    scaling = fit_exponent("random", "ter_gap", 0.2, needed)
    assert (scaling.exponent, scaling.standard_error, scaling.interval) == (0.0, 0.0, (0.0, 0.0))
    assert "consistent with no growth" in scaling.describe()
    rows = [dict(strategy="random", steps=4, length=length, ter_gap=0.5) for length in (8, 16, 32)]
    table = fixed_steps_trend_table(rows, "random")
    assert "| +0.000 | 0.000 | [+0.000, +0.000] | flat (0 inside the interval) |" in table


@pytest.mark.bad_input
def test_a_finished_folder_with_other_settings_is_refused_not_reused(tmp_path):
    language = research_language("hmm")
    train_research_models(
        language, [6], tmp_path, ResearchTraining(train_steps=1, examples_per_length=4, batch_size=4)
    )
    with pytest.raises(ValueError, match="train_steps: 1 there, 2 asked.*delete the folder"):
        train_research_models(
            language, [6], tmp_path, ResearchTraining(train_steps=2, examples_per_length=4, batch_size=4)
        )
    with pytest.raises(ValueError, match=r"lengths: \[6\] there, \[8\] asked"):
        train_research_models(
            language, [8], tmp_path, ResearchTraining(train_steps=1, examples_per_length=4, batch_size=4)
        )
