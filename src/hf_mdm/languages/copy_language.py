"""CopyLanguage: the second half repeats the first; validity couples positions i and i + L/2 (the worst case)."""

import torch

from .base import EntropyRate, FormalLanguage
from .language_registry import LanguageOptions, register_language
from .ngram import NGramLanguage


@register_language("copy")
class CopyLanguage(FormalLanguage):
    r"""x_{1..L/2} ~ `base`, and x_{L/2 + i} = x_i: p(x) = p_base(x_{1..L/2}) * 1[second half == first half].

    Every token of the second half is determined by its partner, so two partners revealed in the same parallel step
    disagree with probability 1 - sum_v p(v)^2 while each on its own is a likely token: token error stays low, sequence
    error grows with the number of pairs revealed together. Lengths are even and at least 2 * base.min_length.

    Entropy rate: h_base / 2 (the second half carries no information).
    """

    def __init__(self, base: FormalLanguage):
        if not isinstance(base, FormalLanguage):
            raise ValueError(f"base must be a FormalLanguage (e.g. NGramLanguage), got {type(base).__name__}.")
        self.base = base
        self.vocab_size = base.vocab_size
        self.min_length = 2 * base.min_length

    @classmethod
    def from_options(cls, options: LanguageOptions) -> "CopyLanguage":
        """The copy of the n-gram language the same options build."""
        return cls(NGramLanguage.from_options(options))

    @classmethod
    def describe_options(cls, options: LanguageOptions) -> str:
        return f"copy of an {NGramLanguage.describe_options(options)}"

    def __repr__(self) -> str:
        return f"CopyLanguage({self.base!r})"

    def check_length(self, length):
        length = super().check_length(length)
        if length % 2:
            raise ValueError(f"CopyLanguage sequences have even length (two equal halves), got length {length}.")
        return length

    def _sample(self, num, length, generator):
        half = self.base.sample(num, length // 2, generator)
        return torch.cat([half, half], dim=1)

    def _token_log_probs(self, sequences):
        """First half: the base language's conditionals; second half: log 1 where it copies, -inf where not."""
        half = sequences.shape[1] // 2
        first, second = sequences[:, :half], sequences[:, half:]
        copied = torch.where(second == first, 0.0, -torch.inf).to(torch.float64)
        return torch.cat([self.base._token_log_probs(first), copied], dim=1)

    def _has_exact_posterior(self) -> bool:
        return self.base._has_exact_posterior()

    def _posterior(self, symbols, observed, active):
        """Partners share one posterior: the base posterior given the first half, each slot filled from either copy;
        a slot observed in one copy is that symbol for sure. When both copies are observed and disagree, the
        first-half symbol is used.
        """
        if not bool(active.all()):
            raise ValueError(
                "CopyLanguage's posterior needs whole sequences without padding or special tokens (its halves are "
                "defined by position); pass unpadded rows of equal length."
            )
        self.check_length(symbols.shape[1])
        half = symbols.shape[1] // 2
        merged = torch.where(observed[:, :half], symbols[:, :half], symbols[:, half:])
        known = observed[:, :half] | observed[:, half:]
        posterior = self.base._posterior(merged, known, active[:, :half])
        certain = torch.nn.functional.one_hot(merged, self.vocab_size).to(posterior.dtype)
        posterior = torch.where(known[..., None], certain, posterior)
        return torch.cat([posterior, posterior], dim=1)

    def entropy_rate(self) -> EntropyRate:
        value, standard_error = self.base.entropy_rate()
        return EntropyRate(value / 2, standard_error / 2)
