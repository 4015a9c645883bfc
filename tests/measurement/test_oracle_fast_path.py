"""The batched forward-backward gives the posteriors of the position-by-position reference it replaced, to 1e-9."""

import pytest
import torch

from hf_mdm.languages import HMMLanguage, NGramLanguage


def reference_posterior(language, symbols, observed, active):
    """The implementation before the fast path, kept verbatim as the reference: one position at a time, with
    `torch.where` on `active` for padding and per-position symbol posteriors."""
    num, length = symbols.shape
    likelihood = torch.where(observed[..., None], language.emission.T[symbols], 1.0)
    predictives = torch.empty(num, length, language.num_states, dtype=torch.float64)
    predictive = language.initial.expand(num, -1)
    for i in range(length):
        predictives[:, i] = predictive
        evidence, filtered = language._filter(predictive, likelihood[:, i])
        likelihood[:, i] = torch.where(evidence > 0, likelihood[:, i], 1.0)
        predictive = torch.where(active[:, i, None], language._transition_forward(filtered), predictive)
    posterior = torch.empty(num, length, language.vocab_size, dtype=torch.float64)
    backward = torch.ones(num, language.num_states, dtype=torch.float64)
    for i in reversed(range(length)):
        token = (predictives[:, i] * backward) @ language.emission
        posterior[:, i] = token / token.sum(-1, keepdim=True)
        message = language._transition_backward(likelihood[:, i] * backward)
        message = message / message.sum(-1, keepdim=True)
        backward = torch.where(active[:, i, None], message, backward)
    return posterior


LANGUAGES = [
    NGramLanguage(8, n=3, support=3, seed=0),
    NGramLanguage(5, n=2, support=2, seed=1),
    NGramLanguage(3, n=4, seed=2),
    HMMLanguage(6, 8, transition_support=2, emission_support=3, seed=0),
]


@pytest.mark.parametrize("language", LANGUAGES, ids=repr)
@pytest.mark.parametrize("masked_fraction", [0.1, 0.5, 1.0])
def test_fast_posterior_equals_the_reference(language, masked_fraction):
    generator = torch.Generator().manual_seed(3)
    symbols = language.sample(24, 40, generator)
    symbols[::5, 17] = (symbols[::5, 17] + 1) % language.vocab_size  # contradicted tokens, ignored by both
    observed = torch.rand(symbols.shape, generator=generator) >= masked_fraction
    active = torch.ones_like(observed)
    active[::3, :6] = False  # left padding of different widths
    active[1::4, -3:] = False  # right padding
    active[2, :] = False  # a row with no active position
    got = language.posterior(symbols, observed, active)
    expected = reference_posterior(language, symbols, observed & active, active)
    wanted = ~observed & active
    torch.testing.assert_close(got[wanted], expected[wanted], atol=1e-9, rtol=0)
