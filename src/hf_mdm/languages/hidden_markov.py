"""HiddenMarkovLanguage: exact filtering and forward-backward smoothing for languages driven by a Markov chain.

    p(x_1..x_L) = sum_s  pi(s_1) prod_i e(s_i, x_i) prod_i T(s_i, s_{i+1})

Subclasses give `initial` (pi, shape (S,)), `emission` (e, shape (S, V)) and the two products with T,
`_transition_forward(p) = p T` and `_transition_backward(g) = T g`, which an n-gram computes without materialising T.
All recursions are batched over sequences; the only Python loop runs over positions.
"""

import torch

from .base import FormalLanguage


class HiddenMarkovLanguage(FormalLanguage):
    initial: torch.Tensor
    emission: torch.Tensor

    def _transition_forward(self, p: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _transition_backward(self, g: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @property
    def num_states(self) -> int:
        return self.initial.shape[0]

    def _token_log_probs(self, sequences: torch.LongTensor) -> torch.Tensor:
        """Forward filter: log p(x_i | x_<i) = log sum_s P(s_i = s | x_<i) e(s, x_i).

        An invalid token (conditional 0) is treated as unobserved for the tokens after it, so each later token is
        scored given the valid tokens before it, and one wrong token is counted once.
        """
        likelihood = self.emission.T.contiguous()  # (V, S)
        columns = sequences.T.contiguous()
        predictive = self.initial.expand(sequences.shape[0], -1)
        out = torch.empty(columns.shape, dtype=torch.float64)
        for i, tokens in enumerate(columns):
            evidence, filtered = self._filter(predictive, likelihood.index_select(0, tokens))
            out[i] = evidence[:, 0].log()
            predictive = self._transition_forward(filtered)
        return out.T

    @staticmethod
    def _filter(predictive: torch.Tensor, likelihood: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One Bayes step: evidence p(x_i | past) = sum_s P(s_i = s | past) e(s, x_i), and P(s_i | past, x_i).

        Where the evidence is 0 (a token the past rules out) the token is ignored: the state keeps its prediction.
        """
        joint = predictive * likelihood
        evidence = joint.sum(-1, keepdim=True)
        return evidence, torch.where(evidence > 0, joint / evidence, predictive)

    def _posterior(self, symbols: torch.LongTensor, observed: torch.BoolTensor, active: torch.BoolTensor):
        """Forward-backward: p(x_i = v | obs) ∝ sum_s P(s_i = s | obs_<i) e(s, v) P(obs_>i | s_i = s).

        Messages are renormalised at every step; inactive positions neither emit nor advance the chain.
        """
        num, length = symbols.shape
        likelihood = torch.where(observed[..., None], self.emission.T[symbols], 1.0)  # (num, length, S)
        predictives = torch.empty(num, length, self.num_states, dtype=torch.float64)
        predictive = self.initial.expand(num, -1)
        for i in range(length):
            predictives[:, i] = predictive
            evidence, filtered = self._filter(predictive, likelihood[:, i])
            likelihood[:, i] = torch.where(evidence > 0, likelihood[:, i], 1.0)  # ignored for the backward pass too
            predictive = torch.where(active[:, i, None], self._transition_forward(filtered), predictive)

        posterior = torch.empty(num, length, self.vocab_size, dtype=torch.float64)
        backward = torch.ones(num, self.num_states, dtype=torch.float64)
        for i in reversed(range(length)):
            token = (predictives[:, i] * backward) @ self.emission
            posterior[:, i] = token / token.sum(-1, keepdim=True)
            message = self._transition_backward(likelihood[:, i] * backward)
            message = message / message.sum(-1, keepdim=True)
            backward = torch.where(active[:, i, None], message, backward)
        return posterior
