"""The metric modules check every input before it is written: ids that are not integers, impossible constants, empty
or mixed batches, unknown objects are refused with a message naming the fix, and a refused batch leaves the module
usable (evaluate would otherwise keep the wrong input format for the next, correct call)."""

import math

import evaluate
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import hf_mdm.metrics
from hf_mdm.languages import EntropyRate, NGramLanguage

from .test_metrics import causal_lm  # noqa: F401  (a fixture)


@pytest.fixture(scope="module")
def modules():
    """The three evaluate modules, in memory, by short name."""
    names = {"ser": "sequence_error_rate", "ter": "token_error_rate", "gp": "generative_perplexity"}
    return {short: evaluate.load(hf_mdm.metrics.path(name), keep_in_memory=True) for short, name in names.items()}


LANGUAGE = NGramLanguage(3, n=2, support=2, seed=0)  # 3 symbols: entropy rates above log 3 are impossible


NOT_IDS = "not token ids"
# (keyword arguments, message): inputs both SER and TER must refuse.
SHARED_BAD_INPUTS = [
    pytest.param({"predictions": [[1.5, 2]], "references": [[1, 2]]}, NOT_IDS, id="float_id"),
    pytest.param({"predictions": [[1, 2]], "references": [[1.0, 2]]}, NOT_IDS, id="float_id_in_reference"),
    pytest.param({"predictions": [[True, False]], "references": [[1, 0]]}, NOT_IDS, id="bool_ids"),
    pytest.param({"predictions": [["1", "2"]], "references": [[1, 2]]}, NOT_IDS, id="string_ids"),
    pytest.param({"predictions": [[1, None]], "references": [[1, 2]]}, NOT_IDS, id="none_id"),
    pytest.param({"predictions": [np.array([0.5, 1.0])], "references": [[0, 1]]}, NOT_IDS, id="float_array"),
    pytest.param({"predictions": torch.rand(2, 3), "references": [[0, 1, 2]] * 2}, NOT_IDS, id="float_tensor"),
    pytest.param({"predictions": [[1.5, 2]], "language": LANGUAGE}, NOT_IDS, id="float_id_with_language"),
    pytest.param({"predictions": ["a", [1, 2]], "references": ["a", "b"]}, "mix texts and token-id", id="mixed"),
    pytest.param({"predictions": ["1 2"], "references": [[1, 2]]}, "are text but the references ids", id="kinds"),
    pytest.param({"predictions": ["a", "b"], "references": ["a", None]}, r"references \[1\] are None", id="none_ref"),
    pytest.param({"predictions": "abc", "references": "abc"}, "must be a list, got the string", id="bare_string"),
    pytest.param({"predictions": [3, 4], "references": [3, 4]}, "is a int; pass texts", id="flat_ids"),
    pytest.param({"predictions": [{"text": "a"}], "references": ["a"]}, "is a dict; pass texts", id="dict_prediction"),
    pytest.param({"predictions": ["a"], "references": "a"}, "references must be a list", id="bare_reference"),
    pytest.param({"predictions": [[0, 1]], "language": "ngram"}, "must be a FormalLanguage", id="language_name"),
    pytest.param({"predictions": ["0 1"], "language": LANGUAGE}, "encode text with language.tokenizer", id="text"),
]


@pytest.mark.bad_input
@pytest.mark.parametrize("kwargs, message", SHARED_BAD_INPUTS)
@pytest.mark.parametrize("name", ["ser", "ter"])
def test_ser_and_ter_refuse_inputs_that_are_not_ids_or_texts(modules, name, kwargs, message):
    module = modules[name]
    with pytest.raises(ValueError, match=message):
        module.compute(**kwargs)
    # the refused call left no state behind: the next correct call computes over its own 2 rows only
    result = module.compute(predictions=[[0, 1], [1, 1]], references=[[0, 1], [1, 0]])
    expected = {"ser": {"sequence_error_rate": 0.5, "num_sequences": 2},
                "ter": {"token_error_rate": 0.25, "num_tokens": 4}}[name]  # fmt: skip
    assert {key: result[key] for key in expected} == expected


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "kwargs, message",
    [
        pytest.param({"normalizer": "strip"}, "normalizer= must be a function", id="normalizer_name"),
        pytest.param({"normalizer": 3}, "normalizer= must be a function", id="normalizer_number"),
    ],
)
def test_sequence_error_rate_refuses_a_normalizer_that_is_not_a_function(modules, kwargs, message):
    with pytest.raises(ValueError, match=message):
        modules["ser"].compute(predictions=["a"], references=["a"], **kwargs)


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "entropy_rate",
    [-0.1, math.nan, math.inf, "0.5", True, 5.0, math.log(3) * 1.01, EntropyRate(0.3, -0.01), (0.3, math.nan),
     (math.nan, 0.0)],
    ids=["negative", "nan", "inf", "string", "bool", "above_log_v", "just_above_log_v", "negative_se", "nan_se",
         "nan_value"],
)  # fmt: skip
def test_token_error_rate_refuses_an_impossible_entropy_rate(modules, entropy_rate):
    with pytest.raises(ValueError, match="entropy"):
        modules["ter"].compute(predictions=[[0, 1], [1, 2]], language=LANGUAGE, entropy_rate=entropy_rate)


@pytest.mark.bad_input
@pytest.mark.parametrize("floor", ["-1", False, True, math.inf, -math.inf, 0.5], ids=str)
def test_token_error_rate_refuses_a_floor_that_is_not_a_log_probability(modules, floor):
    with pytest.raises(ValueError, match="finite log-probability <= 0"):
        modules["ter"].compute(predictions=[[0, 1]], language=LANGUAGE, invalid_token_log_prob=floor)


def test_token_error_rate_takes_the_largest_possible_entropy_rate(modules):
    result = modules["ter"].compute(predictions=[[0, 1], [1, 2]], language=LANGUAGE, entropy_rate=math.log(3))
    assert result["entropy_rate"] == pytest.approx(math.log(3))


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "kwargs, message",
    [
        pytest.param({"predictions": []}, "got no predictions", id="empty"),
        pytest.param({"predictions": [[0, 1]]}, "takes predictions as text", id="ids"),
        pytest.param({"predictions": ["0 1"], "batch_size": 0}, "batch_size must be a positive integer", id="batch_0"),
        pytest.param({"predictions": ["0 1"], "batch_size": 2.5}, "batch_size must be a positive", id="batch_float"),
        pytest.param({"predictions": ["0 1"], "batch_size": True}, "batch_size must be a positive", id="batch_bool"),
        pytest.param({"predictions": ["0 1"], "stride": 1.5}, "stride must be a positive integer", id="stride_float"),
        pytest.param({"predictions": ["0 1"], "max_length": "16"}, "max_length must be a positive", id="length_str"),
        pytest.param({"predictions": ["0 1"], "add_start_token": "False"}, "True or False", id="start_token_str"),
    ],
)
def test_generative_perplexity_refuses_bad_arguments(modules, causal_lm, kwargs, message):  # noqa: F811
    model, tokenizer, _ = causal_lm
    gp = modules["gp"]
    with pytest.raises(ValueError, match=message):
        gp.compute(model=model, tokenizer=tokenizer, **kwargs)
    assert gp.compute(predictions=["0 1"], model=model, tokenizer=tokenizer)["num_tokens"] == 2  # still usable


@pytest.mark.bad_input
def test_generative_perplexity_refuses_a_tokenizer_of_another_vocabulary(modules, causal_lm):  # noqa: F811
    model, _, _ = causal_lm
    gp = modules["gp"]
    bigger = NGramLanguage(50).tokenizer()  # ids up to 53: the model has 10
    with pytest.raises(ValueError, match=rf"outside the model's vocabulary \(vocab_size={model.config.vocab_size}\)"):
        gp.compute(predictions=["40 41"], model=model, tokenizer=bigger)


def test_ids_as_tensors_and_arrays_are_read_as_lists(modules):
    ser, ter = modules["ser"], modules["ter"]
    as_lists = ter.compute(predictions=[[0, 1, 1], [2, 0, 1]], references=[[0, 1, 0], [2, 0, 1]])
    references = np.array([[0, 1, 0], [2, 0, 1]])
    as_tensor = ter.compute(predictions=torch.tensor([[0, 1, 1], [2, 0, 1]]), references=references)
    assert as_tensor == as_lists
    assert ser.compute(predictions=[[np.int64(3)]], references=[(3,)])["sequence_error_rate"] == 0.0


@settings(max_examples=40, deadline=None)
@given(
    ids=st.lists(st.lists(st.integers(0, 2), min_size=2, max_size=6), min_size=1, max_size=5),
    position=st.integers(0, 1000),
    value=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.text(max_size=2)),
)
def test_any_non_integer_id_anywhere_is_refused_and_integers_score_alike_as_tensors(modules, ids, position, value):
    """Property: replacing any one id by a float, a bool or a string is refused by both metrics; the integer batch
    scores the same as lists, tuples and numpy arrays."""
    ser, ter = modules["ser"], modules["ter"]
    flat = [(row, column) for row in range(len(ids)) for column in range(len(ids[row]))]
    row, column = flat[position % len(flat)]
    bad = [list(sequence) for sequence in ids]
    bad[row][column] = value
    for module in (ser, ter):
        with pytest.raises(ValueError, match=NOT_IDS):
            module.compute(predictions=bad, language=LANGUAGE)
    expected = ter.compute(predictions=ids, language=LANGUAGE)
    for form in (tuple, np.array):
        again = ter.compute(predictions=[form(sequence) for sequence in ids], language=LANGUAGE)
        assert again == pytest.approx(expected, nan_ok=True)  # one sequence: NaN standard errors, as documented


@settings(max_examples=30, deadline=None)
@given(value=st.floats(allow_nan=True, allow_infinity=True), standard_error=st.floats(allow_nan=True))
def test_entropy_rates_are_taken_exactly_when_possible(modules, value, standard_error):
    """Property: an entropy rate (value, SE) is accepted iff 0 <= value <= log V and SE >= 0, both finite; then the
    gap is the log-perplexity minus it."""
    ter = modules["ter"]
    possible = math.isfinite(value) and 0 <= value <= math.log(3) and math.isfinite(standard_error) and (
        standard_error >= 0)  # fmt: skip
    arguments = dict(predictions=[[0, 1], [1, 2]], language=LANGUAGE, entropy_rate=EntropyRate(value, standard_error))
    if possible:
        result = ter.compute(**arguments)
        assert result["token_error_rate"] == pytest.approx(result["log_perplexity"] - value)
    else:
        with pytest.raises(ValueError, match="entropy"):
            ter.compute(**arguments)
