"""sweep_steps on the exact oracle: the grid, determinism, resume, the AR row, prompt tasks, and bad input."""

import json
import math
import os
import subprocess
import sys

import pytest
import torch
from datasets import Dataset
from transformers import LlamaConfig, LlamaForCausalLM

import hf_mdm.evaluation.sweep as sweep_module
from hf_mdm import NGramLanguage, enable_diffusion_generation
from hf_mdm.evaluation import LanguageTask, PromptTask, read_sweep_rows, sweep_steps

from .conftest import tiny_bert_config, word_tokenizer


TIMINGS = ("latency_s", "latency_s_se", "tokens_per_s")


@pytest.fixture(scope="module")
def language():
    return NGramLanguage(6, n=2, support=3, seed=0)


def oracle(language):
    return enable_diffusion_generation(language.oracle_model())


def without_timings(table):
    return [{k: v for k, v in row.items() if k not in TIMINGS} for row in table]


def test_grid_columns_and_ranges(language):
    table = sweep_steps(
        oracle(language),
        language.tokenizer(),
        LanguageTask(language),
        steps=[2, 8],
        strategies=["random", "confidence"],
        lengths=[8, 12],
        num_samples=16,
        progress=False,
    )
    assert len(table) == 8
    assert {
        "strategy",
        "length",
        "steps",
        "nfe",
        "ser",
        "ser_low",
        "ser_high",
        "invalid_token_rate",
        "log_perplexity",
        "entropy_rate",
        "ter_gap",
        "latency_s",
        "tokens_per_s",
    } <= set(table.column_names)
    assert set(LanguageTask.SCORE_COLUMNS) <= set(table.column_names)  # the columns a resume file's header names
    for row in table:
        assert 0 <= row["ser_low"] <= row["ser"] <= row["ser_high"] <= 1
        # The oracle's entropy rate is exact: the TER gap's standard error is the log-perplexity's, over sequences.
        assert 0 < row["ter_gap_se"] == pytest.approx(row["log_perplexity_se"])
        assert 1 <= row["nfe"] <= row["steps"]
        assert row["entropy_rate"] == pytest.approx(language.entropy_rate().value)


def test_cells_do_not_depend_on_batch_size(language):
    kwargs = dict(steps=[3], strategies=["random"], lengths=[10], num_samples=12, progress=False)
    small = sweep_steps(oracle(language), language.tokenizer(), LanguageTask(language), batch_size=5, **kwargs)
    large = sweep_steps(oracle(language), language.tokenizer(), LanguageTask(language), batch_size=12, **kwargs)
    assert without_timings(small) == without_timings(large)


def test_resume_skips_finished_cells(language, tmp_path, monkeypatch):
    path = tmp_path / "sweep.jsonl"
    kwargs = dict(strategies=["random"], lengths=[8], num_samples=8, output_path=path, progress=False)
    first = sweep_steps(oracle(language), language.tokenizer(), LanguageTask(language), steps=[2, 4], **kwargs)
    assert len(read_sweep_rows(path)) == 2
    computed = []
    real_run_cell = sweep_module.run_cell
    monkeypatch.setattr(sweep_module, "run_cell", lambda *a, **k: computed.append(a[3:6]) or real_run_cell(*a, **k))
    resumed = sweep_steps(
        oracle(language), language.tokenizer(), LanguageTask(language), steps=[2, 4, 8], resume=True, **kwargs
    )
    assert computed == [("random", 8, 8)]
    assert without_timings(resumed)[:2] == without_timings(first)
    assert len(read_sweep_rows(path)) == 3
    with pytest.raises(ValueError, match="already exists; pass resume=True"):
        sweep_steps(oracle(language), language.tokenizer(), LanguageTask(language), steps=[2], **kwargs)


def test_autoregressive_row(language):
    tokenizer = language.tokenizer()
    torch.manual_seed(0)
    causal = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            max_position_embeddings=16,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    ).eval()
    table = sweep_steps(
        oracle(language),
        tokenizer,
        LanguageTask(language),
        steps=[2],
        strategies=["random"],
        lengths=[6],
        num_samples=8,
        autoregressive_model=causal,
        progress=False,
    )
    row = table[-1]
    assert (row["strategy"], row["steps"], row["nfe"]) == ("autoregressive", 6, 6.0)
    assert 0 <= row["ser"] <= 1 and row["invalid_token_rate"] is not None


def test_prompt_task_scores_final_answers():
    tokenizer = word_tokenizer()
    from transformers import BertForMaskedLM

    torch.manual_seed(0)
    bert = BertForMaskedLM(tiny_bert_config(len(tokenizer), max_position_embeddings=32))
    model = enable_diffusion_generation(bert.eval(), mask_token_id=tokenizer.mask_token_id)
    task = PromptTask(Dataset.from_dict({"prompt": ["the cat", "a dog"], "answer": ["sat", "ran"]}), name="toy")
    table = sweep_steps(
        model, tokenizer, task, steps=[1, 2], strategies=["confidence"], lengths=[1], num_samples=4, progress=False
    )
    assert len(table) == 2
    assert all(row["token_error"] is not None and row["invalid_token_rate"] is None for row in table)
    assert all(row["ter_gap_se"] is None and row["log_perplexity_se"] is None for row in table)
    assert set(PromptTask.SCORE_COLUMNS) <= set(table.column_names)
    with pytest.raises(ValueError, match="no column"):
        PromptTask(Dataset.from_dict({"question": ["x"]}))


@pytest.mark.bad_input
def test_bad_sweep_input(language):
    model, tokenizer, task = oracle(language), language.tokenizer(), LanguageTask(language)
    with pytest.raises(ValueError, match="at least one value"):
        sweep_steps(model, tokenizer, task, steps=[], progress=False)
    with pytest.raises(ValueError, match="every entry of steps must be a positive integer, got 0"):
        sweep_steps(model, tokenizer, task, steps=[0], progress=False)
    with pytest.raises(ValueError, match="autoregressive_model="):
        sweep_steps(model, tokenizer, task, steps=[2], strategies=["autoregressive"], progress=False)
    with pytest.raises(ValueError, match="disagrees with the model's mask_token_id"):
        sweep_steps(model, NGramLanguage(7, n=2).tokenizer(), task, steps=[2], progress=False)
    with pytest.raises(ValueError, match="even length"):
        from hf_mdm import CopyLanguage

        copy = CopyLanguage(language)
        sweep_steps(model, tokenizer, LanguageTask(copy), steps=[2], lengths=[7], progress=False)


@pytest.mark.slow
def test_two_processes_give_the_single_process_table(tmp_path, language):
    arguments = ["sweep", "--oracle", "--language", "ngram", "--language_vocab_size", "6", "--language_support", "3",
                 "--steps", "2", "4", "--lengths", "8", "--strategies", "random", "confidence", "--num_samples", "8",
                 "--batch_size", "4"]  # fmt: skip
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "-m", "hf_mdm.cli", *arguments, "--output_dir", str(tmp_path / "two")]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-2000:]
    single = sweep_steps(
        oracle(language),
        language.tokenizer(),
        LanguageTask(language),
        steps=[2, 4],
        strategies=["random", "confidence"],
        lengths=[8],
        num_samples=8,
        progress=False,
    )
    # Same cells and samples; floats agree to rounding (one thread per process there, two here).
    two = without_timings(read_sweep_rows(tmp_path / "two" / "sweep.jsonl"))
    expected = without_timings(single)
    assert [row.keys() for row in two] == [row.keys() for row in expected]
    for got, want in zip(two, expected):
        for key, value in want.items():
            assert got[key] == (pytest.approx(value, rel=1e-9) if isinstance(value, float) else value), key


def small_sweep(language, path, **overrides):
    kwargs = dict(steps=[2], strategies=["random"], lengths=[8], num_samples=4, output_path=path, progress=False)
    kwargs.update(overrides)
    model = kwargs.pop("model", None) or oracle(language)
    task = kwargs.pop("task", None) or LanguageTask(language)
    return sweep_steps(model, language.tokenizer(), task, **kwargs)


def edit_first_row(path, key, value):
    lines = path.read_text().splitlines()
    row = json.loads(lines[1])
    row[key] = value
    path.write_text("\n".join([lines[0], json.dumps(row), *lines[2:]]) + "\n")


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "change, differs",
    [
        (dict(seed=1), "seed"),
        (dict(num_samples=5), "num_samples"),
        (dict(schedule="cosine"), "generation_kwargs_sha256"),
        (dict(task=LanguageTask(NGramLanguage(6, n=2, support=3, seed=1))), "task_sha256"),
    ],
    ids=["other_seed", "other_num_samples", "other_generation_kwargs", "other_language"],
)
def test_resume_file_of_another_sweep_is_refused(language, tmp_path, change, differs):
    path = tmp_path / "sweep.jsonl"
    small_sweep(language, path)
    with pytest.raises(ValueError, match=f"different sweep \\(differs in {differs}\\); delete it or choose another"):
        small_sweep(language, path, resume=True, **change)


@pytest.mark.bad_input
def test_resume_file_of_an_older_hf_mdm_without_the_standard_errors_is_refused(language, tmp_path):
    """A resumed table would hold `ter_gap_se` for its new cells only."""
    path = tmp_path / "sweep.jsonl"
    small_sweep(language, path)
    lines = path.read_text().splitlines()
    header = json.loads(lines[0])
    del header["sweep_identity"]["score_columns"]  # as hf-mdm wrote it before the columns existed
    rows = [json.loads(line) for line in lines[1:]]
    for row in rows:
        del row["ter_gap_se"], row["log_perplexity_se"]
    path.write_text("\n".join(json.dumps(line) for line in [header, *rows]) + "\n")
    missing = r"older hf-mdm whose rows lack the columns \['log_perplexity_se', 'ter_gap_se'\]"
    with pytest.raises(ValueError, match=missing):
        small_sweep(language, path, resume=True)


@pytest.mark.bad_input
def test_resume_file_whose_rows_do_not_record_their_generation_is_refused(language, tmp_path):
    """Rows from before the `seed` and `generation` columns: a card could not rerun their cells."""
    path = tmp_path / "sweep.jsonl"
    small_sweep(language, path)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    lines[0]["sweep_identity"]["score_columns"] = list(LanguageTask.SCORE_COLUMNS)  # as the older hf-mdm wrote it
    for row in lines[1:]:
        del row["seed"], row["generation"]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    missing = r"older hf-mdm whose rows lack the columns \['block_size', 'generation', 'seed', 'steps_per_block', "
    with pytest.raises(ValueError, match=missing + r"'tokens_per_forward'\]"):
        small_sweep(language, path, resume=True)


@pytest.mark.bad_input
def test_resume_file_of_other_weights_is_refused(tmp_path, tokenizer):
    from hf_mdm import MDMForMaskedGeneration

    from .conftest import tiny_config

    task = PromptTask(Dataset.from_dict({"prompt": ["the cat"], "answer": ["sat"]}))
    path = tmp_path / "sweep.jsonl"
    kwargs = dict(steps=[2], lengths=[2], num_samples=2, output_path=path, progress=False)
    torch.manual_seed(0)
    sweep_steps(MDMForMaskedGeneration(tiny_config()).eval(), tokenizer, task, **kwargs)
    torch.manual_seed(1)
    with pytest.raises(ValueError, match="differs in model_sha256"):
        sweep_steps(MDMForMaskedGeneration(tiny_config()).eval(), tokenizer, task, resume=True, **kwargs)


@pytest.mark.bad_input
def test_resume_file_with_edited_values_is_refused(language, tmp_path):
    path = tmp_path / "sweep.jsonl"
    small_sweep(language, path)
    edit_first_row(path, "ser", 0.0)
    with pytest.raises(ValueError, match="row 2 .* does not match its checksum: its values were edited"):
        small_sweep(language, path, resume=True)


@pytest.mark.parametrize(
    "damage, rerun",
    [
        (lambda text: text[: len(text) - 40], [("random", 8, 4)]),  # killed mid-write: the last line is cut
        (lambda text: text + '{"strategy": "random", "length": 8}\n', []),  # a line without the cell's keys
        (lambda text: text + "\x00\x00garbage\n", []),
    ],
    ids=["truncated_last_line", "line_missing_keys", "corrupt_line"],
)
def test_torn_resume_lines_are_skipped_and_rerun(language, tmp_path, damage, rerun, monkeypatch):
    path = tmp_path / "sweep.jsonl"
    first = small_sweep(language, path, steps=[2, 4])
    path.write_text(damage(path.read_text()))
    computed = []
    real_run_cell = sweep_module.run_cell
    monkeypatch.setattr(sweep_module, "run_cell", lambda *a, **k: computed.append(a[3:6]) or real_run_cell(*a, **k))
    resumed = small_sweep(language, path, steps=[2, 4], resume=True)
    assert computed == rerun
    assert without_timings(resumed) == without_timings(first)
    assert len(read_sweep_rows(path)) == 2 and path.read_text().count("\n") == 3  # header + 2 clean rows


@pytest.mark.bad_input
def test_bad_strategy_after_a_good_one_fails_before_any_cell(language, tmp_path, monkeypatch):
    monkeypatch.setattr(sweep_module, "run_cell", lambda *a, **k: pytest.fail("a cell ran"))
    with pytest.raises(ValueError, match="Unknown strategy 'nope'"):
        small_sweep(language, tmp_path / "sweep.jsonl", strategies=["random", "nope"])
    assert not (tmp_path / "sweep.jsonl").exists()


@pytest.mark.bad_input
def test_unwritable_output_path_fails_before_any_cell(language, tmp_path, monkeypatch):
    monkeypatch.setattr(sweep_module, "run_cell", lambda *a, **k: pytest.fail("a cell ran"))
    with pytest.raises(ValueError, match="Cannot write the sweep file .*choose a writable path"):
        small_sweep(language, tmp_path / "no" / "such" / "folder" / "sweep.jsonl")


def test_latency_carries_its_standard_error_over_the_cells_batches(language):
    def cell(batch_size):
        (row,) = sweep_steps(oracle(language), language.tokenizer(), LanguageTask(language), steps=[2],
                             strategies=["random"], lengths=[8], num_samples=4, batch_size=batch_size,
                             progress=False)  # fmt: skip
        return row

    several, one = cell(2), cell(4)
    assert math.isfinite(several["latency_s_se"]) and several["latency_s_se"] >= 0  # two batches: their scatter
    assert one["latency_s_se"] is None  # one batch: no scatter to estimate, and no invented one
