"""The tokenizer shared by every formal language: symbols first, then the special tokens.

Id layout, for a language over V symbols (`len(tokenizer) == V + 5`):

    ids 0 .. V-1   the language's symbols, written "0" .. "V-1"; symbol s has token id s
    id  V          <mask>
    id  V + 1      <pad>
    id  V + 2      <bos>
    id  V + 3      <eos>
    id  V + 4      <unk>   (any word that is not a symbol; never a symbol of the language, so an <unk> sequence is
                           invalid, and the exact oracle, whose vocabulary stops at V + 3, refuses it)

so sampled sequences are token ids as they are, and generated ids below V are scored by the language directly.
Text is the symbols separated by spaces ("3 0 2"); no special token is added when encoding.
"""

from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast


SPECIAL_TOKENS = {"mask_token": "<mask>", "pad_token": "<pad>", "bos_token": "<bos>", "eos_token": "<eos>"}
UNK_TOKEN = "<unk>"


def special_token_ids(vocab_size: int) -> dict[str, int]:
    """`{"mask_token_id": V, "pad_token_id": V + 1, "bos_token_id": V + 2, "eos_token_id": V + 3}`."""
    return {f"{name}_id": vocab_size + offset for offset, name in enumerate(SPECIAL_TOKENS)}


def build_tokenizer(vocab_size: int) -> PreTrainedTokenizerFast:
    """A word-level `PreTrainedTokenizerFast` over the symbols "0" .. "V-1" plus <mask>, <pad>, <bos>, <eos>, <unk>."""
    if vocab_size < 1:
        raise ValueError(f"A language needs at least one symbol, got vocab_size={vocab_size}.")
    vocab = {str(symbol): symbol for symbol in range(vocab_size)}
    vocab.update({token: vocab_size + offset for offset, token in enumerate(SPECIAL_TOKENS.values())})
    vocab[UNK_TOKEN] = len(vocab)
    backend = Tokenizer(models.WordLevel(vocab, unk_token=UNK_TOKEN))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, model_max_length=1 << 30, unk_token=UNK_TOKEN, **SPECIAL_TOKENS
    )
