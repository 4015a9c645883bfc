import math

import evaluate
import numpy as np
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

import hf_mdm.metrics
from hf_mdm.languages import EntropyRate, NGramLanguage


SPARSE = [[0.0, 1.0, 0.0], [0.5, 0.0, 0.5], [1.0, 0.0, 0.0]]  # entropy rate 0.4 log 2, pi = (0.4, 0.4, 0.2)


@pytest.fixture(scope="module")
def ser():
    return evaluate.load(hf_mdm.metrics.path("sequence_error_rate"), keep_in_memory=True)


@pytest.fixture(scope="module")
def ter():
    return evaluate.load(hf_mdm.metrics.path("token_error_rate"), keep_in_memory=True)


@pytest.fixture(scope="module")
def gp():
    return evaluate.load(hf_mdm.metrics.path("generative_perplexity"), keep_in_memory=True)


# In-memory modules: a compute that raises leaves evaluate's cache-file lock held, and the next compute waits 1 s.


def test_modules_load_offline_from_their_folders():
    assert hf_mdm.metrics.METRICS == ("sequence_error_rate", "token_error_rate", "generative_perplexity")
    for name in hf_mdm.metrics.METRICS:
        module = evaluate.load(hf_mdm.metrics.path(name))
        assert module.name == name
    result = evaluate.load(hf_mdm.metrics.path("sequence_error_rate")).compute(predictions=["a"], references=["a"])
    assert result["sequence_error_rate"] == 0.0
    with pytest.raises(ValueError, match="choose one of"):
        hf_mdm.metrics.path("bleu")


def test_sequence_error_rate_exact_match(ser):
    result = ser.compute(
        predictions=["The answer is 4", "5", "7"], references=["4", "6", "7"], normalizer=lambda text: text.split()[-1]
    )
    assert (result["num_errors"], result["num_sequences"]) == (1, 3)
    assert result["sequence_error_rate"] == pytest.approx(1 / 3)
    # Wilson 95% interval of 1/3 as published tables give it (statsmodels proportion_confint(1, 3, "wilson"))
    assert (result["ci_low"], result["ci_high"]) == pytest.approx((0.06149, 0.79234), abs=1e-5)
    ids = ser.compute(predictions=[[1, 2], [3, 4]], references=[[1, 2], [3, 5]])
    assert ids["sequence_error_rate"] == 0.5


def test_sequence_error_rate_from_a_language_and_from_flags(ser):
    language = NGramLanguage.from_probabilities(SPARSE)
    result = ser.compute(predictions=[[0, 1, 2, 0], [0, 1, 1, 0], [2, 0, 1, 0], [1, 0]], language=language)
    assert (result["num_errors"], result["num_sequences"]) == (1, 4)
    assert ser.compute(predictions=["a", "b"], valid=[True, False])["sequence_error_rate"] == 0.5
    perfect = ser.compute(predictions=["a"] * 10, valid=[True] * 10)
    assert perfect["ci_low"] == 0.0 and 0.25 < perfect["ci_high"] < 0.35


def test_token_error_rate_against_a_language(ter):
    language = NGramLanguage.from_probabilities(SPARSE)
    result = ter.compute(predictions=[[0, 1, 2, 0], [0, 1, 1, 0]], language=language)
    floor = math.log(1e-6)
    nll = -(2 * math.log(0.4) + 2 * math.log(0.5) + floor) / 8
    assert result["log_perplexity"] == pytest.approx(nll)
    assert result["entropy_rate"] == pytest.approx(0.4 * math.log(2))
    assert result["token_error_rate"] == pytest.approx(nll - 0.4 * math.log(2))
    assert (result["num_invalid_tokens"], result["num_tokens"], result["invalid_token_rate"]) == (1, 8, 1 / 8)
    # The two sequences' mean losses differ by the floor / 4: the standard error of their mean is |floor| / 8.
    assert result["log_perplexity_standard_error"] == pytest.approx(-floor / 8)
    assert result["token_error_rate_standard_error"] == pytest.approx(-floor / 8)  # an exact entropy rate
    custom = ter.compute(predictions=[[0, 1, 1, 0]], language=language, invalid_token_log_prob=-1.0, entropy_rate=0.0)
    assert custom["log_perplexity"] == pytest.approx(-(math.log(0.4) + math.log(0.5) - 1.0) / 4)


def test_token_error_rate_of_exact_samples_is_near_zero(ter):
    language = NGramLanguage(5, n=2, support=3, seed=0)
    samples = language.sample(200, 64, torch.Generator().manual_seed(0))
    result = ter.compute(predictions=samples.tolist(), language=language)
    assert result["invalid_token_rate"] == 0.0 and abs(result["token_error_rate"]) < 0.05


def test_token_error_rate_standard_error_is_calibrated_over_sequences(ter):
    """Over many independent batches, the spread of the log-perplexity matches the standard error each batch reports.
    Half the sequences (by a coin flip each) repeat one symbol, so a sequence's tokens are strongly correlated: a
    standard error over tokens would be ~6x too small, one of unweighted sequence means (mixed lengths) ~25% off."""
    language = NGramLanguage(5, n=2, support=3, seed=0)
    generator = torch.Generator().manual_seed(0)
    estimates, standard_errors = [], []
    for _ in range(100):
        samples = language.sample(10, 48, generator).tolist() + language.sample(10, 6, generator).tolist()
        coins = torch.rand(len(samples), generator=generator) < 0.5
        batch = [[1] * len(sample) if coin else sample for sample, coin in zip(samples, coins)]
        result = ter.compute(predictions=batch, language=language, entropy_rate=0.0)
        estimates.append(result["log_perplexity"])
        standard_errors.append(result["log_perplexity_standard_error"])
    assert np.std(estimates, ddof=1) == pytest.approx(np.mean(standard_errors), rel=0.15)


def test_token_error_rate_standard_error_adds_the_entropy_rates_in_quadrature(ter):
    language = NGramLanguage.from_probabilities(SPARSE)
    predictions = [[0, 1, 2, 0], [0, 1, 1, 0], [2, 0, 1, 0]]
    result = ter.compute(predictions=predictions, language=language, entropy_rate=EntropyRate(0.3, 0.04))
    assert result["entropy_rate_standard_error"] == 0.04
    expected = math.hypot(result["log_perplexity_standard_error"], 0.04)
    assert result["token_error_rate_standard_error"] == pytest.approx(expected)
    single = ter.compute(predictions=predictions[:1], language=language)
    assert math.isnan(single["log_perplexity_standard_error"])  # one sequence: no spread to estimate it from


def test_token_error_rate_against_references(ter):
    result = ter.compute(predictions=[[0, 1, 1], [2]], references=[[0, 1, 0], [2, 2]])
    assert (result["num_token_errors"], result["num_tokens"]) == (2, 5)
    assert ter.compute(predictions=["a b c"], references=["a x c"])["token_error_rate"] == pytest.approx(1 / 3)


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"predictions": ["a", "b"], "references": ["a"]}, "2 predictions but 1 references"),
        ({"predictions": []}, "no predictions"),
        ({"predictions": ["a"]}, "exactly one of"),
        ({"predictions": [[0, 1]], "references": [[0, 1]], "valid": [True]}, "exactly one of"),
        ({"predictions": ["a", "b"], "valid": [True]}, "validity flags"),
        pytest.param(
            {"predictions": ["a", "b"], "valid": ["no", "yes"]},
            r"valid= must hold booleans.*\['no', 'yes'\]",
            id="valid_strings",
        ),
        pytest.param({"predictions": ["a", "b"], "valid": [0.0, 1.0]}, "must hold booleans", id="valid_floats"),
        pytest.param({"predictions": ["a", "b"], "valid": [2, 1]}, "must hold booleans", id="valid_ints_not_0_1"),
        ({"predictions": [[0, 5]], "language": NGramLanguage(3)}, "symbols 0..2"),
        ({"predictions": [[0]], "language": NGramLanguage(3, n=3)}, "at least 3 tokens"),
    ],
)
def test_sequence_error_rate_bad_input(ser, kwargs, message):
    with pytest.raises(ValueError, match=message):
        ser.compute(**kwargs)


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"predictions": [[0, 1]], "references": [[0, 1], [1]]}, "1 predictions but 2 references"),
        ({"predictions": []}, "no predictions"),
        ({"predictions": [[0, 1]]}, "exactly one of"),
        ({"predictions": [[0, 9]], "language": NGramLanguage(3)}, "symbols 0..2"),
        pytest.param(
            {"predictions": [[0, 1]], "language": NGramLanguage(3), "invalid_token_log_prob": 0.5},
            "finite log-probability <= 0",
            id="invalid_token_log_prob_positive",
        ),
        pytest.param(
            {"predictions": [[0, 1]], "language": NGramLanguage(3), "invalid_token_log_prob": math.nan},
            "finite log-probability <= 0",
            id="invalid_token_log_prob_nan",
        ),
    ],
)
def test_token_error_rate_bad_input(ter, kwargs, message):
    with pytest.raises(ValueError, match=message):
        ter.compute(**kwargs)


@pytest.fixture(scope="module")
def causal_lm(tmp_path_factory):
    tokenizer = NGramLanguage(5).tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=64,
        bos_token_id=tokenizer.bos_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    directory = tmp_path_factory.mktemp("causal-lm")
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return model, tokenizer, str(directory)


def reference_perplexity(model, tokenizer, text):
    ids = torch.tensor([[tokenizer.bos_token_id] + tokenizer(text)["input_ids"]])
    with torch.no_grad():
        log_probs = model(ids).logits[0, :-1].double().log_softmax(-1)
    return math.exp(-log_probs.gather(1, ids[0, 1:, None]).mean().item())


def test_generative_perplexity_matches_direct_scoring(gp, causal_lm):
    model, tokenizer, directory = causal_lm
    texts = ["0 1 2 3", "4 4 0", "1 " * 40]
    expected = [reference_perplexity(model, tokenizer, text) for text in texts]
    result = gp.compute(predictions=texts, model=model, tokenizer=tokenizer, batch_size=2)
    assert result["perplexities"] == pytest.approx(expected, rel=1e-4)
    assert result["num_tokens"] == 4 + 3 + 40
    from_path = gp.compute(predictions=texts, model=directory, batch_size=3)
    assert from_path["perplexities"] == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("length,max_length,stride", [(50, 16, 8), (50, 16, 15), (7, 64, 32), (33, 8, 1)])
def test_strided_windows_score_every_token_once_with_its_context(length, max_length, stride):
    from hf_mdm.metrics.generative_perplexity.generative_perplexity import _windows

    ids = list(range(length))
    scored = []
    for window, context in _windows(ids, max_length, stride):
        assert len(window) <= max_length and window == ids[window[0] : window[0] + len(window)]
        scored += window[context:]
    assert scored == ids[1:]  # token 0 has no context; every other token exactly once, in order


def test_generative_perplexity_stride(gp, causal_lm):
    model, tokenizer, _ = causal_lm
    text = " ".join(str(i % 5) for i in range(50))
    full = gp.compute(predictions=[text], model=model, tokenizer=tokenizer, max_length=64)
    strided = gp.compute(predictions=[text], model=model, tokenizer=tokenizer, max_length=16, stride=8)
    assert strided["num_tokens"] == full["num_tokens"] == 50
    assert strided["mean_perplexity"] != pytest.approx(full["mean_perplexity"], rel=1e-6)  # less context
    assert strided["mean_perplexity"] == pytest.approx(full["mean_perplexity"], rel=0.2)


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"model": "no/such/dir"}, "not a local directory"),
        ({}, "needs model="),
        ({"stride": 16, "max_length": 16}, "stride < max_length"),
    ],
)
def test_generative_perplexity_bad_input(gp, causal_lm, kwargs, message):
    model, tokenizer, _ = causal_lm
    arguments = {"model": model, "tokenizer": tokenizer, **kwargs}
    if "model" in kwargs or not kwargs:
        arguments["model"] = kwargs.get("model")
    with pytest.raises(ValueError, match=message):
        gp.compute(predictions=["0 1"], **arguments)


@pytest.mark.bad_input
def test_generative_perplexity_rejects_empty_texts(gp, causal_lm):
    model, tokenizer, _ = causal_lm
    with pytest.raises(ValueError, match="fewer than 2 tokens"):
        gp.compute(predictions=["0 1", ""], model=model, tokenizer=tokenizer, add_start_token=False)


def test_sequence_error_rate_accepts_numpy_and_torch_flags(ser):
    flags = [np.bool_(True), torch.tensor(False), 1, 0]
    assert ser.compute(predictions=["a", "b", "c", "d"], valid=flags)["num_errors"] == 2


@pytest.mark.bad_input
def test_token_error_rate_refuses_a_language_with_positive_log_probs(ter):
    language = NGramLanguage(3)
    language.token_log_probs = lambda batch: torch.full(batch.shape, 0.1)
    with pytest.raises(ValueError, match="NaN or positive log-probabilities"):
        ter.compute(predictions=[[0, 1]], language=language, entropy_rate=0.0)
