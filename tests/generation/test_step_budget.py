"""A step budget larger than the positions to fill costs nothing (ranked strategies skip steps that reveal nothing;
`random` draws each position's reveal step and visits only the steps that reveal something) or, for strategies that
pay for every step, is refused before any forward (more than MAX_STEPS_PER_POSITION steps per position of a row)."""

import pytest
import torch

from hf_mdm.generation import sampler as sampler_module
from hf_mdm.generation.mixin import MAX_STEPS_PER_POSITION
from hf_mdm.generation.sampler import skip_empty_steps

from .test_generate import MASK, PAD, PROMPT_MASK, PROMPTS, tiny_mdm


NEW_TOKENS = 8


def test_skip_empty_steps_keeps_each_rows_nonzero_counts_in_order():
    counts = torch.tensor([[0, 2, 0, 0, 1, 0], [1, 0, 0, 3, 0, 0], [0, 0, 0, 0, 0, 0]])
    assert skip_empty_steps(counts).tolist() == [[2, 1], [1, 3], [0, 0]]
    assert skip_empty_steps(torch.zeros(2, 5, dtype=torch.long)).tolist() == [[0], [0]]


@pytest.mark.parametrize("reveal_counts", ["schedule", "even", "dream"])
@pytest.mark.parametrize("strategy", ["confidence", "margin"])
def test_skipping_zero_count_steps_changes_no_token(monkeypatch, reveal_counts, strategy):
    kwargs = dict(attention_mask=PROMPT_MASK, max_new_tokens=NEW_TOKENS, steps=5 * NEW_TOKENS, strategy=strategy,
                  reveal_counts=reveal_counts, block_length=4)  # fmt: skip
    skipped = tiny_mdm().generate(PROMPTS, **kwargs)
    monkeypatch.setattr(sampler_module, "skip_empty_steps", lambda counts: counts)
    every_step = tiny_mdm().generate(PROMPTS, **kwargs)
    assert torch.equal(skipped, every_step)


@pytest.mark.parametrize("reveal_counts", ["schedule", "even"])
def test_steps_beyond_the_positions_cost_no_extra_step(reveal_counts):
    model = tiny_mdm()
    many = model.generate(PROMPTS, attention_mask=PROMPT_MASK, max_new_tokens=NEW_TOKENS,
                          steps=MAX_STEPS_PER_POSITION * NEW_TOKENS, reveal_counts=reveal_counts,
                          return_dict_in_generate=True)  # fmt: skip
    one_per_position = model.generate(PROMPTS, attention_mask=PROMPT_MASK, max_new_tokens=NEW_TOKENS,
                                      steps=NEW_TOKENS, reveal_counts=reveal_counts)  # fmt: skip
    assert (many.steps_per_block <= NEW_TOKENS).all()
    assert (many.nfe <= NEW_TOKENS).all()
    assert torch.equal(many.sequences, one_per_position)


@pytest.mark.bad_input
@pytest.mark.parametrize("strategy", ["confidence", "margin", "remdm", "editing"])
@pytest.mark.parametrize("steps", [MAX_STEPS_PER_POSITION * NEW_TOKENS + 1, 10**9])
def test_absurd_step_budgets_are_refused_before_any_forward(strategy, steps):
    model = tiny_mdm()

    def no_forward(*args, **kwargs):
        raise AssertionError("a forward ran before the step budget was checked")

    model.forward = no_forward
    with pytest.raises(ValueError, match=f"Pass steps <= {MAX_STEPS_PER_POSITION * NEW_TOKENS}"):
        model.generate(PROMPTS, attention_mask=PROMPT_MASK, max_new_tokens=NEW_TOKENS, steps=steps,
                       strategy=strategy, do_sample=True)  # fmt: skip


@pytest.mark.bad_input
@pytest.mark.parametrize("strategy", ["confidence", "remdm"])
def test_the_step_cap_is_judged_per_row_so_a_longer_mate_does_not_lift_it(strategy):
    """Row 0 fills 2 prompt [MASK] + 4 new positions (cap 96), row 1 only the 4 new ones (cap 64): 80 steps are
    refused for row 1 alone and therefore for the batch, whatever row 0 allows."""
    model = tiny_mdm()
    prompts = torch.tensor([[MASK, 5, MASK], [PAD, 5, 6]])
    mask = torch.tensor([[1, 1, 1], [0, 1, 1]])
    kwargs = dict(max_new_tokens=4, steps=80, strategy=strategy, do_sample=True)
    assert not (model.generate(prompts[:1], **kwargs) == MASK).any()
    for ids, attention in ((prompts[1:, 1:], mask[1:, 1:]), (prompts, mask)):
        with pytest.raises(ValueError, match="Pass steps <= 64"):
            model.generate(ids, attention_mask=attention, **kwargs)


@pytest.mark.parametrize("steps", [MAX_STEPS_PER_POSITION * NEW_TOKENS + 1, 10**12])
def test_random_takes_any_budget_at_one_forward_per_reveal_event(steps):
    out = tiny_mdm().generate(PROMPTS, attention_mask=PROMPT_MASK, max_new_tokens=NEW_TOKENS, steps=steps,
                              strategy="random", do_sample=True, return_dict_in_generate=True)  # fmt: skip
    assert not (out.sequences == MASK).any()
    assert (out.steps_per_block <= NEW_TOKENS).all()  # steps that revealed something
    assert (out.nfe <= out.steps_per_block.sum(1)).all()


def test_threshold_ignores_the_step_budget_so_any_budget_is_accepted():
    out = tiny_mdm().generate(PROMPTS, attention_mask=PROMPT_MASK, max_new_tokens=NEW_TOKENS, steps=10**9,
                              strategy="threshold", return_dict_in_generate=True)  # fmt: skip
    assert (out.steps_per_block <= NEW_TOKENS).all()
