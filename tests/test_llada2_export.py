"""`save_pretrained(dir, checkpoint_format="llada2")`: a block-diffusion MDM written in LLaDA 2.x's published format.

The exported folder must load with hf-mdm's `LLaDA2MoeForMaskedDiffusion` (no missing or unexpected weight) and give
the source model's logits; the fixture `llada2-export-tiny` holds the logits the authors' own `LLaDA2MoeModelLM`
computed on such an export (see its README), so the chain is checked against their numbers too. Configurations the
format cannot express are refused before anything is written.
"""

import json
import logging
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file

from hf_mdm import DiTForMaskedDiffusion, MDMForMaskedGeneration
from hf_mdm.configuration_llada2_moe import LLaDA2MoeConfig
from hf_mdm.modeling_llada2_moe import LLaDA2MoeForMaskedDiffusion

from .conftest import tiny_config


FIXTURE = Path(__file__).parent / "fixtures" / "llada2-export-tiny"
BLOCK = 4
# Architectures the format expresses (published layout; q/k/v biases, MHA and tied embeddings).
EXPRESSIBLE = {
    "qknorm-gqa-untied": dict(qk_norm=True, num_key_value_heads=2, tie_word_embeddings=False),
    "qkvbias-mha-tied": dict(qkv_bias=True, num_key_value_heads=4, tie_word_embeddings=True),
}


def block_model(**overrides) -> MDMForMaskedGeneration:
    """A tiny block-diffusion MDM whose norms and biases are not at their initial values (so a lost one shows)."""
    torch.manual_seed(0)
    model = MDMForMaskedGeneration(tiny_config(**{"block_size": BLOCK, **overrides})).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.ndim == 1:
                parameter.add_(0.2 * torch.randn_like(parameter))
    return model


def export(model, folder: Path) -> LLaDA2MoeForMaskedDiffusion:
    model.save_pretrained(folder, checkpoint_format="llada2")
    loaded, info = LLaDA2MoeForMaskedDiffusion.from_pretrained(folder, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    return loaded.eval()


def batch(vocab_size: int, mask_token_id: int):
    """(ids, padding mask): two rows with [MASK] tokens, the second left-padded by 3."""
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(5, vocab_size, (2, 12), generator=generator)
    ids[0, 7:] = mask_token_id
    ids[1, 5:9] = mask_token_id
    attention_mask = torch.ones_like(ids)
    attention_mask[1, :3] = 0
    ids[1, :3] = 0
    return ids, attention_mask


@pytest.mark.parametrize("variant", sorted(EXPRESSIBLE))
def test_the_exported_folder_loads_as_llada2_and_gives_the_same_logits(tmp_path, variant):
    model = block_model(**EXPRESSIBLE[variant])
    loaded = export(model, tmp_path / "llada2")
    ids, attention_mask = batch(model.config.vocab_size, model.config.mask_token_id)
    with torch.no_grad():
        for padding in (None, attention_mask):
            ours = model(ids, attention_mask=padding).logits
            theirs = loaded(ids, attention_mask=padding).logits
            torch.testing.assert_close(theirs, ours, atol=1e-5, rtol=0)
    assert loaded.config.block_size == BLOCK and loaded.config.mask_token_id == model.config.mask_token_id


def test_the_exported_config_and_weights_are_the_published_layout(tmp_path):
    model = block_model(**EXPRESSIBLE["qknorm-gqa-untied"])
    model.save_pretrained(tmp_path, checkpoint_format="llada2")
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "llada2_moe" and config["architectures"] == ["LLaDA2MoeModelLM"]
    assert config["first_k_dense_replace"] == config["num_hidden_layers"] == 2  # every layer dense
    assert config["partial_rotary_factor"] == 1.0 and config["use_qk_norm"] is True
    assert (config["use_qkv_bias"], config["use_bias"]) == (False, False)
    # trust_remote_code readers (SGLang's config loading) find the authors' classes on the Hub
    authors_class = "inclusionAI/LLaDA2.0-mini--modeling_llada2_moe.LLaDA2MoeModelLM"
    assert config["auto_map"]["AutoModelForCausalLM"] == authors_class
    LLaDA2MoeConfig(**config)  # the config class accepts every value
    weights = load_file(tmp_path / "model.safetensors")
    attention = model.model.layers[1].self_attn
    fused = torch.cat([attention.q_proj.weight, attention.k_proj.weight, attention.v_proj.weight])
    assert torch.equal(weights["model.layers.1.attention.query_key_value.weight"], fused)  # q | k | v rows
    assert torch.equal(weights["model.word_embeddings.weight"], model.model.embed_tokens.weight)
    assert "lm_head.weight" in weights and not any("self_attn" in name for name in weights)


def test_a_llada2_model_saves_in_its_own_format_when_asked_for_llada2(tmp_path):
    model = block_model()
    loaded = export(model, tmp_path / "first")
    loaded.save_pretrained(tmp_path / "again", checkpoint_format="llada2")
    again = LLaDA2MoeForMaskedDiffusion.from_pretrained(tmp_path / "again").eval()
    ids, _ = batch(model.config.vocab_size, model.config.mask_token_id)
    with torch.no_grad():
        torch.testing.assert_close(again(ids).logits, model(ids).logits, atol=1e-5, rtol=0)


def test_the_training_objective_travels_with_the_export(tmp_path):
    model = block_model(schedule="polynomial", schedule_kwargs={"exponent": 2}, loss_weighting="uniform")
    loaded = export(model, tmp_path)
    assert (loaded.config.schedule, loaded.config.schedule_kwargs, loaded.config.loss_weighting) == (
        "polynomial",
        {"exponent": 2},
        "uniform",
    )


def test_a_large_export_is_sharded_and_loads_back(tmp_path):
    model = block_model()
    model.save_pretrained(tmp_path, checkpoint_format="llada2", max_shard_size="20KB")
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1
    loaded = LLaDA2MoeForMaskedDiffusion.from_pretrained(tmp_path)
    ids, _ = batch(model.config.vocab_size, model.config.mask_token_id)
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids).logits, model(ids).logits, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "settings, written",
    [
        (dict(strategy="threshold", threshold=0.8), dict(threshold=0.8)),
        (dict(strategy="threshold"), dict(threshold=0.9)),  # hf-mdm's default tau
        (dict(strategy="confidence"), dict(threshold=1.0)),  # no p is above 1: the most confident ones each step
        (dict(), dict(threshold=1.0)),  # confidence is the default
        (dict(do_sample=True, temperature=0.7, top_k=5), dict(threshold=1.0, temperature=0.7, top_k=5)),
    ],
)
def test_the_generation_config_is_written_in_llada2_keywords(tmp_path, settings, written):
    model = block_model()
    model.generation_config.update(max_new_tokens=16, steps_per_block=4, **settings)
    model.save_pretrained(tmp_path, checkpoint_format="llada2")
    generation = json.loads((tmp_path / "generation_config.json").read_text())
    decoding = {key: value for key, value in generation.items() if not key.endswith("token_id")}
    assert decoding == {"block_length": BLOCK, "steps": 4, "gen_length": 16, **written}


@pytest.mark.parametrize("strategy_kwargs", [None, {"editing_threshold": 0.6, "max_post_steps": 3}])
def test_llada21_editing_is_written_in_their_keywords_and_read_back(tmp_path, strategy_kwargs):
    """hf-mdm's threshold_editing is LLaDA 2.1's rule: exported with every setting (the strategy's defaults where the
    config has none) and read back as the same strategy."""
    model = block_model()
    model.generation_config.update(max_new_tokens=16, strategy="threshold_editing", threshold=0.8,
                                   strategy_kwargs=strategy_kwargs)  # fmt: skip
    loaded = export(model, tmp_path)
    written = json.loads((tmp_path / "generation_config.json").read_text())
    expected = {"editing_threshold": 0.9, "max_post_steps": 16, "num_to_transfer": 1, **(strategy_kwargs or {})}
    assert {key: written[key] for key in expected} == expected
    assert (written["threshold"], written["steps"]) == (0.8, BLOCK)
    generation = loaded.generation_config
    assert (generation.strategy, generation.threshold, generation.strategy_kwargs) == (
        "threshold_editing",
        0.8,
        expected,
    )


@pytest.mark.parametrize("steps_per_block", [None, 2, BLOCK])
def test_the_exported_generation_config_reads_back_as_the_same_decoding(tmp_path, steps_per_block):
    """hf-mdm reads the dialect back (LLaDA2MoeForMaskedDiffusion's loading maps it): their per-block `steps` becomes
    `steps_per_block` (hf-mdm's `steps` is a total), `threshold` the strategy. The threshold strategy spends no step
    budget, so whatever `steps_per_block` says it is written as steps = block_length (theirs with at least one commit
    per step); fewer steps would make their sampler commit block_length // steps per step."""
    model = block_model()
    model.generation_config.update(
        max_new_tokens=16, steps_per_block=steps_per_block, strategy="threshold", threshold=0.8
    )
    loaded = export(model, tmp_path)
    assert json.loads((tmp_path / "generation_config.json").read_text())["steps"] == BLOCK
    generation = loaded.generation_config
    assert getattr(generation, "llada2_decoding", None) is None  # generate() follows it
    assert (generation.max_new_tokens, generation.steps_per_block, generation.steps) == (16, BLOCK, None)
    assert (generation.strategy, generation.threshold) == ("threshold", 0.8)


def test_the_authors_logits_on_the_fixture_export(tmp_path):
    """The fixture's hf-mdm model, exported now, gives the logits the authors' LLaDA2MoeModelLM computed on its export
    (every column but [MASK], which hf-mdm pins to the lowest float and the format cannot)."""
    model = MDMForMaskedGeneration.from_pretrained(FIXTURE / "mdm").eval()
    ids = load_file(FIXTURE / "inputs.safetensors")["input_ids"]
    authors = load_file(FIXTURE / "authors_logits.safetensors")["authors_logits"]
    loaded = export(model, tmp_path / "llada2")
    kept = torch.arange(model.config.vocab_size) != model.config.mask_token_id
    with torch.no_grad():
        for logits in (model(ids).logits, loaded(ids).logits):
            torch.testing.assert_close(logits[..., kept], authors[..., kept], atol=1e-5, rtol=0)


def test_a_mask_id_other_than_sglangs_is_warned_about(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="hf_mdm.checkpoint_formats.llada2_export"):
        block_model().save_pretrained(tmp_path, checkpoint_format="llada2")
    assert "SGLang serves LLaDA2MoeModelLM with [MASK] = 156895" in caplog.text


# ---- refusals: each before anything is written, naming the fix ----

REFUSED = {
    "bidirectional": (dict(block_size=None), "block_size=32"),
    "logits_shift": (dict(logits_shift=1), "logits_shift=0"),
    "attention_bias": (dict(attention_bias=True), "qkv_bias=True instead"),
    "mlp_bias": (dict(mlp_bias=True), "mlp_bias=False"),
    "rope": (dict(rope_parameters={"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0}), "default RoPE"),
}


@pytest.mark.bad_input
@pytest.mark.parametrize("case", sorted(REFUSED))
def test_an_architecture_the_format_cannot_express_is_refused(tmp_path, case):
    overrides, fix = REFUSED[case]
    model = block_model(**overrides)
    with pytest.raises(ValueError, match=fix):
        model.save_pretrained(tmp_path / "out", checkpoint_format="llada2")
    assert not (tmp_path / "out").exists()


@settings(max_examples=25, deadline=None)
@given(
    block_size=st.sampled_from([None, 1, 4]),
    logits_shift=st.sampled_from([0, 1]),
    attention_bias=st.booleans(),
    mlp_bias=st.booleans(),
    qkv_bias=st.booleans(),
    qk_norm=st.booleans(),
    tie_word_embeddings=st.booleans(),
)
def test_every_configuration_is_either_exported_exactly_or_refused_before_writing(tmp_path_factory, **flags):
    """Property over the architecture switches: the export loads back with the same logits, or it is a ValueError
    and no folder exists; refused exactly when a switch outside the format is set."""
    model = block_model(**flags)
    folder = tmp_path_factory.mktemp("export") / "out"
    inexpressible = (
        flags["block_size"] is None or flags["logits_shift"] or flags["attention_bias"] or flags["mlp_bias"]
    )
    if inexpressible:
        with pytest.raises(ValueError, match="cannot be written in LLaDA 2.x's format"):
            model.save_pretrained(folder, checkpoint_format="llada2")
        assert not folder.exists()
        return
    loaded = export(model, folder)
    ids, attention_mask = batch(model.config.vocab_size, model.config.mask_token_id)
    with torch.no_grad():
        torch.testing.assert_close(
            loaded(ids, attention_mask=attention_mask).logits,
            model(ids, attention_mask=attention_mask).logits,
            atol=1e-5,
            rtol=0,
        )


@pytest.mark.bad_input
# PEFT reads transformers' deprecated `is_gradient_checkpointing` alias when it wraps a model (as in test_peft.py).
@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
def test_a_model_with_lora_layers_is_refused_naming_the_merge(tmp_path):
    peft = pytest.importorskip("peft")
    adapted = peft.get_peft_model(block_model(), peft.LoraConfig(r=2, target_modules=["q_proj", "v_proj"]))
    with pytest.raises(ValueError, match="merge_and_unload"):
        adapted.get_base_model().save_pretrained(tmp_path / "out", checkpoint_format="llada2")
    assert not (tmp_path / "out").exists()
    merged = adapted.merge_and_unload()
    export(merged, tmp_path / "merged")


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(checkpoint_format="llada"), "not a format hf-mdm writes"),
        (dict(checkpoint_format="llada2", safe_serialization=False), r"drop \['safe_serialization'\]"),
        (dict(checkpoint_format="llada2", remote_code=True), r"drop \['remote_code'\]"),
    ],
)
def test_options_the_export_does_not_take_are_refused(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        block_model().save_pretrained(tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()


@pytest.mark.bad_input
def test_a_decoding_strategy_their_sampler_lacks_is_refused(tmp_path):
    model = block_model()
    model.generation_config.update(strategy="random")
    with pytest.raises(ValueError, match="strategy to 'threshold', 'threshold_editing' or 'confidence'"):
        model.save_pretrained(tmp_path / "out", checkpoint_format="llada2")
    assert not (tmp_path / "out").exists()


@pytest.mark.bad_input
def test_a_total_step_budget_that_does_not_split_into_blocks_is_refused(tmp_path):
    model = block_model()
    model.generation_config.update(max_new_tokens=8, steps=3)
    with pytest.raises(ValueError, match="steps_per_block"):
        model.save_pretrained(tmp_path / "out", checkpoint_format="llada2")
    assert not (tmp_path / "out").exists()


@pytest.mark.bad_input
def test_a_dit_model_is_refused_naming_its_own_format(tmp_path):
    dit = DiTForMaskedDiffusion.from_pretrained(Path(__file__).parent / "fixtures" / "bd3lm-tiny")
    with pytest.raises(ValueError, match="original_format=True"):
        dit.save_pretrained(tmp_path / "out", checkpoint_format="llada2")
    assert not (tmp_path / "out").exists()
