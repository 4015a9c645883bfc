"""Strategies that revise revealed tokens (ReMDM remasking, token editing), the registries that let a user add a
cache or a strategy without editing the decoder, and the errors for combinations that cannot work."""

import pytest
import torch

from hf_mdm.generation import (
    CACHES,
    STRATEGIES,
    NoBlockCache,
    RemaskingStrategy,
    RevealStep,
    RevealStrategy,
    RowRandomness,
    get_strategy,
    register_cache,
    register_strategy,
)
from hf_mdm.schedules import get_schedule

from .test_generate import MASK, PROMPT_MASK, PROMPTS, tiny_mdm


def one_step(t, s, width=4000, revealed_fraction=0.5, seed=0):
    revealed = torch.arange(width)[None] < int(width * revealed_fraction)
    return RevealStep(
        masked=~revealed,
        scores=None,
        counts=None,
        t=t,
        s=s,
        rows=torch.arange(1),
        randomness=RowRandomness(torch.Generator().manual_seed(seed), 1),
        revealed=revealed,
    )


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("remask_schedule", ["cap", "rescale"])
def test_remdm_keeps_sigma_within_its_bound_and_the_reveal_probability_of_the_posterior(schedule, remask_schedule):
    strategy = get_strategy("remdm", schedule=get_schedule(schedule), eta=0.5, remask_schedule=remask_schedule)
    alpha = get_schedule(schedule).alpha
    for t, s in [(1.0, 0.75), (0.75, 0.5), (0.5, 0.25), (0.25, 0.0)]:
        reveal, sigma = strategy.probabilities(one_step(t, s))
        alpha_t, alpha_s = float(alpha(torch.tensor(t))), float(alpha(torch.tensor(s)))
        bound = min(1.0, (1 - alpha_s) / alpha_t) if alpha_t > 0 else 1.0
        assert 0.0 <= sigma <= bound + 1e-12
        assert sigma == pytest.approx(min(0.5, bound) if remask_schedule == "cap" else 0.5 * bound)
        if s > 0:
            assert reveal == pytest.approx((alpha_s - (1 - sigma) * alpha_t) / (1 - alpha_t))
    assert strategy.probabilities(one_step(0.25, 0.0)) == (1.0, 0.0)  # the last step reveals all, remasks none


def test_remdm_with_eta_zero_is_the_ancestral_sampler():
    schedule = get_schedule("linear")
    remdm = get_strategy("remdm", schedule=schedule, eta=0.0)
    step = one_step(0.8, 0.6)
    ancestral = float(schedule.reveal_probability(torch.tensor(0.8), torch.tensor(0.6)))
    assert remdm.probabilities(step) == (pytest.approx(ancestral), 0.0)
    remask, edit = remdm.revise(step)
    assert not remask.any() and not edit.any()


def test_remdm_remasks_revealed_tokens_at_the_rate_sigma():
    strategy = get_strategy("remdm", schedule=get_schedule("linear"), eta=0.3)
    step = one_step(0.5, 0.4)
    remask, _ = strategy.revise(step)
    assert not (remask & ~step.revealed).any()
    assert remask[step.revealed].float().mean().item() == pytest.approx(0.3, abs=0.03)


def test_remdm_loop_freezes_time_inside_its_window_and_remasks_only_there():
    strategy = RemaskingStrategy(get_schedule("linear"), eta=0.1, remask_schedule="loop", t_on=0.6, t_off=0.2)
    assert strategy.model_times(0.9, 0.8) == (0.9, 0.8)
    assert strategy.model_times(0.5, 0.4) == (0.6, 0.6)
    assert strategy.model_times(0.1, 0.0) == pytest.approx((0.3, 0.0))
    assert strategy.probabilities(one_step(0.9, 0.8))[1] == 0.0
    reveal, sigma = strategy.probabilities(one_step(0.5, 0.4))
    assert sigma == pytest.approx(0.1) and reveal == pytest.approx(0.1 * 0.4 / 0.6)


def test_revising_strategies_change_revealed_tokens_and_still_end_complete():
    model = tiny_mdm()
    for strategy, kwargs in [
        ("remdm", {"eta": 0.9, "remask_schedule": "rescale"}),
        ("editing", {"edit_threshold": 1.0}),
    ]:
        out = model.generate(
            PROMPTS, attention_mask=PROMPT_MASK, max_new_tokens=8, steps=8, strategy=strategy, strategy_kwargs=kwargs,
            do_sample=True, generator=torch.Generator().manual_seed(0), return_dict_in_generate=True,
            output_history=True,
        )  # fmt: skip
        assert not (out.sequences == MASK).any()
        revised = [
            ((before[:, 5:] != MASK) & (after[:, 5:] != before[:, 5:])).any()
            for before, after in zip(out.history, out.history[1:])
        ]
        assert any(revised), strategy


def test_a_registered_cache_and_a_registered_remasking_strategy_need_no_other_edit():
    @register_cache("counting-test")
    class CountingCache(NoBlockCache):
        built = 0

        def __init__(self):
            type(self).built += 1

    @register_strategy("remask-first-test")
    class RemaskFirstStrategy(RevealStrategy):
        """Reveal every masked position; remask the block's first position whenever it starts a step revealed, until
        the last step."""

        revises = True

        def select(self, step):
            return step.masked

        def revise(self, step):
            remask = torch.zeros_like(step.revealed)
            if step.s > 0:
                remask[:, 0] = step.revealed[:, 0]
            return remask, torch.zeros_like(remask)

    try:
        out = tiny_mdm().generate(
            PROMPTS, attention_mask=PROMPT_MASK, max_new_tokens=4, steps=4, strategy="remask-first-test",
            cache="counting-test", return_dict_in_generate=True, output_history=True,
        )  # fmt: skip
        assert CountingCache.built == 1
        masked_first = [(canvas[:, 5] == MASK).tolist() for canvas in out.history]
        assert masked_first == [[False, False], [True, True], [False, False], [False, False]]
        assert not (out.sequences == MASK).any()
    finally:
        CACHES.pop("counting-test")
        STRATEGIES.pop("remask-first-test")


@pytest.mark.bad_input
def test_a_revising_strategy_with_a_cache_that_keeps_revealed_keys_is_refused_before_any_forward():
    @register_cache("keeps-revealed-test")
    class KeepsRevealed(NoBlockCache):
        refreshes_revealed = False

    model = tiny_mdm()
    calls = []
    model.register_forward_hook(lambda *args: calls.append(1))
    try:
        with pytest.raises(ValueError, match="remasks or edits revealed tokens"):
            model.generate(PROMPTS, max_new_tokens=4, steps=4, strategy="remdm", cache="keeps-revealed-test")
        model.generate(PROMPTS, max_new_tokens=4, steps=4, strategy="confidence", cache="keeps-revealed-test")
    finally:
        CACHES.pop("keeps-revealed-test")
    assert len(calls) == 4  # the refused call ran no forward; the accepted one ran its four


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "arguments, message",
    [
        (dict(strategy_kwargs={"eta": 1.5}), "eta in \\[0, 1\\]"),
        (dict(strategy_kwargs={"eta": -0.1}), "eta in \\[0, 1\\]"),
        (dict(strategy_kwargs={"remask_schedule": "sometimes"}), "remask_schedule must be one of"),
        (dict(strategy_kwargs={"remask_schedule": "loop", "t_on": 0.1, "t_off": 0.5}), "0 < t_off < t_on < 1"),
        (dict(steps=1, block_length=2), "fewer than the 2 blocks"),
    ],
)
def test_bad_remasking_arguments_fail_before_any_forward(arguments, message):
    model = tiny_mdm()
    calls = []
    model.register_forward_hook(lambda *args: calls.append(1))
    with pytest.raises(ValueError, match=message):
        model.generate(PROMPTS, max_new_tokens=4, strategy="remdm", **{"steps": 4, **arguments})
    assert calls == []


def test_editing_threshold_is_checked():
    with pytest.raises(ValueError, match="edit_threshold in \\[0, 1\\]"):
        tiny_mdm().generate(
            PROMPTS, max_new_tokens=4, steps=4, strategy="editing", strategy_kwargs={"edit_threshold": 2}
        )
