import pytest
from transformers import AutoConfig

import hf_mdm  # noqa: F401  (registers "mdm")
from hf_mdm import MDMConfig

from .conftest import tiny_config


def test_defaults_follow_llama_conventions(config):
    assert config.model_type == "mdm"
    assert config.head_dim == config.hidden_size // config.num_attention_heads
    assert MDMConfig(mask_token_id=0).num_key_value_heads == MDMConfig(mask_token_id=0).num_attention_heads
    assert config.rope_parameters["rope_theta"] == 10000.0
    assert tiny_config(rope_theta=500000.0).rope_parameters["rope_theta"] == 500000.0


def test_round_trip_through_auto_config(tmp_path, config):
    config.save_pretrained(tmp_path)
    loaded = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, MDMConfig)
    for key, value in config.to_diff_dict().items():
        assert getattr(loaded, key) == value, key


@pytest.mark.bad_input
def test_missing_mask_token_says_how_to_add_one():
    with pytest.raises(ValueError, match="(?s)needs `mask_token_id`.*add_special_tokens.*resize_token_embeddings"):
        tiny_config(mask_token_id=None)


def test_mask_token_outside_vocab():
    with pytest.raises(ValueError, match="(?s)outside the vocabulary.*add_special_tokens"):
        tiny_config(mask_token_id=17)


def test_grouped_query_heads_must_divide():
    with pytest.raises(ValueError, match="multiple of num_key_value_heads"):
        tiny_config(num_key_value_heads=3)


def test_unknown_training_schedule():
    with pytest.raises(ValueError, match="Unknown noise schedule"):
        tiny_config(schedule="sigmoid")


def test_schedule_kwargs_reach_the_schedule():
    config = tiny_config(schedule="polynomial", schedule_kwargs={"exponent": 3.0})
    assert config.noise_schedule.exponent == 3.0


@pytest.mark.parametrize(
    "field,value,message", [("loss_weighting", "nelbo", "loss_weighting"), ("logits_shift", 2, "logits_shift")]
)
def test_objective_fields_are_validated(field, value, message):
    with pytest.raises(ValueError, match=message):
        tiny_config(**{field: value})
