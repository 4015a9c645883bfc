import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from hf_mdm import DataCollatorForMaskedDiffusion, get_schedule

from .conftest import toy_corpus, word_tokenizer


def collate(tokenizer, examples, **kwargs):
    kwargs.setdefault("generator", torch.Generator().manual_seed(0))
    return DataCollatorForMaskedDiffusion(tokenizer, **kwargs)(examples)


def test_batch_layout(tokenizer):
    examples = [tokenizer(text) for text in ["the cat sat", "the dog ran on a mat"]]
    batch = collate(tokenizer, examples)
    assert set(batch) == {"input_ids", "attention_mask", "labels", "t"}
    original = tokenizer.pad(examples, return_tensors="pt")["input_ids"]
    masked = batch["input_ids"] == tokenizer.mask_token_id
    assert torch.equal(batch["labels"][masked], original[masked])
    assert bool((batch["labels"][~masked] == -100).all())
    assert torch.equal(batch["input_ids"][~masked], original[~masked])
    assert batch["t"].shape == (2,)


def test_pad_tokens_are_never_masked(tokenizer):
    examples = [tokenizer("the cat"), tokenizer("the dog ran on a mat and the cat sat on a log")]
    for seed in range(20):
        batch = collate(tokenizer, examples, generator=torch.Generator().manual_seed(seed))
        pad = batch["attention_mask"] == 0
        assert bool((batch["input_ids"][pad] == tokenizer.pad_token_id).all())
        assert bool((batch["labels"][pad] == -100).all())


@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_prompt_tokens_are_never_masked(padding_side):
    tokenizer = word_tokenizer()
    tokenizer.padding_side = padding_side
    examples = [
        {**tokenizer("the cat sat on a mat"), "prompt_length": 2},
        {**tokenizer("a dog ran"), "prompt_mask": [1, 0, 1]},
    ]
    for seed in range(20):
        batch = collate(tokenizer, examples, eps=0.9, generator=torch.Generator().manual_seed(seed))
        ids = batch["input_ids"]
        assert ids[0].tolist()[:2] == tokenizer("the cat")["input_ids"]
        row1 = ids[1, :3] if padding_side == "right" else ids[1, -3:]
        assert row1[0] == tokenizer.convert_tokens_to_ids("a") and row1[2] == tokenizer.convert_tokens_to_ids("ran")


def test_text_examples_are_tokenized_and_truncated(tokenizer):
    batch = collate(
        tokenizer, [{"text": "the cat sat on a mat"}, {"text": "a dog"}], max_length=4, padding="max_length"
    )
    assert batch["input_ids"].shape == (2, 4)
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]


def test_antithetic_times_cover_every_stratum(tokenizer):
    collator = DataCollatorForMaskedDiffusion(tokenizer, eps=0.0, generator=torch.Generator().manual_seed(3))
    t = collator.sample_t(8)
    assert sorted((t * 8).floor().long().tolist()) == list(range(8))
    independent = DataCollatorForMaskedDiffusion(tokenizer, antithetic=False, eps=0.1).sample_t(1000)
    assert float(independent.min()) >= 0.1 and float(independent.max()) < 1.0


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_mask_rate_follows_the_schedule(tokenizer, schedule):
    """Given t, each real token is masked with probability 1 - alpha(t): check the rate over many draws."""
    collator = DataCollatorForMaskedDiffusion(tokenizer, schedule=schedule, generator=torch.Generator().manual_seed(0))
    examples = [tokenizer(text) for text in toy_corpus(32)]
    masked, expected = 0.0, 0.0
    for _ in range(40):
        batch = collator(examples)
        real = batch["attention_mask"].sum(-1)
        masked += float((batch["labels"] != -100).sum())
        expected += float((get_schedule(schedule).mask_probability(batch["t"]) * real).sum())
    assert masked / expected == pytest.approx(1.0, abs=0.03)


@pytest.mark.bad_input
def test_tokenizer_without_mask_token_names_the_fix():
    with pytest.raises(ValueError, match="(?s)no mask token.*add_special_tokens.*resize_token_embeddings"):
        DataCollatorForMaskedDiffusion(word_tokenizer(with_mask=False))


@pytest.mark.bad_input
def test_bad_collator_inputs(tokenizer):
    with pytest.raises(ValueError, match="Unknown noise schedule"):
        DataCollatorForMaskedDiffusion(tokenizer, schedule="quadratic")
    collator = DataCollatorForMaskedDiffusion(tokenizer)
    with pytest.raises(ValueError, match="empty batch"):
        collator([])
    with pytest.raises(ValueError, match="needs `input_ids` or a `text`"):
        collator([{"sentence": "the cat"}])
    with pytest.raises(ValueError, match="prompt_length=9 does not fit"):
        collator([{**tokenizer("the cat"), "prompt_length": 9}])
    with pytest.raises(ValueError, match=r"eps must lie in \[0, 1\)"):
        DataCollatorForMaskedDiffusion(tokenizer, eps=1.0)


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "example, error, message",
    [
        ({"input_ids": [[5, 6], [7, 8]]}, ValueError, "one flat sequence.*flatten or split"),
        ({"input_ids": [[5, 6], [7]]}, ValueError, "one flat sequence"),
        ({"input_ids": [5.0, 6.0, 7.0]}, TypeError, "integer token ids, got dtype torch.float"),
        ({"input_ids": [5, 6, 99]}, ValueError, r"outside \[0, 17\).*this collator's tokenizer"),
        ({"input_ids": [5, -1, 6]}, ValueError, r"outside \[0, 17\)"),
        ({"input_ids": [5, 6, 7], "prompt_length": 2.7}, TypeError, "whole number of prompt tokens, got 2.7"),
        ({"input_ids": [5, 6, 7], "prompt_length": True}, TypeError, "whole number"),
        ({"input_ids": [5, 6, 7], "prompt_length": -1}, ValueError, "prompt_length=-1 does not fit.*between 0"),
        ({"input_ids": [5, 6, 7], "prompt_length": 4}, ValueError, "prompt_length=4 does not fit an example of 3"),
        ({"input_ids": [5, 6, 7], "prompt_mask": [1, 2, 0]}, ValueError, "prompt_mask must hold one 0/1 entry"),
        ({"input_ids": [5, 6, 7], "attention_mask": [1, 1]}, ValueError, "attention_mask must hold one 0/1 entry"),
    ],
    ids=[
        "nested_2d_input_ids", "ragged_nested_input_ids", "float_input_ids", "out_of_vocab_input_ids",
        "negative_input_ids", "prompt_length_2_7", "prompt_length_bool", "prompt_length_negative",
        "prompt_length_too_long", "prompt_mask_not_binary", "attention_mask_wrong_length",
    ],
)  # fmt: skip
def test_bad_examples_name_the_fix(tokenizer, example, error, message):
    with pytest.raises(error, match=message):
        DataCollatorForMaskedDiffusion(tokenizer)([example])


def test_examples_with_and_without_attention_mask_mix(tokenizer):
    collator = DataCollatorForMaskedDiffusion(tokenizer, generator=torch.Generator().manual_seed(0))
    batch = collator(
        [{"input_ids": [5, 6, 7]}, {"input_ids": [8, 9, 0], "attention_mask": [1, 1, 0]}, {"input_ids": [5]}]
    )
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0], [1, 0, 0]]


def test_integer_prompt_length_of_any_integer_type_is_accepted(tokenizer):
    collator = DataCollatorForMaskedDiffusion(tokenizer, eps=0.999, generator=torch.Generator().manual_seed(0))
    for prompt_length in (2, torch.tensor(2), np.int64(2)):
        batch = collator([{"input_ids": [5, 6, 7, 8], "prompt_length": prompt_length}])
        assert (batch["labels"][0, :2] == -100).all() and (batch["labels"][0, 2:] != -100).all()


def unk_free_tokenizer(model):
    vocab = {"[PAD]": 0, "[MASK]": 1, "a": 2, "b": 3, "ab": 4}
    backend = Tokenizer(
        models.BPE(vocab=vocab, merges=[("a", "b")]) if model == "bpe" else models.WordLevel(vocab=vocab)
    )
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]", mask_token="[MASK]")


@pytest.mark.bad_input
@pytest.mark.parametrize("model", ["bpe", "wordlevel"])
def test_text_outside_the_vocabulary_without_unk_token_is_refused(model):
    collator = DataCollatorForMaskedDiffusion(unk_free_tokenizer(model))
    if model == "bpe":  # the characters it knows still encode (BPE splits words into them)
        assert collator([{"text": "ab ba"}])["input_ids"].shape == (1, 3)
    with pytest.raises(ValueError, match=r"cannot encode and it has no unk token: \['é'\].*unk_token"):
        collator([{"text": "ab é"}])
