"""`hf-mdm train`: formal languages and local text files, and one-line errors."""

import json
import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file
from transformers import AutoTokenizer, HfArgumentParser

from hf_mdm import MDMForMaskedGeneration
from hf_mdm.cli import main
from hf_mdm.cli.train import (
    ARGUMENTS,
    build_training_inputs,
    check_train_arguments,
    set_end_of_text,
    training_collator,
)

from .conftest import TOY_WORDS, tiny_config, toy_corpus, word_tokenizer
from .tiny_bert_tokenizer import bert_tokenizer


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
        (["--language", "regex"], "--language must be one of copy, hmm, ngram"),
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


def trained_weights_and_losses(folder):
    state = json.loads((folder / "trainer_state.json").read_text())
    losses = [entry["loss"] for entry in state["log_history"] if "loss" in entry]
    return load_file(folder / "model.safetensors"), losses


def test_the_same_command_twice_gives_the_same_weights_and_losses(tmp_path):
    """The seed is set before the model is built: two runs in one process agree exactly; another seed does not."""
    runs = {}
    for name, seed in (("first", "42"), ("second", "42"), ("other_seed", "7")):
        assert main(["train", "--language", "ngram", "--num_examples", "32", "--sequence_length", "12", "--seed", seed,
                     "--logging_steps", "1", "--output_dir", str(tmp_path / name), *COMMON]) == 0  # fmt: skip
        runs[name] = trained_weights_and_losses(tmp_path / name)
    (first, first_losses), (second, second_losses), (other, _) = runs.values()
    assert len(first_losses) == 3 and first_losses == second_losses
    assert first.keys() == second.keys() and all(torch.equal(first[name], second[name]) for name in first)
    assert not all(torch.equal(first[name], other[name]) for name in first)


# --- Fine-tuning on prompt/response pairs (SFT) and BERT-family tokenizers ----------------------------------------

PAIRS = [("the cat", "sat on a mat"), ("the dog", "ran"), ("a cat", "sat on a log and ran fast"), ("a dog", "")]


def write_pairs(folder, pairs=PAIRS, prompt="prompt", response="response"):
    folder.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({prompt: p, response: r}) for p, r in pairs]
    (folder / "pairs.jsonl").write_text("\n".join(lines) + "\n")
    return str(folder / "pairs.jsonl")


def parsed(arguments):
    return HfArgumentParser(ARGUMENTS).parse_args_into_dataclasses(args=arguments)


def test_sft_columns_train_on_pairs_with_eos_padding(tmp_path):
    word_tokenizer().save_pretrained(tmp_path / "tokenizer")
    sft = ["--dataset", write_pairs(tmp_path), "--prompt_column", "prompt", "--response_column", "response",
           "--tokenizer_name_or_path", str(tmp_path / "tokenizer"), "--max_length", "12"]  # fmt: skip
    assert main(["train", *sft, "--output_dir", str(tmp_path / "out"), *COMMON]) == 0
    assert MDMForMaskedGeneration.from_pretrained(tmp_path / "out").generation_config.eos_token_id == 3

    model_args, data, language_args, _ = parsed([*sft, "--output_dir", str(tmp_path / "unused")])
    tokenizer, dataset, model = build_training_inputs(model_args, data, language_args)
    collator = training_collator(tokenizer, model, data)
    assert collator.eos_padding
    batch = collator([dataset[i] for i in range(len(PAIRS))])
    clean = torch.where(batch["labels"] != -100, batch["labels"], batch["input_ids"])
    for row, (prompt, response) in zip(clean.tolist(), PAIRS):
        ids = tokenizer(prompt)["input_ids"] + tokenizer(response, add_special_tokens=False)["input_ids"]
        assert row == ids + [3] * (len(row) - len(ids))  # the response, then EOS to the batch's width
    assert bool((batch["attention_mask"] == 1).all())
    assert bool((batch["labels"][batch["prompt_mask"] == 1] == -100).all())  # the prompt is never masked


def test_a_bert_tokenizer_trains_a_model_that_ends_texts_with_sep(tmp_path):
    """BERT-family tokenizers name no EOS but end every text with [SEP]: train makes [SEP] the EOS of the tokenizer,
    the model config and generate(), and the end marker generate() shows after the new tokens; fine-tuning trains
    [CLS] prompt response [SEP] ([SEP] padding), the layout generate() shows the model."""
    (tmp_path / "corpus.txt").write_text("\n".join(toy_corpus(16)))
    bert_tokenizer().save_pretrained(tmp_path / "bert")
    bert = ["--tokenizer_name_or_path", str(tmp_path / "bert"), "--max_length", "12"]
    assert main(["train", "--dataset", str(tmp_path / "corpus.txt"), *bert, "--output_dir", str(tmp_path / "out"),
                 *COMMON]) == 0  # fmt: skip
    sep = bert_tokenizer().sep_token_id
    assert AutoTokenizer.from_pretrained(tmp_path / "out").eos_token == "[SEP]"
    model = MDMForMaskedGeneration.from_pretrained(tmp_path / "out")
    assert model.config.eos_token_id == model.generation_config.eos_token_id == sep
    assert model.generation_config.sep_token_id == sep

    model_args, data, language_args, _ = parsed(
        ["--dataset", write_pairs(tmp_path / "pairs"), "--prompt_column", "prompt", "--response_column", "response",
         "--model_name_or_path", str(tmp_path / "out"), "--max_length", "12", "--output_dir", str(tmp_path / "x")]
    )  # fmt: skip
    tokenizer, dataset, model = build_training_inputs(model_args, data, language_args)
    batch = training_collator(tokenizer, model, data)([dataset[0], dataset[1]])
    clean = torch.where(batch["labels"] != -100, batch["labels"], batch["input_ids"])
    cls, the, dog, ran = tokenizer.convert_tokens_to_ids(["[CLS]", "the", "dog", "ran"])
    assert dataset[1]["prompt_length"] == 3
    assert clean[1].tolist() == [cls, the, dog, ran] + [sep] * (clean.shape[1] - 4)


@pytest.mark.parametrize("model_eos, expected", [(None, 3), (3, 3), (2, [2, 3])], ids=["none", "same", "other"])
def test_generate_stops_at_the_eos_the_data_teaches(model_eos, expected):
    model = MDMForMaskedGeneration(tiny_config(eos_token_id=model_eos))
    set_end_of_text(word_tokenizer(), model)
    assert model.generation_config.eos_token_id == expected
    assert model.config.eos_token_id == (model_eos if model_eos is not None else 3)


@pytest.fixture
def sources(tmp_path):
    """Corpora (pairs; a null response; numbers as text), word tokenizers (one without EOS, one larger than the
    model's vocabulary) and a tiny saved model of 16 positions."""
    (tmp_path / "corpus.txt").write_text("\n".join(toy_corpus(8)))
    word_tokenizer().save_pretrained(tmp_path / "tok")
    word_tokenizer([*TOY_WORDS, "fox", "owl"]).save_pretrained(tmp_path / "big_tok")
    tokenizer = word_tokenizer()
    tokenizer.eos_token = None
    tokenizer.save_pretrained(tmp_path / "no_eos")
    MDMForMaskedGeneration(tiny_config(max_position_embeddings=16)).save_pretrained(tmp_path / "model")
    write_pairs(tmp_path / "pairs")
    write_pairs(tmp_path / "long", [("the cat", " ".join(["a"] * 20))])
    (tmp_path / "nulls.jsonl").write_text('{"prompt": "a", "response": null}\n{"prompt": "a", "response": "cat"}\n')
    (tmp_path / "numbers.jsonl").write_text('{"text": 1}\n{"text": 2}\n')
    return tmp_path


SFT = ["--prompt_column", "prompt", "--response_column", "response"]
# The count flags: each must be >= 1; all but --max_length (a text dataset's) are accepted beside --language.
LANGUAGE_COUNTS = ["hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                   "intermediate_size", "num_examples", "sequence_length"]  # fmt: skip
COUNT_FLAGS = [*LANGUAGE_COUNTS, "max_length"]


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--dataset", "{pairs}", "--prompt_column", "prompt"], "Give both --prompt_column and --response_column"),
        (["--dataset", "{pairs}", "--response_column", "response"], "Give both --prompt_column"),
        (["--dataset", "{pairs}", "--prompt_column", "prompt", "--response_column", "prompt"], "both name 'prompt'"),
        (["--language", "ngram", *SFT], "--prompt_column, --response_column would be ignored with --language"),
        (["--language", "ngram", "--text_column", "body"], "--text_column would be ignored with --language"),
        (["--language", "ngram", "--max_length", "64"], "--max_length would be ignored with --language"),
        (["--language", "ngram", "--tokenizer_name_or_path", "{tok}"], "--tokenizer_name_or_path would be ignored"),
        (["--dataset", "{corpus}", "--num_examples", "5"], "--num_examples would be ignored with --dataset"),
        (["--dataset", "{corpus}", "--sequence_length", "8"], "--sequence_length would be ignored with --dataset"),
        (["--dataset", "{corpus}", "--language_order", "3"], "--language_order would be ignored with --dataset"),
        (["--dataset", "{corpus}", "--model_name_or_path", "{model}", "--num_hidden_layers", "6"],
         "--num_hidden_layers describe a new model and would be ignored with --model_name_or_path"),
        (["--dataset", "{corpus}", "--model_name_or_path", "{model}", "--schedule", "cosine"], "--schedule describe"),
        *[(["--language", "ngram", f"--{flag}", "0"], f"--{flag} must be >= 1, got 0") for flag in LANGUAGE_COUNTS],
        (["--dataset", "{corpus}", "--tokenizer_name_or_path", "{tok}", "--max_length", "0"], "--max_length must"),
        (["--dataset", "{pairs}", "--tokenizer_name_or_path", "{tok}", *SFT, "--text_column", "body"],
         "--text_column is not read with --prompt_column"),
        (["--dataset", "{pairs}", "--tokenizer_name_or_path", "{tok}", "--prompt_column", "question",
          "--response_column", "response"], "--prompt_column 'question' is not a column of the dataset"),
        (["--dataset", "{nulls}", "--tokenizer_name_or_path", "{tok}", *SFT],
         "--response_column 'response' must hold text in every row; row 0 holds None"),
        (["--dataset", "{numbers}", "--tokenizer_name_or_path", "{tok}"], "--text_column 'text' must hold text"),
        (["--dataset", "{corpus}", "--tokenizer_name_or_path", "{tok}", "--text_column", "body"], "is not a column"),
        (["--dataset", "{long}", "--tokenizer_name_or_path", "{tok}", *SFT, "--max_length", "16"],
         "1 of 1 prompt/response pairs need more than --max_length=16 tokens with their EOS \\(the longest 23\\)"),
        (["--dataset", "{pairs}", "--tokenizer_name_or_path", "{no_eos}", *SFT], "the tokenizer has none: add one"),
        (["--dataset", "{pairs}", "--tokenizer_name_or_path", "{no_eos}", "--model_name_or_path", "{tok}", *SFT],
         "the tokenizer has none: add one"),  # refused before the model (here no model: a tokenizer folder) loads
        (["--dataset", "{corpus}", "--model_name_or_path", "{model}", "--tokenizer_name_or_path", "{tok}",
          "--max_length", "32"], "may have 32 tokens but the model holds at most 16 positions"),
        (["--dataset", "{corpus}", "--model_name_or_path", "{model}", "--tokenizer_name_or_path", "{big_tok}",
          "--max_length", "8"], "The tokenizer has 19 tokens but the model only 17"),
    ],
    ids=[
        "prompt_column_alone", "response_column_alone", "same_prompt_and_response_column",
        "sft_columns_with_language", "text_column_with_language", "max_length_with_language",
        "tokenizer_with_language", "num_examples_with_dataset", "sequence_length_with_dataset",
        "language_order_with_dataset", "architecture_with_loaded_model",
        "schedule_with_loaded_model", *[f"{flag}_zero" for flag in LANGUAGE_COUNTS],
        "max_length_zero", "text_column_with_sft_columns", "prompt_column_missing", "response_null",
        "text_column_of_numbers", "text_column_missing", "pair_longer_than_max_length", "sft_tokenizer_without_eos",
        "sft_tokenizer_without_eos_before_model_loads",
        "max_length_beyond_loaded_model", "tokenizer_larger_than_loaded_model",
    ],
)  # fmt: skip
def test_bad_train_arguments_print_one_line(sources, capsys, arguments, message):
    paths = {name: str(sources / file) for name, file in [("pairs", "pairs/pairs.jsonl"), ("corpus", "corpus.txt"),
             ("tok", "tok"), ("no_eos", "no_eos"), ("model", "model"), ("nulls", "nulls.jsonl"),
             ("numbers", "numbers.jsonl"), ("long", "long/pairs.jsonl"), ("big_tok", "big_tok")]}  # fmt: skip
    arguments = [argument.format(**paths) for argument in arguments]
    run = ["--max_steps", "1", "--report_to", "none", "--use_cpu", "--disable_tqdm", "true"]  # default architecture
    assert main(["train", *arguments, "--output_dir", str(sources / "out"), *run]) == 2
    stderr = capsys.readouterr().err
    error = stderr.strip().splitlines()[-1]  # datasets' progress bars may come first
    assert error.startswith("hf-mdm train: error:") and "Traceback" not in stderr
    assert re.search(message, error), error


@pytest.mark.bad_input
@settings(max_examples=60, deadline=None)
@given(st.sampled_from(COUNT_FLAGS), st.integers(max_value=0), st.sampled_from(["dataset", "language"]))
def test_every_count_below_one_is_refused_naming_its_flag(flag, value, source):
    model_args, data, language_args, _ = parsed(
        ["--dataset", "corpus.txt"] if source == "dataset" else ["--language", "ngram"]
    )  # the check runs before anything is loaded, so the file need not exist
    setattr(model_args if hasattr(model_args, flag) else data, flag, value)
    with pytest.raises(ValueError, match=f"--{flag} must be >= 1, got {value}"):
        check_train_arguments(model_args, data, language_args)
