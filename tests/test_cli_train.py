"""`hf-mdm train`: formal languages and local text files, and one-line errors."""

import json

import pytest

from hf_mdm import MDMForMaskedGeneration
from hf_mdm.cli import main

from .conftest import toy_corpus, word_tokenizer


COMMON = ["--hidden_size", "32", "--num_hidden_layers", "2", "--max_steps", "3", "--per_device_train_batch_size", "4",
          "--report_to", "none", "--use_cpu", "--disable_tqdm", "true"]  # fmt: skip


def test_train_on_a_formal_language_writes_a_checkpoint(tmp_path):
    assert main(["train", "--language", "ngram", "--num_examples", "32", "--sequence_length", "12",
                 "--output_dir", str(tmp_path), *COMMON]) == 0  # fmt: skip
    model = MDMForMaskedGeneration.from_pretrained(tmp_path)
    assert model.config.max_position_embeddings == 12
    assert json.loads((tmp_path / "tokenizer_config.json").read_text())["mask_token"] == "<mask>"


def test_train_on_a_local_text_file(tmp_path):
    (tmp_path / "corpus.txt").write_text("\n".join(toy_corpus(32)))
    word_tokenizer().save_pretrained(tmp_path / "tokenizer")
    assert main(["train", "--dataset", str(tmp_path / "corpus.txt"), "--tokenizer_name_or_path",
                 str(tmp_path / "tokenizer"), "--max_length", "16", "--output_dir", str(tmp_path / "out"),
                 *COMMON]) == 0  # fmt: skip
    assert (tmp_path / "out" / "model.safetensors").exists()


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "arguments,message",
    [
        (["--dataset", "missing.txt", "--tokenizer_name_or_path", "x"], "does not exist"),
        ([], "Give exactly one of --dataset"),
        (["--language", "regex"], "--language must be one of ngram, hmm, copy"),
        (["--language", "ngram", "--language_order", "0"], "n"),
    ],
)
def test_user_errors_print_one_line(tmp_path, capsys, arguments, message):
    assert main(["train", "--output_dir", str(tmp_path), *arguments, *COMMON]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("hf-mdm train: error:") and message in error
    assert len(error.splitlines()) == 1 and "Traceback" not in error


def test_unknown_command_and_help(capsys):
    assert main(["bogus"]) == 2
    assert "unknown command 'bogus'" in capsys.readouterr().err
    assert main(["--help"]) == 0
    assert "train" in capsys.readouterr().out


@pytest.mark.bad_input
@pytest.mark.parametrize("content", ["", "\n\n\n"], ids=["empty_dataset_file", "dataset_of_blank_lines"])
def test_train_on_an_empty_dataset_prints_one_line(tmp_path, capsys, content):
    (tmp_path / "corpus.txt").write_text(content)
    word_tokenizer().save_pretrained(tmp_path / "tokenizer")
    assert main(["train", "--dataset", str(tmp_path / "corpus.txt"), "--tokenizer_name_or_path",
                 str(tmp_path / "tokenizer"), "--output_dir", str(tmp_path / "out"), *COMMON]) == 2  # fmt: skip
    stderr = capsys.readouterr().err
    error = stderr.strip().splitlines()[-1]  # datasets' progress bars come first when the file has lines
    assert error.startswith("hf-mdm train: error:") and "Traceback" not in stderr
    assert ("is empty; give a file" if content == "" else "no example with tokens") in error


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--hidden_size", "30", "--num_attention_heads", "4"], "hidden_size (30) is not divisible by"),
        (["--hidden_size", "28", "--num_attention_heads", "4"], "RoPE requires an even rotary dimension"),
    ],
    ids=["hidden_size_not_divisible_by_heads", "odd_head_dim"],
)
def test_bad_model_shape_prints_one_line(tmp_path, capsys, arguments, message):
    common = [value for value in COMMON if value not in ("--hidden_size", "32")]
    assert main(["train", "--language", "ngram", "--num_examples", "8", "--output_dir", str(tmp_path),
                 *common, *arguments]) == 2  # fmt: skip
    error = capsys.readouterr().err.strip()
    assert error.startswith("hf-mdm train: error:") and message in error and len(error.splitlines()) == 1
