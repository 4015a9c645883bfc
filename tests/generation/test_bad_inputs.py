"""generate() answers every bad input with an error that names the fix, before any forward where it can; NaN and
infinite probabilities (checked without a sync per step) are refused at the end instead of returning garbage."""

import json

import pytest
import torch
from transformers import LogitsProcessor, LogitsProcessorList

from hf_mdm import MDMForMaskedGeneration

from .test_generate import MASK, PAD, PROMPTS, VOCAB, tiny_mdm


class Replace(LogitsProcessor):
    """Replace the scores with a constant (NaN, inf, -inf) at every position."""

    def __init__(self, value):
        self.value = value

    def __call__(self, input_ids, scores):
        return torch.full_like(scores, self.value)


class WrongShape(LogitsProcessor):
    def __call__(self, input_ids, scores):
        return scores[:, :-1]


def forwards(model):
    calls = []
    model.register_forward_hook(lambda *args: calls.append(1))
    return calls


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "value", [float("nan"), float("inf"), float("-inf")], ids=["nan", "plus_inf", "all_minus_inf"]
)
@pytest.mark.parametrize(
    "settings",
    [dict(), dict(do_sample=True), dict(strategy="threshold"), dict(strategy="random", do_sample=True)],
    ids=["greedy", "sampled", "threshold", "random"],
)
def test_non_finite_logits_from_a_processor_are_refused(value, settings):
    with pytest.raises(ValueError, match="NaN or infinite logits, or removed every token, for rows \\[0, 1\\]"):
        tiny_mdm().generate(
            PROMPTS, max_new_tokens=4, steps=4, logits_processor=LogitsProcessorList([Replace(value)]), **settings
        )


@pytest.mark.bad_input
def test_a_logits_processor_returning_the_wrong_shape_is_named():
    with pytest.raises(ValueError, match="A logits processor returned shape"):
        tiny_mdm().generate(PROMPTS, max_new_tokens=4, steps=4, logits_processor=LogitsProcessorList([WrongShape()]))


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "arguments, error, message",
    [
        (dict(input_ids=PROMPTS.bool()), ValueError, "2-D integer tensor"),
        (dict(input_ids=PROMPTS.float()), ValueError, "2-D integer tensor"),
        (dict(input_ids=PROMPTS[0]), ValueError, "input_ids\\[None\\]"),
        (dict(input_ids=PROMPTS + VOCAB), ValueError, "outside the model's vocabulary"),
        (dict(input_ids=PROMPTS - 10), ValueError, "outside the model's vocabulary"),
        (dict(attention_mask=torch.full(PROMPTS.shape, 0.5)), ValueError, "only 0 \\(padding\\) and 1"),
        (dict(generator=7), TypeError, "torch.Generator\\(\\).manual_seed\\(7\\)"),
        (dict(mask_token_id=MASK - 1), ValueError, "differs from the model config's mask_token_id"),
        (dict(eos_token_id=1, pad_token_id=VOCAB + 3), ValueError, "pad_token_id=43 is outside"),
        (dict(eos_token_id=1, pad_token_id=MASK), ValueError, "pad_token_id=39 is the \\[MASK\\] id"),
    ],
    ids=[
        "bool_input_ids",
        "float_input_ids",
        "one_dimensional_input_ids",
        "input_ids_above_the_vocabulary",
        "negative_input_ids",
        "float_attention_mask",
        "int_generator",
        "mask_token_id_differs_from_the_config",
        "pad_token_id_outside_the_vocabulary",
        "pad_token_id_equal_to_the_mask",
    ],
)
def test_bad_inputs_fail_before_any_forward(arguments, error, message):
    model = tiny_mdm()
    calls = forwards(model)
    arguments = {"input_ids": PROMPTS, **arguments}
    with pytest.raises(error, match=message):
        model.generate(max_new_tokens=4, steps=4, **arguments)
    assert calls == []


def test_uint8_input_ids_decode_like_long_ids():
    model = tiny_mdm()
    assert torch.equal(
        model.generate(PROMPTS.to(torch.uint8), max_new_tokens=4, steps=4),
        model.generate(PROMPTS, max_new_tokens=4, steps=4),
    )


def test_explicit_mask_token_id_equal_to_the_config_is_accepted():
    out = tiny_mdm().generate(PROMPTS, max_new_tokens=4, steps=4, mask_token_id=MASK, pad_token_id=PAD)
    assert not (out == MASK).any()


@pytest.mark.bad_input
def test_a_corrupted_generation_config_json_is_an_error_not_defaults(tmp_path):
    tiny_mdm().save_pretrained(tmp_path)
    (tmp_path / "generation_config.json").write_text('{"steps": 8, "strategy": ')  # truncated mid-write
    with pytest.raises(OSError, match="generation_config.json exists but cannot be read"):
        MDMForMaskedGeneration.from_pretrained(tmp_path)


@pytest.mark.bad_input
def test_a_generation_config_json_with_another_mask_token_id_is_refused(tmp_path):
    tiny_mdm().save_pretrained(tmp_path)
    path = tmp_path / "generation_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "mask_token_id": MASK - 1}))
    with pytest.raises(ValueError, match="generation_config.json says mask_token_id=38 but the model config says 39"):
        MDMForMaskedGeneration.from_pretrained(tmp_path)
