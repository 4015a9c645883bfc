"""Stock masked LMs never generate their special tokens ([CLS], [SEP], [PAD], [UNK]) unless asked for, and the CLI's
`generate` takes any masked-LM folder."""

import pytest
import torch
from transformers import BertForMaskedLM, BertTokenizerFast
from transformers.utils import logging

from hf_mdm.cli import main
from hf_mdm.generation import enable_diffusion_generation

from ..conftest import tiny_bert_config


WORDS = ["the", "cat", "dog", "sat", "on", "a", "mat", "ran", "far", "away"]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


@pytest.fixture
def bert_tokenizer():
    return BertTokenizerFast(vocab={token: index for index, token in enumerate(SPECIALS + WORDS)})


def bert_that_prefers_special_tokens(tokenizer) -> BertForMaskedLM:
    """A tiny BERT whose output bias makes [UNK], [CLS], [SEP] and [PAD] its most likely predictions everywhere."""
    torch.manual_seed(0)
    config = tiny_bert_config(len(tokenizer), max_position_embeddings=32, pad_token_id=tokenizer.pad_token_id)
    model = BertForMaskedLM(config).eval()
    with torch.no_grad():
        model.cls.predictions.bias[[tokenizer.convert_tokens_to_ids(token) for token in SPECIALS[:4]]] = 50.0
    return model


def generated(model, tokenizer, **kwargs) -> set[int]:
    prompt = tokenizer(["the cat"], return_tensors="pt")
    out = model.generate(**prompt, max_new_tokens=6, steps=6, **kwargs)
    return set(out[0, prompt["input_ids"].shape[1] :].tolist())


def test_special_tokens_are_never_generated_with_the_tokenizer(bert_tokenizer):
    model = enable_diffusion_generation(bert_that_prefers_special_tokens(bert_tokenizer), bert_tokenizer)
    specials = set(bert_tokenizer.all_special_ids)
    assert model.generation_config.mask_token_id == bert_tokenizer.mask_token_id
    assert not generated(model, bert_tokenizer) & specials
    assert not generated(model, bert_tokenizer, do_sample=True, generator=torch.Generator().manual_seed(0)) & specials
    # asked for: suppress_tokens=None lets the model's preference through
    assert generated(model, bert_tokenizer, suppress_tokens=None) & specials


@pytest.mark.bad_input
def test_without_a_tokenizer_the_config_ids_are_suppressed_and_a_warning_names_the_fix(bert_tokenizer, caplog):
    logging.enable_propagation()
    logging.warning_once.cache_clear()  # an earlier test may have logged it once already
    try:
        with caplog.at_level("WARNING"):
            model = enable_diffusion_generation(bert_that_prefers_special_tokens(bert_tokenizer),
                                                mask_token_id=bert_tokenizer.mask_token_id)  # fmt: skip
    finally:
        logging.disable_propagation()
    assert model.generation_config.suppress_tokens == [bert_tokenizer.pad_token_id]
    assert any("enable_diffusion_generation(model, tokenizer)" in record.getMessage() for record in caplog.records)


def test_a_saved_suppress_list_is_kept_on_reload(bert_tokenizer, tmp_path):
    model = enable_diffusion_generation(bert_that_prefers_special_tokens(bert_tokenizer), bert_tokenizer)
    model.generation_config.suppress_tokens = [bert_tokenizer.unk_token_id]
    model.save_pretrained(tmp_path / "bert")
    reloaded = enable_diffusion_generation(BertForMaskedLM.from_pretrained(tmp_path / "bert"), bert_tokenizer)
    assert reloaded.generation_config.suppress_tokens == [bert_tokenizer.unk_token_id]


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "suppress_tokens,message",
    [([3, "x"], "list of token ids"), ([-1], "list of token ids"), ([10**6], "outside the model's vocabulary")],
    ids=["not_an_id", "negative_id", "id_outside_the_vocabulary"],
)
def test_bad_suppress_tokens_are_refused(bert_tokenizer, suppress_tokens, message):
    model = enable_diffusion_generation(bert_that_prefers_special_tokens(bert_tokenizer), bert_tokenizer)
    with pytest.raises(ValueError, match=message):
        generated(model, bert_tokenizer, suppress_tokens=suppress_tokens)


def test_cli_generate_takes_a_bert_folder(bert_tokenizer, tmp_path, capsys):
    folder = tmp_path / "bert"
    bert_that_prefers_special_tokens(bert_tokenizer).save_pretrained(folder)
    bert_tokenizer.save_pretrained(folder)
    assert main(["generate", "--model_name_or_path", str(folder), "--template", "the [MASK] sat on a [MASK]",
                 "--live", "false"]) == 0  # fmt: skip
    words = capsys.readouterr().out.split()
    assert len(words) == 6 and words[0] == "the" and words[2:5] == ["sat", "on", "a"]
    assert set(words) <= set(WORDS)


@pytest.mark.bad_input
def test_cli_generate_names_a_folder_that_is_not_a_masked_lm(tmp_path, bert_tokenizer, capsys):
    from transformers import GPT2Config, GPT2Model

    folder = tmp_path / "gpt2"
    GPT2Model(GPT2Config(n_layer=1, n_head=2, n_embd=16, vocab_size=len(bert_tokenizer))).save_pretrained(folder)
    bert_tokenizer.save_pretrained(folder)
    assert main(["generate", "--model_name_or_path", str(folder), "--template", "the [MASK]"]) == 2
    assert "is neither an hf-mdm folder, nor a folder in a format hf-mdm reads" in capsys.readouterr().err
