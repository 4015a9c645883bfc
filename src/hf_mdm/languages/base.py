"""FormalLanguage: a distribution over fixed-length symbol sequences whose probabilities are known exactly.

Symbols are the integers 0 .. V-1 and equal their token ids (see `tokenization`). Every quantity is in nats.
Subclasses implement four hooks on validated inputs: `_sample`, `_token_log_probs`, `_posterior`, `entropy_rate`;
a fifth, `_masked_log_posterior` (the oracle's logits), defaults to one computed from `_posterior`.
"""

from typing import NamedTuple

import datasets
import torch

from ..value_checks import check_integer
from .input_checks import check_integer_ids, check_mask
from .language_registry import LanguageOptions
from .oracle import OracleDenoiser
from .tokenization import build_tokenizer


class EntropyRate(NamedTuple):
    """Entropy rate h = lim H(X_1..X_L) / L in nats per token, with the standard error of its estimate (0 if exact)."""

    value: float
    standard_error: float


def log_or_lowest(probabilities: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """log p in `dtype`, with the dtype's lowest finite value where p = 0 (so softmax and argmax stay defined). log 0
    is never taken: it is also a slow path of the float64 log, about 8x per element."""
    impossible = probabilities == 0
    logs = probabilities.masked_fill(impossible, 1.0).log_().masked_fill_(impossible, torch.finfo(dtype).min)
    return logs.to(dtype)


class FormalLanguage:
    """Base class: validated public methods over the subclass hooks.

    `token_log_probs(x)[b, i] = log p(x_i | x_<i)`, the chain rule's factors, so `log_prob = token_log_probs.sum(-1)`
    exactly. A token is *invalid* when that conditional is 0 (log-probability -inf); a sequence is valid when none of
    its tokens is. Each subclass documents how tokens after an invalid one are scored.
    """

    vocab_size: int
    min_length: int = 1

    # ---- hooks -------------------------------------------------------------------------------------------------
    def _sample(self, num: int, length: int, generator: torch.Generator | None) -> torch.LongTensor:
        raise NotImplementedError

    def _token_log_probs(self, sequences: torch.LongTensor) -> torch.Tensor:
        raise NotImplementedError

    def _posterior(self, symbols: torch.LongTensor, observed: torch.BoolTensor, active: torch.BoolTensor):
        raise NotImplementedError

    def entropy_rate(self) -> EntropyRate:
        raise NotImplementedError

    @classmethod
    def from_options(cls, options: LanguageOptions) -> "FormalLanguage":
        """The language the shared options describe; a class registered with `@register_language` implements it."""
        raise NotImplementedError

    @classmethod
    def describe_options(cls, options: LanguageOptions) -> str:
        """One line naming the language `from_options(options)` builds."""
        raise NotImplementedError

    def _masked_log_posterior(self, symbols, shown, active, out: torch.Tensor) -> None:
        """`out[b, i, v] = log p(x_i = v | shown symbols)` at the masked active positions (`shown` False, `active`
        True), in out's dtype with its lowest value for log 0; other positions of `out` (num, length, V) are left as
        they are. The oracle's hot path: by default from `_posterior`; a language with a faster way overrides it."""
        posterior = self._posterior(symbols, shown, active)
        rows, columns = (~shown & active).nonzero(as_tuple=True)
        out[rows, columns] = log_or_lowest(posterior[rows, columns], out.dtype)

    def _has_exact_posterior(self) -> bool:
        """Whether `posterior` is implemented (by exact inference), which `OracleDenoiser` needs."""
        return type(self)._posterior is not FormalLanguage._posterior

    # ---- validation --------------------------------------------------------------------------------------------
    def check_length(self, length: int) -> int:
        """`length` as an int, or a ValueError unless it is a length this language defines."""
        length = check_integer(length, "length")
        if length < self.min_length:
            raise ValueError(
                f"{type(self).__name__} defines sequences of at least {self.min_length} tokens, got length {length}. "
                f"Use length >= {self.min_length}."
            )
        return length

    def check_sequences(self, sequences) -> torch.LongTensor:
        """Return `sequences` as a (num, length) LongTensor of symbols, or raise a ValueError saying what to fix."""
        try:
            sequences = torch.as_tensor(sequences)
        except (ValueError, TypeError):
            raise ValueError(
                "Sequences must form a rectangular (num_sequences, length) array of symbol ids; score sequences of "
                "different lengths in separate calls."
            ) from None
        if sequences.dim() != 2:
            raise ValueError(
                f"Expected a (num_sequences, length) batch, got shape {tuple(sequences.shape)}; "
                "for one sequence pass `sequence[None]`."
            )
        if sequences.shape[0] == 0:
            raise ValueError("Got no sequences to score; pass at least one.")
        sequences = check_integer_ids(sequences, "sequences", "symbol ids")
        self.check_length(sequences.shape[1])
        lowest, highest = torch.aminmax(sequences)
        if lowest < 0 or highest >= self.vocab_size:
            bad = sequences[(sequences < 0) | (sequences >= self.vocab_size)]
            raise ValueError(
                f"Token ids must be symbols 0..{self.vocab_size - 1} of this language; found "
                f"{sorted(set(bad.tolist()))[:5]}. "
                f"Strip special tokens first (ids {self.vocab_size}..{self.vocab_size + 3} are <mask>, <pad>, "
                "<bos>, <eos>), e.g. `ids[:, prompt_length:]`."
            )
        return sequences

    # ---- public API --------------------------------------------------------------------------------------------
    def sample(self, num: int, length: int, generator: torch.Generator | None = None) -> torch.LongTensor:
        """Draw `num` sequences of `length` symbols exactly from the language, shape (num, length)."""
        if generator is not None and not isinstance(generator, torch.Generator):
            raise ValueError(f"generator must be a torch.Generator or None, got {type(generator).__name__}.")
        return self._sample(check_integer(num, "num (sequences)", 1), self.check_length(length), generator)

    def token_log_probs(self, sequences) -> torch.Tensor:
        """log p(x_i | x_<i) for every token, float64 of shape (num, length); -inf marks an invalid token."""
        return self._token_log_probs(self.check_sequences(sequences))

    def log_prob(self, sequences) -> torch.Tensor:
        """Exact log p(x) per sequence, float64 of shape (num,); -inf for invalid sequences."""
        return self.token_log_probs(sequences).sum(-1)

    def invalid_token_mask(self, sequences) -> torch.BoolTensor:
        """True where a token has conditional probability 0 given its context."""
        return torch.isneginf(self.token_log_probs(sequences))

    def is_valid(self, sequences) -> torch.BoolTensor:
        """True for sequences of positive probability."""
        return ~self.invalid_token_mask(sequences).any(-1)

    def posterior(self, symbols, observed, active=None) -> torch.Tensor:
        """p(x_i = v | the observed tokens), float64 of shape (num, length, V), by exact inference.

        `observed` marks the positions whose symbol is given (the others are masked); inactive positions
        (`active` False, e.g. padding) are not part of the sequence: the sequence is the active positions in order.
        Observed tokens that contradict the observed tokens before them (probability 0) are ignored, so the
        posterior is always defined. Rows at observed positions are not meant for use (the oracle copies those tokens).
        """
        symbols = torch.as_tensor(symbols)
        if symbols.dim() != 2:
            raise ValueError(f"symbols must be a (num, length) tensor, got shape {tuple(symbols.shape)}.")
        symbols = check_integer_ids(symbols, "symbols", "symbol ids")
        observed = check_mask(observed, "observed", symbols.shape)
        active = torch.ones_like(observed) if active is None else check_mask(active, "active", symbols.shape)
        shown = observed & active
        if bool(((symbols[shown] < 0) | (symbols[shown] >= self.vocab_size)).any()):
            raise ValueError(f"Observed symbols must lie in 0..{self.vocab_size - 1}.")
        return self._posterior(torch.where(shown, symbols, 0), shown, active)

    def tokenizer(self):
        """A `PreTrainedTokenizerFast` whose ids 0..V-1 are this language's symbols (see `tokenization`)."""
        return build_tokenizer(self.vocab_size)

    def oracle_model(self):
        """The exact denoiser p(x_i | unmasked tokens) as a masked-LM module (see `OracleDenoiser`)."""
        return OracleDenoiser(self)

    def dataset(self, num: int, length: int, seed: int = 0) -> datasets.Dataset:
        """`num` samples of `length` tokens as a `datasets.Dataset` with `input_ids` and `text` ("3 0 2 ...")."""
        ids = self.sample(num, length, torch.Generator().manual_seed(check_integer(seed, "seed")))
        rows = ids.tolist()
        return datasets.Dataset.from_dict(
            {"input_ids": rows, "text": [" ".join(map(str, row)) for row in rows]},
            features=datasets.Features(
                {"input_ids": datasets.Sequence(datasets.Value("int64")), "text": datasets.Value("string")}
            ),
        )
