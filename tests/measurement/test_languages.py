import itertools
import math
import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hf_mdm.languages import CopyLanguage, HMMLanguage, NGramLanguage


def binary_entropy(p):
    return -(p * math.log(p) + (1 - p) * math.log(1 - p))


# 0 -> 1;  1 -> 0 or 2 (1/2 each);  2 -> 0.   Stationary pi = (0.4, 0.4, 0.2), entropy rate 0.4 log 2.
SPARSE = [[0.0, 1.0, 0.0], [0.5, 0.0, 0.5], [1.0, 0.0, 0.0]]


def test_two_state_chain_exact():
    a, b = 0.5, 0.25
    chain = NGramLanguage.from_probabilities([[1 - a, a], [b, 1 - b]])
    torch.testing.assert_close(chain.initial, torch.tensor([1 / 3, 2 / 3], dtype=torch.float64))
    rate = chain.entropy_rate()
    assert rate.standard_error == 0.0
    assert rate.value == pytest.approx(binary_entropy(a) / 3 + 2 * binary_entropy(b) / 3, abs=1e-12)
    assert chain.log_prob([[0, 1, 1]]).item() == pytest.approx(math.log(1 / 3 * a * (1 - b)), abs=1e-12)


@pytest.mark.bad_input
def test_sparse_bigram_invalid_tokens():
    language = NGramLanguage.from_probabilities(SPARSE)
    assert language.entropy_rate().value == pytest.approx(0.4 * math.log(2), abs=1e-12)
    sequences = torch.tensor([[0, 1, 2, 0], [0, 1, 1, 0], [2, 0, 1, 0]])
    expected = torch.tensor(
        [
            [math.log(0.4), 0.0, math.log(0.5), 0.0],
            [math.log(0.4), 0.0, -math.inf, math.log(0.5)],
            [math.log(0.2), 0.0, 0.0, math.log(0.5)],
        ],
        dtype=torch.float64,
    )
    torch.testing.assert_close(language.token_log_probs(sequences), expected)
    assert language.invalid_token_mask(sequences).tolist() == [[False] * 4, [False, False, True, False], [False] * 4]
    assert language.is_valid(sequences).tolist() == [True, False, True]
    assert language.log_prob(sequences)[0].item() == pytest.approx(math.log(0.2))


@pytest.mark.parametrize(
    "language, length",
    [
        (NGramLanguage(3, n=3, support=2, seed=1), 5),
        (NGramLanguage(4, n=2, seed=2), 4),
        (HMMLanguage(3, 4, transition_support=2, emission_support=2, seed=3), 5),
        (CopyLanguage(NGramLanguage(3, n=2, support=2)), 6),
    ],
)
def test_probabilities_sum_to_one_and_samples_are_valid(language, length):
    everything = torch.tensor(list(itertools.product(range(language.vocab_size), repeat=length)))
    assert language.log_prob(everything).exp().sum().item() == pytest.approx(1.0, abs=1e-10)
    samples = language.sample(200, length, torch.Generator().manual_seed(0))
    assert samples.shape == (200, length)
    assert bool(language.is_valid(samples).all())


def test_samples_follow_the_stationary_distribution():
    language = NGramLanguage.from_probabilities(SPARSE)
    samples = language.sample(20000, 2, torch.Generator().manual_seed(0))
    frequencies = torch.bincount(samples[:, 0], minlength=3).double() / 20000
    torch.testing.assert_close(frequencies, torch.tensor([0.4, 0.4, 0.2], dtype=torch.float64), atol=0.02, rtol=0)


def test_hmm_entropy_rate_matches_an_equivalent_bigram():
    bigram = NGramLanguage(3, n=2, seed=4)
    hmm = HMMLanguage.from_probabilities(bigram.probabilities, torch.eye(3))
    estimate = hmm.entropy_rate(num_samples=256, length=64)
    assert 0 < estimate.standard_error < 0.02
    assert abs(estimate.value - bigram.entropy_rate().value) < 4 * estimate.standard_error + 0.01
    sequences = bigram.sample(8, 10)
    torch.testing.assert_close(hmm.log_prob(sequences), bigram.log_prob(sequences))


def test_random_languages_are_reproducible_and_sparse():
    first, second = NGramLanguage(6, n=3, support=2, seed=7), NGramLanguage(6, n=3, support=2, seed=7)
    torch.testing.assert_close(first.probabilities, second.probabilities)
    assert ((first.probabilities > 0).sum(-1) == 2).all()
    hmm = HMMLanguage(5, 7, transition_support=2, emission_support=3, seed=0)
    assert ((hmm.transition > 0).sum(-1) == 2).all() and ((hmm.emission > 0).sum(-1) == 3).all()
    assert (hmm.initial > 0).all()


def test_copy_language():
    language = CopyLanguage(NGramLanguage.from_probabilities(SPARSE))
    sequences = torch.tensor([[0, 1, 0, 1], [0, 1, 0, 2]])
    assert language.invalid_token_mask(sequences).tolist() == [[False] * 4, [False, False, False, True]]
    assert language.entropy_rate().value == pytest.approx(0.2 * math.log(2))
    with pytest.raises(ValueError, match="even length"):
        language.sample(2, 5)


def test_tokenizer_ids_are_symbols_then_specials():
    language = NGramLanguage(5, n=2)
    tokenizer = language.tokenizer()
    assert len(tokenizer) == 10
    assert tokenizer("3 0 4")["input_ids"] == [3, 0, 4]
    ids = [tokenizer.mask_token_id, tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id]
    assert ids == [5, 6, 7, 8]
    assert tokenizer("3 hello 5")["input_ids"] == [3, 9, 9] == [3, tokenizer.unk_token_id, tokenizer.unk_token_id]
    with pytest.raises(ValueError, match="must lie in 0..8"):
        language.oracle_model()(torch.tensor([[3, tokenizer.unk_token_id]]))  # the exact oracle refuses unknown words
    dataset = language.dataset(4, 6, seed=0)
    assert dataset.column_names == ["input_ids", "text"]
    assert tokenizer(dataset[0]["text"])["input_ids"] == dataset[0]["input_ids"]
    assert language.dataset(4, 6, seed=0)["input_ids"] == dataset["input_ids"]


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "sequences, message",
    [
        ([[0, 1, 7]], "symbols 0..2"),
        ([[0, 1, -1]], "symbols 0..2"),
        ([[0, 1], [0]], "rectangular"),
        ([], "shape|no sequences"),
        ([[0, 1, 2]][0], "for one sequence pass"),
        ([[0.5, 1.0]], "integer symbol ids"),
    ],
)
def test_bad_sequences(sequences, message):
    with pytest.raises(ValueError, match=message):
        NGramLanguage(3, n=2).log_prob(sequences)


@pytest.mark.bad_input
def test_bad_lengths_and_parameters():
    trigram = NGramLanguage(3, n=3)
    with pytest.raises(ValueError, match="at least 3 tokens"):
        trigram.log_prob([[0, 1]])
    with pytest.raises(ValueError, match="at least 3 tokens"):
        trigram.sample(2, 2)
    with pytest.raises(ValueError, match="n must be >= 2"):
        NGramLanguage(3, n=1)
    with pytest.raises(ValueError, match="contexts"):
        NGramLanguage(100, n=3)
    with pytest.raises(ValueError, match="support"):
        NGramLanguage(3, support=5)
    with pytest.raises(ValueError, match="probability distribution"):
        NGramLanguage.from_probabilities([[0.5, 0.6], [0.5, 0.5]])
    with pytest.raises(ValueError, match="several stationary"):
        NGramLanguage.from_probabilities([[1.0, 0.0], [0.0, 1.0]])


# ---- every public entry point checks its arguments before any work (a count of 2.5 is never truncated to 2) ----
def ngram(**arguments):
    return NGramLanguage(**({"vocab_size": 3} | arguments))


def hmm(**arguments):
    return HMMLanguage(**({"num_states": 3, "vocab_size": 4} | arguments))


def entropy_rate(**arguments):
    return HMMLanguage(2, 3).entropy_rate(**({"num_samples": 4, "length": 8} | arguments))


BAD_ARGUMENTS = [
    (ngram, dict(vocab_size=0), "vocab_size must be an integer >= 1, got 0"),
    (ngram, dict(vocab_size=2.5), "vocab_size must be an integer >= 1, got 2.5"),
    (ngram, dict(vocab_size=True), "vocab_size must be an integer >= 1, got True"),
    (ngram, dict(vocab_size="8"), "vocab_size must be an integer >= 1, got '8'"),
    (ngram, dict(n=2.5), "n must be an integer, got 2.5"),
    (ngram, dict(n="3"), "n must be an integer, got '3'"),
    (ngram, dict(n=True), "n must be an integer, got True"),
    (ngram, dict(support=0), "support must lie in 1..3, got 0"),
    (ngram, dict(support=2.5), "support must be an integer, got 2.5"),
    (ngram, dict(support=4), "support must lie in 1..3, got 4"),
    (ngram, dict(concentration=0), "concentration must be a finite number > 0, got 0"),
    (ngram, dict(concentration=float("nan")), "concentration must be a finite number > 0, got nan"),
    (ngram, dict(concentration=float("inf")), "concentration must be a finite number > 0, got inf"),
    (ngram, dict(concentration="1"), "concentration must be a finite number > 0, got '1'"),
    (ngram, dict(concentration=True), "concentration must be a finite number > 0, got True"),
    (ngram, dict(seed=-1), "seed must be an integer >= 0, got -1"),
    (ngram, dict(seed=1.5), "seed must be an integer >= 0, got 1.5"),
    (ngram, dict(seed="0"), "seed must be an integer >= 0, got '0'"),
    (hmm, dict(num_states=0), "num_states must be an integer >= 1, got 0"),
    (hmm, dict(num_states=2.5), "num_states must be an integer >= 1, got 2.5"),
    (hmm, dict(vocab_size=True), "vocab_size must be an integer >= 1, got True"),
    (hmm, dict(transition_support=0), "support must lie in 1..3, got 0"),
    (hmm, dict(transition_support=1.5), "transition_support must be an integer, got 1.5"),
    (hmm, dict(emission_support=5), "support must lie in 1..4, got 5"),
    (hmm, dict(emission_support="2"), "emission_support must be an integer, got '2'"),
    (hmm, dict(concentration=-1.0), "concentration must be a finite number > 0, got -1.0"),
    (hmm, dict(seed=-3), "seed must be an integer >= 0, got -3"),
    (entropy_rate, dict(num_samples=1), "num_samples (at least 2 for a standard error) must be an integer >= 2"),
    (entropy_rate, dict(num_samples=64.0), "(at least 2 for a standard error) must be an integer >= 2, got 64.0"),
    (entropy_rate, dict(num_samples=True), "must be an integer >= 2, got True"),
    (entropy_rate, dict(length=16.5), "length must be an integer, got 16.5"),
    (entropy_rate, dict(seed="1"), "seed must be an integer, got '1'"),
]


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "entry, arguments, message", BAD_ARGUMENTS, ids=lambda value: getattr(value, "__name__", repr(value)[:40])
)
def test_bad_arguments_are_refused_naming_them(entry, arguments, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        entry(**arguments)


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "call, message",
    [
        (lambda language: language.sample(2.7, 4), "num (sequences) must be an integer >= 1, got 2.7"),
        (lambda language: language.sample(True, 4), "num (sequences) must be an integer >= 1, got True"),
        (lambda language: language.sample(0, 4), "num (sequences) must be an integer >= 1, got 0"),
        (lambda language: language.sample("2", 4), "num (sequences) must be an integer >= 1, got '2'"),
        (lambda language: language.sample(2, 4.5), "length must be an integer, got 4.5"),
        (lambda language: language.sample(2, "4"), "length must be an integer, got '4'"),
        (lambda language: language.sample(2, 4, generator=5), "generator must be a torch.Generator or None, got int"),
        (lambda language: language.dataset(2, 4.0), "length must be an integer, got 4.0"),
        (lambda language: language.dataset(2, 4, seed=1.5), "seed must be an integer, got 1.5"),
        (lambda language: language.dataset(2, 4, seed=True), "seed must be an integer, got True"),
        (
            lambda language: language.log_prob(torch.zeros(2, 3)),
            "sequences must be integer symbol ids, got dtype torch.float32",
        ),
    ],
    ids=lambda value: "" if callable(value) else value[:40],
)
def test_bad_sampling_arguments(call, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        call(NGramLanguage(3, n=2))


@pytest.mark.bad_input
@given(value=st.one_of(st.floats(), st.booleans(), st.text(max_size=3), st.integers(max_value=0)))
@settings(max_examples=40, deadline=None)
def test_a_count_that_is_not_a_positive_integer_is_refused(value):
    with pytest.raises(ValueError, match=re.escape(f"num (sequences) must be an integer >= 1, got {value!r}")):
        NGramLanguage(3, n=2).sample(value, 4)


@given(num=st.integers(1, 5), kind=st.sampled_from([int, np.int64, torch.tensor]))
@settings(max_examples=15, deadline=None)
def test_python_numpy_and_torch_integers_are_the_same_count(num, kind):
    language = NGramLanguage(3, n=2)
    samples = language.sample(kind(num), kind(num + 1), torch.Generator().manual_seed(0))
    assert torch.equal(samples, language.sample(num, num + 1, torch.Generator().manual_seed(0)))


POSTERIOR_ARGUMENTS = [
    (dict(symbols=torch.tensor([[0.0, 1.0, 2.0]])), "symbols must be integer symbol ids, got dtype torch.float32"),
    (dict(symbols=torch.tensor([[True, False, True]])), "symbols must be integer symbol ids, got dtype torch.bool"),
    (dict(symbols=torch.tensor([0, 1, 2])), "symbols must be a (num, length) tensor, got shape (3,)"),
    (dict(observed=torch.tensor([[2, 0, 1]])), "observed must hold booleans (or 0 and 1 only), got values [0, 1, 2]"),
    (dict(observed=torch.tensor([[0.5, 0.0, 1.0]])), "observed must hold booleans (or 0 and 1 only)"),
    (dict(observed=torch.tensor([[True, False]])), "observed must have shape (1, 3) like the symbols, got (1, 2)"),
    (dict(active=torch.tensor([[-1, 1, 1]])), "active must hold booleans (or 0 and 1 only), got values [-1, 1]"),
    (dict(active=torch.ones(2, 3, dtype=torch.bool)), "active must have shape (1, 3) like the symbols, got (2, 3)"),
]


@pytest.mark.bad_input
@pytest.mark.parametrize("arguments, message", POSTERIOR_ARGUMENTS, ids=lambda value: repr(value)[:50])
def test_bad_posterior_arguments(arguments, message):
    valid = dict(symbols=torch.tensor([[0, 1, 2]]), observed=torch.tensor([[True, False, True]]), active=None)
    with pytest.raises(ValueError, match=re.escape(message)):
        NGramLanguage(3, n=2).posterior(**(valid | arguments))


@given(observed=st.lists(st.integers(0, 1), min_size=4, max_size=4), active=st.lists(st.integers(0, 1), min_size=4,
                                                                                        max_size=4))  # fmt: skip
@settings(max_examples=20, deadline=None)
def test_a_0_1_mask_is_read_as_the_booleans_it_spells(observed, active):
    language = NGramLanguage(3, n=2, seed=1)
    symbols = language.sample(1, 4, torch.Generator().manual_seed(0))
    from_integers = language.posterior(symbols, torch.tensor([observed]), torch.tensor([active]))
    from_booleans = language.posterior(symbols, torch.tensor([observed]).bool(), torch.tensor([active]).bool())
    assert torch.equal(from_integers, from_booleans)
