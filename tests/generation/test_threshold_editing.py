"""The `threshold_editing` strategy (LLaDA 2.1's threshold decoding with token-to-token editing) inside generate():
with LLaDA 2.1's settings it returns the tokens of `decode_like_authors(model, "llada21_editing", ...)` (itself
token-identical to the authors' generate(), tests/test_llada2_samplers.py) with the same forwards, on the recorded
2.1 case that fills whole blocks and on constructed ones; a padded batch decodes each row as alone; the exact cache
gives the tokens and forwards of no cache; a streamer gets the returned sequence; forwards adapt to the block and are
counted in `nfe`.

Cases fill whole blocks (prompt + gen_length a multiple of block_size): the authors denoise the last block whole and
cut it, generate() only the positions it returns. The fixture's lm_head row of [MASK] is zero, so the authors' p
(a softmax that counts [MASK]'s logit 0) and generate()'s (without it) differ slightly; on these cases no p lies
between the two, so every decision is the same (a case where one did would fail here, not pass silently).
"""

import functools
import json
from pathlib import Path

import pytest
import torch

from hf_mdm.generation import STRATEGIES, DecodingCallback
from hf_mdm.generation.llada2_generation_config import llada2_generation_config
from hf_mdm.generation.published_samplers import decode_like_authors
from hf_mdm.generation.strategies import RevealStep
from hf_mdm.modeling_llada2_moe import LLaDA2MoeForMaskedDiffusion

from .test_streaming import RecordingStreamer


FIXTURE = Path(__file__).parents[1] / "fixtures" / "llada2-tiny"
MASK, EOS = 127, 124
IDS = {"eos_token_id": EOS, "pad_token_id": EOS}
PROMPTS = ([87, 63, 97, 33, 23], [6, 32, 110, 45, 89, 65, 23, 63], [5, 9, 14], [40, 41, 42, 43])


@functools.cache
def load(block_size):
    return LLaDA2MoeForMaskedDiffusion.from_pretrained(FIXTURE, mask_token_id=MASK, block_size=block_size).eval()


def mapped_config(model, **options):
    """generate()'s config for a LLaDA 2.1 generation_config.json holding `options`."""
    return llada2_generation_config({**IDS, **options}, model.config)


def authors(model, prompt, **options):
    """(tokens, forwards) of the authors' 2.1 sampler (the generated part, cut after the first eos)."""
    ids, calls = decode_like_authors(
        model, "llada21_editing", torch.tensor([prompt]), eos_id=EOS, return_model_calls=True, **options
    )
    return ids[0].tolist(), calls


def test_the_recorded_21_case_of_whole_blocks_is_returned_with_its_forwards():
    case = next(
        case
        for case in json.loads((FIXTURE / "reference_generate.json").read_text())["cases"]
        if case["name"] == "v21_block8_thr0.95_edit0.9_post16_ntt2"
    )
    options = {key: value for key, value in case["args"].items() if key not in ("eos_id", "mask_id")}
    model = load(options["block_length"])
    config = mapped_config(model, **options)
    assert config.strategy == "threshold_editing" and not hasattr(config, "llada2_decoding")
    out = model.generate(torch.tensor([case["prompt"]]), generation_config=config, return_dict_in_generate=True)
    assert out.sequences[0, len(case["prompt"]) :].tolist() == case["output"]
    assert out.nfe.tolist() == [case["n_forward"]]


# (block size, prompt, 2.1 options): whole blocks, with and without edits and post steps, eos or not.
CASES = [
    (4, PROMPTS[0], dict(gen_length=11, threshold=0.7, editing_threshold=0.5, max_post_steps=4)),
    (4, PROMPTS[0], dict(gen_length=7, threshold=0.5, editing_threshold=0.0, max_post_steps=2)),
    (4, PROMPTS[2], dict(gen_length=9, threshold=0.95, editing_threshold=0.0, max_post_steps=16, num_to_transfer=2)),
    (4, PROMPTS[3], dict(gen_length=8, threshold=0.7, editing_threshold=0.5, max_post_steps=0)),
    (8, PROMPTS[0], dict(gen_length=11, threshold=0.5, editing_threshold=0.0, max_post_steps=3)),
]


@pytest.mark.parametrize("block_size, prompt, options", CASES)
@pytest.mark.parametrize("cache", ["none", "exact"])
def test_mapped_21_settings_return_the_authors_tokens_and_forwards(block_size, prompt, options, cache):
    """Forwards are the authors' where no eos ends the text early (after the block holding the first eos the
    authors go on decoding blocks whose tokens they cut; generate() stops the row)."""
    model = load(block_size)
    expected, calls = authors(model, prompt, **options)
    out = model.generate(
        torch.tensor([prompt]), generation_config=mapped_config(model, **options), cache=cache,
        return_dict_in_generate=True,
    )  # fmt: skip
    generated = out.sequences[0, len(prompt) :].tolist()
    assert generated[: len(expected)] == expected and all(token == EOS for token in generated[len(expected) :])
    if EOS not in expected:
        assert out.nfe.tolist() == [calls]


def test_the_cases_edit_tokens_and_take_editing_steps():
    """The cases above exercise what sets the strategy apart: a revealed token replaced, and steps after a block
    has no [MASK] left (without them the forwards could not be the authors')."""
    model = load(4)
    prompt, options = PROMPTS[0], CASES[0][2]
    out = model.generate(
        torch.tensor([prompt]), generation_config=mapped_config(model, **options), output_history=True,
        return_dict_in_generate=True,
    )  # fmt: skip
    history = out.history
    edited = any(
        ((before != MASK) & (after != MASK) & (before != after))[0, len(prompt) :].any()
        for before, after in zip(history, history[1:])
    )
    assert edited
    complete_steps = sum(not (canvas[0, len(prompt) : len(prompt) + 3] == MASK).any() for canvas in history[:-1])
    assert complete_steps >= 1  # steps in block 1 (its 3 generated positions) after it was complete
    no_posts = model.generate(
        torch.tensor([prompt]), generation_config=mapped_config(model, **{**options, "max_post_steps": 0}),
        return_dict_in_generate=True,
    )  # fmt: skip
    assert int(no_posts.nfe[0]) < int(out.nfe[0])


@pytest.mark.parametrize("options", [CASES[0][2], CASES[2][2]])
def test_a_padded_batch_decodes_each_row_as_alone(options):
    model = load(4)
    width = max(len(prompt) for prompt in PROMPTS)
    ids = torch.tensor([[EOS] * (width - len(prompt)) + prompt for prompt in PROMPTS])
    mask = torch.tensor([[0] * (width - len(prompt)) + [1] * len(prompt) for prompt in PROMPTS])
    config = mapped_config(model, **{**options, "gen_length": 8})
    batch = model.generate(ids, attention_mask=mask, generation_config=config, return_dict_in_generate=True)
    for row, prompt in enumerate(PROMPTS):
        alone = model.generate(torch.tensor([prompt]), generation_config=config, return_dict_in_generate=True)
        assert batch.sequences[row, width - len(prompt) :].tolist() == alone.sequences[0].tolist()
        assert int(batch.nfe[row]) == int(alone.nfe[0])


class BlockEnds(DecodingCallback):
    """The canvas at the end of every block."""

    def __init__(self):
        self.canvases = []

    def on_block_end(self, state):
        self.canvases.append(state.canvas.clone())


def test_a_streamer_and_callbacks_see_final_blocks():
    """Edits stay inside the current block, so what is streamed when a block ends is final."""
    model = load(4)
    prompt, options = PROMPTS[0], CASES[1][2]
    streamer, blocks = RecordingStreamer(), BlockEnds()
    out = model.generate(
        torch.tensor([prompt]), generation_config=mapped_config(model, **options), streamer=streamer,
        callbacks=[blocks],
    )  # fmt: skip
    assert streamer.ended and torch.equal(torch.cat(streamer.final, dim=1), out)
    for canvas, end in zip(blocks.canvases, (8, 12)):
        assert torch.equal(canvas[:, :end], out[:, :end])


def test_forwards_adapt_and_ignore_the_step_budget():
    """Like `threshold`, the strategy ignores `steps`/`steps_per_block`: a block costs its [MASK] steps (at most
    ceil(W / num_to_transfer)) plus at most max_post_steps editing steps, each a forward counted in `nfe`."""
    model = load(4)
    prompt = PROMPTS[3]
    kwargs = dict(max_new_tokens=8, strategy="threshold_editing", threshold=0.99, eos_token_id=None,
                  strategy_kwargs=dict(editing_threshold=0.0, max_post_steps=2),
                  return_dict_in_generate=True)  # fmt: skip
    runs = [model.generate(torch.tensor([prompt]), **kwargs, **budget) for budget in ({}, {"steps_per_block": 1})]
    assert torch.equal(runs[0].sequences, runs[1].sequences) and torch.equal(runs[0].nfe, runs[1].nfe)
    out = runs[0]
    assert torch.equal(out.nfe, out.steps_per_block.sum(1))
    assert (out.steps_per_block <= 4 + 2).all() and (out.steps_per_block >= 2).all()


def step_view(scores, masked, revealed):
    scores, masked, revealed = torch.tensor([scores]), torch.tensor([masked]), torch.tensor([revealed])
    return RevealStep(masked=masked, scores=scores, counts=None, t=1.0, s=0.5, rows=torch.tensor([0]),
                      randomness=None, revealed=revealed)  # fmt: skip


@pytest.mark.parametrize(
    "num_to_transfer, expected",
    [(1, [False, True, False, False]), (2, [True, True, False, False]), (3, [True, True, False, True])],
)
def test_reveals_pass_the_threshold_strictly_else_the_most_confident(num_to_transfer, expected):
    """LLaDA 2.1's rule: p > threshold (0.5 does not pass 0.5) if at least num_to_transfer pass, else the
    num_to_transfer most confident masked positions; revealed positions are never revealed again."""
    strategy = STRATEGIES.build("threshold_editing", schedule=None, threshold=0.5, num_to_transfer=num_to_transfer)
    view = step_view([0.5, 0.6, 0.9, 0.2], [True, True, False, True], [False, False, True, False])
    reveal, remask, edit = strategy.transitions(view)
    assert reveal[0].tolist() == expected and not remask.any()


def test_edits_are_revealed_positions_whose_candidate_passes_the_editing_threshold_strictly():
    strategy = STRATEGIES.build("threshold_editing", schedule=None, editing_threshold=0.6)
    view = step_view([0.6, 0.7, 0.9, 0.8], [False, False, True, False], [True, True, False, False])
    _, _, edit = strategy.transitions(view)
    assert edit[0].tolist() == [False, True, False, False]  # 0.6 does not pass 0.6; never a masked or prompt one
