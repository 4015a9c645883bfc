"""HMMLanguage: a hidden Markov model with sparse transitions and emissions, started in its stationary distribution."""

import math

import numpy as np
import torch

from ..value_checks import check_integer
from .base import EntropyRate
from .hidden_markov import HiddenMarkovLanguage
from .language_registry import LanguageOptions, register_language
from .markov_chains import check_stochastic, draw_rows, random_cycle, random_sparse_rows, stationary_distribution


@register_language("hmm")
class HMMLanguage(HiddenMarkovLanguage):
    r"""p(x) = sum_s pi(s_1) prod_i e(s_i, x_i) prod_i T(s_i, s_{i+1}), with pi the stationary distribution of T.

    Each state moves to `transition_support` states and emits `emission_support` symbols, with Dirichlet
    (`concentration`) weights; one allowed move of every state follows a random cycle through all states, so the
    chain is irreducible and pi unique. A token is invalid when no state that the valid tokens before it allow can
    emit it. The entropy rate has no closed form: `entropy_rate` estimates it by Monte Carlo.

    Args:
        num_states: hidden states S.
        vocab_size: symbols V.
        transition_support: allowed next states per state, 1..S (default S).
        emission_support: symbols each state can emit, 1..V (default V).
        concentration: Dirichlet concentration of both tables.
        seed: seed of the random parameters.
    """

    def __init__(
        self,
        num_states: int,
        vocab_size: int,
        transition_support: int | None = None,
        emission_support: int | None = None,
        concentration: float = 1.0,
        seed: int = 0,
    ):
        num_states, vocab_size = check_integer(num_states, "num_states", 1), check_integer(vocab_size, "vocab_size", 1)
        moves = num_states if transition_support is None else check_integer(transition_support, "transition_support")
        emits = vocab_size if emission_support is None else check_integer(emission_support, "emission_support")
        rng = np.random.default_rng(check_integer(seed, "seed", 0))
        transition = random_sparse_rows(
            num_states, num_states, moves, concentration, rng, forced=random_cycle(num_states, rng)
        )
        emission = random_sparse_rows(num_states, vocab_size, emits, concentration, rng)
        self._set_parameters(transition, emission, recurrent_state=0)

    @classmethod
    def from_options(cls, options: LanguageOptions) -> "HMMLanguage":
        """`options.support` is the emission support (every state may move to every state)."""
        return cls(options.states, options.vocab_size, emission_support=options.support, seed=options.seed)

    @classmethod
    def describe_options(cls, options: LanguageOptions) -> str:
        support = f", support {options.support}" if options.support else ""
        return f"HMM language ({options.states} states, {options.vocab_size} symbols{support})"

    @classmethod
    def from_probabilities(cls, transition, emission) -> "HMMLanguage":
        """Build from `transition[s, s'] = T(s, s')` (S, S) and `emission[s, v] = e(s, v)` (S, V)."""
        transition = check_stochastic(transition, "transition")
        emission = check_stochastic(emission, "emission")
        if transition.dim() != 2 or emission.dim() != 2 or transition.shape[0] != transition.shape[1]:
            raise ValueError(
                f"transition must be (S, S) and emission (S, V); got {tuple(transition.shape)} and "
                f"{tuple(emission.shape)}."
            )
        if emission.shape[0] != transition.shape[0]:
            raise ValueError(f"transition has {transition.shape[0]} states but emission has {emission.shape[0]} rows.")
        language = cls.__new__(cls)
        language._set_parameters(transition, emission, recurrent_state=None)
        return language

    def _set_parameters(self, transition, emission, recurrent_state):
        self.transition = transition
        self.emission = emission
        self.vocab_size = emission.shape[1]
        self.initial = stationary_distribution(transition, recurrent_state)
        self._transition_t = transition.T.contiguous()

    def __repr__(self) -> str:
        return f"HMMLanguage(num_states={self.num_states}, vocab_size={self.vocab_size})"

    def _transition_forward(self, p):
        return p @ self.transition

    def _transition_backward(self, g):
        return g @ self._transition_t

    def _sample(self, num, length, generator):
        states = torch.multinomial(self.initial, num, replacement=True, generator=generator)
        tokens = torch.empty(num, length, dtype=torch.long)
        emission, transition = self.emission.cumsum(-1), self.transition.cumsum(-1)
        for i in range(length):
            tokens[:, i] = draw_rows(emission, states, generator)
            states = draw_rows(transition, states, generator)
        return tokens

    def entropy_rate(self, num_samples: int = 256, length: int = 512, seed: int = 0) -> EntropyRate:
        """Monte-Carlo estimate of h, in nats per token, and its standard error.

        Averages -log p(x_i | x_<i) over the second half of `num_samples` sampled sequences of `length` tokens: an
        estimate of H(X_i | X_<i), which decreases to h as i grows (the first half is burn-in).
        """
        num_samples = check_integer(num_samples, "num_samples (at least 2 for a standard error)", 2)
        sequences = self.sample(num_samples, length, torch.Generator().manual_seed(check_integer(seed, "seed")))
        per_sequence = -self._token_log_probs(sequences)[:, length // 2 :].mean(-1)
        return EntropyRate(float(per_sequence.mean()), float(per_sequence.std() / math.sqrt(num_samples)))
