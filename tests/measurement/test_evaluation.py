import math

import evaluate
import pytest
import torch
from datasets import Dataset
from transformers import BertForMaskedLM, TrainingArguments

import hf_mdm.metrics
from hf_mdm.configuration_mdm import MDMConfig
from hf_mdm.evaluation import elbo_perplexity, train_autoregressive_baseline
from hf_mdm.languages import HMMLanguage, NGramLanguage
from hf_mdm.modeling_mdm import MDMForMaskedGeneration

from ..conftest import tiny_bert_config


def tiny_mdm(tokenizer):
    config = MDMConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=32,
        mask_token_id=tokenizer.mask_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    return MDMForMaskedGeneration(config)


@pytest.mark.parametrize(
    "language", [NGramLanguage(4, n=2, support=2, seed=0), HMMLanguage(3, 4, 2, 2, seed=1)], ids=repr
)
def test_elbo_of_the_oracle_is_the_true_log_likelihood(language):
    """With exact posteriors the NELBO is tight: E[N(x)] = -log p(x) (any-order autoregression)."""
    dataset = language.dataset(48, 12, seed=1)
    true_nll = float(-language.log_prob(dataset["input_ids"]).sum()) / (48 * 12)
    result = elbo_perplexity(language.oracle_model(), dataset, 16, tokenizer=language.tokenizer(), eps=1e-4)
    assert result["num_tokens"] == 48 * 12 and result["num_sequences"] == 48
    assert 0 < result["nelbo_standard_error"] < 0.1
    assert abs(result["nelbo"] - true_nll) < 4 * result["nelbo_standard_error"]
    assert result["perplexity_bound"] == pytest.approx(math.exp(result["nelbo"]))


def test_elbo_of_trainable_and_stock_masked_lms():
    language = NGramLanguage(4, n=2, seed=0)
    tokenizer = language.tokenizer()
    dataset = language.dataset(6, 10, seed=0)
    mdm = elbo_perplexity(tiny_mdm(tokenizer), dataset, 2, tokenizer=tokenizer)
    bert = BertForMaskedLM(tiny_bert_config(len(tokenizer), pad_token_id=tokenizer.pad_token_id))
    stock = elbo_perplexity(bert, dataset, 2, tokenizer=tokenizer, batch_size=4)
    for result in (mdm, stock):
        assert math.isfinite(result["nelbo"]) and result["nelbo"] > 0
        # a random model is near-uniform over the 8 ids: the bound is near log 8 per token, well above the truth
        assert result["nelbo"] > language.entropy_rate().value


def test_elbo_uses_the_models_training_schedule():
    language = NGramLanguage(4, n=2, seed=0)
    tokenizer, dataset = language.tokenizer(), language.dataset(6, 10, seed=0)
    model = tiny_mdm(tokenizer)
    model.config.schedule = "cosine"
    default = elbo_perplexity(model, dataset, 2, tokenizer=tokenizer)["nelbo"]
    assert default == pytest.approx(
        elbo_perplexity(model, dataset, 2, tokenizer=tokenizer, schedule="cosine")["nelbo"]
    )
    assert default != pytest.approx(
        elbo_perplexity(model, dataset, 2, tokenizer=tokenizer, schedule="linear")["nelbo"]
    )


@pytest.mark.bad_input
def test_elbo_bad_input():
    language = NGramLanguage(3)
    with pytest.raises(ValueError, match="empty dataset"):
        elbo_perplexity(language.oracle_model(), [], 4, tokenizer=language.tokenizer())
    with pytest.raises(ValueError, match="num_samples"):
        elbo_perplexity(language.oracle_model(), language.dataset(2, 4), 0, tokenizer=language.tokenizer())


def test_autoregressive_baseline_matches_size_and_trains(tmp_path):
    language = NGramLanguage(4, n=2, support=2, seed=0)
    tokenizer = language.tokenizer()
    mdm = tiny_mdm(tokenizer)
    args = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=30,
        per_device_train_batch_size=16,
        learning_rate=3e-2,
        report_to="none",
        save_strategy="no",
        logging_strategy="no",
        use_cpu=True,
    )
    model = train_autoregressive_baseline(mdm, language.dataset(256, 12, seed=0), tokenizer, args=args)
    assert model.num_parameters() == mdm.num_parameters()  # same layers and vocabulary; RoPE has no weights
    tokenizer.save_pretrained(tmp_path)
    texts = language.dataset(16, 12, seed=1)["text"]
    result = evaluate.load(hf_mdm.metrics.path("generative_perplexity")).compute(
        predictions=texts, model=str(tmp_path)
    )
    assert result["num_tokens"] == 16 * 12
    assert result["log_perplexity"] < math.log(len(tokenizer))  # learned something beyond uniform


@pytest.mark.bad_input
def test_autoregressive_baseline_bad_input():
    tokenizer = NGramLanguage(3).tokenizer()
    with pytest.raises(ValueError, match="non-empty"):
        train_autoregressive_baseline(tiny_mdm(tokenizer), [], tokenizer)
    with pytest.raises(ValueError, match="`input_ids` column"):
        train_autoregressive_baseline(tiny_mdm(tokenizer), Dataset.from_dict({"text": ["0 1"]}), tokenizer)
