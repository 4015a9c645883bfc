"""ExactAutoregressiveLM: a Markov language's exact next-token distribution as a transformers causal LM, the AR row of
an oracle's step-vs-error table.

For a sequence that starts with <bos>, the logits at position t are log p(x_{t+1} = v | the symbols up to t): the
exact posterior of a masked column appended after them (`language.posterior`, forward-backward over the chain). A
hidden-Markov language (`NGramLanguage`, `HMMLanguage`) is a chain whose sequences of length L are the first L
symbols of longer ones, so this posterior is the conditional of every length, and `generate(do_sample=True)` draws
exact samples one token per forward pass (the autoregressive model with no training error). Languages whose sequences
are not prefixes of longer ones (`CopyLanguage`) have no such conditional and are refused.

`sweep_steps(oracle, ..., autoregressive_model=ExactAutoregressiveLM(language))` puts that row beside the oracle's
diffusion rows; decoding the oracle with block size 1 draws from the same distribution, so its row must agree with
the AR row within their intervals.
"""

import torch
from transformers import GenerationConfig, GenerationMixin, PreTrainedConfig, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutput

from ..languages import HiddenMarkovLanguage
from ..languages.tokenization import special_token_ids


class ExactAutoregressiveConfig(PreTrainedConfig):
    """The token ids of a language's tokenizer (`languages.tokenization`): V symbols, then the special tokens."""

    model_type = "hf_mdm_exact_autoregressive"


class ExactAutoregressiveLM(PreTrainedModel, GenerationMixin):
    """`model(input_ids) -> CausalLMOutput(logits=log p(next symbol | symbols so far))`; no parameters, no cache."""

    config_class = ExactAutoregressiveConfig

    def __init__(self, language):
        if not isinstance(language, HiddenMarkovLanguage):
            raise ValueError(
                f"An exact autoregressive model needs a language whose sequences are prefixes of longer ones (a "
                f"hidden-Markov chain: NGramLanguage, HMMLanguage); {type(language).__name__} is not one."
            )
        ids = special_token_ids(language.vocab_size)
        super().__init__(ExactAutoregressiveConfig(vocab_size=language.vocab_size + 4, **ids))
        self.language = language
        special = {name: ids[name] for name in ("bos_token_id", "pad_token_id", "eos_token_id")}
        self.generation_config = GenerationConfig(use_cache=False, **special)  # every forward reads the whole prefix
        self.register_buffer("_anchor", torch.empty(0), persistent=False)

    @property
    def device(self) -> torch.device:
        """Where `generate()` puts its tensors (the model has no parameters to ask)."""
        return self._anchor.device

    @torch.no_grad()
    def forward(self, input_ids: torch.LongTensor, attention_mask=None, logits_to_keep: int = 0, **kwargs):
        r"""
        input_ids: (batch, length) <bos> (after any left padding) then symbols; <pad> and <bos> are not part of the
            sequence, any other special token is refused.
        logits_to_keep: the last k positions (0: every position), as transformers' causal LMs.
        """
        num_symbols = self.language.vocab_size
        ids = input_ids.detach().cpu()
        context = (ids == self.config.bos_token_id) | (ids == self.config.pad_token_id)
        if bool(((ids < 0) | ((ids >= num_symbols) & ~context)).any()):
            raise ValueError(
                f"ExactAutoregressiveLM reads <bos>, <pad> and the symbols 0..{num_symbols - 1}; got other ids."
            )
        observed = ids < num_symbols
        width = ids.shape[1]
        kept = range(width - logits_to_keep if logits_to_keep else 0, width)
        logits = torch.full((ids.shape[0], len(kept), self.config.vocab_size), torch.finfo(torch.float32).min)
        for column, position in enumerate(kept):
            # the symbols up to `position`, then masked columns up to the language's shortest sequence
            padding = max(1, self.language.min_length - int(observed[:, : position + 1].sum(1).min()))
            shown = torch.cat([observed[:, : position + 1], observed.new_zeros(ids.shape[0], padding)], 1)
            symbols = torch.cat([ids[:, : position + 1], ids.new_zeros(ids.shape[0], padding)], 1).where(shown, 0)
            active = shown.clone()
            active[:, position + 1 :] = True
            posterior = self.language.posterior(symbols, shown, active)[:, position + 1]
            logits[:, column, :num_symbols] = posterior.log().float()
        return CausalLMOutput(logits=logits.to(input_ids.device))


__all__ = ["ExactAutoregressiveLM"]
