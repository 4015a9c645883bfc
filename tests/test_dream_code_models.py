"""DiffuCoder (apple/DiffuCoder-7B-*) and Dream-Coder (Dream-org/Dream-Coder-v0-*-7B) are Dream checkpoints.

Each folder is built here in the key layout of the published files (values below, with the sizes and token ids shrunk
to the dream-tiny fixture's) and holds dream-tiny's weights, which Dream's own modeling code wrote under Dream's
names. Published files read (the Hub itself is not reachable here):
* DiffuCoder-7B-Instruct config.json: huggingface.co/apple/DiffuCoder-7B-Instruct/blob/69c039ac.../config.json
  (875 bytes as transformers writes it, the listed size; Base's and cpGRPO's, listed at 873 and 879 bytes, were not
  readable here).
* Dream-Coder-v0-Instruct-7B config.json and generation_config.json: the upload smoorsmith/Dream-coder-test (same
  model card; written as transformers writes them they are 1,085 and 147 bytes, the Dream-org listing's 1.09 kB and
  147 B at 5d9e88c).
* Dream-Coder's `eos_penalty` default 0.0: d3LLM/d3LLM_Dream_Coder's generation_config.json.
Both families' model code is Dream's `modeling_dream.py` and their sampler Dream's `diffusion_generate`, which takes
its defaults from `DreamGenerationConfig`, not from generation_config.json.
"""

import json
import shutil
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import AutoModel

from hf_mdm import MDMForMaskedGeneration
from hf_mdm.checkpoint_formats import DreamFormat


FIXTURES = Path(__file__).parent / "fixtures"
TEMPLATE = FIXTURES / "dream-tiny"

# The published ids -> the tiny vocabulary's: <|endoftext|> (eos, pad), Dream-Coder's bos, [MASK].
TINY_IDS = {151643: 100, 151665: 101, 151666: 120}
TINY_SIZES = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads")

DIFFUCODER_CONFIG = {
    "architectures": ["DreamModel"],
    "attention_dropout": 0.0,
    "auto_map": {"AutoConfig": "configuration_dream.DreamConfig", "AutoModel": "modeling_dream.DreamModel"},
    "bos_token_id": 151643,
    "eos_token_id": 151643,
    "hidden_act": "silu",
    "hidden_size": 3584,
    "initializer_range": 0.02,
    "intermediate_size": 18944,
    "mask_token_id": 151666,
    "max_position_embeddings": 131072,
    "max_window_layers": 28,
    "model_type": "Dream",
    "num_attention_heads": 28,
    "num_hidden_layers": 28,
    "num_key_value_heads": 4,
    "pad_token_id": 151643,
    "rms_norm_eps": 1e-06,
    "rope_scaling": None,
    "rope_theta": 1000000.0,
    "sliding_window": None,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "transformers_version": "4.51.3",
    "use_cache": False,
    "use_mrope": False,
    "use_sliding_window": False,
    "vocab_size": 152064,
}
DREAM_CODER_CONFIG = {
    "_name_or_path": "/home/user/ckpts/rl/global_step_50/actor/huggingface",
    **{key: value for key, value in DIFFUCODER_CONFIG.items() if key != "use_mrope"},
    "bos_token_id": 151665,
    "max_position_embeddings": 32768,
    "transformers_version": "4.46.2",
    "use_cache": True,
}
# transformers' GenerationConfig.from_model_config of config.json: token ids only.
DREAM_CODER_GENERATION_CONFIG = {
    "_from_model_config": True,
    "bos_token_id": 151665,
    "eos_token_id": 151643,
    "pad_token_id": 151643,
    "transformers_version": "4.46.2",
}
# A DreamGenerationConfig as Dream-Coder's generation utils save it (d3LLM's upload): Dream's fields plus eos_penalty.
DREAM_CODER_SAVED_GENERATION_CONFIG = {
    "_from_model_config": True,
    "alg": "origin",
    "alg_temp": None,
    "bos_token_id": 151665,
    "eos_penalty": 0.0,
    "eos_token_id": 151643,
    "eps": 0.001,
    "mask_token_id": None,
    "output_history": False,
    "pad_token_id": 151643,
    "steps": 512,
    "temperature": 0.0,
    "top_k": None,
    "top_p": None,
    "transformers_version": "4.49.0",
}
MODELS = {"diffucoder": DIFFUCODER_CONFIG, "dream-coder": DREAM_CODER_CONFIG}


def tiny(published: dict) -> dict:
    """The published file with the template's sizes and the tiny vocabulary's token ids."""
    template = json.loads((TEMPLATE / "config.json").read_text())
    shrunk = {
        key: TINY_IDS.get(value, value) if key.endswith("_token_id") else value for key, value in published.items()
    }
    shrunk.update({key: template[key] for key in (*TINY_SIZES, "vocab_size") if key in published})
    return shrunk


def code_model_folder(tmp_path, name, generation_config=None) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    shutil.copy(TEMPLATE / "model.safetensors", folder)
    (folder / "config.json").write_text(json.dumps(tiny(MODELS[name])))
    if generation_config is not None:
        (folder / "generation_config.json").write_text(json.dumps(tiny(generation_config)))
    return folder


@pytest.mark.parametrize("name", MODELS)
def test_code_model_folders_load_strictly_as_dream_and_reproduce_its_logits(tmp_path, name):
    """No remote code, no missing or unexpected weight, and the logits of the same weights in Dream's own layout."""
    folder = code_model_folder(tmp_path, name, DREAM_CODER_GENERATION_CONFIG)
    model, info = AutoModel.from_pretrained(folder, dtype=torch.float32, output_loading_info=True)
    assert type(model) is MDMForMaskedGeneration
    assert (info["missing_keys"], info["unexpected_keys"]) == (set(), set())
    published = tiny(MODELS[name])
    config = model.config
    assert (config.mask_token_id, config.eos_token_id, config.pad_token_id) == (120, 100, 100)
    assert config.bos_token_id == published["bos_token_id"]
    assert config.max_position_embeddings == published["max_position_embeddings"]
    assert config.logits_shift == 1
    inputs = torch.tensor([[48, 87, 1, 44, 120, 120, 7]])
    reference = AutoModel.from_pretrained(TEMPLATE).eval()
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(inputs).logits, reference(inputs).logits, rtol=0, atol=0)
    assert AutoModel.from_pretrained(folder).dtype == torch.bfloat16  # the published torch_dtype is honoured


@pytest.mark.parametrize(
    "generation_config",
    [DREAM_CODER_GENERATION_CONFIG, DREAM_CODER_SAVED_GENERATION_CONFIG, None],
    ids=["token-ids-only", "saved-by-dream-coder", "no-generation-config"],
)
def test_code_model_generation_configs_decode_with_dreams_defaults(tmp_path, generation_config):
    """With or without Dream's fields (or no generation_config.json), the default decoding is Dream's."""
    folder = code_model_folder(tmp_path, "dream-coder", generation_config)
    ours = AutoModel.from_pretrained(folder).generation_config
    dream = AutoModel.from_pretrained(TEMPLATE).generation_config
    assert (ours.strategy, ours.reveal_counts, ours.reveal_counts_kwargs) == ("random", "dream", {"eps": 1e-3})
    assert (ours.steps, ours.do_sample, ours.temperature) == (512, False, None)
    assert (ours.bos_token_id, ours.eos_token_id, ours.pad_token_id) == (101, 100, 100)
    decoding = ("strategy", "reveal_counts", "reveal_counts_kwargs", "steps", "do_sample", "temperature", "top_p")
    assert {key: getattr(ours, key) for key in decoding} == {key: getattr(dream, key) for key in decoding}


def test_a_code_model_decodes_like_dream_with_the_readme_arguments(tmp_path):
    """DiffuCoder's README call (alg="entropy", alg_temp=0, return_dict_in_generate) through the mapping, greedy,
    gives Dream's reference sampler's tokens on the same weights (dream-tiny's recorded `single_entropy` case)."""
    case = next(
        case
        for case in json.loads((TEMPLATE / "reference_generate.json").read_text())["cases"]
        if case["name"] == "single_entropy"
    )
    args = case["args"]
    folder = code_model_folder(tmp_path, "diffucoder")
    model = AutoModel.from_pretrained(folder, dtype=torch.float32).eval()
    readme_call = dict(
        alg=args["alg"],
        alg_temp=0.0,
        temperature=args["temperature"],
        steps=args["steps"],
        return_dict_in_generate=True,
    )
    generation_config = DreamFormat.to_generation_config({**model.generation_config.to_dict(), **readme_call})
    assert (generation_config.strategy, generation_config.return_dict_in_generate) == ("entropy", True)
    output = model.generate(
        torch.tensor(case["prompt"]),
        generation_config=generation_config,
        max_new_tokens=args["max_new_tokens"],
        eos_token_id=None,  # the reference never stops a row at EOS
    )
    assert output.sequences.tolist() == case["output_ids"]


@pytest.mark.bad_input
@settings(max_examples=25, deadline=None)
@given(eos_penalty=st.floats(allow_nan=False, allow_infinity=False).filter(lambda value: value != 0))
def test_a_nonzero_eos_penalty_is_refused_naming_the_fix(eos_penalty):
    with pytest.raises(ValueError, match=r"eos_penalty=.*set it to 0 or delete it"):
        DreamFormat.to_generation_config({**DREAM_CODER_SAVED_GENERATION_CONFIG, "eos_penalty": eos_penalty})


@pytest.mark.bad_input
def test_a_code_model_folder_with_eos_penalty_fails_at_load(tmp_path):
    folder = code_model_folder(tmp_path, "dream-coder", {**DREAM_CODER_SAVED_GENERATION_CONFIG, "eos_penalty": 3.0})
    with pytest.raises(ValueError, match="eos_penalty=3.0"):
        AutoModel.from_pretrained(folder)


@pytest.mark.bad_input
def test_a_config_json_with_eos_penalty_is_refused(tmp_path):
    """Dream-Coder's RL workers write `eos_penalty` into config.json, which its sampler reads its defaults from."""
    folder = code_model_folder(tmp_path, "dream-coder")
    (folder / "config.json").write_text(json.dumps({**tiny(DREAM_CODER_CONFIG), "eos_penalty": 3.0}))
    with pytest.raises(ValueError, match="eos_penalty=3.0, which hf-mdm does not implement"):
        AutoModel.from_pretrained(folder)
    (folder / "config.json").write_text(json.dumps({**tiny(DREAM_CODER_CONFIG), "eos_penalty": 0}))
    assert type(AutoModel.from_pretrained(folder)) is MDMForMaskedGeneration


def test_a_zero_eos_penalty_is_dropped_without_a_warning(caplog):
    config = DreamFormat.to_generation_config(DREAM_CODER_SAVED_GENERATION_CONFIG)
    assert not hasattr(config, "eos_penalty") and "Ignoring" not in caplog.text


@pytest.mark.bad_input
@pytest.mark.parametrize("alg", ["transition_4", "confidence_threshold"])
def test_dream_coder_eval_algorithms_are_refused_naming_the_mapped_ones(alg):
    """Dream-Coder's evaluation copies add `transition_<N>` and `confidence_threshold`; hf-mdm maps neither."""
    with pytest.raises(ValueError, match=rf"alg='{alg}'; hf-mdm maps \['entropy', 'maskgit_plus'"):
        DreamFormat.to_generation_config({**DREAM_CODER_SAVED_GENERATION_CONFIG, "alg": alg})
