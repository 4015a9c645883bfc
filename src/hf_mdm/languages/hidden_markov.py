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

    def _emit(self, state_weights: torch.Tensor) -> torch.Tensor:
        """sum_s w(s) e(s, v) for every symbol v, over the last axis of `state_weights`."""
        return state_weights @ self.emission

    def _posterior(self, symbols: torch.LongTensor, observed: torch.BoolTensor, active: torch.BoolTensor):
        """Forward-backward: p(x_i = v | obs) ∝ sum_s F_i(s) e(s, v) B_i(s), F_i = P(s_i | obs_<=i) (= the prediction
        P(s_i | obs_<i) at a masked i), B_i ∝ P(obs_>i | s_i).

        Inactive positions neither emit nor advance the chain, so (with any) each row's active positions are first
        moved to its front (a stable sort); the loop then runs to the longest row, and positions past a row's end are
        unobserved, which leaves every B_i of the row unchanged (T 1 = 1). Messages are renormalised at every step.
        The loops do a few batched ops per position; the likelihoods are built before them in one op, and the
        normalisation of the symbol posteriors after them.
        """
        num, length = symbols.shape
        compact = not bool(active.all())
        if compact:
            order = torch.sort((~active).to(torch.uint8), dim=1, stable=True).indices  # active positions first
            symbols, observed = symbols.gather(1, order), (observed & active).gather(1, order)
        width = int(active.sum(1).max()) if num else 0
        columns, shown = symbols[:, :width].T, observed[:, :width].T
        likelihood = torch.where(shown[..., None], self.emission.T[columns], 1.0)  # (width, num, S)

        filtered = torch.empty(width, num, self.num_states, dtype=torch.float64)
        evidence = torch.empty(width, num, 1, dtype=torch.float64)
        predictive = self.initial.expand(num, -1)
        for i in range(width):
            joint = predictive * likelihood[i]
            torch.sum(joint, -1, keepdim=True, out=evidence[i])
            torch.div(joint, evidence[i], out=filtered[i])
            if not bool(evidence[i].all()):
                filtered[i] = torch.where(evidence[i] > 0, filtered[i], predictive)
            predictive = self._transition_forward(filtered[i])
        likelihood = torch.where(evidence > 0, likelihood, 1.0)  # a contradicted token is ignored in both passes

        token = torch.empty(width, num, self.vocab_size, dtype=torch.float64)
        backward = torch.ones(num, self.num_states, dtype=torch.float64)
        for i in reversed(range(width)):
            token[i] = self._emit(filtered[i] * backward)
            message = self._transition_backward(likelihood[i] * backward)
            backward = message / message.sum(-1, keepdim=True)
        token = (token / token.sum(-1, keepdim=True)).transpose(0, 1)  # (num, width, V)
        if not compact:
            return token
        posterior = torch.full((num, length, self.vocab_size), 1.0 / self.vocab_size, dtype=torch.float64)
        return posterior.scatter_(1, order[:, :width, None].expand(-1, -1, self.vocab_size), token)
