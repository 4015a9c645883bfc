"""generate()'s length: a default that fits the model, sizes checked before anything is allocated, empty batches."""

import pytest
import torch

from hf_mdm.generation.mixin import DEFAULT_MAX_NEW_TOKENS, MAX_CANVAS_POSITIONS

from .test_generate import MASK, PAD, PROMPT_MASK, PROMPTS, scripted, tiny_mdm


@pytest.mark.parametrize("prompt_length, expected", [(5, 27), (1, 31), (0, 32)])
def test_the_default_length_is_what_the_model_has_left_up_to_32(prompt_length, expected):
    model = tiny_mdm(max_position_embeddings=32)
    out = model.generate(torch.full((1, prompt_length), 5), steps=4)
    assert out.shape == (1, prompt_length + expected) and not (out == MASK).any()
    assert tiny_mdm().generate(PROMPTS, steps=4).shape == (2, 5 + DEFAULT_MAX_NEW_TOKENS)


def test_the_default_length_is_cut_to_whole_blocks():
    model = tiny_mdm(max_position_embeddings=32)
    assert model.generate(PROMPTS, steps=6, block_length=4).shape == (2, 5 + 24)  # 27 positions left: 6 blocks
    assert tiny_mdm().generate(PROMPTS, steps=6, block_length=5).shape == (2, 5 + 30)


@pytest.mark.bad_input
@pytest.mark.parametrize("prompt_length, block_length", [(32, None), (40, None), (30, 4)])
def test_a_prompt_that_leaves_no_room_is_refused_naming_the_sizes(prompt_length, block_length):
    model = tiny_mdm(max_position_embeddings=32)
    message = f"The prompt has {prompt_length} tokens and the model accepts 32 positions: no room for new tokens"
    with pytest.raises(ValueError, match=message):
        model.generate(torch.full((1, prompt_length), 5), block_length=block_length)


def test_a_prompt_with_mask_tokens_only_fills_them_by_default():
    prompt = torch.tensor([[5, MASK, 7]])
    assert tiny_mdm(max_position_embeddings=3).generate(prompt).shape == (1, 3)


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "arguments",
    [dict(max_new_tokens=10**12), dict(max_new_tokens=MAX_CANVAS_POSITIONS), dict(max_length=10**15)],
    ids=["max_new_tokens", "max_new_tokens_at_the_canvas_limit", "max_length"],
)
def test_huge_lengths_are_refused_before_the_canvas_is_allocated(arguments, monkeypatch):
    """Without max_position_embeddings (a scripted masked LM), the canvas size limit refuses them; torch.full is
    never reached (allocating first would raise a RuntimeError, or take the machine's memory)."""
    model = scripted([[10, 11, 12]])
    monkeypatch.setattr(torch.Tensor, "new_full", lambda *args, **kwargs: pytest.fail("the canvas was allocated"))
    with pytest.raises(ValueError, match="more than generate\\(\\) allocates"):
        model.generate(torch.tensor([[20, 21]]), steps=1, **arguments)


@pytest.mark.bad_input
def test_huge_num_return_sequences_is_refused_before_the_prompt_is_repeated(monkeypatch):
    model = tiny_mdm()
    monkeypatch.setattr(torch.Tensor, "repeat_interleave", lambda *args, **kwargs: pytest.fail("repeated"))
    with pytest.raises(ValueError, match="rows \\(after num_return_sequences\\)"):
        model.generate(PROMPTS, max_new_tokens=8, do_sample=True, num_return_sequences=10**9)


@pytest.mark.parametrize("settings", [dict(), dict(strategy="random", do_sample=True), dict(max_new_tokens=0)])
def test_an_empty_batch_returns_an_empty_result(settings):
    model = tiny_mdm()
    kwargs = {"max_new_tokens": 6, "steps": 3, **settings}
    out = model.generate(PROMPTS[:0], attention_mask=PROMPT_MASK[:0], **kwargs)
    new_tokens = kwargs["max_new_tokens"]
    assert out.shape == (0, 5 + new_tokens) and out.dtype == torch.long
    full = model.generate(PROMPTS[:0], return_dict_in_generate=True, output_history=True, **kwargs)
    assert full.sequences.shape == (0, 5 + new_tokens) and full.nfe.shape == (0,)
    assert full.steps_per_block.shape == (0, 1) and full.history == ()
    assert model.generate(generator=[], max_new_tokens=4).shape == (0, 4)


def test_the_default_length_of_an_empty_batch_is_the_default_of_any_row():
    assert tiny_mdm().generate(torch.full((0, 5), PAD)).shape == (0, 5 + DEFAULT_MAX_NEW_TOKENS)
