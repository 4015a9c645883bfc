import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from hf_mdm import DataCollatorForMaskedDiffusion, get_schedule

from .conftest import toy_corpus, word_tokenizer
from .tiny_bert_tokenizer import bert_tokenizer


def collate(tokenizer, examples, **kwargs):
    kwargs.setdefault("generator", torch.Generator().manual_seed(0))
    return DataCollatorForMaskedDiffusion(tokenizer, **kwargs)(examples)


def test_batch_layout(tokenizer):
    examples = [tokenizer(text) for text in ["the cat sat", "the dog ran on a mat"]]
    batch = collate(tokenizer, examples)
    assert set(batch) == {"input_ids", "attention_mask", "labels", "t", "mask_probability"}
    assert torch.equal(batch["mask_probability"], 1.0 - (1.0 - batch["t"]))  # the linear schedule's 1 - alpha(t)
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


# --- EOS padding (supervised fine-tuning that stops) -------------------------------------------------------------


def eos_padded(ids: list[int], width: int, eos: int = 3) -> list[int]:
    """What an example becomes under eos_padding: its ids, one EOS ending it unless it ends in EOS, EOS to `width`."""
    ended = ids if ids and ids[-1] == eos else ids + [eos]
    return ended + [eos] * (width - len(ended))


def unmasked(batch) -> torch.Tensor:
    """The batch's clean ids: labels where masked, input_ids elsewhere."""
    return torch.where(batch["labels"] != -100, batch["labels"], batch["input_ids"])


@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_eos_padding_pads_responses_with_eos_that_are_masked_and_scored(padding_side):
    tokenizer = word_tokenizer()
    tokenizer.padding_side = padding_side  # EOS follows the response whatever side pad tokens go
    examples = [
        {"input_ids": [5, 6, 7, 8, 9], "prompt_length": 2},
        {"input_ids": [5, 6, 3], "prompt_length": 1},  # ends in EOS already: no second end-of-text EOS
        {"input_ids": [10, 11], "prompt_mask": [1, 0]},
    ]
    batch = collate(tokenizer, examples, eos_padding=True, eps=0.999)  # t ~ 1: every response token masked
    assert batch["input_ids"].shape == (3, 6)
    assert batch["attention_mask"].tolist() == [[1] * 6] * 3
    assert unmasked(batch).tolist() == [eos_padded(example["input_ids"], 6) for example in examples]
    assert batch["prompt_mask"].tolist() == [[1, 1, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0]]
    response = batch["prompt_mask"] == 0
    assert bool((batch["input_ids"][response] == tokenizer.mask_token_id).all())  # EOS tail masked like the answer
    assert bool((batch["labels"][~response] == -100).all())
    assert batch["labels"][0, 5] == batch["labels"][2, 2] == tokenizer.eos_token_id


@pytest.mark.parametrize(
    "kwargs, width", [({"pad_to_multiple_of": 4}, 8), ({"padding": "max_length", "max_length": 7}, 7)]
)
def test_eos_padding_fills_to_max_length_or_a_multiple(tokenizer, kwargs, width):
    examples = [{"input_ids": [5, 6, 7, 8, 9]}, {"input_ids": [5]}]
    batch = collate(tokenizer, examples, eos_padding=True, **kwargs)
    assert unmasked(batch).tolist() == [eos_padded(example["input_ids"], width) for example in examples]
    assert batch["attention_mask"].tolist() == [[1] * width] * 2


def test_eos_padding_plain_text_ends_with_eos_but_a_cut_text_does_not(tokenizer):
    """A text that fits gets EOS like a response; one cut at max_length did not end there: pad tokens, unattended."""
    batch = collate(
        tokenizer, [{"text": "the cat sat"}, {"text": "the dog ran on a mat"}], eos_padding=True, max_length=5,
        pad_to_multiple_of=3,
    )  # fmt: skip
    the, cat, sat, dog, ran, on, a = tokenizer.convert_tokens_to_ids(["the", "cat", "sat", "dog", "ran", "on", "a"])
    assert unmasked(batch).tolist() == [[the, cat, sat, 3, 3, 3], [the, dog, ran, on, a, 0]]
    assert batch["attention_mask"].tolist() == [[1] * 6, [1] * 5 + [0]]
    assert "prompt_mask" not in batch


def test_eos_padding_off_leaves_padding_unscored(tokenizer):
    batch = collate(tokenizer, [{"input_ids": [5, 6, 7]}, {"input_ids": [5]}], eps=0.999)
    assert unmasked(batch).tolist() == [[5, 6, 7], [5, 0, 0]] and batch["attention_mask"][1].tolist() == [1, 0, 0]
    assert tokenizer.eos_token_id not in batch["labels"]


def test_eos_padding_with_a_bert_tokenizer_uses_sep_once_set_as_eos():
    """BERT-family tokenizers end a text with [SEP] and have no EOS: the error names the fix, which then works."""
    tokenizer = bert_tokenizer()
    with pytest.raises(
        ValueError, match=r"has none; this tokenizer ends texts with '\[SEP\]'.*eos_token = .*sep_token"
    ):
        DataCollatorForMaskedDiffusion(tokenizer, eos_padding=True)
    tokenizer.eos_token = tokenizer.sep_token
    batch = collate(tokenizer, [{"text": "the cat sat"}, {"text": "a dog"}], eos_padding=True)
    cls, sep, the, cat, sat, a, dog = tokenizer.convert_tokens_to_ids(
        ["[CLS]", "[SEP]", "the", "cat", "sat", "a", "dog"]
    )
    # [CLS] text [SEP]: the tokenizer's own end counts as the ending EOS, then [SEP] pads
    assert unmasked(batch).tolist() == [[cls, the, cat, sat, sep], [cls, a, dog, sep, sep]]
    assert batch["attention_mask"].tolist() == [[1] * 5] * 2


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.tuples(st.lists(st.integers(5, 16), max_size=6), st.integers(0, 6), st.booleans()), min_size=1, max_size=4
    ),
    padding_side=st.sampled_from(["right", "left"]),
    multiple=st.sampled_from([None, 2, 5]),
    seed=st.integers(0, 2**16),
)
def test_eos_padding_property(rows, padding_side, multiple, seed):
    """Any batch: every row is its ids, an ending EOS, then EOS to a common width (longest, rounded up to
    pad_to_multiple_of), all attended; the prompt is never masked; labels sit exactly on the masked tokens."""
    tokenizer = word_tokenizer()
    tokenizer.padding_side = padding_side
    examples = []
    for ids, prompt_length, ends_in_eos in rows:
        ids = ids + [3] * ends_in_eos
        examples.append({"input_ids": ids, "prompt_length": min(prompt_length, len(ids))})
    batch = collate(
        tokenizer,
        examples,
        eos_padding=True,
        pad_to_multiple_of=multiple,
        generator=torch.Generator().manual_seed(seed),
    )
    longest = max(len(eos_padded(example["input_ids"], 0)) for example in examples)
    width = longest if multiple is None else -(-longest // multiple) * multiple
    assert unmasked(batch).tolist() == [eos_padded(example["input_ids"], width) for example in examples]
    assert bool((batch["attention_mask"] == 1).all())
    masked = batch["input_ids"] == tokenizer.mask_token_id
    assert torch.equal(masked, batch["labels"] != -100)
    for row, example in enumerate(examples):
        assert not bool(masked[row, : example["prompt_length"]].any())
        assert batch["prompt_mask"][row].tolist() == [1] * example["prompt_length"] + [0] * (
            width - example["prompt_length"]
        )


# --- One validation layer: every argument checked at construction, every example at collation --------------------


def tokenizer_without_eos(with_sep: bool = False):
    tokenizer = word_tokenizer()
    tokenizer.eos_token = None
    if with_sep:
        tokenizer.add_special_tokens({"sep_token": "[SEP]"})
    return tokenizer


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"tokenizer": "path/to/tokenizer"}, TypeError, "tokenizer, got str.*AutoTokenizer.from_pretrained"),
        ({"tokenizer": None}, TypeError, "transformers tokenizer, got NoneType"),
        ({"schedule": 5}, TypeError, "schedule name or a NoiseSchedule, got int"),
        ({"schedule": None}, TypeError, "schedule name or a NoiseSchedule"),
        ({"eps": "0.1"}, TypeError, "eps must be a number in \\[0, 1\\), got str"),
        ({"eps": True}, TypeError, "eps must be a number"),
        ({"eps": float("nan")}, ValueError, "eps must lie in \\[0, 1\\), got nan"),
        ({"eps": float("inf")}, ValueError, "eps must lie in"),
        ({"eps": -0.1}, ValueError, "eps must lie in \\[0, 1\\), got -0.1"),
        ({"antithetic": "false"}, TypeError, "antithetic must be True or False.*the string 'false' is not a bool"),
        ({"antithetic": 1}, TypeError, "antithetic must be True or False, got int 1"),
        ({"antithetic": None}, TypeError, "antithetic must be True or False"),
        ({"eos_padding": "false"}, TypeError, "eos_padding must be True or False.*string 'false'"),
        ({"eos_padding": "True"}, TypeError, "eos_padding must be True or False.*string 'True'"),
        ({"eos_padding": 0}, TypeError, "eos_padding must be True or False, got int 0"),
        ({"eos_padding": None}, TypeError, "eos_padding must be True or False"),
        ({"eos_padding": np.bool_(True)}, TypeError, "eos_padding must be True or False, got bool"),
        ({"padding": "true"}, ValueError, "padding must be one of .*got 'true'"),
        ({"padding": "max"}, ValueError, "padding must be one of"),
        ({"padding": 1}, ValueError, "padding must be one of .*got 1"),
        ({"padding": None}, ValueError, "padding must be one of"),
        ({"max_length": 0}, ValueError, "max_length must be >= 1, got 0"),
        ({"max_length": -5}, ValueError, "max_length must be >= 1"),
        ({"max_length": 8.0}, TypeError, "max_length must be a whole number or None, got float"),
        ({"max_length": "128"}, TypeError, "max_length must be a whole number or None, got str"),
        ({"max_length": True}, TypeError, "max_length must be a whole number"),
        ({"pad_to_multiple_of": 0}, ValueError, "pad_to_multiple_of must be >= 1"),
        ({"pad_to_multiple_of": 2.5}, TypeError, "pad_to_multiple_of must be a whole number"),
        ({"seed": "0"}, TypeError, "seed must be a whole number, got str"),
        ({"seed": 1.5}, TypeError, "seed must be a whole number, got float"),
        ({"generator": 42}, TypeError, "generator must be a torch.Generator or None, got int.*seed=n"),
        ({"generator": np.random.default_rng(0)}, TypeError, "generator must be a torch.Generator"),
        ({"generator": torch.Generator(), "seed": 3}, ValueError, "Both generator and seed=3.*Pass one"),
        ({"padding": "max_length"}, ValueError, "padding='max_length' needs max_length"),
        ({"padding": False, "pad_to_multiple_of": 8}, ValueError, "pad_to_multiple_of=8 has no effect"),
        ({"padding": False, "eos_padding": True}, ValueError, "eos_padding=True pads.*padding=False asks not to pad"),
        ({"padding": "do_not_pad", "eos_padding": True}, ValueError, "asks not to pad"),
        ({"return_tensors": "np"}, ValueError, "Only return_tensors='pt'"),
        ({"tokenizer": tokenizer_without_eos(), "eos_padding": True}, ValueError, "has none; add one.*eos_token"),
        ({"tokenizer": tokenizer_without_eos(with_sep=True), "eos_padding": True}, ValueError, "eos_token = .*sep"),
    ],
    ids=[
        "tokenizer_path_string", "tokenizer_none", "schedule_int", "schedule_none", "eps_string", "eps_bool",
        "eps_nan", "eps_inf", "eps_negative", "antithetic_string_false", "antithetic_int", "antithetic_none",
        "eos_padding_string_false", "eos_padding_string_true", "eos_padding_int", "eos_padding_none",
        "eos_padding_numpy_bool", "padding_string_true", "padding_unknown", "padding_int", "padding_none",
        "max_length_zero", "max_length_negative", "max_length_float", "max_length_string", "max_length_bool",
        "pad_to_multiple_of_zero", "pad_to_multiple_of_float", "seed_string", "seed_float", "generator_int",
        "generator_numpy", "generator_and_seed", "max_length_padding_without_max_length",
        "no_padding_with_pad_to_multiple_of", "no_padding_with_eos_padding", "do_not_pad_with_eos_padding",
        "return_tensors_np", "eos_padding_without_eos", "eos_padding_bert_without_eos",
    ],
)  # fmt: skip
def test_bad_collator_arguments_name_the_fix(tokenizer, kwargs, error, message):
    kwargs = {"tokenizer": tokenizer, **kwargs}
    with pytest.raises(error, match=message):
        DataCollatorForMaskedDiffusion(**kwargs)


@pytest.mark.bad_input
def test_eos_padding_refuses_an_eos_that_is_the_mask_token():
    tokenizer = word_tokenizer()
    tokenizer.eos_token = tokenizer.mask_token
    with pytest.raises(ValueError, match="EOS id 4 is its \\[MASK\\] id"):
        DataCollatorForMaskedDiffusion(tokenizer, eos_padding=True)


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "examples, kwargs, error, message",
    [
        ({"input_ids": [[5, 6]]}, {}, ValueError, "non-empty list of examples.*got a dict"),
        ([[5, 6, 7]], {}, TypeError, "Each example must be a dict.*got list.*'input_ids'"),
        (["the cat"], {}, TypeError, "Each example must be a dict.*got str"),
        ([{"input_ids": [5, 6], "prompt_length": 1, "prompt_mask": [1, 0]}], {}, ValueError, "both prompt_length and"),
        ([{"input_ids": [5, 6, 7, 8]}], {"max_length": 3}, ValueError, "4 tokens, more than max_length=3.*to 3"),
        ([{"input_ids": [5, 6, 7]}], {"max_length": 3, "eos_padding": True}, ValueError, "4 tokens with its EOS.*2"),
        ([{"input_ids": [5, 6, 0], "attention_mask": [1, 1, 0]}], {"eos_padding": True}, ValueError, "padded already"),
    ],
    ids=[
        "batch_dict_instead_of_list", "example_list_of_ids", "example_string", "prompt_length_and_prompt_mask",
        "input_ids_longer_than_max_length", "input_ids_and_eos_longer_than_max_length", "eos_padding_prepadded",
    ],
)  # fmt: skip
def test_bad_batches_name_the_fix(tokenizer, examples, kwargs, error, message):
    with pytest.raises(error, match=message):
        DataCollatorForMaskedDiffusion(tokenizer, **kwargs)(examples)


@pytest.mark.bad_input
@settings(max_examples=40, deadline=None)
@given(
    name=st.sampled_from(["antithetic", "eos_padding"]),
    value=st.one_of(st.text(max_size=5), st.integers(), st.floats(allow_nan=False), st.none(), st.just(np.bool_(0))),
)
def test_flags_refuse_anything_but_a_bool(name, value):
    with pytest.raises(TypeError, match=f"{name} must be True or False"):
        DataCollatorForMaskedDiffusion(word_tokenizer(), **{name: value})


@pytest.mark.bad_input
@settings(max_examples=40, deadline=None)
@given(eps=st.one_of(st.floats(max_value=-1e-12), st.floats(min_value=1.0), st.just(float("nan"))))
def test_eps_outside_the_unit_interval_is_refused(eps):
    with pytest.raises(ValueError, match="eps must lie in \\[0, 1\\)"):
        DataCollatorForMaskedDiffusion(word_tokenizer(), eps=eps)
