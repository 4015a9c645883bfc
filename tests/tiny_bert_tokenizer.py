"""A BERT-family tokenizer built offline from a tiny vocab file: [CLS] text [SEP], a [SEP] token and no EOS."""

from transformers import BertTokenizerFast


BERT_WORDS = ["the", "cat", "sat", "a", "dog", "ran", "on", "mat"]


def bert_tokenizer(folder) -> BertTokenizerFast:
    """A BertTokenizerFast over [PAD] [UNK] [CLS] [SEP] [MASK] and BERT_WORDS, its vocab.txt written to `folder`."""
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *BERT_WORDS]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    return BertTokenizerFast(vocab_file=str(folder / "vocab.txt"))
