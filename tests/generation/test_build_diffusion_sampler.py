"""`build_diffusion_sampler`: the sampler, denoiser and config that generate() decodes with (the call's keywords
over the passed and the model's generation config, the model's [MASK] and training schedule, the caller's logits
processors), for whoever drives or analyses generate()'s decoder (e.g. the exact sampler law)."""

import pytest
import torch
from transformers import LogitsProcessorList, SuppressTokensLogitsProcessor

from hf_mdm.generation import DiffusionGenerationConfig

from .test_generate import MASK, PROMPT_MASK, PROMPTS, tiny_mdm
from .test_sampler_api import decode_by_hand


@pytest.mark.parametrize("block_size", [None, 2])
def test_build_diffusion_sampler_is_the_sampler_generate_decodes_with(block_size):
    model = tiny_mdm(block_size=block_size, schedule="cosine")
    model.generation_config.schedule = None  # the model's training schedule is still the one decoded with
    passed = DiffusionGenerationConfig(strategy="confidence", do_sample=True, temperature=0.8)
    fields = dict(strategy="random", steps_per_block=2, block_length=2, cache="none", max_new_tokens=4)
    processors = LogitsProcessorList([SuppressTokensLogitsProcessor([8, 9])])
    reference = model.generate(PROMPTS, attention_mask=PROMPT_MASK, generation_config=passed,
                               logits_processor=processors, generator=torch.Generator().manual_seed(0),
                               **fields)  # fmt: skip
    sampler, denoiser, config = model.build_diffusion_sampler(
        passed, processors, torch.Generator().manual_seed(0), **fields
    )
    assert (config.strategy, config.temperature, config.max_new_tokens) == ("random", 0.8, 4)
    assert sampler.strategy.name == "random" and sampler.do_sample and sampler.steps_per_block == 2
    assert sampler.mask_token_id == MASK and sampler.schedule.name == "cosine"  # the model's training schedule
    assert processors[0] in sampler.processors and sampler.block_size == denoiser.block_size() == block_size
    state = sampler.prepare(PROMPTS, PROMPT_MASK, max_new_tokens=config.max_new_tokens)
    decode_by_hand(model, sampler, state)
    assert torch.equal(state.canvas, reference)
    assert not torch.isin(reference[:, PROMPTS.shape[1] :], torch.tensor([8, 9])).any()
