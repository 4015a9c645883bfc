"""`random` draws each masked position's reveal step once per block and visits only the steps where something is
revealed. The law of what it reveals must be the ancestral sampler's: at step k of K, n_k of the m masked positions of
a block, with n_k ~ Binomial(m, p_k), p_k = F(s_k) - F(t_k), F(s) = (alpha(s) - alpha(1)) / (1 - alpha(1))."""

import numpy as np
import pytest
import torch
from scipy.stats import binom, chisquare

from hf_mdm.generation import DecodingCallback
from hf_mdm.schedules import get_schedule

from .test_generate import MASK, tiny_mdm


ROWS, NEW_TOKENS, STEPS = 600, 12, 6


class RevealsPerStep(DecodingCallback):
    """counts[r, k]: positions row r revealed at step k (the sampler's `step` has moved past k when on_step runs)."""

    def __init__(self, rows, steps):
        self.counts = torch.zeros(rows, steps, dtype=torch.long)
        self.masked = None

    def on_start(self, state):
        self.masked = (state.canvas == MASK).sum(1)

    def on_step(self, state):
        masked = (state.canvas == MASK).sum(1)
        self.counts[:, state.step - 1] += self.masked - masked
        self.masked = masked


def step_probabilities(schedule, steps):
    """p_k of the ancestral sampler on the grid t_k = 1 - k/K."""
    grid = torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64)
    alpha = schedule.alpha(grid)
    revealed = (alpha - alpha[0]) / (1.0 - alpha[0])
    revealed[-1] = 1.0
    return torch.diff(revealed).numpy()


@pytest.mark.parametrize("schedule", ["cosine", "linear"])
def test_reveal_counts_per_step_follow_the_binomial_law_of_the_schedule(schedule):
    recorder = RevealsPerStep(ROWS, STEPS)
    generator = torch.Generator().manual_seed(0)
    tiny_mdm().generate(torch.full((ROWS, 1), 5), max_new_tokens=NEW_TOKENS, steps=STEPS, strategy="random",
                        schedule=schedule, generator=generator, callbacks=[recorder])  # fmt: skip
    counts = recorder.counts.numpy()
    assert (counts.sum(1) == NEW_TOKENS).all()
    probabilities = step_probabilities(get_schedule(schedule), STEPS)
    # every position's reveal step: pooled over rows, a categorical law
    pooled = chisquare(counts.sum(0), probabilities * ROWS * NEW_TOKENS)
    assert pooled.pvalue > 1e-3, (counts.sum(0), probabilities * ROWS * NEW_TOKENS)
    # per step, the count's distribution over rows: Binomial(m, p_k) (bins pooled until each expects >= 5)
    for step, probability in enumerate(probabilities):
        observed, expected = binned(np.bincount(counts[:, step], minlength=NEW_TOKENS + 1),
                                    binom.pmf(np.arange(NEW_TOKENS + 1), NEW_TOKENS, probability) * ROWS)  # fmt: skip
        assert chisquare(observed, expected * observed.sum() / expected.sum()).pvalue > 1e-3 / STEPS, step


def binned(observed, expected, least=5.0):
    """Merge neighbouring bins, left to right, until each expects at least `least` (the last merges leftwards)."""
    merged_observed, merged_expected, run = [], [], [0.0, 0.0]
    for count, expectation in zip(observed, expected):
        run = [run[0] + count, run[1] + expectation]
        if run[1] >= least:
            merged_observed.append(run[0])
            merged_expected.append(run[1])
            run = [0.0, 0.0]
    if merged_expected:
        merged_observed[-1] += run[0]
        merged_expected[-1] += run[1]
    return np.array(merged_observed), np.array(merged_expected)


class StepsVisited(DecodingCallback):
    def __init__(self):
        self.steps = []

    def on_step(self, state):
        self.steps.append(state.step - 1)


def test_visits_only_the_steps_that_reveal_something():
    visits = StepsVisited()
    out = tiny_mdm().generate(torch.full((4, 2), 5), max_new_tokens=NEW_TOKENS, steps=10**9, strategy="random",
                              callbacks=[visits], return_dict_in_generate=True)  # fmt: skip
    assert not (out.sequences == MASK).any()
    assert len(visits.steps) <= 4 * NEW_TOKENS and visits.steps == sorted(set(visits.steps))
    assert max(visits.steps) < 10**9
    assert (out.nfe <= out.steps_per_block.sum(1)).all() and (out.steps_per_block.sum(1) <= NEW_TOKENS).all()
