"""A BERT-family tokenizer built offline from a tiny vocabulary: [CLS] text [SEP], a [SEP] token and no EOS."""

from transformers import BertTokenizerFast


BERT_WORDS = ["the", "cat", "sat", "a", "dog", "ran", "on", "mat", "log", "and", "fast"]


def bert_tokenizer(words: list[str] = BERT_WORDS) -> BertTokenizerFast:
    """A BertTokenizerFast over [PAD] [UNK] [CLS] [SEP] [MASK] and `words` (transformers 5 reads `vocab`, a dict;
    it builds an empty WordPiece from `vocab_file` alone)."""
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    tokenizer = BertTokenizerFast(vocab={token: index for index, token in enumerate(vocab)})
    assert len(tokenizer) == len(vocab)
    return tokenizer
