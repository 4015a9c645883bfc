"""LLaDA and Dream folders in their own formats load as MDMForMaskedGeneration and reproduce their logits."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModel

from hf_mdm import MDMConfig, MDMForMaskedGeneration
from hf_mdm.weight_files import sha256_of_file, verify_sha256

from .conftest import tiny_config


FIXTURES = Path(__file__).parent / "fixtures"


def load_fixture(name):
    folder = FIXTURES / name
    meta = json.loads((folder / "meta.json").read_text())
    return folder, meta, load_file(folder / "inputs.safetensors"), load_file(folder / "expected_logits.safetensors")


def not_mask(logits, mask_token_id):
    return logits[..., torch.arange(logits.shape[-1]) != mask_token_id]


@pytest.mark.parametrize("loader", [AutoModel.from_pretrained, MDMForMaskedGeneration.from_pretrained])
def test_llada_folder_reproduces_its_logits(loader):
    folder, meta, inputs, expected = load_fixture("llada-tiny")
    model = loader(folder).eval()
    assert type(model) is MDMForMaskedGeneration
    assert model.config.mask_token_id == meta["mask_token_id"] == 126
    assert (model.config.eos_token_id, model.config.pad_token_id) == (125, 125)
    tolerance = meta["suggested_tolerance"]
    with torch.no_grad():
        logits = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
        unmasked = model(input_ids=inputs["input_ids"]).logits
    torch.testing.assert_close(not_mask(logits, 126), not_mask(expected["logits"], 126), **tolerance)
    torch.testing.assert_close(
        not_mask(unmasked, 126), not_mask(expected["logits_no_attention_mask"], 126), **tolerance
    )


@pytest.mark.parametrize("loader", [AutoModel.from_pretrained, MDMForMaskedGeneration.from_pretrained])
def test_dream_folder_reproduces_its_shifted_logits(loader):
    """Dream's raw logits[:, i] predict token i+1; ours predict token i, i.e. ours[:, i+1] == raw[:, i]."""
    folder, meta, inputs, expected = load_fixture("dream-tiny")
    model = loader(folder).eval()
    assert model.config.logits_shift == 1 and model.config.mask_token_id == 120
    tolerance = meta["suggested_tolerance"]
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    with torch.no_grad():
        cases = {
            "logits": model(input_ids=ids, attention_mask=mask).logits,
            "logits_no_attention_mask": model(input_ids=ids).logits,
            "logits_with_position_ids": model(
                input_ids=ids, attention_mask=mask, position_ids=inputs["position_ids"]
            ).logits,
        }
    for key, ours in cases.items():
        raw = expected[key]
        # Dream computes pad query rows with all keys masked; compare the positions it computes as real tokens.
        real = mask.bool() if key != "logits_no_attention_mask" else torch.ones_like(mask, dtype=torch.bool)
        source_is_real = real[:, :-1]
        torch.testing.assert_close(
            not_mask(ours[:, 1:][source_is_real], 120), not_mask(raw[:, :-1][source_is_real], 120), **tolerance
        )
        # Each row's first real token (position 0, or the first after left padding) reads its own hidden state.
        first_real = real.long().argmax(1)
        rows = torch.arange(len(first_real))
        torch.testing.assert_close(
            not_mask(ours[rows, first_real], 120), not_mask(raw[rows, first_real], 120), **tolerance
        )


def test_converted_checkpoint_saves_as_an_mdm_folder(tmp_path):
    model = AutoModel.from_pretrained(FIXTURES / "llada-tiny").eval()
    model.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["model_type"] == "mdm"
    reloaded = AutoModel.from_pretrained(tmp_path).eval()
    ids = torch.randint(0, 125, (1, 8))
    assert torch.equal(model(ids).logits, reloaded(ids).logits)


def test_auto_config_reads_foreign_configs_without_remote_code():
    assert AutoConfig.from_pretrained(FIXTURES / "llada-tiny").model_type == "llada"
    assert AutoConfig.from_pretrained(FIXTURES / "dream-tiny").model_type == "Dream"


def test_unknown_format_names_the_formats_we_read(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2", "vocab_size": 10}))
    with pytest.raises(ValueError, match="(?s)'gpt2' checkpoint.*formats: mdm.*from_causal_lm"):
        MDMForMaskedGeneration.from_pretrained(tmp_path)


@pytest.mark.bad_input
def test_unsupported_architecture_variant_is_refused(tmp_path):
    shutil.copytree(FIXTURES / "llada-tiny", tmp_path / "llada")
    config = json.loads((tmp_path / "llada" / "config.json").read_text())
    config["alibi"] = True
    (tmp_path / "llada" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="alibi=True"):
        MDMForMaskedGeneration.from_pretrained(tmp_path / "llada")


@pytest.mark.bad_input
def test_weights_that_do_not_fit_the_format_fail_loudly(tmp_path):
    shutil.copytree(FIXTURES / "dream-tiny", tmp_path / "dream")
    weights = load_file(tmp_path / "dream" / "model.safetensors")
    weights["model.layers.0.self_attn.q_norm.weight"] = weights.pop("model.layers.0.self_attn.q_proj.bias")
    save_file(weights, tmp_path / "dream" / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match="does not match the Dream layout"):
        MDMForMaskedGeneration.from_pretrained(tmp_path / "dream")


@pytest.mark.bad_input
def test_dream_folder_with_a_contradicting_shift_is_refused(tmp_path):
    shutil.copytree(FIXTURES / "dream-tiny", tmp_path / "dream")
    config = json.loads((tmp_path / "dream" / "config.json").read_text())
    config["logits_shift"] = 0
    (tmp_path / "dream" / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="shift is|logits_shift=0"):
        MDMForMaskedGeneration.from_pretrained(tmp_path / "dream")


def test_mdm_config_is_passed_through_untouched(tmp_path, config):
    MDMForMaskedGeneration(config).save_pretrained(tmp_path)
    assert isinstance(MDMForMaskedGeneration.from_pretrained(tmp_path, config=config).config, MDMConfig)


def saved_mdm_folder(path):
    MDMForMaskedGeneration(tiny_config()).save_pretrained(path)
    return path


def rewrite_weights(folder, change):
    weights = load_file(folder / "model.safetensors")
    change(weights)
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "change",
    [
        lambda weights: weights.pop("model.layers.1.mlp.up_proj.weight"),
        lambda weights: weights.update({"model.layers.0.extra.weight": torch.zeros(2)}),
    ],
    ids=["missing_weight", "extra_weight"],
)
def test_mdm_folder_whose_weights_do_not_fit_fails_loudly(tmp_path, change):
    folder = saved_mdm_folder(tmp_path / "mdm")
    rewrite_weights(folder, change)
    with pytest.raises(ValueError, match="does not match the hf-mdm layout.*save the model again"):
        MDMForMaskedGeneration.from_pretrained(folder)


@pytest.mark.parametrize("keep", [0.5, 0.0], ids=["truncated_safetensors", "zero_byte_safetensors"])
def test_damaged_weight_file_is_named(tmp_path, keep):
    folder = saved_mdm_folder(tmp_path / "mdm")
    data = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(OSError, match=r"mdm/model.safetensors \(\d+ bytes\) is not a complete safetensors file"):
        MDMForMaskedGeneration.from_pretrained(folder)


@pytest.mark.bad_input
def test_nonexistent_local_path_says_no_such_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="No such folder: .*missing"):
        MDMForMaskedGeneration.from_pretrained(tmp_path / "missing")
    with pytest.raises(OSError, match="not-a-folder is not a local folder.*check the path"):
        MDMForMaskedGeneration.from_pretrained("not-a-folder")


@pytest.mark.bad_input
@pytest.mark.parametrize("fixture, field", [("llada-tiny", "d_model"), ("dream-tiny", "hidden_size")])
def test_foreign_config_missing_a_required_field_names_it(tmp_path, fixture, field):
    shutil.copytree(FIXTURES / fixture, tmp_path / fixture)
    config = json.loads((tmp_path / fixture / "config.json").read_text())
    del config[field]
    (tmp_path / fixture / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=f"config.json has no '{field}'"):
        MDMForMaskedGeneration.from_pretrained(tmp_path / fixture)


@pytest.mark.bad_input
def test_expected_sha256_refuses_a_tampered_file(tmp_path):
    folder = saved_mdm_folder(tmp_path / "mdm")
    trusted = sha256_of_file(folder / "model.safetensors")
    assert isinstance(MDMForMaskedGeneration.from_pretrained(folder, expected_sha256=trusted), MDMForMaskedGeneration)
    rewrite_weights(folder, lambda weights: weights["model.norm.weight"].mul_(1.001))  # same layout, other values
    with pytest.raises(ValueError, match="has SHA-256 .* expected .*not the file you trust"):
        verify_sha256(folder / "model.safetensors", trusted)
    with pytest.raises(ValueError, match="not the file you trust"):
        MDMForMaskedGeneration.from_pretrained(folder, expected_sha256={"model.safetensors": trusted})
