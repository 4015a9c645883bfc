"""generate() answers every bad input with an error that names the fix, before any forward where it can; NaN and
infinite probabilities (checked without a sync per step) are refused at the end instead of returning garbage."""

import functools
import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import LogitsProcessor, LogitsProcessorList

from hf_mdm import MDMForMaskedGeneration
from hf_mdm.generation import DecodingCallback
from hf_mdm.generation.configuration import (
    BOOLEAN_FIELDS,
    KEYWORD_FIELDS,
    POSITIVE_INTEGER_FIELDS,
    REAL_FIELDS,
    TOKEN_ID_FIELDS,
)

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


def case(name, arguments, message, error=ValueError):
    return pytest.param(arguments, error, message, id=name)


# Every argument of generate(): wrong type, wrong range, a field diffusion decoding does not apply, another project's
# name, and pairs that conflict (one would silently win). Each case runs on PROMPTS with max_new_tokens=4, steps=4
# unless it overrides them (None removes the default: the call then leaves it unset).
ARGUMENT_BATTERY = [
    # booleans: a string is always true in Python, so it is never read as one
    case("do_sample_string_false", dict(do_sample="false"), "`do_sample` must be True or False \\(a string is not"),
    case("do_sample_int", dict(do_sample=1), "`do_sample` must be True or False"),
    case("return_dict_string", dict(return_dict_in_generate="yes"), "`return_dict_in_generate` must be True or False"),
    case("output_history_string", dict(output_history="true"), "`output_history` must be True or False"),
    case("use_cache_string", dict(use_cache="false"), "`use_cache` must be True or False"),
    case("renormalize_logits_int", dict(renormalize_logits=1), "`renormalize_logits` must be True or False"),
    # counts
    case("steps_zero", dict(steps=0), "`steps` must be a positive integer"),
    case("steps_negative", dict(steps=-3), "`steps` must be a positive integer"),
    case("steps_float", dict(steps=2.5), "`steps` must be a positive integer"),
    case("steps_string", dict(steps="8"), "`steps` must be a positive integer"),
    case("steps_bool", dict(steps=True), "`steps` must be a positive integer"),
    case("steps_beyond_float64_grid", dict(steps=2**53 + 1, strategy="random"), "2\\*\\*53"),
    case("block_length_zero", dict(block_length=0), "`block_length` must be a positive integer"),
    case("block_length_float", dict(block_length=2.0), "`block_length` must be a positive integer"),
    case("block_length_not_dividing", dict(max_new_tokens=8, block_length=3), "does not divide.*gen_length"),
    case("fewer_steps_than_blocks", dict(max_new_tokens=8, block_length=2, steps=3), "at least one step"),
    case("max_new_tokens_negative", dict(max_new_tokens=-1), "`max_new_tokens` must be a non-negative integer"),
    case("max_new_tokens_float", dict(max_new_tokens=1.5), "`max_new_tokens` must be a non-negative integer"),
    case("max_new_tokens_string", dict(max_new_tokens="4"), "`max_new_tokens` must be a non-negative integer"),
    case("max_new_tokens_bool", dict(max_new_tokens=True), "`max_new_tokens` must be a non-negative integer"),
    case("max_length_zero", dict(max_new_tokens=None, max_length=0), "`max_length` must be a positive integer"),
    case("max_length_float", dict(max_new_tokens=None, max_length=9.0), "`max_length` must be a positive integer"),
    case("max_length_within_the_prompt", dict(max_new_tokens=None, max_length=5), "leaves no room"),
    case("num_return_sequences_zero", dict(num_return_sequences=0), "`num_return_sequences` must be a positive"),
    case("num_return_sequences_greedy", dict(num_return_sequences=2), "num_return_sequences"),
    # sizes, checked before the canvas is allocated
    case("max_new_tokens_beyond_the_positions", dict(max_new_tokens=10**12), "max_position_embeddings"),
    case("rows_times_positions_too_many", dict(num_return_sequences=10**9, do_sample=True), "token positions"),
    case("ranked_steps_beyond_the_cap", dict(steps=65), "Pass steps <= 64"),
    case("remdm_steps_beyond_the_cap", dict(steps=10**6, strategy="remdm"), "Pass steps <= 64"),
    # real numbers
    case("temperature_string", dict(do_sample=True, temperature="hot"), "`temperature` must be a finite number"),
    case("temperature_nan", dict(do_sample=True, temperature=float("nan")), "`temperature` must be a finite number"),
    case("temperature_negative", dict(do_sample=True, temperature=-1.0), "`temperature` must be > 0"),
    case("temperature_zero_when_sampling", dict(do_sample=True, temperature=0.0), "do_sample=False"),
    case("top_k_negative", dict(do_sample=True, top_k=-2), "`top_k` must be a non-negative integer"),
    case("top_k_float", dict(do_sample=True, top_k=2.5), "`top_k` must be a non-negative integer"),
    case("top_p_zero", dict(do_sample=True, top_p=0.0), "`top_p` must be in \\(0, 1\\]"),
    case("top_p_above_one", dict(do_sample=True, top_p=1.5), "`top_p` must be in \\(0, 1\\]"),
    case("top_p_infinite", dict(do_sample=True, top_p=float("inf")), "`top_p` must be a finite number"),
    case("threshold_zero", dict(strategy="threshold", threshold=0.0), "`threshold` must be in \\(0, 1\\]"),
    case("threshold_above_one", dict(strategy="threshold", threshold=1.5), "`threshold` must be in \\(0, 1\\]"),
    case("threshold_string", dict(strategy="threshold", threshold="high"), "`threshold` must be a finite number"),
    case("threshold_bool", dict(strategy="threshold", threshold=True), "`threshold` must be a finite number"),
    case("strategy_temperature_negative", dict(strategy_temperature=-1.0), "`strategy_temperature` must be >= 0"),
    case("strategy_temperature_nan", dict(strategy_temperature=float("nan")), "must be a finite number"),
    # registered names and their keyword arguments
    case("strategy_unknown", dict(strategy="nope"), "Unknown strategy 'nope'"),
    case("strategy_not_a_string", dict(strategy=3), "`strategy` must be a registered name"),
    case("reveal_counts_unknown", dict(reveal_counts="nope"), "Unknown reveal_counts rule"),
    case("cache_unknown", dict(cache="kv"), "Unknown cache 'kv'"),
    case("schedule_unknown", dict(schedule="nope"), "Unknown noise schedule"),
    case("schedule_kwargs_for_the_models_schedule", dict(schedule_kwargs={"eps": 0.1}), "Bad schedule_kwargs.*linear"),
    case("schedule_kwargs_not_a_dict", dict(schedule="log-linear", schedule_kwargs="eps"), "must be a dict"),
    case("strategy_kwargs_not_a_dict", dict(strategy="remdm", strategy_kwargs=[1]), "must be a dict"),
    case("strategy_kwargs_out_of_range", dict(strategy="remdm", strategy_kwargs={"eta": 2.0}), "eta in \\[0, 1\\]"),
    case("reveal_counts_kwargs_out_of_range", dict(reveal_counts="dream", reveal_counts_kwargs={"eps": 1.5}), "eps"),
    case(
        "threshold_editing_editing_threshold_above_1",
        dict(strategy="threshold_editing", strategy_kwargs={"editing_threshold": 1.5}),
        "editing_threshold in \\[0, 1\\]",
    ),  # fmt: skip
    case(
        "threshold_editing_editing_threshold_string",
        dict(strategy="threshold_editing", strategy_kwargs={"editing_threshold": "0.9"}),
        "editing_threshold in \\[0, 1\\]",
    ),  # fmt: skip
    case(
        "threshold_editing_max_post_steps_negative",
        dict(strategy="threshold_editing", strategy_kwargs={"max_post_steps": -1}),
        "max_post_steps must be an integer >= 0",
    ),  # fmt: skip
    case(
        "threshold_editing_max_post_steps_float",
        dict(strategy="threshold_editing", strategy_kwargs={"max_post_steps": 2.0}),
        "max_post_steps must be an integer >= 0",
    ),  # fmt: skip
    case(
        "threshold_editing_num_to_transfer_zero",
        dict(strategy="threshold_editing", strategy_kwargs={"num_to_transfer": 0}),
        "num_to_transfer must be an integer >= 1",
    ),  # fmt: skip
    case(
        "threshold_editing_threshold_in_kwargs",
        dict(strategy="threshold_editing", strategy_kwargs={"threshold": 0.0}),
        "threshold_editing needs threshold in \\(0, 1\\]",
    ),  # fmt: skip
    # token ids: negative, outside the vocabulary, or the [MASK] id where it cannot work
    case("mask_token_id_negative", dict(mask_token_id=-1), "`mask_token_id` must be a non-negative token id"),
    case("mask_token_id_string", dict(mask_token_id="[MASK]"), "`mask_token_id` must be a non-negative token id"),
    case("mask_token_id_outside", dict(mask_token_id=400), "outside the model's vocabulary"),
    case("pad_token_id_negative", dict(pad_token_id=-1), "`pad_token_id` must be a non-negative token id"),
    case("pad_token_id_float", dict(pad_token_id=2.0), "`pad_token_id` must be a non-negative token id"),
    case("eos_token_id_negative", dict(eos_token_id=-1), "`eos_token_id` must be a token id"),
    case("eos_token_id_empty_list", dict(eos_token_id=[]), "non-empty list"),
    case("eos_token_id_outside", dict(eos_token_id=VOCAB), "eos_token_id=\\[40\\] is outside"),
    case("eos_token_id_list_outside", dict(eos_token_id=[1, VOCAB + 5]), "eos_token_id=\\[45\\] is outside"),
    case("eos_token_id_is_the_mask", dict(eos_token_id=MASK), "includes the \\[MASK\\] id"),
    case("suppress_tokens_outside", dict(suppress_tokens=[VOCAB]), "suppress_tokens=\\[40\\] is outside"),
    case("suppress_tokens_negative", dict(suppress_tokens=[-1]), "list of token ids"),
    case("suppress_tokens_not_a_list", dict(suppress_tokens=5), "list of token ids"),
    case("sep_token_id_outside", dict(sep_token_id=VOCAB + 1), "sep_token_id=41 is outside"),
    case("sep_token_id_negative", dict(sep_token_id=-2), "`sep_token_id` must be a non-negative token id"),
    case("sep_token_id_is_the_mask", dict(sep_token_id=MASK), "sep_token_id=39 is the \\[MASK\\] id"),
    case("pad_token_id_outside_without_eos", dict(pad_token_id=VOCAB), "pad_token_id=40 is outside"),
    # GenerationConfig fields that diffusion decoding does not apply
    case("output_scores", dict(output_scores=True), "does not apply \\['output_scores'\\].*output_history"),
    case("output_logits", dict(output_logits=True), "does not apply \\['output_logits'\\]"),
    case("output_attentions", dict(output_attentions=True), "does not apply \\['output_attentions'\\]"),
    case("output_hidden_states", dict(output_hidden_states=True), "does not apply \\['output_hidden_states'\\]"),
    case("num_beams", dict(num_beams=2), "no beam search"),
    case("length_penalty", dict(length_penalty=0.5), "does not apply \\['length_penalty'\\]"),
    case("min_new_tokens", dict(min_new_tokens=3), "there is no minimum"),
    case("stop_strings", dict(stop_strings=["cat"]), "DecodingCallback"),
    case("max_time", dict(max_time=1.0), "autoregressive decoding"),
    case("remove_invalid_values", dict(remove_invalid_values=True), "refused with an error instead"),
    case("guidance_scale", dict(guidance_scale=2.0), "classifier-free guidance"),
    case("typical_p", dict(do_sample=True, typical_p=0.5), "logits_processor"),
    # conflicting arguments: one of them would silently win
    case("max_new_tokens_and_max_length", dict(max_new_tokens=4, max_length=12), "both given"),
    case("temperature_when_greedy", dict(temperature=0.7), "only apply when sampling.*do_sample=True"),
    case("top_k_when_greedy", dict(top_k=5), "only apply when sampling"),
    case("top_p_when_greedy", dict(top_p=0.9), "only apply when sampling"),
    case("threshold_for_confidence", dict(strategy="confidence", threshold=0.5), "does not read \\{'threshold'"),
    case("strategy_temperature_for_random", dict(strategy="random", strategy_temperature=1.0), "does not read"),
    case("strategy_temperature_for_threshold", dict(strategy="threshold", strategy_temperature=0.5), "does not read"),
    case("reveal_counts_for_random", dict(strategy="random", reveal_counts="even"), "does not read"),
    case("reveal_counts_for_threshold", dict(strategy="threshold", reveal_counts="dream"), "does not read"),
    case("eos_suppressed", dict(eos_token_id=3, suppress_tokens=[3, 5]), "is in suppress_tokens"),
    case("history_without_dict", dict(output_history=True), "needs `return_dict_in_generate=True`"),
    # other projects' names, and names that are no field
    case("dream_alg", dict(alg="entropy"), "Dream's `alg` is `strategy`"),
    case("dream_alg_temp", dict(alg_temp=0.5), "strategy_temperature"),
    case("dream_eps", dict(eps=1e-3), "reveal_counts='dream'"),
    case("llada_gen_length", dict(gen_length=16), "LLaDA's `gen_length` is `max_new_tokens`"),
    case("llada_remasking", dict(remasking="low_confidence"), "'low_confidence' -> 'confidence'"),
    case("llada_mask_id", dict(mask_id=MASK), "`mask_token_id`"),
    case("llada_cfg_scale", dict(cfg_scale=1.0), "classifier-free guidance"),
    case("llada21_editing_threshold", dict(editing_threshold=0.5), "strategy='threshold_editing', strategy_kwargs"),
    case("llada21_max_post_steps", dict(max_post_steps=4), "strategy_kwargs=\\{'max_post_steps': ...\\}"),
    case("llada21_num_to_transfer", dict(num_to_transfer=2), "strategy_kwargs=\\{'num_to_transfer': ...\\}"),
    case("llada2_minimal_topk", dict(minimal_topk=2), "decode_like_authors\\(model, 'llada2_threshold'"),
    case("diffusion_gemma_max_denoising_steps", dict(max_denoising_steps=8), "DiffusionGemma's cap"),
    case("dream_coder_eos_penalty", dict(eos_penalty=3.0), "Dream-Coder's step-dependent"),
    case("dreamon_number_transfer_tokens", dict(number_transfer_tokens=1), "DreamOn's expand/delete infilling"),
    case("stopping_criteria", dict(stopping_criteria=[]), "eos_token_id"),
    case("misspelled", dict(stepz=3), "unexpected arguments \\['stepz'\\].*spelling"),
    case("a_method_name", dict(validate=1), "unexpected arguments \\['validate'\\]"),
    # tensors, configs and hooks
    case("generation_config_dict", dict(generation_config={"steps": 4}), "must be a GenerationConfig", TypeError),
    case("input_ids_list", dict(input_ids=[[1, 2, 3]]), "2-D integer tensor"),
    case("input_ids_three_dimensional", dict(input_ids=PROMPTS[None]), "2-D integer tensor"),
    case("attention_mask_list", dict(attention_mask=[[1] * 5] * 2), "attention_mask has shape list"),
    case("attention_mask_other_shape", dict(attention_mask=torch.ones(2, 3).long()), "has shape \\(2, 3\\)"),
    case("attention_mask_not_binary", dict(attention_mask=torch.full(PROMPTS.shape, 2)), "only 0 \\(padding\\) and 1"),
    case("token_type_ids_pair", dict(token_type_ids=torch.ones_like(PROMPTS)), "single segment"),
    case("token_type_ids_other_shape", dict(token_type_ids=torch.zeros(1, 5, dtype=torch.long)), "token_type_ids has"),
    case("generator_list_of_seeds", dict(generator=[1, 2]), "torch.Generator", TypeError),
    case("generator_string", dict(generator="seed"), "torch.Generator", TypeError),
    case("generators_for_other_rows", dict(generator=[torch.Generator()] * 3), "one generator per row"),
    case("logits_processor_not_a_list", dict(logits_processor=WrongShape()), "LogitsProcessorList", TypeError),
    case("logits_processor_not_callable", dict(logits_processor=[1]), "list of logits processors", TypeError),
    case("streamer_without_put", dict(streamer=object()), "must have put\\(\\) and end\\(\\)", TypeError),
    case("callbacks_not_a_list", dict(callbacks=DecodingCallback()), "list of hf_mdm.generation", TypeError),
    case("callbacks_not_callbacks", dict(callbacks=[print]), "DecodingCallback instances", TypeError),
]


@pytest.mark.bad_input
@pytest.mark.parametrize("arguments, error, message", ARGUMENT_BATTERY)
def test_every_argument_of_generate_is_checked_before_any_forward(arguments, error, message):
    model = tiny_mdm()
    calls = forwards(model)
    arguments = {"input_ids": PROMPTS, "max_new_tokens": 4, "steps": 4, **arguments}
    with pytest.raises(error, match=message):
        model.generate(**{name: value for name, value in arguments.items() if value is not None})
    assert calls == []


TYPED_FIELDS = {
    **dict.fromkeys(BOOLEAN_FIELDS, st.one_of(st.integers(), st.text(max_size=5), st.floats())),
    **dict.fromkeys(POSITIVE_INTEGER_FIELDS, st.one_of(st.integers(max_value=0), st.floats(), st.text(max_size=3))),
    **dict.fromkeys(TOKEN_ID_FIELDS, st.one_of(st.integers(max_value=-1), st.floats(), st.text(max_size=3))),
    **dict.fromkeys(KEYWORD_FIELDS, st.one_of(st.integers(), st.text(max_size=3), st.lists(st.integers()))),
    "max_new_tokens": st.one_of(st.integers(max_value=-1), st.floats(), st.booleans()),
    "top_k": st.one_of(st.integers(max_value=-1), st.floats(), st.booleans()),
    **dict.fromkeys(REAL_FIELDS, st.one_of(st.text(max_size=3), st.booleans(), st.sampled_from([float("nan")]))),
}  # fmt: skip


@functools.cache
def model_and_forwards():
    """One model for every example, with its forward counter."""
    model = tiny_mdm()
    return model, forwards(model)


@pytest.mark.bad_input
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_any_value_of_the_wrong_type_or_sign_is_refused_before_any_forward(data):
    name = data.draw(st.sampled_from(sorted(TYPED_FIELDS)))
    value = data.draw(TYPED_FIELDS[name])
    model, calls = model_and_forwards()
    with pytest.raises(ValueError, match=f"`{name}` must be"):
        model.generate(PROMPTS, **{"max_new_tokens": 4, "steps": 4, name: value})
    assert calls == []
