"""Property test: over random configurations and mixed batches, generate() keeps its invariants, and every row
decodes exactly as it does alone (per-row generators). Models of both layouts are drawn: logits[:, i] predicting
token i (`logits_shift=0`, LLaDA) or read from the token before (`logits_shift=1`, Dream), where a left-padded row
whose prompt starts with [MASK] must still decode as it does alone; bidirectional and block-causal
(`block_size`, float64), where the exact cache must decode the tokens of uncached decoding."""

import functools
import os

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hf_mdm.generation import REVEAL_COUNT_RULES, STRATEGIES
from hf_mdm.schedules import SCHEDULES

from .test_generate import MASK, PAD, tiny_mdm


@functools.cache
def model(logits_shift: int, block_size: int | None = None):
    """The tiny MDM of a layout; block-causal ones in float64, where tokens must not hinge on rounding ties."""
    if block_size is None:
        return tiny_mdm(logits_shift=logits_shift)
    return tiny_mdm(logits_shift=logits_shift, block_size=block_size).double()


# The only strategies allowed to change a revealed token; every other registered strategy must never do so.
REVISING = {"remdm", "editing", "threshold_editing"}
BUILT_IN = ["random", "confidence", "margin", "entropy", "threshold", "remdm", "editing", "threshold_editing"]
EXAMPLES = int(os.environ.get("HF_MDM_PROPERTY_EXAMPLES", "100"))  # .ci/run sets 500


def test_exactly_the_listed_strategies_declare_that_they_revise():
    assert {name for name in BUILT_IN if STRATEGIES[name].revises} == REVISING


@st.composite
def strategy_kwargs(draw, strategy):
    if strategy == "remdm":
        schedule = draw(st.sampled_from(["cap", "rescale", "loop"]))
        return dict(eta=draw(st.sampled_from([0.0, 0.1, 0.5])), remask_schedule=schedule)
    if strategy == "editing":
        return dict(edit_threshold=draw(st.sampled_from([0.1, 0.5, 0.9])))
    if strategy == "threshold_editing":
        return dict(
            editing_threshold=draw(st.sampled_from([0.0, 0.3, 0.9])),
            max_post_steps=draw(st.integers(0, 3)),
            num_to_transfer=draw(st.integers(1, 3)),
        )
    return None


@st.composite
def generation_cases(draw):
    batch = draw(st.integers(1, 3))
    width = draw(st.integers(0, 5))
    rows, masks = [], []
    for _ in range(batch):
        real = draw(st.integers(min(width, 1), width))
        tokens = draw(st.lists(st.sampled_from([2, 3, 5, 8, 13, 21, MASK]), min_size=real, max_size=real))
        if tokens and draw(st.booleans()):
            tokens[0] = MASK  # a prompt that starts with [MASK]: its first real token is filled
        rows.append([PAD] * (width - real) + tokens)
        masks.append([0] * (width - real) + [1] * real)
    block_size = draw(st.one_of(st.none(), st.integers(1, 4)))
    if block_size is None:
        block_length = draw(st.one_of(st.none(), st.integers(1, 4)))
        max_new_tokens = draw(st.integers(1, 3)) * (block_length or draw(st.integers(1, 4)))
        num_blocks = max_new_tokens // block_length if block_length else 1
        cache = draw(st.sampled_from(["none", "prefix", "dual"]))
    else:  # the model's blocks: block_length is unset or block_size, rows split no total budget
        block_length = draw(st.sampled_from([None, block_size]))
        max_new_tokens = draw(st.integers(1, 3)) * block_size if block_length else draw(st.integers(1, 9))
        cache = draw(st.sampled_from(["none", "exact"]))
    steps, steps_per_block = None, None
    if block_size is not None or draw(st.booleans()):
        steps_per_block = draw(st.integers(1, 4))
    else:
        steps = draw(st.integers(num_blocks, num_blocks + 10))
    strategy = draw(st.sampled_from(BUILT_IN))
    return dict(
        input_ids=torch.tensor(rows, dtype=torch.long).reshape(batch, width),
        attention_mask=torch.tensor(masks, dtype=torch.long).reshape(batch, width),
        max_new_tokens=max_new_tokens,
        block_length=block_length,
        steps=steps,
        steps_per_block=steps_per_block,
        strategy=strategy,
        strategy_kwargs=draw(strategy_kwargs(strategy)),
        cache=cache,
        schedule=draw(st.sampled_from(sorted(SCHEDULES))),
        # another strategy's parameters are refused, so only the strategy's own are drawn
        reveal_counts=draw(st.sampled_from(sorted(REVEAL_COUNT_RULES))) if STRATEGIES[strategy].uses_counts else None,
        do_sample=draw(st.booleans()),
        strategy_temperature=(
            draw(st.sampled_from([0.0, 1.0])) if "strategy_temperature" in STRATEGIES[strategy].config_fields else None
        ),
        eos_token_id=draw(st.sampled_from([None, 2, 24, 35])),
        pad_token_id=PAD,
        seeds=[draw(st.integers(0, 2**16)) for _ in range(batch)],
        logits_shift=draw(st.sampled_from([0, 1])),
        block_size=block_size,
        return_dict_in_generate=True,
        output_history=True,
    )


def decode(case, rows, alone=False, **overrides):
    """generate() on batch rows `rows` of the case (`alone`: one row, its padding columns dropped)."""
    arguments = {key: value for key, value in case.items() if key not in ("seeds", "logits_shift", "block_size")}
    arguments.update(overrides)
    ids, mask = case["input_ids"][rows], case["attention_mask"][rows]
    if alone:
        real = mask[0].bool()
        ids, mask = ids[:, real], mask[:, real]
    arguments.update(input_ids=ids, attention_mask=mask)
    arguments["generator"] = [torch.Generator().manual_seed(case["seeds"][row]) for row in rows]
    return model(case["logits_shift"], case["block_size"]).generate(**arguments)


@settings(max_examples=EXAMPLES, deadline=None)
@given(case=generation_cases())
def test_generate_invariants(case):
    prompt, prompt_mask = case["input_ids"], case["attention_mask"].bool()
    batch, width = prompt.shape
    out = decode(case, list(range(batch)))
    sequences = out.sequences
    assert sequences.shape == (batch, width + case["max_new_tokens"])

    keep = ~prompt_mask | (prompt != MASK)
    assert torch.equal(sequences[:, :width][keep], prompt[keep])  # prompt tokens and padding kept exactly
    fill = torch.cat([prompt_mask & (prompt == MASK), torch.ones(batch, case["max_new_tokens"], dtype=torch.bool)], 1)
    assert not (sequences[fill] == MASK).any()

    if case["strategy"] not in REVISING:
        # A revealed token never changes again (except that positions after a row's EOS become pad).
        for before, after in zip(out.history, out.history[1:] + (sequences,)):
            revealed = fill & (before != MASK)
            assert ((after[revealed] == before[revealed]) | (after[revealed] == PAD)).all()
        assert (out.nfe <= fill.sum(1)).all()
    assert (out.nfe >= 1).all()
    if case["strategy"] == "threshold_editing":  # the budget is ignored: a block's [MASK] steps, then editing steps
        posts = case["strategy_kwargs"]["max_post_steps"] * out.steps_per_block.shape[1]
        assert (out.nfe <= fill.sum(1) + posts).all()
        assert torch.equal(out.nfe, out.steps_per_block.sum(1))  # each of its steps runs a forward
    elif case["strategy"] != "threshold":
        budget = case["steps"] or case["steps_per_block"] * out.steps_per_block.shape[1]
        assert (out.nfe <= budget).all()
        assert (out.steps_per_block.sum(1) <= budget).all()
        assert case["steps_per_block"] is None or (out.steps_per_block <= case["steps_per_block"]).all()

    for row in range(batch):  # a row decodes its positions to fill up to its first EOS, then pad
        decoded = fill[row].clone()
        if case["eos_token_id"] is not None:
            generated_eos = (fill[row] & (sequences[row] == case["eos_token_id"])).nonzero()
            decoded[int(generated_eos[0]) + 1 if generated_eos.numel() else len(decoded) :] = False
            assert (sequences[row][fill[row] & ~decoded] == PAD).all()
        assert int(out.num_decoded_tokens[row]) == int(decoded.sum())

    if case["cache"] == "exact":  # exact: the tokens and forwards of uncached decoding
        uncached = decode(case, list(range(batch)), cache="none")
        assert torch.equal(uncached.sequences, sequences) and torch.equal(uncached.nfe, out.nfe)

    # Batch invariance: each row alone decodes to the same tokens, with the same number of forwards.
    if batch > 1:
        for row in range(batch):
            alone = decode(case, [row], alone=True)
            assert torch.equal(sequences[row][torch.cat([prompt_mask[row], fill[row, width:]])], alone.sequences[0])
            assert int(alone.nfe[0]) == int(out.nfe[row])


def test_a_shifted_model_with_a_cache_decodes_rows_alike_when_a_batch_mate_starts_earlier():
    """Found by the property test: a row whose block 0 starts at a prompt [MASK] right after padding moves the cached
    span's start before its batch-mates' previous real tokens; every row still decodes as it does alone."""
    ids = torch.tensor([[2, 2], [PAD, 2], [PAD, MASK]])
    mask = torch.tensor([[1, 1], [0, 1], [0, 1]])
    arguments = dict(max_new_tokens=1, steps=2, strategy="editing", cache="prefix", pad_token_id=PAD)
    batch = model(logits_shift=1).generate(ids, attention_mask=mask, **arguments)
    for row in range(3):
        real = mask[row].bool()
        alone = model(logits_shift=1).generate(ids[row : row + 1, real], **arguments)
        assert torch.equal(batch[row, torch.cat([real, torch.tensor([True])])], alone[0])
