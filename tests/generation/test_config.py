"""DiffusionGenerationConfig: every bad input raises a ValueError naming the fix, before any forward; save and load."""

import pytest
import torch

from hf_mdm.generation import DiffusionGenerationConfig

from .test_generate import MASK, PROMPT_MASK, PROMPTS, tiny_mdm


BAD_GENERATE_ARGUMENTS = [
    (dict(steps=0), "steps"),
    (dict(steps=2.5), "steps"),
    (dict(max_new_tokens=10, block_length=4), "does not divide"),
    (dict(max_new_tokens=32, block_length=5), "does not divide"),
    (dict(max_length=13, block_length=3), "does not divide"),  # 8 new tokens after the 5-token prompt
    (dict(max_new_tokens=16, block_length=4, steps=2), "at least one step"),
    (dict(strategy="threshold", threshold=0.0), "threshold"),
    (dict(threshold=1.5), "threshold"),
    (dict(strategy="nope"), "register_strategy"),
    (dict(schedule="nope"), "register_schedule"),
    (dict(reveal_counts="nope"), "register_reveal_counts"),
    (dict(reveal_counts="dream", reveal_counts_kwargs={"eps": 1.5}), "eps"),
    (dict(reveal_counts="even", reveal_counts_kwargs={"eps": 0.1}), "reveal_counts_kwargs"),
    (dict(strategy_kwargs={"threshold": 0.5}), "strategy_kwargs"),
    (dict(do_sample=True, min_p=0.1), "does not apply \\['min_p'\\]"),
    (dict(repetition_penalty=1.2), "logits_processor"),
    (dict(strategy="margin", strategy_kwargs={"threshold": 0.5}), "Bad strategy_kwargs"),
    (dict(strategy_temperature=-1.0), "strategy_temperature"),
    (dict(cache="kv"), "cache"),
    (dict(do_sample=True, temperature=0.0), "do_sample=False"),
    (dict(do_sample=True, top_p=0.0), "top_p"),
    (dict(do_sample=True, top_k=-2), "top_k"),
    (dict(num_beams=2), "beam"),
    (dict(eos_token_id="eos"), "eos_token_id"),
    (dict(mask_token_id=400), "outside the model's vocabulary"),
    (dict(max_new_tokens=200), "max_position_embeddings"),
    (dict(output_history=True), "return_dict_in_generate"),
    (dict(stepz=3), "unexpected arguments"),
    (dict(generator=[torch.Generator()]), "one generator per row"),
    (dict(attention_mask=torch.ones(2, 4, dtype=torch.long)), "attention_mask has shape"),
    (dict(input_ids=torch.tensor([1, 2, 3])), "2-D integer tensor"),
]


@pytest.mark.bad_input
@pytest.mark.parametrize("arguments, message", BAD_GENERATE_ARGUMENTS)
def test_bad_input_raises_before_any_forward(arguments, message):
    model = tiny_mdm()
    forwards = []
    model.register_forward_pre_hook(lambda module, args: forwards.append(1))
    arguments = {"input_ids": PROMPTS, **arguments}
    with pytest.raises(ValueError, match=message):
        model.generate(**arguments)
    assert forwards == []


@pytest.mark.bad_input
def test_missing_mask_token_names_the_fix():
    model = tiny_mdm()
    model.config.mask_token_id = None
    model.generation_config.mask_token_id = None
    with pytest.raises(ValueError, match="mask_token_id=tokenizer.mask_token_id"):
        model.generate(PROMPTS, max_new_tokens=4)


def test_cache_needs_a_model_that_takes_a_cache():
    from .test_stock_mlm import tiny_bert

    with pytest.raises(ValueError, match="cache='none'"):
        tiny_bert().generate(PROMPTS, max_new_tokens=4, cache="prefix")


def test_config_round_trips_through_generation_config_json(tmp_path):
    config = DiffusionGenerationConfig(
        max_new_tokens=32,
        steps=16,
        block_length=8,
        strategy="margin",
        reveal_counts="dream",
        reveal_counts_kwargs={"eps": 0.01},
        cache="dual",
        mask_token_id=MASK,
        eos_token_id=[1, 2],
    )
    config.save_pretrained(tmp_path)
    loaded = DiffusionGenerationConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, DiffusionGenerationConfig)
    fields = ("max_new_tokens", "steps", "block_length", "strategy", "reveal_counts", "reveal_counts_kwargs", "cache")
    for field in fields + ("mask_token_id", "eos_token_id"):
        assert getattr(loaded, field) == getattr(config, field)


def test_model_saves_and_reloads_its_diffusion_generation_config(tmp_path):
    model = tiny_mdm()
    assert model.generation_config.mask_token_id == MASK  # taken from the model config
    model.generation_config.steps = 7
    model.generation_config.strategy = "entropy"
    model.save_pretrained(tmp_path)
    reloaded = type(model).from_pretrained(tmp_path)
    assert isinstance(reloaded.generation_config, DiffusionGenerationConfig)
    assert (reloaded.generation_config.steps, reloaded.generation_config.strategy) == (7, "entropy")


def test_call_arguments_override_passed_config_which_overrides_model_config():
    model = tiny_mdm()
    model.generation_config.max_new_tokens = 4
    model.generation_config.steps = 4
    out = model.generate(PROMPTS, attention_mask=PROMPT_MASK, return_dict_in_generate=True)
    assert out.sequences.shape[1] == 9 and out.nfe.tolist() == [4, 4]
    passed = DiffusionGenerationConfig(steps=2, return_dict_in_generate=True)
    out = model.generate(PROMPTS, attention_mask=PROMPT_MASK, generation_config=passed)
    assert out.sequences.shape[1] == 9 and out.nfe.tolist() == [2, 2]
    out = model.generate(PROMPTS, attention_mask=PROMPT_MASK, generation_config=passed, steps=1)
    assert out.nfe.tolist() == [1, 1]


def test_rule_arguments_need_the_rule_name():
    with pytest.raises(ValueError, match="without `reveal_counts`"):
        DiffusionGenerationConfig(reveal_counts_kwargs={"eps": 0.1})
