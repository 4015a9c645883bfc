import itertools
import re

import pytest
import torch

from hf_mdm.languages import CopyLanguage, HMMLanguage, NGramLanguage


LANGUAGES = [
    NGramLanguage(3, n=3, support=2, seed=1),
    NGramLanguage(4, n=2, support=2, seed=5),
    HMMLanguage(3, 4, transition_support=2, emission_support=2, seed=3),
    CopyLanguage(NGramLanguage(3, n=2, support=2)),
]


def brute_force_posterior(language, sequence, observed):
    """p(x_i = v | observed symbols) by summing p(x) over every sequence of the same length."""
    everything = torch.tensor(list(itertools.product(range(language.vocab_size), repeat=len(sequence))))
    weights = language.log_prob(everything).exp() * ((everything == sequence) | ~observed).all(-1)
    posterior = torch.zeros(len(sequence), language.vocab_size, dtype=torch.float64)
    for i in range(len(sequence)):
        posterior[i].index_add_(0, everything[:, i], weights)
    return posterior / posterior.sum(-1, keepdim=True)


@pytest.mark.parametrize("language", LANGUAGES, ids=repr)
def test_oracle_matches_enumeration(language):
    generator = torch.Generator().manual_seed(0)
    sequences = language.sample(12, 6, generator)
    masked = torch.rand(sequences.shape, generator=generator) < 0.6
    oracle = language.oracle_model()
    input_ids = torch.where(masked, oracle.config.mask_token_id, sequences)
    logits = oracle(input_ids=input_ids).logits
    probabilities = logits.double().softmax(-1)
    lowest, num_impossible = torch.finfo(torch.float32).min, 0
    for row in range(sequences.shape[0]):
        expected = brute_force_posterior(language, sequences[row], ~masked[row])
        got = probabilities[row, :, : language.vocab_size]
        torch.testing.assert_close(got[masked[row]], expected[masked[row]], atol=1e-6, rtol=0)
        # a symbol of posterior 0 gets exactly the lowest float32 logit
        impossible = expected[masked[row]] == 0
        num_impossible += int(impossible.sum())
        assert bool((logits[row, masked[row], : language.vocab_size][impossible] == lowest).all())
        # unmasked positions are copied through
        assert bool((got[~masked[row]].argmax(-1) == sequences[row][~masked[row]]).all())
    assert num_impossible > 0  # the languages are sparse: the check above is not vacuous


def test_oracle_interface_and_padding():
    language = NGramLanguage(4, n=3, support=2, seed=2)
    oracle = language.oracle_model()
    config = oracle.config
    assert (config.vocab_size, config.mask_token_id, config.pad_token_id) == (8, 4, 5)
    assert (config.bos_token_id, config.eos_token_id) == (6, 7)
    sequence = language.sample(1, 7, torch.Generator().manual_seed(1))
    input_ids = sequence.clone()
    input_ids[0, [1, 4, 5]] = config.mask_token_id
    logits = oracle(input_ids).logits
    assert logits.shape == (1, 7, 8) and logits.dtype == torch.float32
    assert bool((logits[..., 4:] == torch.finfo(torch.float32).min).all())  # no special token is ever chosen
    # left padding and a <bos> are not part of the sequence: same posteriors
    padded = torch.cat([torch.tensor([[config.pad_token_id, config.pad_token_id, config.bos_token_id]]), input_ids], 1)
    attention_mask = torch.ones_like(padded)
    attention_mask[0, :2] = 0
    padded_logits = oracle(padded, attention_mask=attention_mask).logits
    torch.testing.assert_close(padded_logits[:, 3:], logits)
    assert padded_logits[0, 0].argmax() == config.pad_token_id
    torch.testing.assert_close(oracle(input_ids, logits_to_keep=2).logits, logits[:, -2:])
    with pytest.raises(ValueError, match="input_ids must lie in 0..7"):
        oracle(torch.tensor([[0, 9]]))


def test_oracle_survives_contradicting_tokens():
    language = NGramLanguage.from_probabilities([[0.0, 1.0, 0.0], [0.5, 0.0, 0.5], [1.0, 0.0, 0.0]])
    oracle = language.oracle_model()
    logits = oracle(torch.tensor([[0, 0, 3, 3, 2]])).logits  # 0 -> 0 is impossible
    assert torch.isfinite(logits.softmax(-1)).all()


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "input_ids, keywords, message",
    [
        (torch.tensor([[0.0, 4.0]]), {}, "input_ids must be integer token ids, got dtype torch.float32"),
        (torch.tensor([[True, False]]), {}, "input_ids must be integer token ids, got dtype torch.bool"),
        (torch.tensor([0, 4]), {}, "needs `input_ids` of shape (batch, length)"),
        (torch.tensor([[0, 8]]), {}, "input_ids must lie in 0..7"),
        (torch.tensor([[0, -1]]), {}, "input_ids must lie in 0..7"),
        (torch.tensor([[0, 4]]), {"attention_mask": torch.tensor([[2, 1]])}, "must hold booleans (or 0 and 1 only)"),
        (torch.tensor([[0, 4]]), {"attention_mask": torch.tensor([[0.5, 1.0]])}, "must hold booleans (or 0 and 1"),
        (torch.tensor([[0, 4]]), {"attention_mask": torch.tensor([[-1, 1]])}, "must hold booleans (or 0 and 1 only)"),
        (torch.tensor([[0, 4]]), {"attention_mask": torch.ones(1, 3)}, "must have shape (1, 2) like the symbols"),
        (torch.tensor([[0, 4, 4]]), {"logits_to_keep": -1}, "logits_to_keep must be >= 0 (0 keeps every position)"),
    ],
    ids=lambda value: repr(value)[:40],
)
def test_bad_oracle_inputs_are_refused(input_ids, keywords, message):
    oracle = NGramLanguage(4, n=2, support=2, seed=2).oracle_model()
    with pytest.raises(ValueError, match=re.escape(message)):
        oracle(input_ids, **keywords)


def test_an_attention_mask_of_any_0_1_dtype_means_the_same():
    oracle = NGramLanguage(4, n=3, support=2, seed=2).oracle_model()
    input_ids = torch.tensor([[5, 0, 4, 1, 4, 4]])
    mask = torch.tensor([[0, 1, 1, 1, 1, 1]])
    expected = oracle(input_ids, attention_mask=mask.bool()).logits
    for dtype in (torch.long, torch.int32, torch.float32):
        assert torch.equal(oracle(input_ids, attention_mask=mask.to(dtype)).logits, expected)
