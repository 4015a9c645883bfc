"""LLaDA-MoE (model_type "lladamoe") read natively from its published folder, checked against the authors' code.

`fixtures/llada-moe-tiny` was made with the authors' `modeling_lladamoe.py` and LLaDA's `generate.py` (its README
says how): its logits, and the canvases the LLaDA sampler produced, are what `LLaDAMoEForMaskedDiffusion` must give.
"""

import functools
import json
import shutil
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from huggingface_hub.errors import StrictDataclassError
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    PreTrainedTokenizerFast,
    Trainer,
    TrainingArguments,
)

from hf_mdm import DataCollatorForMaskedDiffusion, MDMForMaskedGeneration
from hf_mdm.configuration_llada_moe import LLaDAMoEConfig
from hf_mdm.model_loading import diffusion_model_class
from hf_mdm.modeling_llada_moe import LLaDAMoEForMaskedDiffusion, LLaDAMoESparseMoeBlock

from .conftest import decode_rows


FOLDER = Path(__file__).parent / "fixtures" / "llada-moe-tiny"
MASK_ID, PAD_ID = 126, 124
HF_MDM_KEYS = {"mask_token_id", "schedule", "schedule_kwargs", "loss_weighting", "block_size"}
CASES = json.loads((FOLDER / "reference_generate.json").read_text())["cases"]


@functools.cache
def load() -> LLaDAMoEForMaskedDiffusion:
    return AutoModel.from_pretrained(FOLDER, mask_token_id=MASK_ID).eval()


def published_config() -> dict:
    return json.loads((FOLDER / "config.json").read_text())


def fixture_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer over the fixture's 128 ids ("t0" ... "t127"), with its [MASK], PAD and EOS."""
    backend = Tokenizer(models.WordLevel(vocab={f"t{i}": i for i in range(128)}, unk_token="t125"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    special = dict(pad_token=f"t{PAD_ID}", eos_token=f"t{PAD_ID}", unk_token="t125", mask_token=f"t{MASK_ID}")
    return PreTrainedTokenizerFast(tokenizer_object=backend, **special)


def without_mask_column(logits: torch.Tensor) -> torch.Tensor:
    return torch.cat([logits[..., :MASK_ID], logits[..., MASK_ID + 1 :]], dim=-1)


def test_the_auto_classes_read_the_published_folder_with_every_tensor():
    assert type(AutoConfig.from_pretrained(FOLDER, mask_token_id=MASK_ID)) is LLaDAMoEConfig
    for auto_class in (AutoModel, AutoModelForMaskedLM):
        model, info = auto_class.from_pretrained(FOLDER, mask_token_id=MASK_ID, output_loading_info=True)
        assert type(model) is LLaDAMoEForMaskedDiffusion
        assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert set(model.state_dict()) == set(load_file(FOLDER / "model.safetensors"))
    layers = model.model.layers
    assert not hasattr(layers[0].mlp, "gate") and hasattr(layers[1], "shared_expert")  # dense layer 0, MoE 1-2
    assert bool(layers[1].mlp.expert_bias.abs().min() > 0)  # the fixture's bias was read, not left at zero


def hub_style_folder(tmp_path):
    """The fixture as the Hub stores it: config.json declaring model_type "llada" (dllm's copy renames it)."""
    shutil.copy(FOLDER / "model.safetensors", tmp_path)
    auto_map = {"AutoConfig": "configuration_lladamoe.LLaDAConfig", "AutoModel": "modeling_lladamoe.LLaDAMoEModelLM"}
    (tmp_path / "config.json").write_text(
        json.dumps({**published_config(), "model_type": "llada", "auto_map": auto_map})
    )
    return tmp_path


@pytest.mark.parametrize("loader", [LLaDAMoEForMaskedDiffusion, AutoModel, AutoModelForMaskedLM])
def test_a_hub_folder_declaring_the_authors_model_type_llada_loads_as_llada_moe(tmp_path, loader):
    """The Hub's configuration_lladamoe.py declares model_type "llada" (LLaDA 1's): the class and the Auto classes
    read it as LLaDA-MoE, and the command line picks the LLaDA-MoE class for it."""
    folder = hub_style_folder(tmp_path)
    model, info = loader.from_pretrained(folder, mask_token_id=MASK_ID, output_loading_info=True)
    assert isinstance(model, LLaDAMoEForMaskedDiffusion)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert diffusion_model_class(str(folder)) is LLaDAMoEForMaskedDiffusion
    ids = load_file(FOLDER / "inputs.safetensors")["input_ids"]
    with torch.no_grad():
        assert torch.equal(model.eval()(ids).logits, load()(ids).logits)


@pytest.mark.bad_input
def test_mdm_refuses_a_llada_moe_folder_naming_its_class(tmp_path):
    with pytest.raises(ValueError, match="LLaDA-MoE folder.*LLaDAMoEForMaskedDiffusion"):
        MDMForMaskedGeneration.from_pretrained(hub_style_folder(tmp_path))


@pytest.mark.parametrize(
    "expected, inputs, mask",
    [
        ("logits_no_attention_mask", "input_ids", None),
        ("logits_all_ones_attention_mask", "input_ids", "ones"),
        ("logits_padding_mask", "input_ids_padded", "attention_mask_padded"),
    ],
)
def test_logits_match_the_authors_code(expected, inputs, mask):
    tensors, reference = load_file(FOLDER / "inputs.safetensors"), load_file(FOLDER / "expected_logits.safetensors")
    attention_mask = torch.ones_like(tensors["input_ids"]) if mask == "ones" else tensors.get(mask)
    with torch.no_grad():
        logits = load()(tensors[inputs], attention_mask=attention_mask).logits
    torch.testing.assert_close(
        without_mask_column(logits), without_mask_column(reference[expected]), atol=1e-5, rtol=0
    )
    assert bool((logits[..., MASK_ID] == torch.finfo(logits.dtype).min).all())  # [MASK] is never predicted


def test_clip_qkv_and_the_expert_bias_change_the_fixture_logits():
    """Both are live in the fixture, so the parity test above would catch a model that dropped either."""
    ids = load_file(FOLDER / "inputs.safetensors")["input_ids"]
    model = AutoModel.from_pretrained(FOLDER, mask_token_id=MASK_ID).eval()
    with torch.no_grad():
        reference = model(ids).logits
        model.config.clip_qkv = None
        unclipped = model(ids).logits
        model.config.clip_qkv = 2.5
        for layer in model.model.layers[1:]:
            layer.mlp.expert_bias.zero_()
        unbiased = model(ids).logits
    assert (unclipped - reference).abs().max() > 1e-3 and (unbiased - reference).abs().max() > 1e-3


@pytest.mark.parametrize("case", CASES, ids=[case["name"] for case in CASES])
def test_greedy_generate_reproduces_llada_generate_step_by_step(case):
    """The folder's default decoding is LLaDA's sampler: only LLaDA's own arguments are passed."""
    args = case["args"]
    assert args["remasking"] == "low_confidence" and args["temperature"] == 0 and args["cfg_scale"] == 0
    mask = case["attention_mask"]
    output = load().generate(
        torch.tensor(case["prompt"]),
        attention_mask=torch.tensor(mask) if mask is not None else None,
        max_new_tokens=args["gen_length"],
        steps=args["steps"],
        block_length=args["block_length"],
        eos_token_id=None,  # the reference never stops a row at EOS
        return_dict_in_generate=True,
        output_history=True,
    )
    # The reference's forward k + 1 sees the canvas its step k left; its last step leaves the output.
    assert [canvas.tolist() for canvas in output.history] == case["canvas_before_each_forward"][1:] + [
        case["output_ids"]
    ]
    assert output.sequences.tolist() == case["output_ids"]


def test_a_generation_config_with_only_special_ids_decodes_as_llada(tmp_path):
    """A generation_config.json with only the special ids (as LLaDA's) still selects LLaDA's sampler."""
    for name in ("config.json", "model.safetensors"):
        shutil.copy(FOLDER / name, tmp_path)
    (tmp_path / "generation_config.json").write_text(json.dumps({"eos_token_id": PAD_ID, "pad_token_id": PAD_ID}))
    model = AutoModel.from_pretrained(tmp_path, mask_token_id=MASK_ID).eval()
    built = LLaDAMoEForMaskedDiffusion(model.config)  # a model built from a config decodes as LLaDA too
    for generation_config in (model.generation_config, built.generation_config):
        assert (generation_config.strategy, generation_config.reveal_counts) == ("confidence", "llada")
    case = CASES[1]
    args = case["args"]
    output = model.generate(
        torch.tensor(case["prompt"]),
        max_new_tokens=args["gen_length"],
        steps=args["steps"],
        block_length=args["block_length"],
        eos_token_id=None,
    )
    assert output.tolist() == case["output_ids"]


def test_a_padded_row_decodes_as_it_does_alone():
    case = next(case for case in CASES if case["attention_mask"] is not None)
    prompts, prompt_mask = torch.tensor(case["prompt"]), torch.tensor(case["attention_mask"])
    arguments = dict(max_new_tokens=8, steps=4, block_length=4, eos_token_id=None)
    alone = decode_rows(load(), prompts, prompt_mask, [1], alone=True, **arguments)
    in_batch = decode_rows(load(), prompts, prompt_mask, [0, 1], **arguments)
    padding = int((prompt_mask[1] == 0).sum())
    assert alone[0].tolist() == in_batch[1, padding:].tolist()


def test_save_pretrained_writes_the_published_format_back(tmp_path):
    model = load()
    model.save_pretrained(tmp_path)
    published, saved = published_config(), json.loads((tmp_path / "config.json").read_text())
    kept = set(published) - {"auto_map", "transformers_version"}
    assert {key: saved[key] for key in kept} == {key: published[key] for key in kept}
    assert set(saved) - set(published) <= HF_MDM_KEYS | {"bos_token_id"}
    weights, saved_weights = load_file(FOLDER / "model.safetensors"), load_file(tmp_path / "model.safetensors")
    assert set(saved_weights) == set(weights) and all(torch.equal(saved_weights[k], weights[k]) for k in weights)
    reloaded = AutoModel.from_pretrained(tmp_path).eval()
    assert reloaded.config.mask_token_id == MASK_ID
    assert (reloaded.generation_config.strategy, reloaded.generation_config.reveal_counts) == ("confidence", "llada")
    ids = load_file(FOLDER / "inputs.safetensors")["input_ids"]
    with torch.no_grad():
        assert torch.equal(reloaded(ids).logits, model(ids).logits)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), bias_scale=st.sampled_from([0.0, 0.1, 1.0]), tokens=st.integers(1, 9))
def test_router_mixes_by_softmax_plus_bias_without_renormalisation(seed, bias_scale, tokens):
    """out = sum over the top-k e of (softmax(gate h)_e + bias_e) * expert_e(h), every expert computed densely."""
    generator = torch.Generator().manual_seed(seed)
    block = LLaDAMoESparseMoeBlock(load().config)
    block.load_state_dict(load().model.layers[1].mlp.state_dict())
    block.expert_bias.copy_(bias_scale * torch.randn(block.num_experts, generator=generator))
    hidden = torch.randn(1, tokens, 64, generator=generator)
    with torch.no_grad():
        scores = torch.softmax(block.gate(hidden), dim=-1) + block.expert_bias
        chosen = scores >= scores.topk(block.top_k, dim=-1).values[..., -1:]
        experts = torch.stack([expert(hidden) for expert in block.experts], dim=-2)
        expected = (torch.where(chosen, scores, 0).unsqueeze(-1) * experts).sum(dim=-2)
        torch.testing.assert_close(block(hidden), expected, atol=1e-5, rtol=1e-5)


def test_the_published_vocabulary_defaults_to_the_published_mask_id():
    config = LLaDAMoEConfig()
    assert (config.vocab_size, config.mask_token_id, config.head_dim, config.moe_layer_freq) == (
        157184,
        156895,
        128,
        [1] * 16,
    )


def train(model, tmp_path, steps=3):
    """A few Trainer steps of the masked-diffusion ELBO on random token sentences; returns the trainer."""
    tokenizer = fixture_tokenizer()
    generator = torch.Generator().manual_seed(0)
    sentences = [
        " ".join(f"t{i}" for i in torch.randint(0, 120, (12,), generator=generator).tolist()) for _ in range(16)
    ]
    trainer = Trainer(
        model=model,
        args=TrainingArguments(str(tmp_path / "run"), max_steps=steps, per_device_train_batch_size=8,
                               learning_rate=1e-2, logging_steps=1, save_strategy="no", report_to=[], use_cpu=True,
                               disable_tqdm=True),
        train_dataset=Dataset.from_list([dict(tokenizer(sentence)) for sentence in sentences]),
        data_collator=DataCollatorForMaskedDiffusion(tokenizer),
    )  # fmt: skip
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == steps and all(torch.isfinite(torch.tensor(losses)))
    return trainer


def test_the_trainer_trains_every_weight_with_the_elbo(tmp_path):
    model = AutoModel.from_pretrained(FOLDER, mask_token_id=MASK_ID)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    train(model, tmp_path)
    changed = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    router, shared_expert = "model.layers.1.mlp.gate.weight", "model.layers.1.shared_expert.up_proj.weight"
    assert {router, shared_expert, "model.layers.0.mlp.up_proj.weight", "lm_head.weight"} <= changed


# PEFT reads transformers' deprecated `is_gradient_checkpointing` alias when it wraps a model (as in test_peft.py).
@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
def test_a_lora_adapter_trains_and_the_base_stays_frozen(tmp_path):
    peft = pytest.importorskip("peft", reason="needs the [peft] extra: pip install -e '.[peft]'")
    torch.manual_seed(1)
    model = AutoModel.from_pretrained(FOLDER, mask_token_id=MASK_ID)
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    adapted = peft.get_peft_model(model, peft.LoraConfig(task_type="CAUSAL_LM", r=4, target_modules=targets))
    frozen = {name: p.detach().clone() for name, p in adapted.named_parameters() if not p.requires_grad}
    lora_b = {name: p.detach().clone() for name, p in adapted.named_parameters() if "lora_B" in name}
    train(adapted, tmp_path)
    assert all(torch.equal(p, frozen[name]) for name, p in adapted.named_parameters() if name in frozen)
    trained = {name for name, p in adapted.named_parameters() if name in lora_b and not torch.equal(p, lora_b[name])}
    # Every adapter every token passes through trained; a routed expert's only if the router picked it.
    assert {name for name in lora_b if ".mlp.experts." not in name} <= trained
    assert any(".mlp.experts." in name for name in trained)


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "field, value",
    [
        ("moe_layer_freq", [0, 1]),
        ("moe_layer_freq", [0, 2, 1]),
        ("moe_layer_freq", 1),
        ("rope_scaling", {"rope_type": "linear", "factor": 2.0}),
        ("partial_rotary_factor", -1),
        ("num_experts_per_tok", 9),
        ("num_attention_heads", 3),
        ("clip_qkv", 0),
        ("output_router_logits", True),
        ("block_size", 4),
    ],
)
def test_configs_the_authors_code_would_misread_are_refused_by_key(tmp_path, field, value):
    shutil.copy(FOLDER / "model.safetensors", tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({**published_config(), field: value}))
    with pytest.raises((ValueError, StrictDataclassError), match=field):
        AutoModel.from_pretrained(tmp_path, mask_token_id=MASK_ID)


@pytest.mark.bad_input
def test_a_folder_without_the_published_vocabulary_must_name_its_mask_id():
    with pytest.raises(ValueError, match=r"from_pretrained\(path, mask_token_id=\.\.\.\)"):
        AutoModel.from_pretrained(FOLDER)


@pytest.mark.bad_input
def test_remote_code_export_and_the_block_training_forward_are_refused(tmp_path):
    with pytest.raises(ValueError, match="cannot run LLaDAMoEForMaskedDiffusion; save without it"):
        load().save_pretrained(tmp_path, remote_code=True)
    with pytest.raises(ValueError, match="checkpoint_format='llada2' exports an MDMForMaskedGeneration"):
        load().save_pretrained(tmp_path, checkpoint_format="llada2")
    ids = load_file(FOLDER / "inputs.safetensors")["input_ids"]
    with pytest.raises(ValueError, match="this model is bidirectional"):
        load()(ids, clean_input_ids=ids)
    assert not any(tmp_path.iterdir())
