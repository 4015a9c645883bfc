"""The one resolution of the [MASK] id (`tokenizer_checks.model_mask_token_id`) that generate(), the lm-eval model,
the CLI and the sweep share."""

from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st

from hf_mdm.tokenizer_checks import model_mask_token_id


token_ids = st.one_of(st.none(), st.integers(0, 50))


def holder(mask_token_id):
    return SimpleNamespace(mask_token_id=mask_token_id)


@given(token_ids, token_ids, token_ids, token_ids)
def test_the_first_set_id_wins_in_the_documented_order(call_id, generation_id, config_id, tokenizer_id):
    model = SimpleNamespace(generation_config=holder(generation_id), config=holder(config_id))
    explicit = holder(call_id)
    first = next((token_id for token_id in (generation_id, config_id) if token_id is not None), None)
    assert model_mask_token_id(model) == first
    # a call's generation config replaces the model's; the tokenizer is the last resort
    expected = next((token_id for token_id in (call_id, config_id, tokenizer_id) if token_id is not None), None)
    assert model_mask_token_id(model, explicit, holder(tokenizer_id)) == expected


def test_a_model_without_generation_config_uses_its_config():
    model = SimpleNamespace(config=holder(7))
    assert model_mask_token_id(model) == 7
    assert model_mask_token_id(SimpleNamespace(config=SimpleNamespace())) is None
