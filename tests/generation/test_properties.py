"""Property test: over random configurations, generate() keeps its invariants."""

import functools

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hf_mdm.generation import REVEAL_COUNT_RULES
from hf_mdm.schedules import SCHEDULES

from .test_generate import MASK, PAD, STRATEGY_NAMES, tiny_mdm


model = functools.cache(tiny_mdm)


@st.composite
def generation_cases(draw):
    batch = draw(st.integers(1, 3))
    width = draw(st.integers(0, 5))
    rows, masks = [], []
    for _ in range(batch):
        real = draw(st.integers(min(width, 1), width))
        tokens = draw(st.lists(st.sampled_from([2, 3, 5, 8, 13, 21, MASK]), min_size=real, max_size=real))
        rows.append([PAD] * (width - real) + tokens)
        masks.append([0] * (width - real) + [1] * real)
    block_length = draw(st.one_of(st.none(), st.integers(1, 4)))
    max_new_tokens = draw(st.integers(1, 3)) * (block_length or draw(st.integers(1, 4)))
    num_blocks = max_new_tokens // block_length if block_length else 1
    arguments = dict(
        input_ids=torch.tensor(rows, dtype=torch.long).reshape(batch, width),
        attention_mask=torch.tensor(masks, dtype=torch.long).reshape(batch, width),
        max_new_tokens=max_new_tokens,
        block_length=block_length,
        steps=draw(st.integers(num_blocks, num_blocks + 10)),
        strategy=draw(st.sampled_from(STRATEGY_NAMES)),
        cache=draw(st.sampled_from(["none", "prefix", "dual"])),
        schedule=draw(st.sampled_from(sorted(SCHEDULES))),
        reveal_counts=draw(st.sampled_from(sorted(REVEAL_COUNT_RULES))),
        do_sample=draw(st.booleans()),
        strategy_temperature=draw(st.sampled_from([0.0, 1.0])),
        eos_token_id=draw(st.sampled_from([None, 2, 24, 35])),
        pad_token_id=PAD,
        generator=[torch.Generator().manual_seed(draw(st.integers(0, 2**16))) for _ in range(batch)],
        return_dict_in_generate=True,
        output_history=True,
    )
    return arguments


@settings(max_examples=220, deadline=None)
@given(case=generation_cases())
def test_generate_invariants(case):
    prompt, prompt_mask = case["input_ids"], case["attention_mask"].bool()
    out = model().generate(**case)
    sequences, batch, width = out.sequences, prompt.shape[0], prompt.shape[1]
    assert sequences.shape == (batch, width + case["max_new_tokens"])

    keep = ~prompt_mask | (prompt != MASK)
    assert torch.equal(sequences[:, :width][keep], prompt[keep])  # prompt tokens and padding kept exactly
    fill = torch.cat([prompt_mask & (prompt == MASK), torch.ones(batch, case["max_new_tokens"], dtype=torch.bool)], 1)
    assert not (sequences[fill] == MASK).any()

    # A revealed token never changes again (except that positions after a row's EOS become pad).
    for before, after in zip(out.history, out.history[1:] + (sequences,)):
        revealed = fill & (before != MASK)
        assert ((after[revealed] == before[revealed]) | (after[revealed] == PAD)).all()

    to_fill = fill.sum(1)
    assert (out.nfe >= 1).all() and (out.nfe <= to_fill).all()
    if case["strategy"] != "threshold":
        assert (out.nfe <= case["steps"]).all()
        assert (out.steps_per_block.sum(1) <= case["steps"]).all()

    if case["eos_token_id"] is not None:
        for row in range(batch):
            generated_eos = (fill[row] & (sequences[row] == case["eos_token_id"])).nonzero()
            if generated_eos.numel():
                after = fill[row].clone()
                after[: int(generated_eos[0]) + 1] = False
                assert (sequences[row][after] == PAD).all()
