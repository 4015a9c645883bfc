"""PEFT adapters on hf-mdm models: LoRA with task_type="CAUSAL_LM" trains with the stock Trainer, generates by
diffusion, saves, loads offline from a folder and merges; prompt learning is refused at generate()."""

import re
from pathlib import Path

import pytest
import torch
from datasets import Dataset
from transformers import AutoModel, Trainer, TrainingArguments

from hf_mdm import DataCollatorForMaskedDiffusion, MDMForMaskedGeneration, enable_diffusion_generation

from .conftest import tiny_bert_config, tiny_config, toy_corpus


peft = pytest.importorskip("peft", reason="needs the [peft] extra: pip install -e '.[peft]'")
from hf_mdm.peft_auto_model import AutoPeftModelForMaskedLM  # noqa: E402


# PEFT reads transformers' deprecated `is_gradient_checkpointing` alias when it wraps a model (transformers >= 5.24
# warns); nothing on our side can avoid it, so that one warning is not an error here.
pytestmark = pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
ROOT = Path(__file__).parents[1]
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]


def lora(model, **overrides):
    """A LoRA adapter whose update is not zero (init_lora_weights=False), so that it changes the outputs."""
    torch.manual_seed(1)
    values = dict(task_type="CAUSAL_LM", r=4, target_modules=TARGETS, init_lora_weights=False)
    return peft.get_peft_model(model, peft.LoraConfig(**{**values, **overrides}))


@pytest.fixture
def base_dir(tmp_path, tokenizer):
    torch.manual_seed(0)
    MDMForMaskedGeneration(tiny_config()).save_pretrained(tmp_path / "base")
    tokenizer.save_pretrained(tmp_path / "base")
    return tmp_path / "base"


def decode(model, tokenizer):
    prompt = tokenizer(["the cat", "a dog ran"], return_tensors="pt", padding=True)
    return model.generate(**prompt, max_new_tokens=4, steps=4, do_sample=False)


def logits(model, tokenizer):
    inputs = tokenizer(["the [MASK] sat on a [MASK]"], return_tensors="pt")
    with torch.no_grad():
        return model(**inputs).logits


def test_lora_causal_lm_generates_by_diffusion_with_the_adapter(base_dir, tokenizer):
    tokenizer.padding_side = "left"
    model = AutoModel.from_pretrained(base_dir).eval()
    base_output = decode(model, tokenizer)
    adapted = lora(model)
    assert isinstance(adapted, peft.PeftModelForCausalLM)
    output = decode(adapted, tokenizer)
    assert not bool((output == tokenizer.mask_token_id).any())  # every [MASK] filled: diffusion decoding ran
    with adapted.disable_adapter():
        assert torch.equal(decode(adapted, tokenizer), base_output)
    assert not torch.equal(logits(adapted, tokenizer), logits(AutoModel.from_pretrained(base_dir), tokenizer))


def test_merge_and_unload_equals_the_adapted_model(base_dir, tokenizer):
    tokenizer.padding_side = "left"
    adapted = lora(AutoModel.from_pretrained(base_dir).eval())
    expected_logits, expected_output = logits(adapted, tokenizer), decode(adapted, tokenizer)
    merged = adapted.merge_and_unload()
    assert type(merged) is MDMForMaskedGeneration
    torch.testing.assert_close(logits(merged, tokenizer), expected_logits, rtol=1e-5, atol=1e-5)
    assert torch.equal(decode(merged, tokenizer), expected_output)


def test_saved_adapter_loads_offline_from_its_folder(base_dir, tmp_path, tokenizer):
    adapted = lora(AutoModel.from_pretrained(base_dir).eval())
    expected = logits(adapted, tokenizer)
    adapted.save_pretrained(tmp_path / "adapter")
    tokenizer.save_pretrained(tmp_path / "adapter")
    loaded = AutoPeftModelForMaskedLM.from_pretrained(tmp_path / "adapter")
    assert isinstance(loaded, peft.PeftModelForCausalLM)
    assert isinstance(loaded.get_base_model(), MDMForMaskedGeneration)
    torch.testing.assert_close(logits(loaded, tokenizer), expected)
    by_hand = peft.PeftModel.from_pretrained(AutoModel.from_pretrained(base_dir), tmp_path / "adapter")
    torch.testing.assert_close(logits(by_hand, tokenizer), expected)
    integrated = AutoModel.from_pretrained(tmp_path / "adapter")  # transformers' own PEFT integration
    torch.testing.assert_close(logits(integrated, tokenizer), expected)


def test_stock_trainer_trains_only_the_adapter_and_keeps_prompt_columns(base_dir, tmp_path, tokenizer):
    model = AutoModel.from_pretrained(base_dir)
    adapted = lora(model, init_lora_weights=True)
    frozen = {name: p.detach().clone() for name, p in adapted.named_parameters() if not p.requires_grad}
    rows = [dict(tokenizer(text), prompt_length=2) for text in toy_corpus(32)]
    collator, batches = DataCollatorForMaskedDiffusion(tokenizer, eps=0.5), []

    def recording_collator(examples):
        batches.append(collator(examples))
        return batches[-1]

    trainer = Trainer(
        model=adapted,
        args=TrainingArguments(str(tmp_path / "run"), max_steps=6, per_device_train_batch_size=8, learning_rate=1e-2,
                               logging_steps=1, save_strategy="no", report_to=[], use_cpu=True, disable_tqdm=True),
        train_dataset=Dataset.from_list(rows),
        data_collator=recording_collator,
    )  # fmt: skip
    trainer.train()
    assert all(torch.equal(p, frozen[name]) for name, p in adapted.named_parameters() if name in frozen)
    lora_b = [p for name, p in adapted.named_parameters() if "lora_B" in name]
    assert lora_b and all(bool(p.abs().sum() > 0) for p in lora_b)  # LoRA's B starts at zero: it was trained
    assert all(bool((batch["labels"][:, :2] == -100).all()) for batch in batches)  # prompts never trained on


@pytest.mark.bad_input
@pytest.mark.parametrize("config", ["PromptTuningConfig", "PrefixTuningConfig"])
def test_prompt_learning_adapters_are_refused_at_generate(base_dir, tokenizer, config):
    adapted = peft.get_peft_model(
        AutoModel.from_pretrained(base_dir), getattr(peft, config)(task_type="CAUSAL_LM", num_virtual_tokens=2)
    )
    with pytest.raises(ValueError, match="prompt-learning adapter.*never calls.*LoraConfig"):
        decode(adapted, tokenizer)
    model = adapted.get_base_model()
    assert decode(model, tokenizer).shape[1] == tokenizer(["a dog ran"], return_tensors="pt")["input_ids"].shape[1] + 4


def test_lora_causal_lm_on_a_stock_masked_lm_generates_with_the_adapter():
    """A stock BERT with diffusion generate() takes task_type="CAUSAL_LM" like ours: the adapter changes the output."""
    from transformers import BertForMaskedLM

    torch.manual_seed(0)
    config = tiny_bert_config(30)
    bert = enable_diffusion_generation(BertForMaskedLM(config).eval(), mask_token_id=4)
    prompt = torch.tensor([[5, 6, 7]])
    before = bert.generate(prompt, max_new_tokens=6, steps=6)
    adapted = lora(bert, target_modules=["query", "value"])
    assert isinstance(adapted, peft.PeftModelForCausalLM)
    after = adapted.generate(input_ids=prompt, max_new_tokens=6, steps=6)
    assert after.shape == before.shape and not torch.equal(after, before)
    assert torch.equal(adapted.merge_and_unload().generate(prompt, max_new_tokens=6, steps=6), after)


@pytest.mark.bad_input
def test_autoregressive_decoding_hook_is_refused(base_dir):
    with pytest.raises(NotImplementedError, match="masked diffusion.*generate"):
        AutoModel.from_pretrained(base_dir).prepare_inputs_for_generation(torch.tensor([[5]]))


def test_the_docs_example_runs(base_dir, tmp_path, capsys):
    """docs/peft.md's example, executed on a tiny model folder (its first line names the folders)."""
    code = re.search(r"```python\n(.*?)```", (ROOT / "docs" / "peft.md").read_text(), re.S).group(1)
    first, rest = code.split("\n", 1)
    assert first.startswith("model_dir, output_dir = ")
    exec(f"model_dir, output_dir = {str(base_dir)!r}, {str(tmp_path / 'out')!r}\n" + rest, {})
    assert (tmp_path / "out" / "adapter_config.json").exists()
    merged = MDMForMaskedGeneration.from_pretrained(tmp_path / "out-merged")
    assert not any("lora" in name for name, _ in merged.named_parameters())
    assert "trainable params" in capsys.readouterr().out
