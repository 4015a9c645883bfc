"""The theory, checked with the package's own `generate()` running on the exact oracle denoiser.

At a fixed number of steps the `random` sampler's invalid-token rate stays flat as the length grows while its sequence
error rises; revealing one token per step gives no sequence error, and `random` needs steps >> length to approach it.
"""

import pytest
import torch

from hf_mdm import generation
from hf_mdm.languages import NGramLanguage


@pytest.fixture(scope="module")
def language():
    return NGramLanguage(6, n=2, support=2, seed=0)


def errors(language, length, steps, strategy, rows=64):
    oracle = generation.enable_diffusion_generation(language.oracle_model())
    generators = [torch.Generator().manual_seed(row) for row in range(rows)]
    samples = oracle.generate(
        None,
        max_new_tokens=length,
        steps=steps,
        strategy=strategy,
        do_sample=True,
        temperature=1.0,
        block_length=length,
        generator=generators,
    )
    assert samples.shape == (rows, length)
    return float(language.invalid_token_mask(samples).double().mean()), float(
        (~language.is_valid(samples)).double().mean()
    )


def test_token_error_flat_sequence_error_grows(language):
    token_16, sequence_16 = errors(language, 16, 4, "random")
    token_128, sequence_128 = errors(language, 128, 4, "random")
    assert token_16 > 0.02 and abs(token_128 - token_16) < 0.5 * token_16
    assert sequence_128 > sequence_16 + 0.2 and sequence_128 > 0.95


def test_one_token_per_step_is_exact_and_random_needs_many_steps(language):
    assert errors(language, 16, 16, "confidence")[1] == 0.0
    sequence = [errors(language, 16, steps, "random")[1] for steps in (4, 16, 256)]
    assert sequence[0] > sequence[1] > sequence[2] and sequence[2] < 0.15
