"""`steps_per_block`: every block of every row gets that many steps, on bidirectional models (with or without
`block_length`) and block-causal ones, whose unset budget is one step per position of a block; `steps` and
`steps_per_block` are one budget, and a budget no row could run is refused before any forward."""

import pytest
import torch

from hf_mdm.generation import STRATEGIES, DiffusionGenerationConfig

from .test_bad_inputs import forwards
from .test_generate import PAD, PROMPT_MASK, PROMPTS, tiny_mdm


PAYS_PER_STEP = sorted(name for name in STRATEGIES if STRATEGIES[name].fixed_steps and name != "random")
DRAWS = dict(do_sample=True)  # with per-row generators, so that runs are repeatable


def generators(count=2):
    return [torch.Generator().manual_seed(row) for row in range(count)]


def decode(model, prompts=PROMPTS, mask=PROMPT_MASK, **kwargs):
    arguments = dict(max_new_tokens=8, pad_token_id=PAD, return_dict_in_generate=True, **DRAWS, **kwargs)
    return model.generate(prompts, attention_mask=mask, generator=generators(prompts.shape[0]), **arguments)


@pytest.mark.parametrize("strategy", ["random", "confidence", "remdm", "editing"])
@pytest.mark.parametrize("block_length, steps_per_block", [(None, 5), (2, 1), (2, 3), (4, 6)])
def test_on_a_bidirectional_model_steps_per_block_is_steps_times_the_blocks(strategy, block_length, steps_per_block):
    model = tiny_mdm()
    blocks = 8 // block_length if block_length else 1
    per_block = decode(model, strategy=strategy, block_length=block_length, steps_per_block=steps_per_block)
    total = decode(model, strategy=strategy, block_length=block_length, steps=steps_per_block * blocks)
    assert torch.equal(per_block.sequences, total.sequences)
    assert torch.equal(per_block.nfe, total.nfe)


@pytest.mark.parametrize("strategy", ["remdm", "editing"])
def test_on_a_block_model_every_block_of_every_row_gets_its_steps(strategy):
    """Revising strategies use every step of a block; left padding and mixed prompt lengths give the rows other block
    boundaries (and the second row one block more) but not other budgets."""
    model = tiny_mdm(block_size=3)
    out = decode(model, strategy=strategy, steps_per_block=4)
    assert out.steps_per_block.tolist() == [[4, 4, 4, 0], [4, 4, 4, 4]]  # row 0 has 3 blocks, its fourth is empty


def test_on_a_block_model_the_unset_budget_is_one_step_per_position_of_a_block():
    model = tiny_mdm(block_size=3)
    assert torch.equal(decode(model).sequences, decode(model, steps_per_block=3).sequences)


def test_on_a_block_model_steps_split_over_blocks_that_every_row_has():
    model = tiny_mdm(block_size=4)
    prompts = torch.tensor([[5, 6, 7, 8, 9], [PAD, PAD, PAD, PAD, 6]])  # prompt lengths 5 and 1: the same blocks
    mask = (prompts != PAD).long()
    total = decode(model, prompts, mask, strategy="remdm", steps=9)  # both rows: 3 blocks, the first and last partial
    assert total.steps_per_block.tolist() == [[3, 3, 3], [3, 3, 3]]
    assert torch.equal(total.sequences, decode(model, prompts, mask, strategy="remdm", steps_per_block=3).sequences)


def test_the_call_s_budget_replaces_the_model_s():
    model = tiny_mdm()
    model.generation_config.steps = 8
    out = model.generate(PROMPTS, attention_mask=PROMPT_MASK, max_new_tokens=8, block_length=4, steps_per_block=2,
                         strategy="remdm", return_dict_in_generate=True)  # fmt: skip
    assert out.steps_per_block.tolist() == [[2, 2], [2, 2]]


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "block_size, arguments, message",
    [
        (None, dict(steps=4, steps_per_block=2), "steps=4 and steps_per_block=2 were both given \\(by the call\\)"),
        (None, dict(generation_config=DiffusionGenerationConfig(steps_per_block=2), steps=4), None),
        (3, dict(steps=8), "the rows hold from 3 to 4 blocks .* Pass steps_per_block"),
        (3, dict(steps_per_block=49, strategy="confidence"), "Pass steps_per_block <= 48"),
        (None, dict(steps_per_block=33, block_length=2, strategy="editing"), "Pass steps_per_block <= 32"),
        (None, dict(steps=3, block_length=2), "steps=3 is fewer than the 4 blocks"),
    ],
    ids=["both_budgets", "call_budget_over_passed_budget", "steps_over_rows_with_other_block_counts",
         "per_block_cap_of_a_block_model", "per_block_cap_of_a_bidirectional_model", "fewer_steps_than_blocks"],
)  # fmt: skip
def test_a_budget_no_row_could_run_is_refused_before_any_forward(block_size, arguments, message):
    model = tiny_mdm(block_size=block_size)
    calls = forwards(model)
    if message is None:  # the call's steps replace the passed config's steps_per_block: accepted
        assert model.generate(PROMPTS, attention_mask=PROMPT_MASK, max_new_tokens=8, **arguments).shape == (2, 13)
        return
    with pytest.raises(ValueError, match=message):
        model.generate(PROMPTS, attention_mask=PROMPT_MASK, max_new_tokens=8, **arguments)
    assert calls == []


@pytest.mark.bad_input
def test_a_config_with_both_budgets_is_refused():
    with pytest.raises(ValueError, match="set the same budget"):
        DiffusionGenerationConfig(steps=8, steps_per_block=2)


@pytest.mark.bad_input
@pytest.mark.parametrize("strategy", PAYS_PER_STEP)
def test_the_per_block_cap_itself_is_accepted(strategy):
    model = tiny_mdm(block_size=3)
    with pytest.raises(ValueError, match="Pass steps_per_block <= 48"):
        decode(model, strategy=strategy, steps_per_block=49)
    decode(model, strategy=strategy, steps_per_block=48)
