"""LLaDA 2.x (model_type "llada2_moe") as a native model, on the authors' tiny checkpoint (tests/fixtures/llada2-tiny):
the published folder loads through the Auto classes with every tensor and no remote code, reproduces the authors'
logits under their block masks and their router's choices, reads a 2-D mask as padding only (the authors' forward
makes it causal), decodes with the exact block cache as without it and a padded batch row by row, saves back in the
published format, and trains with the Trainer (BD3-LM's block objective) and with a LoRA adapter. Configurations the
authors' code does not run are refused naming the key."""

import copy
import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file, save_file
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM, PreTrainedTokenizerFast, Trainer

from hf_mdm import DataCollatorForMaskedDiffusion
from hf_mdm.configuration_llada2_moe import HARD_CODED, LLaDA2MoeConfig
from hf_mdm.modeling_llada2_moe import LLaDA2MoeForMaskedDiffusion, LLaDA2MoeGate

from .conftest import decode_rows
from .test_block_diffusion_training import per_block_reference
from .test_trainer import logged_losses, training_args


FIXTURE = Path(__file__).parent / "fixtures" / "llada2-tiny"
MASK, EOS = 127, 124  # the fixture's [MASK] (not in its config.json, as in the published one) and EOS = PAD
ATOL = 1e-5  # the parity bound (max abs), float32
PUBLISHED = json.loads((FIXTURE / "config.json").read_text())
INPUTS = load_file(FIXTURE / "inputs.safetensors")
EXPECTED = load_file(FIXTURE / "expected_logits.safetensors")
# Left padding with EOS = PAD, prompt lengths that differ modulo the block size 4, a one-token prompt.
PROMPTS = torch.tensor([[EOS, EOS, EOS, 87, 63], [6, 32, 110, 45, 89], [EOS, EOS, 97, 33, 23], [EOS] * 4 + [61]])
PROMPT_MASK = (PROMPTS != EOS).long()


def load(dtype=torch.float32, **overrides):
    return AutoModel.from_pretrained(FIXTURE, mask_token_id=MASK, **overrides).to(dtype).eval()


def assert_authors_logits(ours, theirs, rows=slice(None)):
    """Every column but [MASK] within 1e-5 (hf-mdm pins the [MASK] logit to the lowest float; theirs is not)."""
    torch.testing.assert_close(ours[rows][..., :MASK], theirs[rows][..., :MASK], atol=ATOL, rtol=0)
    assert bool((ours[rows][..., MASK] == torch.finfo(ours.dtype).min).all())


def fixture_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer over the fixture's 128 ids: words w0..w123, EOS (= PAD) 124, [MASK] 127."""
    vocab = {f"w{i}": i for i in range(124)} | {"<eos>": EOS, "<unk>": 125, "w126": 126, "<mask>": MASK}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, eos_token="<eos>", pad_token="<eos>", unk_token="<unk>", mask_token="<mask>"
    )


def token_dataset(rows=16, length=12, seed=0) -> Dataset:
    """Rows of ids drawn from the fixture's words (lengths 8..length), for the Trainer."""
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(8, length + 1, (rows,), generator=generator).tolist()
    return Dataset.from_dict(
        {"input_ids": [torch.randint(0, 124, (n,), generator=generator).tolist() for n in lengths]}
    )


# --- loading --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("auto_class", [AutoModel, AutoModelForMaskedLM])
def test_the_published_folder_loads_through_the_auto_classes_with_every_tensor_and_no_remote_code(auto_class):
    assert type(AutoConfig.from_pretrained(FIXTURE, mask_token_id=MASK)) is LLaDA2MoeConfig
    model, info = auto_class.from_pretrained(FIXTURE, mask_token_id=MASK, output_loading_info=True)
    assert type(model) is LLaDA2MoeForMaskedDiffusion
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    published = load_file(FIXTURE / "model.safetensors")
    state = model.state_dict()
    assert set(state) == set(published)  # the expert_bias buffers included
    assert all(torch.equal(state[name], tensor) for name, tensor in published.items())
    assert not any(name.startswith("transformers_modules") for name in sys.modules)  # no remote code ran
    config = model.config
    assert (config.mask_token_id, config.block_size, config.eos_token_id, config.pad_token_id) == (MASK, 32, EOS, EOS)
    assert [config.is_moe_layer(i) for i in range(3)] == [False, True, True]


# --- parity with the authors' forward -------------------------------------------------------------------------------
# Their recorded mask variants, as hf-mdm's inputs: a block-causal model of block_size B numbers the blocks itself;
# their 4-D masks are also accepted as prepared masks. The no-mask and all-zero-mask variants are bidirectional: one
# block as long as the sequence.
VARIANTS = {
    "block 4 (their generate's mask)": ("logits_block4_mask", 4, None),
    "block 4, their 4-D mask given": ("logits_block4_mask", 32, "block_attention_mask_4"),
    "no mask": ("logits_no_attention_mask", 16, None),
    "all-zero 4-D mask": ("logits_full_4d_mask", 16, None),
    "all-zero 4-D mask given": ("logits_full_4d_mask", 32, "zeros"),
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_logits_equal_the_authors_under_their_masks(variant):
    key, block_size, prepared = VARIANTS[variant]
    ids = INPUTS["input_ids"]
    kwargs = {}
    if prepared is not None:
        mask = INPUTS[prepared] if prepared in INPUTS else torch.zeros(1, 1, 16, 16)
        kwargs = dict(attention_mask=mask.expand(2, 1, 16, 16), position_ids=INPUTS["position_ids"])
    with torch.no_grad():
        logits = load(block_size=block_size)(input_ids=ids, **kwargs).logits
    assert logits.dtype == torch.float32
    assert_authors_logits(logits, EXPECTED[key])


def test_a_2d_mask_is_padding_only_where_the_authors_forward_makes_it_causal():
    """Their forward turns a 2-D mask into a causal one: block_size=1 reproduces that variant at the real tokens. The
    model's own block size does not: there a 2-D mask only drops the padding, each row is its unpadded self."""
    ids, mask = INPUTS["input_ids_padded"], INPUTS["attention_mask_padded"]
    real = mask.bool()
    theirs = EXPECTED["logits_2d_padding_mask"]
    with torch.no_grad():
        causal = load(block_size=1)(input_ids=ids, attention_mask=mask).logits
        model = load(block_size=4)
        padded = model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(1) - 1).clamp(min=0)).logits
        alone = [model(input_ids=ids[row : row + 1, real[row]]).logits[0] for row in range(2)]
    assert_authors_logits(causal, theirs, real)
    assert float((padded[real] - theirs[real])[..., :MASK].abs().max()) > 0.1  # not their causal reading
    for row in range(2):
        torch.testing.assert_close(padded[row, real[row]], alone[row], atol=ATOL, rtol=0)


def test_the_router_chooses_the_authors_experts_from_their_logits():
    """`output_router_logits=True` returns the gate logits of both MoE layers, the authors' recorded ones; the experts
    chosen from them are the authors', weighted by their unbiased sigmoid scores, renormalised, times 2.5."""
    model = load(block_size=4)
    chosen = {}
    for index in (1, 2):
        model.model.layers[index].mlp.gate.register_forward_hook(
            lambda _, __, out, index=index: chosen.__setitem__(index, out[1:])
        )
    with torch.no_grad():
        output = model(input_ids=INPUTS["input_ids"], output_router_logits=True)
    assert len(output.router_logits) == 2 and sorted(chosen) == [1, 2]
    for router_logits, layer in zip(output.router_logits, (1, 2)):
        theirs = EXPECTED[f"router_logits_layer{layer}"].view(32, 8)
        torch.testing.assert_close(router_logits, theirs, atol=ATOL, rtol=0)
        weights, experts = chosen[layer]
        assert torch.equal(
            experts.sort(-1).values, EXPECTED[f"router_topk_idx_layer{layer}"].view(32, 2).sort(-1).values
        )
        scores = router_logits.sigmoid().gather(1, experts)
        torch.testing.assert_close(weights, 2.5 * scores / scores.sum(-1, keepdim=True))
    assert load(block_size=4)(input_ids=INPUTS["input_ids"]).router_logits is None  # the config's default: off


def gate(**overrides) -> LLaDA2MoeGate:
    """A router over 8 experts in groups {0,1} {2,3} {4,5} {6,7}: expert i < 4 reads x_i, expert i + 4 x_i / 2."""
    values = dict(vocab_size=8, mask_token_id=7, pad_token_id=0, hidden_size=4, num_hidden_layers=1,
                  num_attention_heads=1, head_dim=4, intermediate_size=8, moe_intermediate_size=4, num_experts=8,
                  n_group=4, topk_group=2, num_experts_per_tok=2)  # fmt: skip
    module = LLaDA2MoeGate(LLaDA2MoeConfig(**{**values, **overrides}))
    module.weight.data = torch.cat([torch.eye(4), 0.5 * torch.eye(4)])
    return module


# Router logits (3, 2, 0, -8, 1.5, 1, 0, -4): group sums of the two best sigmoid scores 1.833, 0.500, 1.549, 0.518.
ROUTER_INPUT = torch.tensor([[3.0, 2.0, 0.0, -8.0]])
ROUTER_CASES = {
    "no bias: groups {0,1} {4,5}, experts 0 1": ({}, [0, 1]),
    # expert 6 has the best biased score (1.5) but its group's two best sum to 1.518 < 1.549: the group is dropped
    "groups by the sum of their two best": ({6: 1.0}, [0, 1]),
    # expert 7's bias (2) wins it the choice; its weight is its unbiased score sigmoid(-4)
    "the bias chooses, the unbiased score weighs": ({7: 2.0}, [0, 7]),
}


@pytest.mark.parametrize("case", ROUTER_CASES)
def test_the_router_keeps_the_best_groups_by_their_two_best_biased_scores_and_weighs_unbiased(case):
    bias, expected = ROUTER_CASES[case]
    router = gate()
    for expert, value in bias.items():
        router.expert_bias[expert] = value
    router_logits, weights, chosen = router(ROUTER_INPUT)
    order = chosen[0].argsort()
    assert chosen[0, order].tolist() == expected
    scores = torch.sigmoid(router_logits[0, expected])
    torch.testing.assert_close(weights[0, order], 2.5 * scores / scores.sum())


def test_one_expert_per_token_is_not_renormalised():
    _, weights, chosen = gate(num_experts_per_tok=1)(torch.tensor([[3.0, 0.0, 0.0, 0.0]]))
    assert chosen.tolist() == [[0]]  # experts 0 and 4 tie on logits; 0 is the first
    torch.testing.assert_close(weights, 2.5 * torch.sigmoid(torch.tensor([[3.0]])))


@settings(max_examples=60, deadline=None)
@given(
    num_experts=st.integers(1, 12),
    n_group=st.integers(1, 6),
    topk_group=st.integers(0, 6),
    top_k=st.integers(0, 8),
    seed=st.integers(0, 2**16),
)
def test_a_router_config_either_is_refused_or_routes_every_token_to_distinct_experts_of_its_best_groups(
    num_experts, n_group, topk_group, top_k, seed
):
    overrides = dict(num_experts=num_experts, n_group=n_group, topk_group=topk_group, num_experts_per_tok=top_k)
    runnable = (
        num_experts % n_group == 0
        and num_experts // n_group >= 2
        and 1 <= topk_group <= n_group
        and 1 <= top_k <= topk_group * (num_experts // n_group)
    )
    if not runnable:
        with pytest.raises(ValueError, match="num_experts|n_group|topk_group|num_experts_per_tok"):
            gate(**overrides)
        return
    router = gate(**overrides)
    generator = torch.Generator().manual_seed(seed)
    router.weight.data = torch.randn(num_experts, 4, generator=generator)
    router.expert_bias.copy_(torch.randn(num_experts, generator=generator))
    _, weights, chosen = router(torch.randn(5, 4, generator=generator))
    assert chosen.shape == (5, top_k) and all(len(set(row)) == top_k for row in chosen.tolist())
    groups = chosen // (num_experts // n_group)
    assert all(len(set(row)) <= topk_group for row in groups.tolist())
    if top_k > 1:
        torch.testing.assert_close(weights.sum(-1), torch.full((5,), 2.5))


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(block_size=st.integers(1, 8), pad=st.integers(0, 5), length=st.integers(1, 10), seed=st.integers(0, 2**16))
def test_any_padding_leaves_a_row_its_unpadded_logits(block_size, pad, length, seed):
    ids = torch.randint(0, 124, (1, length), generator=torch.Generator().manual_seed(seed))
    padded = torch.cat([torch.full((1, pad), EOS), ids], 1)
    mask = (torch.arange(pad + length) >= pad).long()[None]
    model = load(block_size=block_size)
    with torch.no_grad():
        alone = model(input_ids=ids).logits
        logits = model(input_ids=padded, attention_mask=mask, position_ids=(mask.cumsum(1) - 1).clamp(min=0)).logits
    torch.testing.assert_close(logits[:, pad:], alone, atol=ATOL, rtol=0)


# --- generate() -----------------------------------------------------------------------------------------------------
def decode(model, rows=(0, 1, 2, 3), alone=False, **kwargs):
    return decode_rows(
        model, PROMPTS, PROMPT_MASK, rows, alone, max_new_tokens=10, steps_per_block=2, return_dict_in_generate=True,
        **kwargs,
    )  # fmt: skip


@pytest.mark.parametrize("strategy", ["confidence", "threshold", "random", "editing"])
def test_the_exact_block_cache_decodes_the_tokens_of_uncached_decoding(strategy):
    model = load(torch.float64, block_size=4)  # float64: no token hinges on a rounding tie
    cached = decode(model, strategy=strategy, do_sample=True, cache="exact")
    uncached = decode(model, strategy=strategy, do_sample=True, cache="none")
    assert torch.equal(cached.sequences, uncached.sequences)
    assert torch.equal(cached.nfe, uncached.nfe)
    assert not bool((cached.sequences[:, 5:] == MASK).any())


@pytest.mark.parametrize("strategy", ["confidence", "random"])
def test_a_padded_batch_decodes_each_row_as_alone(strategy):
    model = load(torch.float64, block_size=4)
    batch = decode(model, strategy=strategy, do_sample=True)
    for row in range(PROMPTS.shape[0]):
        alone = decode(model, rows=[row], alone=True, strategy=strategy, do_sample=True)
        kept = torch.cat([PROMPT_MASK[row].bool(), torch.ones(10, dtype=torch.bool)])
        assert torch.equal(batch.sequences[row, kept], alone.sequences[0])
        assert int(batch.nfe[row]) == int(alone.nfe[0])


def test_generate_with_the_folder_s_decoding_gives_the_authors_2_0_tokens():
    """The published generation_config.json (eos/pad only) reads as the authors' generate() defaults (threshold 0.95,
    greedy: `generation.llada2_generation_config`); hf-mdm's generate() then decodes their recorded 2.0 case."""
    case = json.loads((FIXTURE / "reference_generate.json").read_text())["cases"][0]
    assert case["name"] == "v20_block4_steps4_thr0.95"
    model = load(block_size=case["args"]["block_length"])
    generation = model.generation_config
    assert (generation.strategy, generation.threshold, generation.do_sample) == ("threshold", 0.95, False)
    with torch.no_grad():
        output = model.generate(torch.tensor([case["prompt"]]), max_new_tokens=case["args"]["gen_length"])
    assert output[0, len(case["prompt"]) :].tolist() == case["output"]


# --- saving ---------------------------------------------------------------------------------------------------------
def test_save_pretrained_writes_the_published_format_back(tmp_path):
    model = load(block_size=4)
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    for key in PUBLISHED.keys() - {"auto_map", "transformers_version"}:
        assert saved[key] == PUBLISHED[key], key
    assert saved["architectures"] == ["LLaDA2MoeModelLM"]
    # the authors' code on the Hub, for trust_remote_code readers (SGLang's config loading)
    authors_class = "inclusionAI/LLaDA2.0-mini--modeling_llada2_moe.LLaDA2MoeModelLM"
    assert saved["auto_map"]["AutoModelForCausalLM"] == authors_class
    assert (saved["mask_token_id"], saved["block_size"]) == (MASK, 4)
    published, written = load_file(FIXTURE / "model.safetensors"), load_file(tmp_path / "model.safetensors")
    assert set(written) == set(published)
    assert all(torch.equal(written[name], tensor) for name, tensor in published.items())
    reloaded = AutoModel.from_pretrained(tmp_path).eval()  # hf-mdm's fields are in the saved config.json
    with torch.no_grad():
        assert torch.equal(reloaded(input_ids=INPUTS["input_ids"]).logits, model(input_ids=INPUTS["input_ids"]).logits)


# --- training -------------------------------------------------------------------------------------------------------
def test_the_block_objective_forward_equals_the_block_by_block_model():
    """With labels, one forward over [x_t ; x_0]: block b's logits are those of the model on [clean blocks < b, noisy
    block b], every row and padding."""
    model = load(block_size=4)
    generator = torch.Generator().manual_seed(0)
    clean = torch.randint(0, 124, (3, 11), generator=generator)
    attention_mask = (torch.arange(11)[None] >= torch.tensor([[0], [3], [6]])).long()
    clean = clean.masked_fill(attention_mask == 0, EOS)
    masked = (torch.rand(3, 11, generator=generator) < 0.5) & attention_mask.bool()
    noisy, labels = torch.where(masked, MASK, clean), torch.where(masked, clean, -100)
    with torch.no_grad():
        out = model(input_ids=noisy, attention_mask=attention_mask, labels=labels, t=torch.full((3,), 0.5))
        reference = per_block_reference(model, clean, noisy, attention_mask)
    real = attention_mask.bool()
    torch.testing.assert_close(out.logits[real], reference[real], atol=ATOL, rtol=ATOL)
    assert torch.isfinite(out.loss)


def train(model, tmp_path, steps=4):
    trainer = Trainer(
        model=model,
        args=training_args(tmp_path, steps, per_device_train_batch_size=4, learning_rate=1e-2),
        train_dataset=token_dataset(),
        data_collator=DataCollatorForMaskedDiffusion(fixture_tokenizer(), block_size=4),
    )
    trainer.train()
    return logged_losses(trainer)


def test_the_stock_trainer_trains_the_moe_fixture_with_the_block_objective(tmp_path):
    model = load(block_size=4).train()
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    losses = train(model, tmp_path)
    assert len(losses) == 4 and all(torch.isfinite(torch.tensor(losses)))
    changed = {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}
    assert (
        "model.layers.1.mlp.gate.weight" in changed and "model.layers.2.mlp.shared_experts.up_proj.weight" in changed
    )
    assert any(".mlp.experts." in name for name in changed) and "lm_head.weight" in changed


@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
def test_a_lora_adapter_trains_on_the_moe_fixture_and_the_base_stays_frozen(tmp_path):
    peft = pytest.importorskip("peft", reason="needs the [peft] extra: pip install -e '.[peft]'")
    torch.manual_seed(0)
    targets = [
        "query_key_value",
        "dense",
        "gate_proj",
        "up_proj",
        "down_proj",
    ]  # attention, experts, shared, dense MLP
    adapted = peft.get_peft_model(
        load(block_size=4), peft.LoraConfig(task_type="CAUSAL_LM", r=4, target_modules=targets)
    )
    frozen = {name: p.detach().clone() for name, p in adapted.named_parameters() if not p.requires_grad}
    biases = [buffer.clone() for name, buffer in adapted.named_buffers() if name.endswith("expert_bias")]
    losses = train(adapted, tmp_path)
    assert len(losses) == 4 and all(torch.isfinite(torch.tensor(losses)))
    assert all(torch.equal(p, frozen[name]) for name, p in adapted.named_parameters() if name in frozen)
    assert all(not p.requires_grad for name, p in adapted.named_parameters() if "lora_" not in name)
    lora_b = {name: p for name, p in adapted.named_parameters() if "lora_B" in name}
    assert any(".mlp.experts." in name for name in lora_b) and any("attention.dense" in name for name in lora_b)
    # LoRA's B starts at zero: every adapter outside the experts was trained, and those of the experts routed to
    trained = {name for name, p in lora_b.items() if bool(p.abs().sum() > 0)}
    assert {name for name in lora_b if ".mlp.experts." not in name} <= trained
    assert any(".mlp.experts." in name for name in trained)
    expert_biases = [buffer for name, buffer in adapted.named_buffers() if name.endswith("expert_bias")]
    assert all(torch.equal(a, b) for a, b in zip(biases, expert_biases))


# --- refusals -------------------------------------------------------------------------------------------------------
def published_config(**changes) -> LLaDA2MoeConfig:
    return LLaDA2MoeConfig.from_dict({**PUBLISHED, "mask_token_id": MASK, **changes})


def test_the_published_vocabulary_implies_the_mask_id_and_zero_key_value_heads_mean_every_head():
    config = LLaDA2MoeConfig.from_dict({**PUBLISHED, "vocab_size": 157184, "num_key_value_heads": 0})
    assert config.mask_token_id == 156895 and config.num_key_value_heads == config.num_attention_heads == 4


def test_a_config_without_experts_is_a_dense_model():
    """`num_experts: null` (what a dense export may write): every layer a SwiGLU of `intermediate_size`, no router."""
    config = published_config(num_experts=None, first_k_dense_replace=0)
    assert not any(config.is_moe_layer(i) for i in range(config.num_hidden_layers))
    model = LLaDA2MoeForMaskedDiffusion(config).eval()
    assert not any(".mlp.gate." in name or ".experts." in name for name in model.state_dict())
    with torch.no_grad():
        assert model(input_ids=INPUTS["input_ids"]).logits.shape == (2, 16, 128)


REFUSED = {
    **{
        field: (not value if isinstance(value, bool) else "softmax" if field == "score_function" else "bf16", field)
        for field, value in HARD_CODED.items()
    },  # fmt: skip
    "mask_token_id": (128, "mask_token_id=128 is outside the vocabulary"),
    "head_dim": (0, "head_dim"),
    "rope_scaling": ({"rope_type": "linear", "factor": 2.0}, "rope_scaling"),
    "hidden_act": ("gelu", "hidden_act"),
    "rotary_dim": (16, "rotary_dim"),
    "partial_rotary_factor": (0.0, "partial_rotary_factor"),
    "num_key_value_heads": (3, "num_key_value_heads"),
    "block_size": (0, "block_size"),
    "n_group": (3, "n_group"),
    "topk_group": (5, "topk_group"),
    "num_experts_per_tok": (5, "num_experts_per_tok"),
    "intermediate_size": (None, "intermediate_size"),
    "moe_intermediate_size": (None, "moe_intermediate_size"),
}


@pytest.mark.bad_input
@pytest.mark.parametrize("field", REFUSED)
def test_a_config_the_authors_code_does_not_run_is_refused_naming_the_key(field):
    value, named = REFUSED[field]
    with pytest.raises(ValueError, match=named):
        published_config(**{field: value})


@pytest.mark.bad_input
def test_groups_of_one_expert_are_refused():
    with pytest.raises(ValueError, match="at least two.*lower n_group"):
        published_config(n_group=8)


@pytest.mark.bad_input
def test_a_folder_without_mask_token_id_and_an_unpublished_vocabulary_is_refused_naming_the_fix():
    with pytest.raises(ValueError, match=r"no mask_token_id.*from_pretrained\(path, mask_token_id=\.\.\.\)"):
        AutoModel.from_pretrained(FIXTURE)


@pytest.mark.bad_input
def test_weights_that_do_not_fit_the_config_are_refused(tmp_path):
    shutil.copytree(FIXTURE, tmp_path / "folder")
    weights = load_file(FIXTURE / "model.safetensors")
    del weights["model.layers.2.mlp.gate.expert_bias"]
    save_file(weights, tmp_path / "folder" / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match="missing.*expert_bias"):
        AutoModel.from_pretrained(tmp_path / "folder", mask_token_id=MASK)


@pytest.mark.bad_input
def test_saving_with_hf_mdm_remote_code_is_refused(tmp_path):
    with pytest.raises(ValueError, match="cannot run LLaDA2MoeForMaskedDiffusion; save without it"):
        load().save_pretrained(tmp_path, remote_code=True)
    assert not any(tmp_path.iterdir())  # refused before anything was written


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "inputs, match",
    [
        ({}, "exactly one of `input_ids` or `inputs_embeds`"),
        ({"input_ids": torch.zeros(1, 2, dtype=torch.long), "inputs_embeds": torch.zeros(1, 2, 64)}, "exactly one"),
        ({"input_ids": torch.zeros(1, 0, dtype=torch.long)}, "empty sequence"),
        ({"input_ids": torch.zeros(1, 65, dtype=torch.long)}, "max_position_embeddings=64"),
    ],
    ids=["neither", "both", "empty", "too long"],
)
def test_a_forward_without_one_sequence_of_ids_that_fits_is_refused(inputs, match):
    with pytest.raises(ValueError, match=match):
        load()(**inputs)


def test_a_deep_copy_gives_the_same_logits():
    """copy.deepcopy (what Trainer callbacks and model averaging do) rebuilds the rotary config view without
    __init__; it must neither recurse nor change the model."""
    model = load()
    ids = torch.tensor([[5, 6, 7, 8, 9, 10, 11, 12]])
    with torch.no_grad():
        torch.testing.assert_close(copy.deepcopy(model)(ids).logits, model(ids).logits, atol=0, rtol=0)
