"""OracleDenoiser: a language's exact posterior p(x_i | unmasked tokens) behind the masked-LM interface."""

import torch
from torch import nn
from transformers import PreTrainedConfig
from transformers.modeling_outputs import MaskedLMOutput

from .input_checks import check_integer_ids, check_mask
from .tokenization import special_token_ids


class OracleDenoiser(nn.Module):
    r"""`model(input_ids, attention_mask=None) -> MaskedLMOutput(logits=...)`, with no training error.

    For a masked position i (id `config.mask_token_id`), `logits[b, i, v] = log p(x_i = v | symbols of row b)`: the
    exact posterior given every unmasked symbol, by forward-backward over the language's chain (`language.posterior`,
    written as logs by the language's `_masked_log_posterior`).
    Special-token columns get the dtype's lowest value, so [MASK] is never predicted. Every other position (a symbol,
    or padding / <bos> / <eos>, which are not part of the sequence) is copied through: its own id has logit 0.

    `language` is any `FormalLanguage` with an exact posterior (this module needs only that protocol: `vocab_size`,
    `_has_exact_posterior`, `_masked_log_posterior`, so `languages.base` imports it and not the reverse).

    Ids follow `tokenization`: symbols 0..V-1, then <mask>, <pad>, <bos>, <eos>; `config` carries `vocab_size = V + 4`
    and the special ids, as a diffusion decoder expects of a masked LM.
    """

    def __init__(self, language):
        has_exact_posterior = getattr(language, "_has_exact_posterior", None)
        if not callable(has_exact_posterior) or not has_exact_posterior():
            raise ValueError(
                f"An oracle needs a language whose posterior p(x_i | unmasked symbols) it can compute exactly; "
                f"{type(language).__name__} has none. Use NGramLanguage, HMMLanguage or a CopyLanguage of one, or "
                "give your FormalLanguage subclass a `_posterior`."
            )
        super().__init__()
        self.language = language
        self.config = PreTrainedConfig(vocab_size=language.vocab_size + 4, **special_token_ids(language.vocab_size))
        self.register_buffer("_anchor", torch.empty(0), persistent=False)

    @property
    def device(self) -> torch.device:
        return self._anchor.device

    @property
    def dtype(self) -> torch.dtype:
        return self._anchor.dtype

    @torch.no_grad()
    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        logits_to_keep: int | slice | torch.Tensor = 0,
        **kwargs,
    ) -> MaskedLMOutput:
        r"""
        input_ids: (batch, length) token ids; masked positions hold `config.mask_token_id`.
        attention_mask: 1 on real tokens; 0-positions are not part of the sequence.
        logits_to_keep: as in `MDMForMaskedGeneration`: an int keeps the last k positions, a slice or index tensor
            those positions; 0 keeps all. Other keyword arguments (caches, position ids) are accepted and unused.
        """
        if input_ids is None or input_ids.dim() != 2:
            raise ValueError("OracleDenoiser needs `input_ids` of shape (batch, length).")
        if isinstance(logits_to_keep, int) and logits_to_keep < 0:
            raise ValueError(f"logits_to_keep must be >= 0 (0 keeps every position), got {logits_to_keep}.")
        num_symbols, vocab_size = self.language.vocab_size, self.config.vocab_size
        ids = check_integer_ids(input_ids.detach().cpu(), "input_ids", "token ids")
        if bool(((ids < 0) | (ids >= vocab_size)).any()):
            raise ValueError(
                f"input_ids must lie in 0..{vocab_size - 1} (symbols 0..{num_symbols - 1}, then <mask>, <pad>, "
                "<bos>, <eos>); encode text with `language.tokenizer()`."
            )
        observed = ids < num_symbols
        masked = ids == self.config.mask_token_id
        active = observed | masked
        if attention_mask is not None:
            active &= check_mask(attention_mask.detach().cpu(), "attention_mask (a 2-D padding mask)", ids.shape)
        shown = observed & active
        logits = torch.full((*ids.shape, vocab_size), torch.finfo(torch.float32).min)
        # the language writes log p(x_i | shown) at the masked active positions only
        self.language._masked_log_posterior(torch.where(shown, ids, 0), shown, active, logits[..., :num_symbols])
        rows, columns = (~(masked & active)).nonzero(as_tuple=True)
        logits[rows, columns, ids[rows, columns]] = 0.0
        if isinstance(logits_to_keep, int):
            logits = logits[:, -logits_to_keep:] if logits_to_keep else logits
        else:
            logits = logits[:, logits_to_keep]
        return MaskedLMOutput(logits=logits.to(input_ids.device))
