"""DiffusionSampler's API: built from a generation config, it owns the block plan and the step split, builds each
model request, and `step()` returns a `DiffusionSamplerOutput`; a block cache decides itself when it records; the
sampler's entry points refuse bad inputs with the fix."""

import pytest
import torch
from transformers import GenerationConfig

from hf_mdm.generation import (
    CACHES,
    DENOISERS,
    STRATEGIES,
    DiffusionGenerationConfig,
    DiffusionSampler,
    DiffusionSamplerOutput,
    NoBlockCache,
    PrefixBlockCache,
    register_cache,
)

from .test_generate import MASK, PAD, PROMPT_MASK, PROMPTS, tiny_mdm
from .test_stock_mlm import tiny_bert


def sampler_for(**fields) -> DiffusionSampler:
    return DiffusionSampler.from_config(DiffusionGenerationConfig(mask_token_id=MASK, **fields))


def forward(model, request):
    """The model's logits for a request (None when no row needs a forward)."""
    if request is None:
        return None
    return model(request.input_ids, attention_mask=request.attention_mask, position_ids=request.position_ids,
                 logits_to_keep=request.keep).logits  # fmt: skip


def decode_by_hand(model, sampler, state):
    """generate()'s loop, with the model called on each request (a block after every row is done runs no step);
    every step's output."""
    outputs = []
    with torch.no_grad():
        for block in sampler.blocks:
            sampler.begin_block(state, block)
            while sampler.is_running(state):
                request = sampler.model_request(state)
                outputs.append(sampler.step(state, forward(model, request), request))
    return outputs


def test_from_config_builds_the_parts_the_config_names():
    sampler = sampler_for(strategy="threshold", threshold=0.5, cache="dual", reveal_counts="even", steps=6)
    assert sampler.strategy.name == "threshold" and sampler.strategy.threshold == 0.5
    assert sampler.cache.name == "dual" and sampler.count_rule.name == "even" and sampler.steps == 6
    unset = sampler_for()  # a config's unset fields take generate()'s defaults
    assert (unset.strategy.name, unset.count_rule.name, unset.cache.name) == ("confidence", "schedule", "none")


@pytest.mark.parametrize(
    "steps, block_length, expected_steps",
    [(None, None, [7]), (5, 4, [3, 2]), (4, 4, [2, 2]), (10, 2, [4, 3, 3])],
)
def test_set_timesteps_plans_each_rows_blocks_and_splits_the_steps(steps, block_length, expected_steps):
    sampler = sampler_for(steps=steps, block_length=block_length)
    prompt = torch.tensor([[PAD, 5, 6, 7], [5, MASK, 6, 7]])  # row 1 fills its prompt [MASK] in block 0
    state = sampler.prepare(prompt, (prompt != PAD).long(), max_new_tokens=6 if block_length != 4 else 8)
    assert [block.num_steps for block in sampler.blocks] == expected_steps
    length = state.canvas.shape[1]
    width = block_length or length - 4
    assert [block.end for block in sampler.blocks] == list(range(4 + width, length + 1, width))
    assert sampler.blocks[0].starts.tolist() == [4, 1]  # each row's own first position to fill
    for previous, block in zip(sampler.blocks, sampler.blocks[1:]):
        assert block.starts.tolist() == [previous.end, previous.end]


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
@pytest.mark.parametrize("block_length", [None, 2])
def test_driving_the_sampler_by_hand_equals_generate_and_each_output_describes_its_step(strategy, block_length):
    model = tiny_mdm()
    fields = dict(strategy=strategy, steps=4, block_length=block_length, do_sample=strategy in ("random", "remdm"))
    reference = model.generate(PROMPTS, attention_mask=PROMPT_MASK, max_new_tokens=4,
                               generator=torch.Generator().manual_seed(0), **fields)  # fmt: skip
    sampler = DiffusionSampler.from_config(
        DiffusionGenerationConfig(mask_token_id=MASK, **fields), generator=torch.Generator().manual_seed(0)
    )
    state = sampler.prepare(PROMPTS, PROMPT_MASK, max_new_tokens=4)
    before = state.canvas.clone()
    outputs = decode_by_hand(model, sampler, state)
    assert torch.equal(state.canvas, reference)
    assert all(isinstance(output, DiffusionSamplerOutput) and output.canvas is state.canvas for output in outputs)
    # a strategy that runs past its block's grid (threshold_editing's editing steps) takes those steps at time 0
    past_grid = [not STRATEGIES[strategy].fixed_steps and output.t == output.s == 0.0 for output in outputs]
    assert all(past or 0.0 <= output.s < output.t <= 1.0 for output, past in zip(outputs, past_grid))
    assert torch.equal(outputs[-1].done, state.done) and not outputs[-1].active.any()
    revealed = sum(output.revealed.sum() for output in outputs)
    if strategy not in ("remdm", "editing"):  # every step's reveals, and nothing else, filled the canvas
        assert int(revealed) == int((before == MASK).sum() - (state.canvas == MASK).sum())


@pytest.mark.parametrize("strategy", ["confidence", "random"])
def test_driving_the_sampler_by_hand_on_a_block_model_equals_generate(strategy):
    model = tiny_mdm(block_size=2)
    fields = dict(strategy=strategy, steps_per_block=2, do_sample=strategy == "random")
    prompts = torch.tensor([[PAD, PAD, 5, 6, 7], [PAD, 3, 4, 5, 6]])  # 3 and 4 real tokens: other block ends
    prompt_mask = (prompts != PAD).long()
    reference = model.generate(prompts, attention_mask=prompt_mask, max_new_tokens=4,
                               generator=torch.Generator().manual_seed(0), **fields)  # fmt: skip
    sampler = DiffusionSampler.from_config(
        DiffusionGenerationConfig(mask_token_id=MASK, cache="none", **fields),
        generator=torch.Generator().manual_seed(0),
        block_size=model.config.block_size,
    )
    state = sampler.prepare(prompts, prompt_mask, max_new_tokens=4)
    assert [block.ends.tolist() for block in sampler.blocks][:2] == [[6, 7], [8, 9]]  # each row's model blocks
    decode_by_hand(model, sampler, state)
    assert torch.equal(state.canvas, reference)


def test_a_block_cache_records_once_per_block_unless_a_request_asks_for_more():
    records = []

    @register_cache("record-counting-test")
    class RecordCounting(PrefixBlockCache):
        def record(self, *args, **kwargs):
            records.append(1)
            return super().record(*args, **kwargs)

    try:
        model = tiny_mdm()
        model.generate(PROMPTS, attention_mask=PROMPT_MASK, max_new_tokens=8, steps=8, block_length=4,
                       cache="record-counting-test")  # fmt: skip
        assert len(records) == 2  # two blocks, each recorded at its first forward
        records.clear()
        sampler = sampler_for(steps=4, cache="record-counting-test")
        state = sampler.prepare(PROMPTS, PROMPT_MASK, max_new_tokens=4)
        sampler.begin_block(state, sampler.blocks[0])
        for _ in range(2):
            request = sampler.model_request(state)
            request.refresh_cache = True
            sampler.step(state, DENOISERS.build("mdm", model=model).logits(request), request)
        assert len(records) == 2  # a request may force a record mid-block
    finally:
        CACHES.pop("record-counting-test")


PAYS_PER_STEP = sorted(name for name in STRATEGIES if name != "random" and STRATEGIES[name].fixed_steps)


@pytest.mark.bad_input
@pytest.mark.parametrize("config", [GenerationConfig(), {"steps": 4}, None, "confidence"], ids=repr)
def test_from_config_refuses_what_is_no_diffusion_generation_config(config):
    with pytest.raises(TypeError, match="needs a DiffusionGenerationConfig"):
        DiffusionSampler.from_config(config)


@pytest.mark.bad_input
def test_from_config_refuses_a_config_without_a_mask_id():
    with pytest.raises(ValueError, match="No \\[MASK\\] token id"):
        DiffusionSampler.from_config(DiffusionGenerationConfig(steps=4))


@pytest.mark.bad_input
@pytest.mark.parametrize("field, registry", [("strategy", "strategy"), ("cache", "cache"),
                                             ("reveal_counts", "reveal_counts rule")])  # fmt: skip
def test_from_config_refuses_an_unregistered_name_set_after_validation(field, registry):
    config = DiffusionGenerationConfig(mask_token_id=MASK)
    setattr(config, field, "no-such-name")
    with pytest.raises(ValueError, match=f"Unknown {registry} 'no-such-name'"):
        DiffusionSampler.from_config(config)


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "input_ids",
    [PROMPTS[0], PROMPTS[None], PROMPTS.float(), PROMPTS.bool(), PROMPTS.tolist(), PROMPTS.to(torch.complex64)],
    ids=["1-D", "3-D", "float", "bool", "list", "complex"],
)
def test_prepare_refuses_a_prompt_that_is_no_2d_integer_tensor(input_ids):
    with pytest.raises(ValueError, match="2-D integer tensor"):
        sampler_for(steps=4).prepare(input_ids, max_new_tokens=4)


@pytest.mark.bad_input
@pytest.mark.parametrize("attention_mask", [PROMPT_MASK[:, 1:], PROMPT_MASK[0], PROMPT_MASK.tolist()],
                         ids=["short", "1-D", "list"])  # fmt: skip
def test_prepare_refuses_a_mask_of_another_shape(attention_mask):
    with pytest.raises(ValueError, match="`attention_mask` must be a tensor of the prompt's shape"):
        sampler_for(steps=4).prepare(PROMPTS, attention_mask, max_new_tokens=4)


@pytest.mark.bad_input
@pytest.mark.parametrize("max_new_tokens", [-1, 1.5, True, "4", None])
def test_prepare_refuses_a_count_of_new_tokens_that_is_no_non_negative_integer(max_new_tokens):
    with pytest.raises(ValueError, match="`max_new_tokens` must be a non-negative integer"):
        sampler_for(steps=4).prepare(PROMPTS, PROMPT_MASK, max_new_tokens=max_new_tokens)


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "fields, max_new_tokens, message",
    [
        (dict(steps=8, block_length=3), 4, "block_length=3 does not divide max_new_tokens=4"),
        (dict(steps=8, block_length=3), 8, "block_length=3 does not divide max_new_tokens=8"),
        (dict(steps=1, block_length=2), 4, "steps=1 is fewer than the 2 blocks"),
        (dict(steps=3, block_length=1), 4, "steps=3 is fewer than the 4 blocks"),
    ],
)
def test_set_timesteps_refuses_a_plan_no_row_could_run(fields, max_new_tokens, message):
    with pytest.raises(ValueError, match=message):
        sampler_for(**fields).prepare(PROMPTS, PROMPT_MASK, max_new_tokens=max_new_tokens)


@pytest.mark.bad_input
@pytest.mark.parametrize("strategy", PAYS_PER_STEP)
@pytest.mark.parametrize("block_length", [None, 2])
def test_set_timesteps_refuses_more_steps_than_a_strategy_that_pays_per_step_may_take(strategy, block_length):
    sampler = sampler_for(strategy=strategy, steps=16 * 4 + 1, block_length=block_length)
    with pytest.raises(ValueError, match="Pass steps <= 64"):
        sampler.prepare(PROMPTS, PROMPT_MASK, max_new_tokens=4)
    sampler.steps = 64
    sampler.prepare(PROMPTS, PROMPT_MASK, max_new_tokens=4)  # the cap itself is accepted


@pytest.mark.bad_input
@pytest.mark.parametrize("call", ["model_request", "step"])
def test_a_request_or_a_step_before_any_block_is_refused(call):
    sampler = sampler_for(steps=4)
    state = sampler.prepare(PROMPTS, PROMPT_MASK, max_new_tokens=4)
    arguments = (state,) if call == "model_request" else (state, None, None)
    with pytest.raises(RuntimeError, match="call sampler.begin_block"):
        getattr(sampler, call)(*arguments)


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "wrong_logits, message",
    [
        (lambda logits: None, "needs the logits of its request"),
        (lambda logits: logits[:1], "needs the logits of its request"),
        (lambda logits: logits[:, :1], "needs the logits of its request"),
        (lambda logits: logits[0], "needs the logits of its request"),
        (lambda logits: logits.tolist(), "needs the logits of its request"),
        ("no request", "got logits without their request"),
    ],
    ids=["none", "fewer rows", "fewer positions", "2-D", "list", "no request"],
)
def test_a_step_with_logits_that_are_not_its_requests_is_refused(wrong_logits, message):
    model = tiny_mdm()
    sampler = sampler_for(steps=4)
    state = sampler.prepare(PROMPTS, PROMPT_MASK, max_new_tokens=4)
    sampler.begin_block(state, sampler.blocks[0])
    request = sampler.model_request(state)
    logits = DENOISERS.build("mdm", model=model).logits(request)
    canvas = state.canvas.clone()
    with pytest.raises(ValueError, match=message):
        if wrong_logits == "no request":
            sampler.step(state, logits, None)
        else:
            sampler.step(state, wrong_logits(logits), request)
    assert torch.equal(state.canvas, canvas)


@pytest.mark.bad_input
@pytest.mark.parametrize("strategy", sorted(name for name in STRATEGIES if STRATEGIES[name].revises))
def test_a_sampler_refuses_a_revising_strategy_with_a_cache_that_keeps_revealed_keys(strategy):
    @register_cache("keeps-revealed-api-test")
    class KeepsRevealed(NoBlockCache):
        refreshes_revealed = False

    try:
        with pytest.raises(ValueError, match="remasks or edits revealed tokens") as error:
            sampler_for(strategy=strategy, cache="keeps-revealed-api-test")
        recomputing = sorted(name for name in CACHES if CACHES[name].refreshes_revealed)
        assert f"recomputes the block ({recomputing})" in str(error.value)  # the registered ones it may use
        sampler_for(strategy="confidence", cache="keeps-revealed-api-test")
    finally:
        CACHES.pop("keeps-revealed-api-test")


@pytest.mark.bad_input
@pytest.mark.parametrize("cache", ["prefix", "dual"])
def test_a_denoiser_that_runs_no_block_cache_refuses_one(cache):
    with pytest.raises(ValueError, match=f"cache='{cache}' needs a denoiser adapter that runs a block cache"):
        DENOISERS.build("masked_lm", model=tiny_bert()).check_cache(CACHES.build(cache))
    DENOISERS.build("mdm", model=tiny_mdm()).check_cache(CACHES.build(cache))
