"""HiddenMarkovLanguage: exact filtering and forward-backward smoothing for languages driven by a Markov chain.

    p(x_1..x_L) = sum_s  pi(s_1) prod_i e(s_i, x_i) prod_i T(s_i, s_{i+1})

Subclasses give `initial` (pi, shape (S,)), `emission` (e, shape (S, V)) and the two products with T,
`_transition_forward(p) = p T` and `_transition_backward(g) = T g`, which an n-gram computes without materialising T.
All recursions are batched over sequences; the only Python loops run over positions. The posterior's smoother,
`_smooth`, is dense over the states; a subclass with more structure replaces it (the n-gram's runs over the masked
digits of its context windows, segment by segment: `ngram_posterior`).
"""

import torch

from .base import FormalLanguage


RESCALE = 16  # positions between two rescalings of the fast loops' messages


def compact_active(active: torch.BoolTensor) -> tuple[torch.LongTensor, torch.LongTensor]:
    """(order, lengths): row r's active positions, in order, are order[r, :lengths[r]] (a stable sort puts them
    first); order has as many columns as the longest row has active positions."""
    order = torch.sort((~active).to(torch.uint8), dim=1, stable=True).indices
    lengths = active.sum(1)
    return order[:, : int(lengths.max()) if active.shape[0] else 0], lengths


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
        """Forward-backward over each row's active positions (inactive ones neither emit nor advance the chain).

        With padding, each row's active positions are first moved to its front (a stable sort), so the smoother sees
        rows of `lengths[r]` leading positions; inactive positions get the uniform distribution.
        """
        num, length = symbols.shape
        if bool(active.all()):
            return self._smooth(symbols, observed, torch.full((num,), length, dtype=torch.long))
        order, lengths = compact_active(active)
        width = order.shape[1]
        token = self._smooth(symbols.gather(1, order), (observed & active).gather(1, order), lengths)
        posterior = torch.full((num, length, self.vocab_size), 1.0 / self.vocab_size, dtype=torch.float64)
        real = torch.arange(width) < lengths[:, None]
        rows = torch.arange(num)[:, None].expand(-1, width)
        posterior[rows[real], order[real]] = token[real]
        return posterior

    def _smooth(self, symbols: torch.LongTensor, observed: torch.BoolTensor, lengths: torch.LongTensor):
        """Forward-backward: p(x_i = v | obs) ∝ sum_s F_i(s) e(s, v) B_i(s), with F_i(s) ∝ P(s_i = s, obs_<=i) and
        B_i(s) ∝ P(obs_>i | s_i = s); row r uses its first `lengths[r]` positions.

        Positions past a row's length are unobserved, which leaves B unchanged (T 1 = 1); past the last observed
        position of all rows B = 1, so the backward loop stops there. A row with no observed symbol is the stationary
        chain (F = pi, B = 1): no loop. The loops run two or three batched ops per position and rescale the messages
        every `RESCALE` positions; a row whose messages vanish somewhere (a contradicted token, or an underflow between
        two rescalings) runs again carefully: renormalised at every position, a contradicted token ignored
        (likelihood 1 in both passes). The symbol posteriors come after the loops, as one product of the smoothed
        states with the emission matrix.
        """
        num, width = symbols.shape
        observed = observed & (torch.arange(width) < lengths[:, None])
        stationary = self._emit(self.initial)
        token = (stationary / stationary.sum()).expand(num, width, -1).clone()
        busy = observed.any(1).nonzero(as_tuple=True)[0]
        if busy.numel() == 0:
            return token
        symbols, observed = symbols[busy], observed[busy]
        span = int(observed.nonzero(as_tuple=True)[1].max()) + 1  # the backward loop's length
        likelihood = torch.where(observed[..., None], self.emission.T[symbols], 1.0).transpose(0, 1).contiguous()

        smoothed = self._forward_backward(likelihood, span, RESCALE)
        # a row whose messages vanished (a contradicted token, or an underflow between two rescalings) runs again
        lost = ~(smoothed.sum(-1) > 0).all(0)  # also catches the NaN that 0 / 0 leaves
        if bool(lost.any()):
            lost = lost.nonzero(as_tuple=True)[0]
            smoothed[:, lost] = self._forward_backward(likelihood[:, lost], span, 1, careful=True)
        symbol = self._emit(smoothed).transpose(0, 1)  # (rows, width, V)
        token[busy] = symbol / symbol.sum(-1, keepdim=True)
        return token

    def _forward_backward(self, likelihood: torch.Tensor, span: int, every: int, careful: bool = False):
        """F_i * B_i for likelihoods (width, rows, S), messages rescaled every `every` positions. `careful`: a token of
        zero evidence given the tokens before it is ignored (likelihood 1 in both passes, F keeps the prediction)."""
        if careful:
            likelihood = likelihood.clone()
        filtered = torch.empty_like(likelihood)
        predictive = self.initial.expand(likelihood.shape[1], -1)
        for i in range(likelihood.shape[0]):
            joint = torch.mul(predictive, likelihood[i], out=filtered[i])
            if careful:
                evidence = joint.sum(-1, keepdim=True)
                if not bool(evidence.all()):
                    zero = evidence[:, 0] == 0
                    likelihood[i, zero] = 1.0
                    joint[zero] = predictive[zero]
                    evidence[zero] = 1.0
                joint.div_(evidence)
            elif i % every == every - 1:
                joint.div_(joint.sum(-1, keepdim=True))
            predictive = self._transition_forward(joint)
        smoothed = filtered  # overwritten in place by F_i * B_i
        backward = torch.ones(likelihood.shape[1], self.num_states, dtype=torch.float64)
        for i in reversed(range(span)):
            smoothed[i].mul_(backward)
            backward = self._transition_backward(likelihood[i] * backward)
            if i % every == 0:
                backward = backward / backward.sum(-1, keepdim=True)
        return smoothed
