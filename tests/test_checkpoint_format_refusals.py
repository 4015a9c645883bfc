"""Every LLaDA/Dream variant hf-mdm does not implement, and every config.json field it needs, is refused by name at
both loading entry points (`MDMForMaskedGeneration.from_pretrained`, `AutoModel.from_pretrained`), before any weight
is read."""

import json
import re
import shutil
from pathlib import Path

import pytest
from transformers import AutoModel

from hf_mdm import MDMForMaskedGeneration


FIXTURES = Path(__file__).parent / "fixtures"
LOADERS = pytest.mark.parametrize(
    "loader", [MDMForMaskedGeneration.from_pretrained, AutoModel.from_pretrained], ids=["mdm", "auto"]
)

UNSUPPORTED_VARIANTS = [
    ("llada-tiny", "block_type", "sequential"),
    ("llada-tiny", "layer_norm_type", "default"),
    ("llada-tiny", "rope", False),
    ("llada-tiny", "scale_logits", True),
    ("llada-tiny", "input_emb_norm", True),
    ("llada-tiny", "attention_layer_norm", True),
    ("llada-tiny", "include_bias", True),
    ("llada-tiny", "include_qkv_bias", True),
    ("llada-tiny", "activation_type", "gelu"),
    ("llada-tiny", "block_group_size", 2),
    ("dream-tiny", "use_sliding_window", True),
    ("dream-tiny", "rope_scaling", {"rope_type": "linear", "factor": 2.0}),
]
CONTRADICTING_SHIFTS = [0, 2, False]
REQUIRED_FIELDS = [
    ("llada-tiny", "n_heads"),
    ("llada-tiny", "n_layers"),
    ("dream-tiny", "vocab_size"),
    ("dream-tiny", "intermediate_size"),
    ("dream-tiny", "num_hidden_layers"),
    ("dream-tiny", "num_attention_heads"),
    ("dream-tiny", "max_position_embeddings"),
]


def folder_with_config(tmp_path: Path, fixture: str, change) -> Path:
    """A copy of `fixture` (config.json only: a refusal must come before any weight is read) with `change` applied."""
    folder = tmp_path / fixture
    folder.mkdir()
    config = json.loads((FIXTURES / fixture / "config.json").read_text())
    change(config)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.bad_input
@LOADERS
@pytest.mark.parametrize(
    "fixture, field, value", UNSUPPORTED_VARIANTS, ids=[f"{f}-{k}" for f, k, _ in UNSUPPORTED_VARIANTS]
)
def test_unsupported_variant_is_named(tmp_path, loader, fixture, field, value):
    folder = folder_with_config(tmp_path, fixture, lambda config: config.update({field: value}))
    with pytest.raises(ValueError, match=re.escape(f"sets {field}={value!r}") + ".*does not implement"):
        loader(folder)


@pytest.mark.bad_input
@LOADERS
@pytest.mark.parametrize("shift", CONTRADICTING_SHIFTS, ids=repr)
def test_dream_shift_other_than_one_is_refused(tmp_path, loader, shift):
    folder = folder_with_config(tmp_path, "dream-tiny", lambda config: config.update(logits_shift=shift))
    with pytest.raises(ValueError, match=re.escape(f"logits_shift={shift!r}") + ".*predict token i\\+1"):
        loader(folder)


@pytest.mark.bad_input
@LOADERS
@pytest.mark.parametrize("fixture, field", REQUIRED_FIELDS, ids=[f"{f}-{k}" for f, k in REQUIRED_FIELDS])
def test_missing_required_field_is_named(tmp_path, loader, fixture, field):
    folder = folder_with_config(tmp_path, fixture, lambda config: config.pop(field))
    with pytest.raises(ValueError, match=f"config.json has no '{field}'"):
        loader(folder)


@pytest.mark.bad_input
@LOADERS
@pytest.mark.parametrize("fixture", ["llada-tiny", "dream-tiny"])
def test_missing_mask_token_id_names_the_fix(tmp_path, loader, fixture):
    folder = folder_with_config(tmp_path, fixture, lambda config: config.pop("mask_token_id"))
    with pytest.raises(ValueError, match="has no mask_token_id; add the \\[MASK\\] id of its tokenizer"):
        loader(folder)


@pytest.mark.bad_input
@pytest.mark.parametrize("alg", ["maskgit", "low_confidence", ""])
def test_unknown_dream_sampler_is_refused_with_the_known_ones(tmp_path, alg):
    shutil.copytree(FIXTURES / "dream-tiny", tmp_path / "dream")
    path = tmp_path / "dream" / "generation_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "alg": alg}))
    with pytest.raises(ValueError, match=re.escape(f"alg={alg!r}") + ".*'entropy', 'maskgit_plus', 'origin'"):
        MDMForMaskedGeneration.from_pretrained(tmp_path / "dream")
