"""Shared fixtures: tiny configs, a word-level tokenizer and a toy corpus. Nothing here touches the network."""

import importlib.util
import os


os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_DISABLED", "true")

import pytest  # noqa: E402
import torch  # noqa: E402
from tokenizers import Tokenizer, models, pre_tokenizers  # noqa: E402
from transformers import BertConfig, PreTrainedTokenizerFast  # noqa: E402

from hf_mdm import MDMConfig  # noqa: E402


TOY_WORDS = ["the", "cat", "dog", "sat", "ran", "on", "a", "mat", "log", "fast", "slowly", "and"]


def word_tokenizer(words=TOY_WORDS, with_mask=True) -> PreTrainedTokenizerFast:
    """A whitespace word-level tokenizer: specials first ([PAD]=0, [UNK]=1, [BOS]=2, [EOS]=3, [MASK]=4), then words."""
    specials = ["[PAD]", "[UNK]", "[BOS]", "[EOS]"] + (["[MASK]"] if with_mask else [])
    vocab = {token: i for i, token in enumerate(specials + list(words))}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    special = {"pad_token": "[PAD]", "unk_token": "[UNK]", "bos_token": "[BOS]", "eos_token": "[EOS]"}
    if with_mask:
        special["mask_token"] = "[MASK]"
    return PreTrainedTokenizerFast(tokenizer_object=backend, **special)


def toy_corpus(num: int = 64, seed: int = 0) -> list[str]:
    """Sentences of a tiny deterministic grammar: '<subject> <verb> on a <object>' with a little variation."""
    generator = torch.Generator().manual_seed(seed)
    subjects, verbs, objects = ["the cat", "the dog"], ["sat", "ran"], ["mat", "log"]
    sentences = []
    for _ in range(num):
        s, v, o = (int(torch.randint(2, (1,), generator=generator)) for _ in range(3))
        sentences.append(f"{subjects[s]} {verbs[v]} on a {objects[o]}")
    return sentences


def tiny_config(**overrides) -> MDMConfig:
    values = dict(
        vocab_size=len(TOY_WORDS) + 5,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        mask_token_id=4,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=3,
    )
    values.update(overrides)
    return MDMConfig(**values)


def load_script(path):
    """A script of the repository (a benchmark, an example) imported as a module, named after its file."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def row_generators(rows) -> list[torch.Generator]:
    """One generator per batch row, seeded 100 + row: a row's draws do not depend on its batch mates."""
    return [torch.Generator().manual_seed(100 + row) for row in rows]


def decode_rows(model, prompts, prompt_mask, rows, alone=False, **generate_kwargs):
    """generate() on rows `rows` of the left-padded `prompts`, one generator per row (`alone`: a single row with its
    padding dropped, to compare with the same row decoded in a batch)."""
    rows = list(rows)
    ids, mask = prompts[rows], prompt_mask[rows]
    if alone:
        real = mask[0].bool()
        ids, mask = ids[:, real], mask[:, real]
    with torch.no_grad():
        return model.generate(ids, attention_mask=mask, generator=row_generators(rows), **generate_kwargs)


def tiny_bert_config(vocab_size: int, **overrides) -> BertConfig:
    """A tiny stock BERT: hidden 16, one layer of 2 heads, feed-forward 32, BERT's other defaults; `overrides`
    replace or add fields (e.g. `max_position_embeddings`, `pad_token_id`, `is_decoder`)."""
    values = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    values.update(overrides)
    return BertConfig(vocab_size=vocab_size, **values)


@pytest.fixture
def tokenizer():
    return word_tokenizer()


@pytest.fixture
def config():
    return tiny_config()
