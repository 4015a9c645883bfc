"""Decoding a block-causal model (`MDMConfig(block_size=B)`): the plan's blocks are the model's (each row's own,
with left padding and mixed prompt lengths), the exact cache gives the tokens of uncached decoding with every
strategy and runs only the current window, rows decode alone as in a batch, a row stops at the block holding its
EOS, and what cannot be decoded exactly is refused before any forward."""

import pytest
import torch

from hf_mdm.generation import (
    DENOISERS,
    STRATEGIES,
    DiffusionGenerationConfig,
    DiffusionSampler,
    ExactBlockCache,
)

from ..conftest import decode_rows, row_generators
from .test_bad_inputs import forwards
from .test_generate import EOS, MASK, PAD, tiny_mdm
from .test_streaming import RecordingStreamer


BLOCK = 3
NEW_TOKENS = 8
# Left padding, mixed prompt lengths (blocks end at other columns in every row), a prompt [MASK], a one-token prompt.
PROMPTS = torch.tensor(
    [
        [PAD, PAD, PAD, 5, 6],
        [8, 9, 10, 11, 12],
        [PAD, 7, MASK, 7, 8],
        [PAD, PAD, PAD, PAD, 13],
    ]
)
PROMPT_MASK = (PROMPTS != PAD).long()
SAMPLES = ("random", "remdm")  # strategies whose reveals are drawn


def block_model(logits_shift: int = 0, block_size: int = BLOCK, dtype=torch.float64, **overrides):
    """A tiny block-causal MDM; float64 by default, so that tokens never hinge on rounding ties."""
    return tiny_mdm(block_size=block_size, logits_shift=logits_shift, **overrides).to(dtype)


def decode(model, rows=(0, 1, 2, 3), alone=False, **kwargs):
    """generate() on PROMPTS rows `rows`, one generator per row (`alone`: one row, its padding dropped)."""
    return decode_rows(
        model, PROMPTS, PROMPT_MASK, rows, alone, max_new_tokens=NEW_TOKENS, pad_token_id=PAD,
        return_dict_in_generate=True, **kwargs,
    )  # fmt: skip


def test_the_plan_cuts_each_row_at_its_own_block_boundaries():
    sampler = DiffusionSampler.from_config(DiffusionGenerationConfig(mask_token_id=MASK), block_size=BLOCK)
    sampler.prepare(PROMPTS, PROMPT_MASK, max_new_tokens=NEW_TOKENS)
    # real positions 0.. start at columns 3, 0, 1 and 4; a row's first block is the model block holding its first
    # position to fill (row 2: its prompt [MASK]); the canvas (13 columns) ends inside every row's last block; row 3
    # has 3 blocks, so its fourth is empty
    assert [block.starts.tolist() for block in sampler.blocks] == [[3, 3, 1, 4], [6, 6, 4, 7], [9, 9, 7, 10],
                                                                   [12, 12, 10, 13]]  # fmt: skip
    assert [block.ends.tolist() for block in sampler.blocks] == [[6, 6, 4, 7], [9, 9, 7, 10], [12, 12, 10, 13],
                                                                 [13, 13, 13, 13]]  # fmt: skip
    assert [block.end for block in sampler.blocks] == [7, 10, 13, 13]
    assert [block.num_steps for block in sampler.blocks] == [BLOCK] * 4  # unset budget: one step per position


@pytest.mark.parametrize("logits_shift", [0, 1])
@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_the_exact_cache_decodes_the_tokens_of_uncached_decoding(strategy, logits_shift):
    model = block_model(logits_shift)
    cached = decode(model, strategy=strategy, cache="exact", eos_token_id=EOS)
    uncached = decode(model, strategy=strategy, cache="none", eos_token_id=EOS)
    assert torch.equal(cached.sequences, uncached.sequences)
    assert torch.equal(cached.nfe, uncached.nfe)
    assert torch.equal(cached.steps_per_block, uncached.steps_per_block)


@pytest.mark.parametrize("logits_shift", [0, 1])
def test_each_cached_forward_gives_the_logits_of_the_full_forward(logits_shift):
    """float32, within rounding: every request's logits through the exact cache equal those of the whole canvas at
    every row's own block."""
    model = block_model(logits_shift, dtype=torch.float32)
    sampler = DiffusionSampler.from_config(
        DiffusionGenerationConfig(mask_token_id=MASK, strategy="editing", do_sample=True), block_size=BLOCK,
        generator=row_generators(range(4)),
    )  # fmt: skip
    assert isinstance(sampler.cache, ExactBlockCache)  # the default on a block-causal model
    denoiser = DENOISERS.build("mdm", model=model)
    state = sampler.prepare(PROMPTS, PROMPT_MASK, max_new_tokens=NEW_TOKENS)
    requests = 0
    with torch.no_grad():
        for block in sampler.blocks:
            sampler.begin_block(state, block)
            while sampler.is_running(state):
                request = sampler.model_request(state)
                logits = None
                if request is not None:
                    logits = denoiser.logits(request)
                    full = model(
                        request.input_ids, attention_mask=request.attention_mask,
                        position_ids=request.position_ids, logits_to_keep=request.keep,
                    ).logits  # fmt: skip
                    # a row's own block (the window also holds columns of its batch mates' blocks, where the row's
                    # logits are not read, and its later blocks are not in the cached forward's keys)
                    own = state.inside[request.rows][:, request.columns]
                    torch.testing.assert_close(logits[own], full[own], rtol=1e-4, atol=1e-4)
                    requests += 1
                sampler.step(state, logits, request)
    assert requests > 2 * len(sampler.blocks)  # subsets of rows and later forwards of a block were compared


def test_the_exact_cache_runs_only_the_window_after_committing_the_finished_block():
    model = block_model(block_size=4)
    widths = []
    model.model.register_forward_hook(lambda module, args, kwargs, output: widths.append(output[0].shape[1]),
                                      with_kwargs=True)  # fmt: skip
    prompts = torch.tensor([[5, 6, 7, 8, 9, 10, 11, 12]] * 2)
    out = model.generate(prompts, max_new_tokens=12, strategy="confidence", return_dict_in_generate=True)
    # blocks [8, 12), [12, 16), [16, 20), 4 steps each: the first forward of the run holds the prompt and block 0,
    # a block's first forward the block before it (committed there) and the block, its other forwards the block
    assert widths == [12, 4, 4, 4] + [8, 4, 4, 4] * 2
    assert out.nfe.tolist() == [12, 12]  # one forward per step: the commits cost none


@pytest.mark.parametrize("cache", ["exact", "none"])
@pytest.mark.parametrize("strategy", ["random", "confidence", "threshold", "remdm", "editing"])
def test_a_row_decodes_alone_as_in_a_padded_batch(strategy, cache):
    model = block_model(logits_shift=1)
    arguments = dict(strategy=strategy, cache=cache, do_sample=True, eos_token_id=EOS, steps_per_block=2)
    batch = decode(model, **arguments)
    for row in range(PROMPTS.shape[0]):
        alone = decode(model, rows=[row], alone=True, **arguments)
        kept = torch.cat([PROMPT_MASK[row].bool(), torch.ones(NEW_TOKENS, dtype=torch.bool)])
        assert torch.equal(batch.sequences[row, kept], alone.sequences[0])
        assert int(batch.nfe[row]) == int(alone.nfe[0])


def test_a_row_absent_from_commits_catches_up_exactly():
    """Row 0's prompt [MASK] is in its model block 0 and its prompt then fills three blocks without a [MASK]: it runs
    no forward there while its batch mate's forwards commit, and its next forward stores the columns it missed."""
    model = block_model(block_size=2)
    prompts = torch.tensor([[MASK, 5, 6, 7, 8, 9, 10, 11], [PAD, PAD, PAD, PAD, PAD, PAD, 5, MASK]])
    arguments = dict(max_new_tokens=4, strategy="confidence", return_dict_in_generate=True)
    cached = model.generate(prompts, attention_mask=(prompts != PAD).long(), cache="exact", **arguments)
    uncached = model.generate(prompts, attention_mask=(prompts != PAD).long(), cache="none", **arguments)
    assert torch.equal(cached.sequences, uncached.sequences)
    assert torch.equal(cached.sequences[0], model.generate(prompts[:1], **arguments).sequences[0])
    assert torch.equal(cached.sequences[1, 6:], model.generate(prompts[1:, 6:], **arguments).sequences[0])


def test_keys_no_forward_stored_are_never_read():
    """A forward whose past the cache does not hold for some layer (here a model with a layer the cache never saw)
    raises instead of attending to unwritten keys."""
    sampler = DiffusionSampler.from_config(DiffusionGenerationConfig(mask_token_id=MASK), block_size=BLOCK)
    state = sampler.prepare(PROMPTS, PROMPT_MASK, max_new_tokens=NEW_TOKENS)
    first, other = (DENOISERS.build("mdm", model=block_model(num_hidden_layers=layers)) for layers in (2, 3))
    with torch.no_grad():
        sampler.begin_block(state, sampler.blocks[0])
        while sampler.is_running(state):
            request = sampler.model_request(state)
            sampler.step(state, first.logits(request) if request is not None else None, request)
        sampler.begin_block(state, sampler.blocks[1])
        request = sampler.model_request(state)
        missing = r"layer 2's keys of rows \[0, 1, 2, 3\] only up to columns \[0, 0, 0, 0\]"
        with pytest.raises(RuntimeError, match=missing):
            other.logits(request)


def test_a_row_stops_at_the_first_block_holding_its_eos_and_costs_no_forward_after_it():
    model = block_model(block_size=4)
    prompts = torch.tensor([[5, 6, 7, 8], [9, 10, 11, 12]])
    arguments = dict(max_new_tokens=12, strategy="confidence", pad_token_id=PAD, return_dict_in_generate=True)
    free = model.generate(prompts, **arguments)
    generated = free.sequences[:, 4:]
    # EOS: the first token row 0 generates in its second block (generated positions 4..7) and not before it
    eos = next(int(generated[0, i]) for i in range(4, 8) if int(generated[0, i]) not in generated[0, :i].tolist())
    out = model.generate(prompts, eos_token_id=eos, **arguments)
    assert int(out.nfe[0]) <= 8 < int(free.nfe[0])  # row 0: blocks 0 and 1 only, one forward per step
    for row in range(2):
        hits = (generated[row] == eos).nonzero()
        stop = int(hits[0]) if hits.numel() else 11  # the row's tokens are its own: EOS only ends it
        expected = torch.cat([generated[row, : stop + 1], torch.full((11 - stop,), PAD)])
        assert torch.equal(out.sequences[row, 4:], expected)
        block_end = 4 * (stop // 4 + 1)
        assert stop + 1 <= int(out.nfe[row]) <= block_end  # the steps to reveal EOS and all before it, in its block
        assert int(out.num_decoded_tokens[row]) == stop + 1
    assert torch.equal(out.tokens_per_forward, out.num_decoded_tokens / out.nfe)


def test_what_is_streamed_for_good_is_the_returned_sequence_with_per_row_block_ends():
    streamer = RecordingStreamer()
    out = block_model().generate(PROMPTS, attention_mask=PROMPT_MASK, max_new_tokens=NEW_TOKENS, streamer=streamer)
    assert torch.equal(torch.cat(streamer.final, dim=1), out)
    assert all(not (chunk == MASK).any() for chunk in streamer.final)  # never a [MASK] printed for good
    assert len(streamer.final) > 2  # the prompt, finished blocks, the rest


def test_block_length_equal_to_the_model_s_block_size_is_its_default():
    model = block_model()
    arguments = dict(attention_mask=PROMPT_MASK, max_new_tokens=3 * BLOCK)
    assert torch.equal(model.generate(PROMPTS, block_length=BLOCK, **arguments), model.generate(PROMPTS, **arguments))


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "block_size, arguments, message",
    [
        (BLOCK, dict(block_length=4), "block_length=4, but the model is block-causal with block_size=3.*Drop"),
        (BLOCK, dict(cache="prefix"), "cache='prefix' approximates .* Use cache='exact'"),
        (BLOCK, dict(cache="dual"), "cache='dual' approximates .* Use cache='exact'"),
        (None, dict(cache="exact"), "cache='exact' needs a block-causal model"),
        (BLOCK, dict(sep_token_id=6), "a block-causal model \\(block_size=3\\) decodes left to right"),
        (BLOCK, dict(sep_token_id=6, cache="none"), "a block-causal model \\(block_size=3\\) decodes left to right"),
    ],
    ids=["other_block_length", "prefix_cache", "dual_cache", "exact_cache_on_a_bidirectional_model",
         "end_marker_order", "end_marker_order_without_cache"],
)  # fmt: skip
def test_what_a_block_model_cannot_decode_exactly_is_refused_before_any_forward(block_size, arguments, message):
    model = block_model(block_size=block_size) if block_size else tiny_mdm()
    calls = forwards(model)
    with pytest.raises(ValueError, match=message):
        model.generate(torch.tensor([[5, 6]]), max_new_tokens=NEW_TOKENS, **arguments)
    assert calls == []
