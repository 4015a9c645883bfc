"""`hf-mdm generate | sweep | card | demo` end to end at a tiny size, and their one-line errors."""

import json

import pytest
import torch
from huggingface_hub import ModelCard as HubModelCard

from hf_mdm import MDMForMaskedGeneration, NGramLanguage
from hf_mdm.cli import main

from .conftest import tiny_config, word_tokenizer
from .test_model_card import run_usage_snippet, tiny_bert_masked_lm


@pytest.fixture
def model_dir(tmp_path):
    torch.manual_seed(0)
    MDMForMaskedGeneration(tiny_config()).save_pretrained(tmp_path / "model")
    word_tokenizer().save_pretrained(tmp_path / "model")
    return tmp_path / "model"


def test_generate_from_a_prompt_and_a_template(model_dir, capsys):
    assert main(["generate", "--model_name_or_path", str(model_dir), "--prompt", "the cat",
                 "--max_new_tokens", "4", "--steps", "2", "--live", "false"]) == 0  # fmt: skip
    assert capsys.readouterr().out.startswith("the cat ")
    assert main(["generate", "--model_name_or_path", str(model_dir), "--template", "the [MASK] sat on a [MASK]",
                 "--live", "false"]) == 0  # fmt: skip
    words = capsys.readouterr().out.split()
    assert len(words) == 6 and words[0] == "the" and words[2:5] == ["sat", "on", "a"]


@pytest.mark.bad_input
def test_generate_refuses_a_tokenizer_with_another_mask_id(model_dir, capsys):
    tokenizer = word_tokenizer()
    tokenizer.add_special_tokens({"mask_token": "[OTHER]"})
    tokenizer.save_pretrained(model_dir)
    assert main(["generate", "--model_name_or_path", str(model_dir), "--template", "the [OTHER]"]) == 2
    assert "disagrees with the model's mask_token_id 4" in capsys.readouterr().err


def test_generate_decodes_a_block_model_with_steps_per_block(tmp_path, capsys):
    torch.manual_seed(0)
    model = MDMForMaskedGeneration(tiny_config(block_size=2)).eval()
    tokenizer = word_tokenizer()
    model.save_pretrained(tmp_path / "block")
    tokenizer.save_pretrained(tmp_path / "block")
    assert main(["generate", "--model_name_or_path", str(tmp_path / "block"), "--prompt", "the cat",
                 "--max_new_tokens", "4", "--steps_per_block", "1", "--live", "false"]) == 0  # fmt: skip
    expected = model.generate(**tokenizer(["the cat"], return_tensors="pt"), max_new_tokens=4, steps_per_block=1)
    assert capsys.readouterr().out.strip() == tokenizer.decode(expected[0], skip_special_tokens=True)
    assert main(["generate", "--model_name_or_path", str(tmp_path / "block"), "--prompt", "the cat",
                 "--max_new_tokens", "4", "--steps", "4", "--steps_per_block", "1"]) == 2  # fmt: skip
    assert "steps_per_block" in capsys.readouterr().err


def test_generate_streams_drafts(model_dir, capsys):
    assert main(["generate", "--model_name_or_path", str(model_dir), "--prompt", "the", "--max_new_tokens", "3",
                 "--steps", "3"]) == 0  # fmt: skip
    assert "\0338" in capsys.readouterr().out  # TextDiffusionStreamer redraws the draft in place


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "arguments,message",
    [
        ([], "exactly one of --prompt"),
        (["--template", "the cat"], "must contain the tokenizer's mask token"),
        (["--prompt", "the", "--strategy", "greedy"], "greedy"),
        (["--prompt", "the", "--steps", "0"], "steps"),
    ],
)
def test_generate_errors_are_one_line(model_dir, capsys, arguments, message):
    assert main(["generate", "--model_name_or_path", str(model_dir), *arguments]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("hf-mdm generate: error:") and message in error and len(error.splitlines()) == 1


def test_sweep_then_card(tmp_path, capsys):
    assert main(["sweep", "--oracle", "--language", "ngram", "--language_vocab_size", "6", "--language_support", "3",
                 "--steps", "2", "8", "--lengths", "8", "16", "--strategies", "random", "--num_samples", "8",
                 "--output_dir", str(tmp_path / "sweep")]) == 0  # fmt: skip
    for name in ("sweep.jsonl", "sweep.json", "sweep.md", "aup.md", "step_vs_error.png"):
        assert (tmp_path / "sweep" / name).exists(), name
    out = capsys.readouterr().out
    assert "| random | 16 | 8 |" in out
    aup = (tmp_path / "sweep" / "aup.md").read_text()  # one curve per length, printed as written
    assert "| 8 | random | " in aup and "| 16 | random | " in aup and aup.strip() in out
    assert main(["card", "--sweep", str(tmp_path / "sweep" / "sweep.jsonl"), "--output_dir", str(tmp_path / "card"),
                 "--model_name", "oracle"]) == 0  # fmt: skip
    card = HubModelCard.load(tmp_path / "card" / "README.md")
    published = [result.metric_type for result in card.data.eval_results]
    assert card.data.library_name == "hf-mdm" and len(published) == 4 * 4 + 2  # per row 3 errors and TPF; 2 AUPs
    assert published.count("accuracy_under_parallelism") == 2 and published.count("tokens_per_forward") == 4
    tiny_bert_masked_lm().save_pretrained(tmp_path / "bert")  # a card for any masked LM folder, not only ours
    assert main(["card", "--sweep", str(tmp_path / "sweep" / "sweep.jsonl"), "--output_dir", str(tmp_path / "bert"),
                 "--model_name_or_path", str(tmp_path / "bert")]) == 0  # fmt: skip
    assert "`BertForMaskedLM` (model_type `bert`)" in (tmp_path / "bert" / "README.md").read_text()


@pytest.mark.bad_input
def test_sweep_errors_are_one_line(tmp_path, capsys):
    assert main(["sweep", "--language", "ngram", "--output_dir", str(tmp_path)]) == 2
    assert "exactly one of --model_name_or_path or --oracle" in capsys.readouterr().err
    assert main(["sweep", "--oracle", "--output_dir", str(tmp_path)]) == 2
    assert "exactly one task" in capsys.readouterr().err
    assert main(["card", "--sweep", str(tmp_path / "missing.jsonl"), "--output_dir", str(tmp_path)]) == 2
    assert "run `hf-mdm sweep` first" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_end_to_end_at_a_reduced_size(tmp_path, capsys):
    assert main(["demo", "--output_dir", str(tmp_path), "--lengths", "8", "12", "--steps", "2", "12",
                 "--train_examples", "64", "--train_steps", "4", "--hidden_size", "16", "--num_hidden_layers", "1",
                 "--num_samples", "8", "--progress", "false"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "| autoregressive | 12 | 12 |" in out and "| confidence | 8 | 2 |" in out
    model = MDMForMaskedGeneration.from_pretrained(tmp_path / "model")
    assert model.generation_config.mask_token_id == NGramLanguage(8, 2, 4).tokenizer().mask_token_id
    card = HubModelCard.load(tmp_path / "model" / "README.md")
    assert len([r for r in card.data.eval_results if r.metric_type == "sequence_error_rate"]) == 2 * 2 * 2 + 2
    assert (tmp_path / "model" / "step_vs_error.png").exists()
    assert len(json.loads("[" + ",".join((tmp_path / "sweep.json").read_text().split("\n")[:-1]) + "]")) == 10
    snippet = run_usage_snippet((tmp_path / "model" / "README.md").read_text(), tmp_path / "model")
    assert snippet["out"].shape == (1, 12)  # the table's largest length, within the model's 12 positions


@pytest.mark.bad_input
def test_generate_on_a_folder_without_tokenizer_prints_one_line(tmp_path, capsys):
    MDMForMaskedGeneration(tiny_config()).save_pretrained(tmp_path / "model")
    assert main(["generate", "--model_name_or_path", str(tmp_path / "model"), "--prompt", "the"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("hf-mdm generate: error:") and "has no tokenizer; save one there" in error
    assert len(error.splitlines()) == 1


@pytest.mark.bad_input
@pytest.mark.parametrize("folder", ["./no/such/model", "/tmp/no-such-model-folder", "~/no-such-model"])
def test_generate_on_a_mistyped_folder_says_no_such_folder(capsys, folder):
    """A mistyped path was reported as "Repo id must use alphanumeric chars ..." by the tokenizer's loader."""
    assert main(["generate", "--model_name_or_path", folder, "--prompt", "the"]) == 2
    error = capsys.readouterr().err.strip()
    expected = f"No such folder: {folder}; pass an existing --model_name_or_path folder or a Hub repo id (org/name)."
    assert error == f"hf-mdm generate: error: {expected}"
