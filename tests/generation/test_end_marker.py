"""BERT-family tokenizers end every prompt with [SEP]. The model sees it after the generated region ([CLS] prompt
new tokens [SEP], as in pretraining) while the returned sequence keeps the prompt as given, the new tokens after it
(so `out[:, prompt_length:]` are the new tokens, as for every model)."""

import pytest
import torch
from transformers import BertForMaskedLM, BertTokenizerFast, pipeline

from hf_mdm.generation import enable_diffusion_generation

from ..conftest import tiny_bert_config, tiny_config, word_tokenizer


WORDS = ["the", "cat", "dog", "sat", "on", "a", "mat", "ran", "far", "away"]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


@pytest.fixture
def bert_tokenizer():
    tokenizer = BertTokenizerFast(vocab={token: index for index, token in enumerate(SPECIALS + WORDS)})
    tokenizer.padding_side = "left"
    return tokenizer


def tiny_bert(tokenizer):
    torch.manual_seed(0)
    config = tiny_bert_config(len(tokenizer), num_hidden_layers=2, max_position_embeddings=32, pad_token_id=0)
    return enable_diffusion_generation(BertForMaskedLM(config).eval(), tokenizer)


def seen_by_the_model(model):
    inputs = []
    model.register_forward_pre_hook(lambda module, args, kwargs: inputs.append(kwargs["input_ids"]), with_kwargs=True)
    return inputs


def test_the_tokenizers_end_marker_is_found(bert_tokenizer):
    assert tiny_bert(bert_tokenizer).generation_config.sep_token_id == bert_tokenizer.sep_token_id
    assert enable_diffusion_generation(tiny_bert(bert_tokenizer), word_tokenizer()).generation_config.sep_token_id == 3
    word_level = enable_diffusion_generation(tiny_bert(bert_tokenizer), mask_token_id=4)
    word_level.generation_config.sep_token_id = None
    assert enable_diffusion_generation(word_level, word_tokenizer()).generation_config.sep_token_id is None


def test_the_model_sees_sep_after_the_new_tokens_and_the_output_keeps_the_prompt(bert_tokenizer):
    model = tiny_bert(bert_tokenizer)
    prompt = bert_tokenizer(["the cat sat"], return_tensors="pt")
    seen = seen_by_the_model(model)
    out = model.generate(**prompt, max_new_tokens=4, steps=4)
    length, sep = prompt["input_ids"].shape[1], bert_tokenizer.sep_token_id
    assert torch.equal(out[:, :length], prompt["input_ids"])  # [CLS] the cat sat [SEP], as given
    assert not (out[:, length:] == bert_tokenizer.mask_token_id).any()
    for canvas in seen:  # [CLS] the cat sat <4 positions> [SEP]
        assert torch.equal(canvas[0, : length - 1], prompt["input_ids"][0, :-1]) and canvas[0, -1] == sep
    revealed = seen[-1][0, length - 1 : -1] != bert_tokenizer.mask_token_id  # the last forward's canvas
    assert revealed.sum() == 3 and torch.equal(seen[-1][0, length - 1 : -1][revealed], out[0, length:][revealed])


def test_moving_sep_decodes_as_filling_masks_placed_before_it(bert_tokenizer):
    """Generating after "[CLS] the cat [SEP]" is exactly infilling "[CLS] the cat [MASK] x 4 [SEP]"."""
    model = tiny_bert(bert_tokenizer)
    prompt = bert_tokenizer(["the cat"], return_tensors="pt")["input_ids"]
    generated = model.generate(prompt, max_new_tokens=4, steps=4)
    mask, sep = torch.full((1, 4), bert_tokenizer.mask_token_id), prompt[:, -1:]
    infilled = model.generate(torch.cat([prompt[:, :-1], mask, sep], 1), max_new_tokens=0, steps=4)
    assert torch.equal(generated[:, 4:], infilled[:, 3:-1])


def test_left_padded_bert_prompts_decode_as_alone(bert_tokenizer):
    model = tiny_bert(bert_tokenizer)
    batch = bert_tokenizer(["the cat sat on a mat", "the dog"], return_tensors="pt", padding=True)
    out = model.generate(**batch, max_new_tokens=4, steps=4)
    alone = model.generate(**bert_tokenizer(["the dog"], return_tensors="pt"), max_new_tokens=4, steps=4)
    assert torch.equal(out[1, -alone.shape[1] :], alone[0])


def test_an_mdm_with_an_end_marker_sees_it_at_the_position_after_the_new_tokens():
    """MDMForMaskedGeneration takes position ids: the reordered canvas must be numbered in the model's order, so that
    generating after "<bos> 5 6 [SEP]" is exactly infilling "<bos> 5 6 [MASK] x 4 [SEP]"."""
    from hf_mdm import MDMForMaskedGeneration

    torch.manual_seed(0)
    model = MDMForMaskedGeneration(tiny_config()).eval()
    sep, mask = 1, model.config.mask_token_id
    model.generation_config.sep_token_id = sep
    generated = model.generate(torch.tensor([[2, 5, 6, sep]]), max_new_tokens=4, steps=4)
    infilled = model.generate(torch.tensor([[2, 5, 6, mask, mask, mask, mask, sep]]), max_new_tokens=0, steps=4)
    assert torch.equal(generated[:, 4:], infilled[:, 3:-1])
    # beside an empty (fully padded) prompt, whose [SEP] column is padding: every row's real tokens are numbered
    # 0, 1, ... in the order the model sees them
    seen = []
    model.register_forward_pre_hook(lambda module, args, kwargs: seen.append(kwargs), with_kwargs=True)
    prompts, prompt_mask = torch.tensor([[2, 5, 6, sep], [0, 0, 0, 0]]), torch.tensor([[1] * 4, [0] * 4])
    batch = model.generate(prompts, attention_mask=prompt_mask, max_new_tokens=4, steps=4)
    assert torch.equal(batch[:1], generated) and seen
    for kwargs in seen:
        for ids, real in zip(kwargs["position_ids"], kwargs["attention_mask"].bool()):
            assert ids[real].tolist() == list(range(int(real.sum())))


@pytest.mark.bad_input
def test_prompts_that_end_differently_are_refused(bert_tokenizer):
    model = tiny_bert(bert_tokenizer)
    ends_with_sep = bert_tokenizer(["the cat"], return_tensors="pt")["input_ids"]
    plain = bert_tokenizer(["the dog"], add_special_tokens=False, return_tensors="pt")["input_ids"]
    plain = torch.cat([torch.full((1, 2), bert_tokenizer.pad_token_id), plain], 1)
    mask = torch.tensor([[1, 1, 1, 1], [0, 0, 1, 1]])
    with pytest.raises(ValueError, match="Some prompts end with the tokenizer's end marker"):
        model.generate(torch.cat([ends_with_sep, plain]), attention_mask=mask, max_new_tokens=2)


@pytest.mark.bad_input
def test_a_block_cache_cannot_reorder_the_canvas():
    from hf_mdm import MDMForMaskedGeneration

    model = MDMForMaskedGeneration(tiny_config()).eval()
    model.generation_config.sep_token_id = 3
    with pytest.raises(ValueError, match="block caches cannot reorder the canvas"):
        model.generate(torch.tensor([[2, 5, 6, 3]]), max_new_tokens=4, block_length=2, cache="prefix")


def test_the_pipeline_text_of_a_bert_prompt(bert_tokenizer):
    model = tiny_bert(bert_tokenizer)
    generator = pipeline("text-generation", model=model, tokenizer=bert_tokenizer)
    full = generator("the cat", max_new_tokens=3, steps=3)[0]["generated_text"]
    new = generator("the cat", max_new_tokens=3, steps=3, return_full_text=False)[0]["generated_text"]
    ids = model.generate(**bert_tokenizer(["the cat"], return_tensors="pt"), max_new_tokens=3, steps=3)[0]
    assert new.split() == bert_tokenizer.decode(ids[4:], skip_special_tokens=True).split() and len(new.split()) == 3
    assert full.split() == ["the", "cat", *new.split()]
