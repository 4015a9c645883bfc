"""Supervised fine-tuning that stops: `eos_padding=True` teaches the model to end an answer with EOS.

A tiny MDM is trained with the stock Trainer on a repeat task ('say w7 three :' -> 'w7 w7 w7'), answers of 1-4 words;
with EOS padding, generate() returns the answer, then EOS, then padding, and the sequence error rate (answer exact
match up to the first EOS) on held-out prompts is below 0.1. The same run without EOS padding never emits EOS: no
answer ends, every row runs on to the end of the canvas.
"""

import json

import pytest
import torch
from datasets import Dataset
from transformers import AutoTokenizer, Trainer, TrainingArguments

from hf_mdm import DataCollatorForMaskedDiffusion, MDMForMaskedGeneration
from hf_mdm.cli import main

from .conftest import tiny_config, word_tokenizer
from .tiny_bert_tokenizer import bert_tokenizer


WORDS = [f"w{i}" for i in range(40)]
COUNTS = ["one", "two", "three", "four"]


def repeat_pairs() -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(train, held_out) pairs of the task ('say w7 three :', 'w7 w7 w7'), answers of 1-4 words. Each word is
    held out at one count, so a held-out prompt pairs a word and a count that were never trained together."""
    train, held_out = [], []
    for i, word in enumerate(WORDS):
        for n, count in enumerate(COUNTS):
            pairs = held_out if i % len(COUNTS) == n else train
            pairs.append((f"say {word} {count} :", " ".join([word] * (n + 1))))
    return train, held_out


def sft_example(tokenizer, prompt: str, answer: str) -> dict:
    prompt_ids = tokenizer(prompt)["input_ids"]
    answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    return {"input_ids": prompt_ids + answer_ids, "prompt_length": len(prompt_ids)}


def answers_up_to_eos(tokens: list[list[int]], eos: int) -> list[list[int]]:
    return [row[: row.index(eos)] if eos in row else row for row in tokens]


@pytest.mark.slow
@pytest.mark.parametrize("eos_padding", [True, False], ids=["eos_padding", "pad_padding"])
def test_sft_with_eos_padding_trains_a_model_that_stops(tmp_path, eos_padding):
    tokenizer = word_tokenizer(["say", ":"] + WORDS + COUNTS)
    train, held_out = repeat_pairs()
    dataset = Dataset.from_list([sft_example(tokenizer, prompt, answer) for prompt, answer in train])
    torch.manual_seed(0)
    model = MDMForMaskedGeneration(
        tiny_config(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, max_position_embeddings=16)
    )
    collator = DataCollatorForMaskedDiffusion(tokenizer, eos_padding=eos_padding, pad_to_multiple_of=4)
    args = TrainingArguments(
        str(tmp_path), max_steps=500, per_device_train_batch_size=32, learning_rate=1e-3, warmup_steps=20,
        save_strategy="no", report_to="none", use_cpu=True, disable_tqdm=True, seed=0,
    )  # fmt: skip
    Trainer(model=model, args=args, train_dataset=dataset, data_collator=collator).train()

    tokenizer.padding_side = "left"
    prompts = tokenizer([prompt for prompt, _ in held_out], return_tensors="pt", padding=True)
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    model.eval()
    sequences = model.generate(
        **prompts, max_new_tokens=6, steps=6, strategy="confidence", eos_token_id=eos, pad_token_id=pad
    )
    generated = sequences[:, prompts["input_ids"].shape[1] :].tolist()
    expected = [tokenizer(answer, add_special_tokens=False)["input_ids"] for _, answer in held_out]
    ser = sum(got != want for got, want in zip(answers_up_to_eos(generated, eos), expected)) / len(held_out)
    if eos_padding:
        assert ser < 0.1
        for row in generated:  # every row stops: EOS, then pad to the end of the canvas
            assert eos in row
            assert row[row.index(eos) + 1 :] == [pad] * (len(row) - row.index(eos) - 1)
    else:  # nothing taught EOS: no row stops, every answer runs on to the canvas's end
        assert not any(eos in row for row in generated)
        assert ser == 1.0


@pytest.mark.slow
def test_hf_mdm_train_on_pairs_with_a_bert_tokenizer_stops_at_sep(tmp_path):
    """The same task from the shell with a BERT-family tokenizer: `hf-mdm train --prompt_column --response_column`
    makes [SEP] the EOS and trains [CLS] prompt response [SEP]...; generate(), given prompts as the tokenizer writes
    them ([CLS] prompt [SEP]), returns the answer then [SEP] then padding."""
    train, held_out = repeat_pairs()
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps({"q": p, "a": a}) + "\n" for p, a in train))
    bert_tokenizer(["say", ":", *WORDS, *COUNTS]).save_pretrained(tmp_path / "tokenizer")
    assert main(["train", "--dataset", str(tmp_path / "pairs.jsonl"), "--prompt_column", "q", "--response_column", "a",
                 "--tokenizer_name_or_path", str(tmp_path / "tokenizer"), "--max_length", "16", "--hidden_size", "64",
                 "--intermediate_size", "128", "--num_hidden_layers", "2", "--num_attention_heads", "4",
                 "--num_key_value_heads", "2", "--max_steps", "500", "--per_device_train_batch_size", "32",
                 "--learning_rate", "1e-3", "--warmup_steps", "20", "--seed", "0", "--save_strategy", "no",
                 "--report_to", "none", "--use_cpu", "--disable_tqdm", "true",
                 "--output_dir", str(tmp_path / "sft")]) == 0  # fmt: skip

    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "sft", padding_side="left")
    model = MDMForMaskedGeneration.from_pretrained(tmp_path / "sft").eval()
    sep, pad = tokenizer.sep_token_id, tokenizer.pad_token_id
    prompts = tokenizer([prompt for prompt, _ in held_out], return_tensors="pt", padding=True)
    assert bool((prompts["input_ids"][:, -1] == sep).all())  # [CLS] prompt [SEP], as the tokenizer writes it
    sequences = model.generate(**prompts, max_new_tokens=6, steps=6, strategy="confidence")
    generated = sequences[:, prompts["input_ids"].shape[1] :].tolist()
    expected = [tokenizer(answer, add_special_tokens=False)["input_ids"] for _, answer in held_out]
    assert sum(got != want for got, want in zip(answers_up_to_eos(generated, sep), expected)) / len(held_out) < 0.1
    for row in generated:
        assert sep in row and row[row.index(sep) + 1 :] == [pad] * (len(row) - row.index(sep) - 1)
