"""pipeline("text-generation") on masked diffusion LMs: a folder or an instance, ours or a stock masked LM, bare or
PEFT-wrapped, with the step budget as generation keywords, a default length that fits the model, and causal LMs left
to transformers."""

import pytest
import torch
from transformers import BertForMaskedLM, LlamaConfig, LlamaForCausalLM, TextGenerationPipeline, pipeline
from transformers.testing_utils import CaptureLogger
from transformers.utils import logging

from hf_mdm import DiffusionTextGenerationPipeline, MDMForMaskedGeneration, TextGenerationPipelineRouter
from hf_mdm.text_generation_pipeline import PIPELINE_REGISTRY, register_text_generation_pipeline

from .conftest import tiny_config, word_tokenizer
from .test_model_card import tiny_bert_masked_lm


POSITIONS = 16


@pytest.fixture
def model():
    torch.manual_seed(0)
    return MDMForMaskedGeneration(tiny_config(max_position_embeddings=POSITIONS)).eval()


@pytest.fixture
def folder(tmp_path, model, tokenizer):
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    return tmp_path


def build(**kwargs):
    """The pipeline, with everything transformers logs while building and running it."""
    with CaptureLogger(logging.get_logger("transformers")) as logs:
        generator = pipeline("text-generation", **kwargs)
    return generator, logs


@pytest.mark.parametrize("source", ["folder", "instance"])
def test_folder_and_instance_build_the_diffusion_pipeline_without_logged_errors(source, folder, model, tokenizer):
    given = dict(model=str(folder)) if source == "folder" else dict(model=model, tokenizer=tokenizer)
    generator, logs = build(**given)
    assert type(generator) is DiffusionTextGenerationPipeline and isinstance(generator.model, MDMForMaskedGeneration)
    with CaptureLogger(logging.get_logger("transformers")) as call_logs:
        text = generator("the cat", max_new_tokens=4, steps=2)[0]["generated_text"]
    assert logs.out == "" and call_logs.out == ""  # no "not supported for text-generation", no warning
    words = text.split()
    assert words[:2] == ["the", "cat"] and len(words) == 6  # the prompt as typed, then 4 words, spaced


def test_step_budget_passes_through_as_generate_kwargs(model, tokenizer):
    generator, _ = build(model=model, tokenizer=tokenizer)
    budget = dict(max_new_tokens=8, steps=4, strategy="confidence", block_length=4)
    ids = generator("the cat", return_tensors=True, **budget)[0]["generated_token_ids"]
    direct = model.generate(**tokenizer("the cat", return_tensors="pt"), **budget)[0]
    assert ids == direct.tolist()
    other = generator("the cat", return_tensors=True, **{**budget, "steps": 8, "strategy": "random"})
    assert len(other[0]["generated_token_ids"]) == len(ids)


def test_default_length_fits_the_positions_the_prompt_leaves(model, tokenizer):
    generator, _ = build(model=model, tokenizer=tokenizer)
    assert len(generator("the cat", return_tensors=True)[0]["generated_token_ids"]) == POSITIONS  # 14 new, not 32
    blocks = generator("the cat", return_tensors=True, block_length=4)[0]["generated_token_ids"]
    assert len(blocks) == 2 + 12  # cut to a multiple of the block length
    at_init, _ = build(model=model, tokenizer=tokenizer, max_new_tokens=3)
    assert len(at_init("the cat", return_tensors=True)[0]["generated_token_ids"]) == 2 + 3  # the caller's length wins
    with pytest.raises(ValueError, match="The prompt has 16 tokens and the model accepts 16 positions"):
        generator(" ".join(["the"] * POSITIONS))


def test_prompt_masks_are_filled_in_the_full_text(model, tokenizer):
    generator, _ = build(model=model, tokenizer=tokenizer)
    result = generator("the [MASK] sat on a [MASK]", return_tensors=True)[0]["generated_token_ids"]
    assert len(result) == 6 and tokenizer.mask_token_id not in result  # pure infilling: no new positions
    text = generator("the [MASK] sat on a [MASK]")[0]["generated_text"]
    assert "[MASK]" not in text and text == tokenizer.decode(result, skip_special_tokens=True)


def test_stock_masked_lm_instance_uses_the_diffusion_pipeline(tokenizer):
    generator, logs = build(model=tiny_bert_masked_lm(), tokenizer=tokenizer)
    assert type(generator) is DiffusionTextGenerationPipeline and logs.out == ""
    assert len(generator("the cat", max_new_tokens=3, steps=3, return_tensors=True)[0]["generated_token_ids"]) == 5


def test_causal_lms_still_get_transformers_pipeline():
    tokenizer = word_tokenizer()
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=64)  # fmt: skip
    generator = pipeline("text-generation", model=LlamaForCausalLM(config).eval(), tokenizer=tokenizer)
    assert type(generator) is TextGenerationPipeline
    assert (
        len(generator("the cat", max_new_tokens=2, do_sample=False, return_tensors=True)[0]["generated_token_ids"])
        == 4
    )


@pytest.mark.bad_input
def test_the_diffusion_pipeline_refuses_a_model_without_diffusion_generate(tokenizer):
    plain = BertForMaskedLM(tiny_bert_masked_lm().config)  # no enable_diffusion_generation
    with pytest.raises(ValueError, match="needs a model with diffusion generate"):
        DiffusionTextGenerationPipeline(model=plain, tokenizer=tokenizer)


# PEFT reads transformers' deprecated `is_gradient_checkpointing` when it wraps a model (as in tests/test_peft.py).
@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
def test_a_peft_wrapped_model_gets_the_diffusion_pipeline(model, tokenizer):
    peft = pytest.importorskip("peft", reason="needs the [peft] extra")
    torch.manual_seed(1)
    config = peft.LoraConfig(task_type="CAUSAL_LM", r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    adapted = peft.get_peft_model(model, config)
    generator, logs = build(model=adapted, tokenizer=tokenizer)
    assert type(generator) is DiffusionTextGenerationPipeline and logs.out == ""
    budget = dict(max_new_tokens=4, steps=4)
    ids = generator("the cat", return_tensors=True, **budget)[0]["generated_token_ids"]
    assert ids == adapted.generate(**tokenizer("the cat", return_tensors="pt"), **budget)[0].tolist()
    words = generator("the cat", **budget)[0]["generated_text"].split()
    assert words[:2] == ["the", "cat"] and len(words) == 6  # spaced, 4 new words, greedy as the model's config says
    assert len(generator("the cat", return_tensors=True)[0]["generated_token_ids"]) == POSITIONS  # fits the model


def test_the_task_is_registered_through_transformers_public_registry():
    with CaptureLogger(logging.get_logger("transformers")) as logs:
        register_text_generation_pipeline(MDMForMaskedGeneration)
    _, entry, _ = PIPELINE_REGISTRY.check_task("text-generation")
    assert entry["impl"] is TextGenerationPipelineRouter and MDMForMaskedGeneration in entry["pt"]
    assert TextGenerationPipelineRouter._registered_impl == {"text-generation": entry}  # set by register_pipeline
    assert "model" in entry["default"] and logs.out == ""  # the task's default kept, no overwrite notice
