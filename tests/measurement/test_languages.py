import itertools
import math

import pytest
import torch

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
        ([[0.5, 1.0]], "integers"),
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
