"""SDAR (model_type "sdar") on transformers' own Qwen3Model, against the authors' code (tests/fixtures/sdar-tiny).

The published folder loads through the Auto classes with every weight; its logits are the authors' within 1e-5
(blocks of 4 and 8, full attention, the cached path); `decode_like_authors(model, "sdar_block", ...)` makes the
authors' forwards and returns their tokens on every recorded case (their sampler takes one prompt: a batch runs row
by row); generate() with the exact cache equals no cache; the folder saves back in SDAR's format; it trains with the
Trainer (the block objective) and with a LoRA adapter. Bad configs and sampler arguments are refused.
"""

import json
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from safetensors.torch import load_file
from tokenizers import Tokenizer, models
from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM, DynamicCache, PreTrainedTokenizerFast, Trainer

from hf_mdm import DataCollatorForMaskedDiffusion, MDMForMaskedGeneration
from hf_mdm.configuration_sdar import SDARConfig
from hf_mdm.generation.published_samplers import decode_like_authors
from hf_mdm.generation.published_samplers.filtered_draws import top_p_filtered, transfer_counts
from hf_mdm.generation.published_samplers.sdar import positions_to_reveal
from hf_mdm.generation.sdar_generation_config import sdar_generation_config
from hf_mdm.modeling_sdar import SDARForMaskedDiffusion
from hf_mdm.transformers_compat import attention_implementation

from .conftest import decode_rows, tiny_config
from .test_trainer import logged_losses, training_args


FIXTURE = Path(__file__).parent / "fixtures" / "sdar-tiny"
PUBLISHED_CONFIG = json.loads((FIXTURE / "config.json").read_text())
CASES = json.loads((FIXTURE / "reference_generate.json").read_text())["cases"]
SAMPLING_CASES = json.loads((FIXTURE / "reference_generate_sampling.json").read_text())["cases"]
INPUTS = load_file(FIXTURE / "inputs.safetensors")
EXPECTED = load_file(FIXTURE / "expected_logits.safetensors")
TOLERANCE = 1e-5  # float32 SDPA vs the authors' flash stand-in; eager is bit-identical here
MASK, EOS = 127, 120


@pytest.fixture(scope="module")
def model():
    return AutoModel.from_pretrained(FIXTURE).eval()


def sampler_arguments(case) -> tuple[dict, int]:
    """A recorded case's `block_diffusion_generate` arguments (without mask_id, read from the config) and seed."""
    arguments = dict(case["args"])
    arguments.pop("mask_id")
    return arguments, arguments.pop("torch_manual_seed")


def fixture_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer over the fixture's ids: "t0".."t126" and "<MASK>" = 127; pad = "t120" (its EOS)."""
    vocab = {f"t{i}": i for i in range(MASK)} | {"<MASK>": MASK}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="t0"))
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="t0", pad_token=f"t{EOS}", mask_token="<MASK>")


def token_dataset(num=32, seed=0) -> Dataset:
    """Rows of 5 to 12 token ids below the specials (so that batches are padded)."""
    generator = torch.Generator().manual_seed(seed)
    lengths = torch.randint(5, 13, (num,), generator=generator).tolist()
    return Dataset.from_dict(
        {"input_ids": [torch.randint(0, EOS, (n,), generator=generator).tolist() for n in lengths]}
    )


# --- Loading --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("auto_class", [AutoModel, AutoModelForMaskedLM])
def test_auto_classes_load_the_published_folder_with_every_weight(auto_class):
    config = AutoConfig.from_pretrained(FIXTURE)
    assert type(config) is SDARConfig and (config.block_size, config.mask_token_id) == (4, MASK)
    model, info = auto_class.from_pretrained(FIXTURE, output_loading_info=True)
    assert type(model) is SDARForMaskedDiffusion
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    assert set(model.state_dict()) == set(load_file(FIXTURE / "model.safetensors"))  # the published names, unchanged


def test_published_flex_attention_is_kept_as_the_training_kernel_and_not_used():
    model = AutoModel.from_pretrained(FIXTURE)
    assert attention_implementation(model.config) == "sdpa"
    assert model.config.training_attn_implementation == "flex_attention"
    assert model.config.to_dict()["attn_implementation"] == "flex_attention"
    assert attention_implementation(AutoModel.from_pretrained(FIXTURE, attn_implementation="eager").config) == "eager"
    # the published value passed at load is the same flag; flex attention itself is refused
    flagged = AutoModel.from_pretrained(FIXTURE, attn_implementation="flex_attention")
    assert attention_implementation(flagged.config) == "sdpa"
    with pytest.raises(ValueError, match="does not support"):
        flagged.set_attn_implementation("flex_attention")


def test_generation_config_dialect_is_the_authors_evaluation_decoding(model, tmp_path):
    config = model.generation_config
    assert (config.do_sample, config.temperature, config.top_k, config.top_p) == (False, None, None, None)
    assert (config.strategy, config.threshold, config.steps, config.block_length) == ("threshold", 0.85, None, None)
    assert config.eos_token_id == [121, 120] and config.pad_token_id == EOS
    # a file with diffusion fields (one hf-mdm saved) is read as it is
    assert sdar_generation_config({"strategy": "confidence", "do_sample": True}).do_sample is True
    model.save_pretrained(tmp_path)
    assert AutoModel.from_pretrained(tmp_path).generation_config.to_dict() == config.to_dict()


# --- Logits parity --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
@pytest.mark.parametrize(
    "block_size, expected", [(4, "logits_block4"), (8, "logits_block8"), (16, "logits_full_attention")]
)
def test_logits_match_the_authors(attn_implementation, block_size, expected):
    model = AutoModel.from_pretrained(FIXTURE, block_size=block_size, attn_implementation=attn_implementation).eval()
    with torch.no_grad():
        logits = model(INPUTS["input_ids"]).logits
    assert logits.dtype == torch.float32
    assert (logits - EXPECTED[expected]).abs().max().item() <= TOLERANCE


def test_cached_logits_match_the_authors(model):
    tokens, cache = INPUTS["input_ids"], DynamicCache()
    with torch.no_grad():
        model(tokens[:, :8], cache=cache)
        logits = model(tokens[:, 8:12], cache=cache).logits
    assert (logits - EXPECTED["logits_block4_cached_tokens8to12"]).abs().max().item() <= TOLERANCE


# --- The authors' sampler -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES + SAMPLING_CASES, ids=[case["name"] for case in CASES + SAMPLING_CASES])
def test_sdar_block_decodes_like_the_authors(model, case):
    """Token-identical outputs; where recorded (reference_generate.json), the same forwards: input ids, positions,
    cache length and whether the forward stores its keys/values."""
    arguments, seed = sampler_arguments(case)
    calls = []

    def record(module, args, kwargs):
        cache = kwargs["cache"]
        calls.append({"input_ids": args[0].tolist(), "position_ids": kwargs["position_ids"].tolist(),
                      "past_len": cache.get_seq_length(), "store_kv": cache.store})  # fmt: skip

    handle = model.register_forward_pre_hook(record, with_kwargs=True)
    try:
        ids, forwards = decode_like_authors(
            model, "sdar_block", torch.tensor([case["prompt"]]), generator=torch.Generator().manual_seed(seed),
            return_model_calls=True, **arguments,
        )  # fmt: skip
    finally:
        handle.remove()
    assert ids.tolist() == case["output_ids"]
    assert calls == case.get("forward_calls", calls) and forwards == len(calls)


def test_authors_rules_at_ties():
    """The authors' comparisons are strict: with greedy top_k=1 every drawn token has p = 1, so a threshold of 1.0
    reveals the step's count only (not the whole block); a nucleus whose mass reaches top_p exactly keeps the next
    token (transformers' TopPLogitsWarper would drop it)."""
    masked, probs = torch.ones(1, 4, dtype=torch.bool), torch.ones(1, 4)
    assert positions_to_reveal("low_confidence_dynamic", masked, probs, 1, 1.0).sum() == 1
    assert positions_to_reveal("low_confidence_dynamic", masked, probs, 1, 0.85).all()
    logits = torch.tensor([[0.0, 0.0, -30.0]])
    assert torch.equal(top_p_filtered(logits, 0.5).isfinite(), torch.tensor([[True, True, False]]))


@given(
    prompt_length=st.integers(0, 9),
    gen_length=st.integers(0, 9),
    block_length=st.sampled_from([1, 2, 4, 8]),
    steps=st.integers(1, 5),
    strategy=st.sampled_from(["sequential", "low_confidence_static", "low_confidence_dynamic"]),
)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_sdar_block_keeps_the_prompt_blocks_and_the_authors_forward_budget(
    model, prompt_length, gen_length, block_length, steps, strategy
):
    """Output: ceil((P + gen_length) / L) blocks of L tokens, starting with the prompt's whole blocks (a prompt token
    in the last, partial block can be redrawn: the authors' top-k takes it when a step's count exceeds the masks
    left); forwards: one prefill if the prompt holds a whole block, then at most steps + 1 per decoded block; the
    transfer schedule sums to the block. A run that drew [MASK] fails as the authors' function does (not counted)."""
    prompt = torch.arange(prompt_length)[None] + 5
    try:
        ids, forwards = decode_like_authors(
            model, "sdar_block", prompt, gen_length=gen_length, block_length=block_length, denoising_steps=steps,
            top_k=1, remasking_strategy=strategy, return_model_calls=True,
        )  # fmt: skip
    except RuntimeError as error:
        assert "still holds [MASK]" in str(error)
        reject()
    blocks, prefill = -(-(prompt_length + gen_length) // block_length), prompt_length // block_length
    assert ids.shape == (1, blocks * block_length)
    assert torch.equal(ids[:, : prefill * block_length], prompt[:, : prefill * block_length])
    assert forwards <= (prefill > 0) + (blocks - prefill) * (steps + 1)
    counts = transfer_counts(block_length, steps)
    assert sum(counts) == block_length and max(counts) - min(counts) <= 1


def test_sdar_block_fails_where_the_authors_function_fails(model):
    """Greedy (top_k=1) draws [MASK] here (the authors keep its logit); the block still holds [MASK] after its steps,
    where the authors' function raises IndexError. Refused with the reason, not returned half-decoded."""
    with pytest.raises(RuntimeError, match="still holds \\[MASK\\] after its 2 steps"):
        decode_like_authors(
            model, "sdar_block", torch.tensor([[5, 6]]), gen_length=3, block_length=4, denoising_steps=2, top_k=1,
            remasking_strategy="sequential",
        )  # fmt: skip


def test_sdar_block_uses_the_global_rng_without_a_generator(model):
    case = next(case for case in CASES if "sampled" in case["name"])
    arguments, seed = sampler_arguments(case)
    torch.manual_seed(seed)
    assert (
        decode_like_authors(model, "sdar_block", torch.tensor([case["prompt"]]), **arguments).tolist()
        == (case["output_ids"])
    )


@pytest.mark.parametrize("name", ["static_topk1_steps2_b4_p6_g10", "dynamic_temp1.0_sampled_steps4_b4_p6_g10_seed0"])
def test_sdar_block_runs_a_batch_row_by_row(model, name):
    """The authors' function takes one prompt; a batch is each row's own run, one after the other (a shared
    generator continues from row to row)."""
    arguments, seed = sampler_arguments(next(case for case in CASES if case["name"] == name))
    prompts = torch.tensor([[5, 17, 33, 2, 90, 64], [8, 1, 77, 40, 3, 19]])
    batch = decode_like_authors(
        model, "sdar_block", prompts, generator=torch.Generator().manual_seed(seed), **arguments
    )
    generator = torch.Generator().manual_seed(seed)
    rows = [decode_like_authors(model, "sdar_block", row[None], generator=generator, **arguments) for row in prompts]
    assert torch.equal(batch, torch.cat(rows))


# --- generate(), saving, training -----------------------------------------------------------------------------------
@pytest.mark.parametrize("do_sample", [False, True])
def test_generate_with_the_exact_cache_equals_no_cache_and_padding_changes_no_row(model, do_sample):
    """The exact cache stores finished blocks only, so it gives no-cache decoding's tokens; blocks count real tokens,
    so the left-padded row decodes as it does alone."""
    prompts = torch.tensor([[0, 0, 5, 17, 33, 2, 90], [8, 1, 77, 40, 3, 19, 11]])
    attention_mask = (prompts != 0).long() | torch.tensor([[0], [1]])
    outputs = {
        cache: decode_rows(model, prompts, attention_mask, [0, 1], max_new_tokens=12, cache=cache, do_sample=do_sample)
        for cache in ("exact", "none")
    }
    assert torch.equal(outputs["exact"], outputs["none"])
    assert not (outputs["exact"][:, 7:] == MASK).any()
    alone = decode_rows(model, prompts, attention_mask, [0], alone=True, max_new_tokens=12, do_sample=do_sample)
    assert torch.equal(alone[0], outputs["exact"][0, 2:])


def test_training_forward_reads_each_noisy_block_after_the_clean_earlier_ones(model):
    """The objective's forward (labels: one pass over [x_t ; x_0], as the authors train) gives each noisy block the
    logits of the model run on the clean earlier blocks followed by that noisy block."""
    noisy = INPUTS["input_ids"]
    clean = torch.where(
        noisy == MASK, torch.randint(0, EOS, noisy.shape, generator=torch.Generator().manual_seed(0)), noisy
    )
    with torch.no_grad():
        output = model(noisy, labels=torch.where(noisy == MASK, clean, -100), t=torch.full((2,), 0.5))
        assert torch.isfinite(output.loss)
        for start in range(0, noisy.shape[1], 4):
            reference = model(torch.cat([clean[:, :start], noisy[:, start : start + 4]], dim=1)).logits[:, start:]
            assert (output.logits[:, start : start + 4] - reference).abs().max().item() <= TOLERANCE


def test_save_pretrained_writes_the_published_format(model, tmp_path):
    """Every published config.json key with its value (aside from the transformers version, and `torch_dtype`, now
    written as `dtype`; hf-mdm adds its own fields), the published weight names, and the same logits loaded back."""
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    published = {
        key: value for key, value in PUBLISHED_CONFIG.items() if key not in ("transformers_version", "torch_dtype")
    }
    assert {key: saved.get(key) for key in published} == published and saved["dtype"] == PUBLISHED_CONFIG[
        "torch_dtype"
    ]
    assert set(load_file(tmp_path / "model.safetensors")) == set(load_file(FIXTURE / "model.safetensors"))
    reloaded = AutoModel.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        assert torch.equal(reloaded(INPUTS["input_ids"]).logits, model(INPUTS["input_ids"]).logits)


def test_trainer_trains_the_block_objective(tmp_path):
    model = AutoModel.from_pretrained(FIXTURE)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    trainer = Trainer(
        model=model,
        args=training_args(tmp_path, 3, per_device_train_batch_size=8),
        train_dataset=token_dataset(),
        data_collator=DataCollatorForMaskedDiffusion(fixture_tokenizer(), block_size=4),
    )
    trainer.train()
    losses = logged_losses(trainer)
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(losses)))
    assert all(not torch.equal(p, before[name]) for name, p in model.named_parameters())


# PEFT reads transformers' deprecated `is_gradient_checkpointing` alias when it wraps a model (as in test_peft.py).
@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
def test_lora_adapter_trains_and_the_base_stays_frozen(tmp_path):
    peft = pytest.importorskip("peft", reason="needs the [peft] extra: pip install -e '.[peft]'")
    config = peft.LoraConfig(task_type="CAUSAL_LM", r=4, target_modules=["q_proj", "v_proj"])
    adapted = peft.get_peft_model(AutoModel.from_pretrained(FIXTURE), config)
    frozen = {name: p.detach().clone() for name, p in adapted.named_parameters() if not p.requires_grad}
    trainer = Trainer(
        model=adapted,
        args=training_args(tmp_path, 3, per_device_train_batch_size=8, learning_rate=1e-2),
        train_dataset=token_dataset(),
        data_collator=DataCollatorForMaskedDiffusion(fixture_tokenizer(), block_size=4),
    )
    trainer.train()
    assert all(torch.isfinite(torch.tensor(logged_losses(trainer))))
    assert all(torch.equal(p, frozen[name]) for name, p in adapted.named_parameters() if name in frozen)
    lora_b = [p for name, p in adapted.named_parameters() if "lora_B" in name]
    assert lora_b and all(bool(p.abs().sum() > 0) for p in lora_b)  # LoRA's B starts at zero: it was trained


# --- Refusals -------------------------------------------------------------------------------------------------------
@pytest.mark.bad_input
@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"block_size": None}, "needs block_size"),
        ({"block_size": 0}, "needs block_size"),
        ({"mask_token_id": None}, "needs `mask_token_id`"),
        ({"mask_token_id": 128}, "outside the vocabulary"),
        ({"use_sliding_window": True, "sliding_window": 8}, "use_sliding_window"),
        ({"loss_weighting": "mean"}, "loss_weighting"),
    ],
)
def test_bad_sdar_config_is_refused(overrides, message):
    values = {key: value for key, value in PUBLISHED_CONFIG.items() if key != "model_type"}
    with pytest.raises(ValueError, match=message):
        SDARConfig(**{**values, **overrides})


@pytest.mark.bad_input
def test_folder_with_missing_weights_is_refused(model, tmp_path):
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config.update(num_hidden_layers=3, layer_types=None)
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="missing.*model.layers.2"):
        AutoModel.from_pretrained(tmp_path)


@pytest.mark.bad_input
@pytest.mark.parametrize("attn_implementation", ["flash_attention_2"])
def test_attention_without_a_block_mask_is_refused(attn_implementation):
    with pytest.raises(ValueError, match="does not support"):
        AutoModel.from_pretrained(FIXTURE, attn_implementation=attn_implementation)


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"remasking_strategy": "entropy_bounded", "eb_threshold": 0.35}, "broken"),
        ({"remasking_strategy": "low_confidence"}, "must be one of"),
        ({"eb_threshold": 0.35}, "entropy_bounded"),
        ({"temperature": 0}, "temperature must be > 0"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_k": -1}, "top_k"),
        ({"gen_length": 2.5}, "gen_length"),
        ({"block_length": 0}, "block_length"),
        ({"denoising_steps": 0}, "denoising_steps"),
        ({"confidence_threshold": "high"}, "confidence_threshold"),
        ({"stopping_criteria_idx": 120}, "stopping_criteria_idx"),
        ({"stopping_criteria_idx": [500]}, "outside the vocabulary"),
    ],
)
def test_bad_sampler_arguments_are_refused_before_any_forward(model, arguments, message):
    with pytest.raises(ValueError, match=message):
        decode_like_authors(model, "sdar_block", torch.tensor([[5, 17, 33]]), **arguments)


@pytest.mark.bad_input
def test_sdar_block_refuses_padding_and_other_models(model):
    prompts, attention_mask = torch.tensor([[0, 5, 17], [8, 1, 77]]), torch.tensor([[0, 1, 1], [1, 1, 1]])
    with pytest.raises(ValueError, match="without padding"):
        decode_like_authors(model, "sdar_block", prompts, attention_mask=attention_mask)
    with pytest.raises(ValueError, match="runs an SDAR model"):
        decode_like_authors(MDMForMaskedGeneration(tiny_config(block_size=4)).eval(), "sdar_block", prompts % 4)
