"""`DiffusionSampler.probabilities`: p(. | x_t) from a forward's logits, the step that generate() and the exact
sampler law share: float32 logits, [MASK] removed, the logits processors (each seeing its row's canvas), softmax, and
the positions whose processed logits are not finite flagged."""

import torch

from hf_mdm.generation import DiffusionGenerationConfig, DiffusionSampler

from .test_generate import MASK, PROMPT_MASK, PROMPTS, VOCAB


class RecordingProcessor:
    """A logits processor that keeps the `input_ids` it is called with and changes nothing."""

    def __init__(self):
        self.seen = []

    def __call__(self, input_ids, scores):
        self.seen.append(input_ids.clone())
        return scores


def test_probabilities_are_the_softmax_of_the_processed_logits_without_mask_and_flag_non_finite_positions():
    recorder = RecordingProcessor()
    config = DiffusionGenerationConfig(mask_token_id=MASK, suppress_tokens=[5], do_sample=True, temperature=0.5)
    sampler = DiffusionSampler.from_config(config, logits_processor=[recorder])
    state = sampler.prepare(PROMPTS, PROMPT_MASK, max_new_tokens=3)
    rows = torch.tensor([1, 0])  # the rows of the logits, in the request's order
    logits = torch.randn((2, 3, VOCAB), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    logits[1, 0] = float("nan")
    logits[1, 2] = float("-inf")  # every token removed
    probs, bad = sampler.probabilities(state, logits.clone(), rows)
    assert probs.dtype == torch.float32
    assert bad.tolist() == [[False, False, False], [True, False, True]]
    expected = logits.float() / 0.5
    expected[..., [MASK, 5]] = float("-inf")
    torch.testing.assert_close(probs[~bad], expected.softmax(-1)[~bad])
    (seen,) = recorder.seen  # one call per forward, one row of input_ids per scored position
    assert torch.equal(seen, state.canvas[rows].repeat_interleave(3, dim=0))
