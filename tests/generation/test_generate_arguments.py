"""generate()'s arguments from three sources (call > passed generation_config > model.generation_config): the
caller's values are never dropped silently, the model's defaults give way to the caller's choices, and every field
of transformers' GenerationConfig is read, inert or refused."""

import copy
import json

import pytest
import torch
from transformers import GenerationConfig
from transformers.testing_utils import CaptureLogger
from transformers.utils import logging

from hf_mdm import MDMForMaskedGeneration
from hf_mdm.generation import DecodingCallback, DiffusionGenerationConfig
from hf_mdm.generation.configuration import (
    DIFFUSION_FIELDS,
    INERT_FIELDS,
    SHARED_FIELDS,
    UNSUPPORTED_FIELDS,
    generation_fields,
)

from .test_generate import EOS, MASK, PAD, PROMPT_MASK, PROMPTS, scripted, tiny_mdm


def test_every_generation_config_field_is_read_inert_or_refused():
    """A field transformers adds to GenerationConfig must be classified here before generate() accepts it."""
    classified = [*DIFFUSION_FIELDS, *SHARED_FIELDS, *INERT_FIELDS, *UNSUPPORTED_FIELDS]
    assert len(classified) == len(set(classified))
    fields = {name for name in vars(GenerationConfig()) if not name.startswith("_")} - {"transformers_version"}
    assert fields | set(DIFFUSION_FIELDS) == set(classified)
    assert set(vars(DiffusionGenerationConfig())) - {"_from_model_config"} <= generation_fields()


def test_the_callers_length_replaces_the_models():
    model = tiny_mdm()
    model.generation_config.max_new_tokens = 4
    assert model.generate(PROMPTS, max_length=8, steps=3).shape == (2, 8)  # max_length: prompt 5 + 3 new
    model.generation_config.max_new_tokens, model.generation_config.max_length = None, 9
    assert model.generate(PROMPTS, max_new_tokens=2, steps=2).shape == (2, 7)
    assert model.generate(PROMPTS, steps=4).shape == (2, 9)


@pytest.mark.bad_input
def test_a_passed_config_giving_both_lengths_is_refused():
    passed = DiffusionGenerationConfig(max_new_tokens=4, max_length=12)
    with pytest.raises(ValueError, match="both given \\(by the passed generation_config\\)"):
        tiny_mdm().generate(PROMPTS, generation_config=passed)


def test_the_models_choices_give_way_to_the_callers():
    """The model's strategy arguments, threshold and sampling temperature belong to the model's own strategy and
    sampling choice; a caller who picks another decodes exactly as with a plain model."""
    plain, configured = tiny_mdm(), tiny_mdm()
    defaults = configured.generation_config
    defaults.strategy, defaults.strategy_kwargs = "remdm", {"eta": 0.3}
    defaults.do_sample, defaults.temperature, defaults.top_k = True, 0.5, 3
    kwargs = dict(attention_mask=PROMPT_MASK, max_new_tokens=4, steps=4)
    for strategy in ("confidence", "margin"):
        expected = plain.generate(PROMPTS, strategy=strategy, **kwargs)
        assert torch.equal(configured.generate(PROMPTS, strategy=strategy, do_sample=False, **kwargs), expected)
    defaults.strategy, defaults.strategy_kwargs, defaults.threshold = "threshold", None, 0.5
    assert torch.equal(
        configured.generate(PROMPTS, strategy="margin", do_sample=False, **kwargs),
        plain.generate(PROMPTS, strategy="margin", **kwargs),
    )
    passed = copy.deepcopy(configured.generation_config)  # the model's values, passed back: still the model's
    passed.strategy, passed.do_sample = "entropy", False
    assert torch.equal(
        configured.generate(PROMPTS, generation_config=passed, **kwargs),
        plain.generate(PROMPTS, strategy="entropy", **kwargs),
    )


def test_the_models_sampling_parameters_give_way_to_a_greedy_call_without_a_warning():
    """A greedy call drops the model's temperature / top_k instead of keeping them in the config it runs, where
    GenerationConfig.validate would warn that they "may be ignored" on every call."""
    model = tiny_mdm()
    defaults = model.generation_config
    defaults.do_sample, defaults.temperature, defaults.top_k = True, 0.5, 3
    logger = logging.get_logger("transformers.generation.configuration_utils")
    type(logger).warning_once.cache_clear()  # an earlier test may have logged the same warning once already
    with CaptureLogger(logger) as captured:
        model.generate(PROMPTS, max_new_tokens=4, steps=4, do_sample=False)
    assert "not valid" not in captured.out


def test_temperature_zero_is_greedy_as_in_llada_and_dream():
    model = tiny_mdm()
    assert torch.equal(
        model.generate(PROMPTS, max_new_tokens=4, temperature=0.0), model.generate(PROMPTS, max_new_tokens=4)
    )


def test_eos_ids_pass_the_models_own_suppress_list():
    """enable_diffusion_generation suppresses special tokens; an EOS id given later must still end a row."""
    model = scripted([[10, 11, EOS, 12, 13]])
    model.generation_config.suppress_tokens = [EOS, 12]
    out = model.generate(torch.tensor([[20]]), max_new_tokens=4, steps=4, eos_token_id=EOS, pad_token_id=PAD)
    assert out.tolist() == [[20, 11, EOS, PAD, PAD]]


@pytest.mark.bad_input
def test_unread_keys_of_generation_config_json_are_refused_by_name(tmp_path):
    tiny_mdm().save_pretrained(tmp_path)
    path = tmp_path / "generation_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "alg": "entropy", "stepz": 3}))
    model = MDMForMaskedGeneration.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="model.generation_config has fields .* \\['alg', 'stepz'\\].*Dream's `alg`"):
        model.generate(PROMPTS, max_new_tokens=4)
    del model.generation_config.alg, model.generation_config.stepz
    with pytest.raises(ValueError, match="unexpected arguments \\['alg'\\]"):  # never swallowed by an attribute
        model.generate(PROMPTS, max_new_tokens=4, alg="entropy")


def test_update_sets_fields_only():
    config = DiffusionGenerationConfig()
    config.extra = 1
    assert config.update(validate=2, extra=3, stepz=4, steps=5) == {"validate": 2, "extra": 3, "stepz": 4}
    assert (config.steps, config.extra) == (5, 1) and callable(config.validate)
    assert config.unread_fields() == ["extra"]


class Recorder(DecodingCallback):
    def __init__(self):
        self.events = []

    def on_start(self, state):
        self.events.append("start")

    def on_step(self, state):
        self.events.append(("step", state.canvas.clone()))

    def on_block_end(self, state):
        self.events.append("block")

    def on_end(self, state):
        self.events.append("end")


def test_callbacks_see_every_step_and_block_as_the_history_records_them():
    recorder = Recorder()
    out = tiny_mdm().generate(PROMPTS, max_new_tokens=4, steps=4, block_length=2, callbacks=[recorder],
                              return_dict_in_generate=True, output_history=True)  # fmt: skip
    steps = [event[1] for event in recorder.events if isinstance(event, tuple)]
    assert recorder.events[0] == "start" and recorder.events[-1] == "end"
    assert [event for event in recorder.events if isinstance(event, str)] == ["start", "block", "block", "end"]
    assert len(steps) == len(out.history) == 4
    assert all(torch.equal(mine, history) for mine, history in zip(steps, out.history))
    assert not (steps[-1] == MASK).any()
