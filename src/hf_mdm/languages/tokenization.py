"""The tokenizer shared by every formal language: symbols first, then the four special tokens.

Id layout, for a language over V symbols (`len(tokenizer) == V + 4`):

    ids 0 .. V-1   the language's symbols, written "0" .. "V-1"; symbol s has token id s
    id  V          <mask>
    id  V + 1      <pad>
    id  V + 2      <bos>
    id  V + 3      <eos>

so sampled sequences are token ids as they are, and generated ids below V are scored by the language directly.
Text is the symbols separated by spaces ("3 0 2"); no special token is added when encoding.
"""

from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast


SPECIAL_TOKENS = {"mask_token": "<mask>", "pad_token": "<pad>", "bos_token": "<bos>", "eos_token": "<eos>"}


def special_token_ids(vocab_size: int) -> dict[str, int]:
    """`{"mask_token_id": V, "pad_token_id": V + 1, "bos_token_id": V + 2, "eos_token_id": V + 3}`."""
    return {f"{name}_id": vocab_size + offset for offset, name in enumerate(SPECIAL_TOKENS)}


def build_tokenizer(vocab_size: int) -> PreTrainedTokenizerFast:
    """A word-level `PreTrainedTokenizerFast` over the symbols "0" .. "V-1" plus <mask>, <pad>, <bos>, <eos>."""
    if vocab_size < 1:
        raise ValueError(f"A language needs at least one symbol, got vocab_size={vocab_size}.")
    vocab = {str(symbol): symbol for symbol in range(vocab_size)}
    vocab.update({token: vocab_size + offset for offset, token in enumerate(SPECIAL_TOKENS.values())})
    backend = Tokenizer(models.WordLevel(vocab, unk_token=None))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=backend, model_max_length=1 << 30, **SPECIAL_TOKENS)
