"""LLaDA 2.x's generation dialect (`generation.llada2_generation_config`): each authors' key maps to the
`DiffusionGenerationConfig` field that decodes as their sampler does, or is kept for `decode_like_authors` (and refused
by generate()), never changed silently; where the mapping follows the authors, generate() returns their tokens on the
fixture."""

import functools
import json
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hf_mdm.generation.llada2_generation_config import llada2_generation_config
from hf_mdm.generation.published_samplers import decode_like_authors
from hf_mdm.modeling_llada2_moe import LLaDA2MoeForMaskedDiffusion


FIXTURE = Path(__file__).parents[1] / "fixtures" / "llada2-tiny"
MASK, EOS, BLOCK = 127, 124, 4
IDS = {"eos_token_id": EOS, "pad_token_id": EOS}
EDITING_DEFAULTS = {"editing_threshold": 0.9, "max_post_steps": 16, "num_to_transfer": 1}  # LLaDA 2.1's generate()


@functools.cache
def load(block_size=BLOCK):
    return LLaDA2MoeForMaskedDiffusion.from_pretrained(FIXTURE, mask_token_id=MASK, block_size=block_size).eval()


def mapped(**dialect):
    return llada2_generation_config({**IDS, **dialect}, load().config)


def fields(config, *names):
    return {name: getattr(config, name) for name in names}


def test_the_published_file_gets_the_authors_defaults():
    """Their generation_config.json holds eos/pad only: their defaults apply (threshold 0.95, greedy)."""
    config = mapped()
    assert fields(config, "strategy", "threshold", "do_sample", "steps", "steps_per_block", "max_new_tokens") == {
        "strategy": "threshold",
        "threshold": 0.95,
        "do_sample": False,
        "steps": None,
        "steps_per_block": None,
        "max_new_tokens": None,
    }
    assert not hasattr(config, "llada2_decoding") and config.unread_fields() == []


@pytest.mark.parametrize(
    "dialect, expected",
    [
        ({"gen_length": 16}, {"max_new_tokens": 16}),
        ({"threshold": 0.7}, {"strategy": "threshold", "threshold": 0.7}),
        ({"steps": 4}, {"steps_per_block": 4, "steps": None}),
        ({"steps": 9, "minimal_topk": 2, "gen_length": 8}, {"steps_per_block": 9, "max_new_tokens": 8}),
        ({"block_length": BLOCK}, {"block_length": None}),
        ({"temperature": 0.0, "top_k": 5, "top_p": 0.5}, {"do_sample": False, "top_k": None, "top_p": None}),
        ({"temperature": 0.8, "top_k": 5, "top_p": 0.5}, {"do_sample": True, "temperature": 0.8, "top_k": 5}),
        ({"temperature": 1.0, "top_k": 0, "top_p": 1.0}, {"do_sample": True, "top_k": None, "top_p": None}),
        ({"temperature": 0.8, "top_p": 0.9}, {"top_p": 0.9}),
        ({"eos_id": EOS, "mask_id": MASK, "eos_early_stop": True}, {"eos_token_id": EOS}),
        (
            {"editing_threshold": 0.5},
            {
                "strategy": "threshold_editing",
                "threshold": 0.95,
                "strategy_kwargs": {"editing_threshold": 0.5, "max_post_steps": 16, "num_to_transfer": 1},
            },
        ),
        (
            {"num_to_transfer": 2, "max_post_steps": 4, "threshold": 0.7},
            {
                "threshold": 0.7,
                "strategy_kwargs": {"editing_threshold": 0.9, "max_post_steps": 4, "num_to_transfer": 2},
            },
        ),
        (
            {"editing_threshold": 1.5, "steps": 4, "minimal_topk": 2},
            {
                "steps_per_block": None,
                "strategy_kwargs": {"editing_threshold": 1.0, "max_post_steps": 16, "num_to_transfer": 1},
            },
        ),
        (
            {"editing_threshold": -0.5},
            {"strategy_kwargs": {"editing_threshold": 0.0, "max_post_steps": 16, "num_to_transfer": 1}},
        ),
    ],
)
def test_each_key_the_authors_share_with_generate_is_mapped(dialect, expected):
    config = mapped(**dialect)
    assert fields(config, *expected) == expected
    assert not hasattr(config, "llada2_decoding")
    assert config.unread_fields() == []
    config.validate()


@pytest.mark.parametrize(
    "dialect, sampler, keys",
    [
        ({"steps": 2}, "llada2_threshold", ["steps"]),
        ({"gen_length": 3}, "llada2_threshold", ["gen_length"]),
        ({"gen_length": 8, "minimal_topk": 4}, "llada2_threshold", ["gen_length", "minimal_topk"]),
        ({"threshold": 1.5}, "llada2_threshold", ["threshold"]),
        ({"temperature": 0.5, "top_p": 0.0}, "llada2_threshold", ["top_p"]),
        ({"num_to_transfer": 0, "threshold": 0.001}, "llada21_editing", ["num_to_transfer"]),
        ({"threshold": 0.0, "max_post_steps": 4}, "llada21_editing", ["threshold"]),
    ],
)
def test_what_generate_cannot_follow_is_kept_for_decode_like_authors_and_refused_by_generate(dialect, sampler, keys):
    config = mapped(**dialect)
    kept = config.llada2_decoding
    assert kept["sampler"] == sampler and kept["not_followed"] == keys
    assert all(kept["options"][key] == value for key, value in dialect.items())
    with pytest.raises(ValueError, match="llada2_decoding"):
        load().generate(torch.tensor([[5, 6, 7]]), generation_config=config, max_new_tokens=4)
    ids = decode_like_authors(
        load(), kept["sampler"], torch.tensor([[5, 6, 7]]), **{**kept["options"], "gen_length": 4}
    )
    assert ids.shape[0] == 1


def test_a_file_hf_mdm_wrote_is_read_as_it_is():
    """`steps` there is hf-mdm's total budget, not the authors' per-block count."""
    config = mapped(strategy="confidence", steps=8, max_new_tokens=16)
    assert fields(config, "strategy", "steps", "steps_per_block", "max_new_tokens") == {
        "strategy": "confidence",
        "steps": 8,
        "steps_per_block": None,
        "max_new_tokens": 16,
    }


def test_max_denoising_steps_is_not_llada2s_and_generate_refuses_it():
    """transformers' DiffusionGemma caps its canvas's denoising steps with it; LLaDA 2.x's maximum editing steps is
    `max_post_steps`. Nothing here reads it, so generate() refuses it."""
    config = mapped(max_denoising_steps=8)
    assert config.unread_fields() == ["max_denoising_steps"]
    with pytest.raises(ValueError, match="max_denoising_steps"):
        load().generate(torch.tensor([[5, 6, 7]]), generation_config=config, max_new_tokens=4)


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "dialect, match",
    [
        ({"block_length": 8}, "block_length=8, but the model is block-causal with block_size=4"),
        ({"mask_id": 5}, "mask_id=5, but the model's mask_token_id is 127"),
        ({"eos_id": 21}, "eos_id=21 .* eos_token_id=124: they must agree"),
        ({"threshold": "0.9"}, "threshold"),
        ({"steps": 0}, "steps"),
        ({"temperature": -1.0}, "temperature"),
        ({"editing_threshold": 0.5, "max_post_steps": -1}, "max_post_steps"),
        ({"gen_length": 2.5}, "gen_length"),
    ],
)
def test_contradictory_or_malformed_keys_are_refused_on_load(dialect, match):
    with pytest.raises(ValueError, match=match):
        mapped(**dialect)


@pytest.mark.parametrize(
    "prompt, gen_length, threshold, steps",
    [
        ([6, 32, 110, 45, 89, 65, 23, 63], 8, 0.8, 4),
        ([87, 63, 97, 33, 23, 7, 9], 9, 0.95, 4),
        ([87, 63, 97], 9, 0.5, 6),
        ([12, 40, 3, 77, 18], 11, 0.3, 32),
    ],
)
def test_where_the_mapping_follows_the_authors_generate_returns_their_tokens(prompt, gen_length, threshold, steps):
    """Greedy, steps >= block_length and prompt + gen_length a whole number of blocks: model.generate() with the
    mapped config returns what `llada2_threshold` (token-identical to the authors' generate()) returns."""
    model = load()
    options = dict(gen_length=gen_length, threshold=threshold, steps=steps, block_length=BLOCK)
    config = llada2_generation_config({**IDS, **options}, model.config)
    authors = decode_like_authors(model, "llada2_threshold", torch.tensor([prompt]), **options)[0].tolist()
    generated = model.generate(torch.tensor([prompt]), generation_config=config)[0, len(prompt) :].tolist()
    assert generated[: len(authors)] == authors
    assert all(token == EOS for token in generated[len(authors) :])


def test_the_recorded_greedy_cases_map_as_their_settings_say():
    """Every greedy 2.0 case of the fixture whose steps reach its block length maps to the threshold strategy with its
    threshold, every 2.1 case to threshold_editing with its settings; the others are kept for decode_like_authors."""
    for case in json.loads((FIXTURE / "reference_generate.json").read_text())["cases"]:
        options = {key: value for key, value in case["args"].items() if key not in ("eos_id", "mask_id")}
        config = llada2_generation_config({**IDS, **options}, load(options["block_length"]).config)
        steps_reach = min(options["steps"], options["gen_length"] // options.get("minimal_topk", 1)) >= BLOCK
        v21 = case["name"].startswith("v21")
        follows = v21 or (steps_reach and options["block_length"] == BLOCK)
        assert hasattr(config, "llada2_decoding") != follows, case["name"]
        assert config.strategy == ("threshold_editing" if v21 else "threshold")
        assert config.threshold == options["threshold"]
        if v21:
            expected = {key: options.get(key, default) for key, default in EDITING_DEFAULTS.items()}
            assert config.strategy_kwargs == expected


DIALECT_VALUES = {
    "gen_length": st.sampled_from([1, 3, 8, 16, 2.5, None]),
    "steps": st.sampled_from([1, 2, 4, 9, 0, None]),
    "minimal_topk": st.sampled_from([1, 2, 4, None]),
    "threshold": st.sampled_from([0.0, 0.3, 0.95, 1.0, 1.5, "0.9", None]),
    "temperature": st.sampled_from([0.0, 0.7, 1.0, -1.0, None]),
    "top_k": st.sampled_from([0, 5, None]),
    "top_p": st.sampled_from([0.0, 0.5, 1.0, None]),
    "eos_early_stop": st.sampled_from([True, False, None]),
    "editing_threshold": st.sampled_from([0.5, 1.0, None]),
    "max_post_steps": st.sampled_from([0, 4, None]),
    "num_to_transfer": st.sampled_from([0, 1, 2, None]),
}


@settings(max_examples=60, deadline=None)
@given(st.fixed_dictionaries({}, optional=DIALECT_VALUES))
def test_any_dialect_is_refused_followed_or_kept_never_half_read(dialect):
    """Every LLaDA 2.x file either is refused on load (a malformed value), or gives a config generate() runs with the
    threshold strategy and the authors' greedy/sampling choice, or keeps every key for decode_like_authors (and
    generate() refuses it)."""
    dialect = {key: value for key, value in dialect.items() if value is not None}
    try:
        config = mapped(**dialect)
    except ValueError:
        return
    assert config.unread_fields() in ([], ["llada2_decoding"])
    if hasattr(config, "llada2_decoding"):
        kept = config.llada2_decoding
        dropped = ("steps", "minimal_topk") if kept["sampler"] == "llada21_editing" else ()
        assert kept["options"] == {key: value for key, value in dialect.items() if key not in dropped}
        assert kept["not_followed"] and set(kept["not_followed"]) <= set(dialect) | {"steps"}
        return
    config.validate()
    editing = any(key in dialect for key in ("editing_threshold", "max_post_steps", "num_to_transfer"))
    assert config.strategy == ("threshold_editing" if editing else "threshold")
    assert config.threshold == dialect.get("threshold", 0.95)
    assert config.do_sample == (dialect.get("temperature", 0.0) > 0)
    assert config.max_new_tokens == dialect.get("gen_length")
