"""NGramLanguage: an order-n Markov chain over V symbols, started from its stationary distribution."""

import numpy as np
import torch

from ..value_checks import check_integer
from .base import EntropyRate
from .hidden_markov import HiddenMarkovLanguage, compact_active
from .language_registry import LanguageOptions, register_language
from .markov_chains import check_stochastic, draw_rows, random_cycle, random_sparse_rows, stationary_distribution
from .ngram_posterior import ngram_masked_log_posterior, ngram_posterior


MAX_CONTEXTS = 4096


@register_language("ngram")
class NGramLanguage(HiddenMarkovLanguage):
    r"""Order-n Markov chain: p(x) = pi(x_1..x_{n-1}) prod_{i >= n} P(x_i | x_{i-n+1}..x_{i-1}).

    Each of the V^(n-1) contexts allows `support` successors with Dirichlet(`concentration`) probabilities; the other
    successors have probability 0 (`support == vocab_size`: every sequence is valid). One allowed successor of every
    context is the next symbol of its last symbol on a random cyclic order of the symbols, so every context reaches
    that cycle and the stationary distribution pi over contexts is unique. The process is stationary, so the entropy
    rate is exact: h = sum_c pi(c) H(P(. | c)).

    As a hidden Markov chain the state at position i is the context (x_{i-n+2}..x_i) and emits its last symbol; that
    view drives the oracle's forward-backward. Log-probabilities use the context directly (one gather per token).

    Args:
        vocab_size: number of symbols V.
        n: order (2 = bigram); sequences need at least n tokens.
        support: allowed successors per context, 1..V (default V).
        concentration: Dirichlet concentration of the successor probabilities.
        seed: seed of the random parameters.
    """

    def __init__(
        self, vocab_size: int, n: int = 2, support: int | None = None, concentration: float = 1.0, seed: int = 0
    ):
        vocab_size, n = check_integer(vocab_size, "vocab_size", 1), check_integer(n, "n")
        self._check_shape(vocab_size, n)
        support = vocab_size if support is None else check_integer(support, "support")
        rng = np.random.default_rng(check_integer(seed, "seed", 0))
        ring = random_cycle(vocab_size, rng)
        num_contexts = vocab_size ** (n - 1)
        probabilities = random_sparse_rows(
            num_contexts,
            vocab_size,
            support,
            concentration,
            rng,
            forced=ring[torch.arange(num_contexts) % vocab_size],
        )
        ring_context = 0
        symbol = 0
        for _ in range(n - 1):
            ring_context = ring_context * vocab_size + symbol
            symbol = int(ring[symbol])
        self._set_parameters(probabilities.view((vocab_size,) * n), ring_context)

    @classmethod
    def from_options(cls, options: LanguageOptions) -> "NGramLanguage":
        return cls(options.vocab_size, n=options.order, support=options.support, seed=options.seed)

    @classmethod
    def describe_options(cls, options: LanguageOptions) -> str:
        support = f", support {options.support}" if options.support else ""
        return f"{options.order}-gram language ({options.vocab_size} symbols{support})"

    @classmethod
    def from_probabilities(cls, probabilities) -> "NGramLanguage":
        """Build from `probabilities[c_1, ..., c_{n-1}, y] = P(y | c_1..c_{n-1})`, an array of shape (V,) * n."""
        probabilities = torch.as_tensor(probabilities, dtype=torch.float64)
        if probabilities.dim() < 2 or len(set(probabilities.shape)) != 1:
            raise ValueError(
                "probabilities must have shape (V,) * n with n >= 2, e.g. (V, V) for a bigram; got "
                f"{tuple(probabilities.shape)}."
            )
        cls._check_shape(probabilities.shape[0], probabilities.dim())
        language = cls.__new__(cls)
        language._set_parameters(check_stochastic(probabilities, "probabilities"), None)
        return language

    @staticmethod
    def _check_shape(vocab_size: int, n: int):
        if n < 2:
            raise ValueError(
                f"n must be >= 2 (2 = bigram), got n={n}; for i.i.d. tokens use HMMLanguage(num_states=1)."
            )
        if vocab_size < 1 or vocab_size ** (n - 1) > MAX_CONTEXTS:
            raise ValueError(
                f"vocab_size={vocab_size} and n={n} give {vocab_size ** (n - 1)} contexts; at most {MAX_CONTEXTS} "
                "are supported (exact stationary distribution). Use a smaller vocabulary or order."
            )

    def _set_parameters(self, probabilities: torch.Tensor, recurrent_context: int | None):
        self.vocab_size = probabilities.shape[0]
        self.n = probabilities.dim()
        self.min_length = self.n
        self.probabilities = probabilities.reshape(-1, self.vocab_size)  # (contexts, V)
        self.log_probabilities = self.probabilities.log()
        self._shift = self.vocab_size ** (
            self.n - 2
        )  # contexts (c_1..c_{n-1}) -> (c_2..c_{n-1}, y): (c % shift) * V + y
        self._table = self.probabilities.view(self.vocab_size, self._shift, self.vocab_size).permute(
            1, 0, 2
        )  # (k, a, y)
        num_contexts = self.probabilities.shape[0]
        successors = (torch.arange(num_contexts)[:, None] % self._shift) * self.vocab_size + torch.arange(
            self.vocab_size
        )
        transition = torch.zeros(num_contexts, num_contexts, dtype=torch.float64)
        transition.scatter_(1, successors, self.probabilities)
        self.initial = stationary_distribution(transition, recurrent_context)
        self.emission = torch.zeros(num_contexts, self.vocab_size, dtype=torch.float64)
        self.emission[torch.arange(num_contexts), torch.arange(num_contexts) % self.vocab_size] = 1.0
        self._step_types = {}  # the posterior's step types (block tables), built on first use

    def __repr__(self) -> str:
        support = int((self.probabilities > 0).sum(-1).max())
        return f"NGramLanguage(vocab_size={self.vocab_size}, n={self.n}, support<={support})"

    def _transition_forward(self, p):
        """(p T)[(k, y)] = sum_a p[(a, k)] P(y | a, k), batched over the context tail k."""
        grouped = p.view(-1, self.vocab_size, self._shift).permute(2, 0, 1)  # (k, batch, a)
        return torch.bmm(grouped, self._table).permute(1, 0, 2).reshape(p.shape)

    def _transition_backward(self, g):
        """(T g)[(a, k)] = sum_y P(y | a, k) g[(k, y)]."""
        grouped = g.view(-1, self._shift, self.vocab_size).permute(1, 2, 0)  # (k, y, batch)
        return torch.bmm(self._table, grouped).permute(2, 1, 0).reshape(g.shape)

    def _token_log_probs(self, sequences):
        """The first n-1 tokens by filtering under pi (once per distinct prefix); later tokens by their context:
        log P(x_i | x_{i-n+1}..x_{i-1}), read at the flat index sum_j x_{i-n+1+j} V^(n-1-j) of the table."""
        prefixes, inverse = torch.unique(sequences[:, : self.n - 1], dim=0, return_inverse=True)
        out = torch.empty(sequences.shape, dtype=torch.float64)
        out[:, : self.n - 1] = super()._token_log_probs(prefixes)[inverse]
        width = sequences.shape[1] - self.n + 1
        flat = sequences[:, self.n - 1 :].clone()
        for offset in range(self.n - 1):
            flat.add_(sequences[:, offset : offset + width], alpha=self.vocab_size ** (self.n - 1 - offset))
        out[:, self.n - 1 :] = torch.take(self.log_probabilities, flat)
        return out

    def _sample(self, num, length, generator):
        contexts = torch.multinomial(self.initial, num, replacement=True, generator=generator)
        tokens = torch.empty(num, length, dtype=torch.long)
        for offset in range(self.n - 1):
            tokens[:, offset] = contexts // self.vocab_size ** (self.n - 2 - offset) % self.vocab_size
        cumulative = self.probabilities.cumsum(-1)
        for i in range(self.n - 1, length):
            tokens[:, i] = draw_rows(cumulative, contexts, generator)
            contexts = contexts % self._shift * self.vocab_size + tokens[:, i]
        return tokens

    def entropy_rate(self) -> EntropyRate:
        """Exact: h = sum_c pi(c) H(P(. | c)), in nats per token."""
        conditional_entropy = -torch.special.xlogy(self.probabilities, self.probabilities).sum(-1)
        return EntropyRate(float(self.initial @ conditional_entropy), 0.0)

    def _smooth(self, symbols, observed, lengths):
        """Forward-backward over the free digits of the context windows, segment by segment (see `ngram_posterior`)."""
        return ngram_posterior(self, symbols, observed, lengths)

    def _masked_log_posterior(self, symbols, shown, active, out):
        """With numba, the compiled kernel writes the logs itself, row by row (`ngram_masked_log_posterior`), so a
        row's logits are bit-identical in any batch; padded rows are compacted first (`compact_active`)."""
        num, width = symbols.shape
        if bool(active.all()):
            if ngram_masked_log_posterior(self, symbols, shown, torch.full((num,), width), out):
                return
        else:
            order, lengths = compact_active(active)
            shown_compact = shown.gather(1, order)
            compact = out.new_empty(num, order.shape[1], out.shape[-1])
            if ngram_masked_log_posterior(self, symbols.gather(1, order), shown_compact, lengths, compact):
                masked = ~shown_compact & (torch.arange(order.shape[1]) < lengths[:, None])
                rows, positions = masked.nonzero(as_tuple=True)
                out[rows, order[rows, positions]] = compact[rows, positions]
                return
        super()._masked_log_posterior(symbols, shown, active, out)

    def _emit(self, state_weights):
        """A context emits its last symbol: sum the weights of the contexts that end in each symbol."""
        return state_weights.view(*state_weights.shape[:-1], -1, self.vocab_size).sum(-2)
