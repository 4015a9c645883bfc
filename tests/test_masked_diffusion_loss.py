import math

import pytest
import torch
import torch.nn.functional as F
from transformers import BertForMaskedLM

from hf_mdm import (
    DataCollatorForMaskedDiffusion,
    MDMForMaskedGeneration,
    enable_diffusion_training,
    get_schedule,
    masked_diffusion_loss,
)

from .conftest import tiny_bert_config, tiny_config, word_tokenizer


def noisy_batch(seed=0, batch=3, length=7, vocab=11):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(batch, length, vocab, generator=generator)
    labels = torch.randint(vocab, (batch, length), generator=generator)
    labels[torch.rand(batch, length, generator=generator) < 0.5] = -100
    attention_mask = torch.ones(batch, length, dtype=torch.long)
    attention_mask[0, -2:] = 0
    labels[0, -2:] = -100
    return logits, labels, attention_mask


@pytest.mark.parametrize("schedule", ["linear", "cosine", "polynomial"])
def test_matches_the_nelbo_formula(schedule):
    logits, labels, attention_mask = noisy_batch()
    t = torch.tensor([0.2, 0.5, 0.9])
    loss = masked_diffusion_loss(logits, labels, t=t, attention_mask=attention_mask, schedule=schedule)
    weight = get_schedule(schedule).loss_weight(t)
    expected = 0.0
    for b in range(3):
        for i in range(7):
            if labels[b, i] != -100:
                expected += weight[b] * F.cross_entropy(logits[b, i], labels[b, i])
    assert float(loss) == pytest.approx(float(expected / attention_mask.sum()), rel=1e-5)


def test_per_row_reduction_sums_each_rows_weighted_nll():
    logits, labels, attention_mask = noisy_batch()
    t = torch.tensor([0.2, 0.5, 0.9])
    rows = masked_diffusion_loss(logits, labels, t=t, reduction="none")
    weight = get_schedule("linear").loss_weight(t)
    for b in range(3):
        masked = labels[b] != -100
        expected = weight[b] * F.cross_entropy(logits[b][masked], labels[b][masked], reduction="sum")
        assert float(rows[b]) == pytest.approx(float(expected), rel=1e-5)
    mean = masked_diffusion_loss(logits, labels, t=t, attention_mask=attention_mask)
    torch.testing.assert_close(rows.sum() / attention_mask.sum(), mean)


def test_uniform_weighting_is_the_masked_cross_entropy():
    logits, labels, _ = noisy_batch()
    expected = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100)
    torch.testing.assert_close(masked_diffusion_loss(logits, labels, weighting="uniform"), expected)


@pytest.mark.parametrize("schedule", ["linear", "cosine", "log-linear"])
def test_nelbo_of_a_uniform_model_is_log_vocab(schedule):
    """On i.i.d. uniform data a model that predicts uniformly has NLL log V per token; the NELBO must agree."""
    vocab, length = 30, 32
    tokenizer = word_tokenizer([f"w{i}" for i in range(vocab - 5)])
    collator = DataCollatorForMaskedDiffusion(tokenizer, schedule=schedule, generator=torch.Generator().manual_seed(0))
    generator = torch.Generator().manual_seed(1)
    losses = []
    for _ in range(40):
        examples = [{"input_ids": torch.randint(5, vocab, (length,), generator=generator)} for _ in range(64)]
        batch = collator(examples)
        logits = torch.zeros(64, length, vocab)
        logits[..., :5] = -1e9  # the data never uses special tokens
        losses.append(float(masked_diffusion_loss(logits, batch["labels"], t=batch["t"], schedule=schedule)))
    assert sum(losses) / len(losses) == pytest.approx(math.log(vocab - 5), rel=0.03)


def test_gradient_accumulation_scaling():
    logits, labels, attention_mask = noisy_batch()
    t = torch.tensor([0.2, 0.5, 0.9])
    alone = masked_diffusion_loss(logits, labels, t=t, attention_mask=attention_mask)
    masked = int((labels != -100).sum())
    scaled = masked_diffusion_loss(logits, labels, 3 * masked, t=t, attention_mask=attention_mask)
    torch.testing.assert_close(scaled, alone / 3)


def test_no_masked_token_gives_zero_with_a_graph():
    logits = torch.randn(2, 4, 9)
    logits[..., 3] = torch.finfo(logits.dtype).min  # as the [MASK] column of MDMForMaskedGeneration
    logits.requires_grad_(True)
    loss = masked_diffusion_loss(logits, torch.full((2, 4), -100), t=torch.tensor([0.5, 0.5]))
    assert float(loss) == 0.0
    loss.backward()
    assert logits.grad is not None


@pytest.mark.bad_input
def test_bad_inputs_name_the_fix():
    logits, labels, _ = noisy_batch()
    with pytest.raises(ValueError, match="enable_diffusion_training"):
        masked_diffusion_loss(logits, labels)
    with pytest.raises(ValueError, match=r"t must lie in \(0, 1\]"):
        masked_diffusion_loss(logits, labels, t=torch.tensor([0.0, 0.5, 1.0]))
    with pytest.raises(ValueError, match=r"t must lie in \(0, 1\]"):
        masked_diffusion_loss(logits, labels, t=torch.tensor([0.5, 0.5, 1.5]))
    with pytest.raises(ValueError, match="give one per row"):
        masked_diffusion_loss(logits, labels, t=torch.tensor([0.5]))
    with pytest.raises(ValueError, match="labels have shape"):
        masked_diffusion_loss(logits, labels[:, :-1], t=torch.tensor([0.5] * 3))
    with pytest.raises(ValueError, match="reduction must be"):
        masked_diffusion_loss(logits, labels, t=torch.tensor([0.5] * 3), reduction="sum")
    with pytest.raises(ValueError, match="weighting must be"):
        masked_diffusion_loss(logits, labels, t=torch.tensor([0.5] * 3), weighting="mean")
    with pytest.raises(ValueError, match="Unknown noise schedule"):
        masked_diffusion_loss(logits, labels, t=torch.tensor([0.5] * 3), schedule="exp")


def test_stock_masked_lm_outputs_carry_the_collator_time():
    torch.manual_seed(0)
    bert = BertForMaskedLM(tiny_bert_config(17))
    assert enable_diffusion_training(enable_diffusion_training(bert)) is bert
    ids, mask, t = torch.randint(5, 17, (2, 6)), torch.ones(2, 6, dtype=torch.long), torch.tensor([0.3, 0.7])
    outputs = bert(input_ids=ids, attention_mask=mask, t=t)
    assert torch.equal(outputs["t"], t) and torch.equal(outputs["attention_mask"], mask)
    labels = ids.masked_fill(torch.rand(2, 6) < 0.5, -100)
    torch.testing.assert_close(
        masked_diffusion_loss(outputs, labels),
        masked_diffusion_loss(outputs.logits, labels, t=t, attention_mask=mask),
    )


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "change, message",
    [
        (dict(t=torch.tensor([float("nan"), 0.5, 0.5])), r"t must lie in \(0, 1\]"),
        (dict(labels_first=-1), "other than -100"),
        (dict(labels_first=11), "labels hold ids >= the vocabulary size 11"),
        (dict(num_items_in_batch=0), "num_items_in_batch is smaller"),
        (dict(num_items_in_batch=torch.tensor(float("nan"))), "num_items_in_batch is smaller"),
    ],
    ids=["t_nan", "labels_minus_one", "labels_out_of_vocab", "num_items_in_batch_zero", "num_items_in_batch_nan"],
)
def test_bad_loss_values_name_the_fix(change, message):
    logits, labels, _ = noisy_batch()
    labels[0, 0] = change.pop("labels_first", labels[0, 0])
    kwargs = {"t": torch.tensor([0.5, 0.5, 0.5]), **change}
    with pytest.raises(ValueError, match=message):
        masked_diffusion_loss(logits, labels, kwargs.pop("num_items_in_batch", None), **kwargs)


@pytest.mark.bad_input
def test_float_labels_are_refused():
    logits, labels, _ = noisy_batch()
    with pytest.raises(TypeError, match=r"labels.long\(\)"):
        masked_diffusion_loss(logits, labels.float(), t=torch.tensor([0.5] * 3))


@pytest.mark.bad_input
@pytest.mark.parametrize("model_schedule", ["cosine", "log-linear"])
def test_a_batch_masked_under_another_schedule_is_refused_by_the_model_and_the_loss(model_schedule):
    """The collator's mask_probability must be 1 - alpha(t) of the schedule that weights the loss: an hf-mdm model,
    a DiT checkpoint's log-linear one, and a stock masked LM's `masked_diffusion_loss(schedule=...)` refuse a batch a
    default (linear) collator masked, and accept the matching collator's."""
    tokenizer = word_tokenizer()
    examples = [tokenizer(text) for text in ["the cat sat on a mat", "the dog ran"]]
    config = tiny_config(schedule=model_schedule)
    model = MDMForMaskedGeneration(config)
    mismatched = DataCollatorForMaskedDiffusion(tokenizer, generator=torch.Generator().manual_seed(0))(examples)
    matched = DataCollatorForMaskedDiffusion(
        tokenizer, schedule=config.noise_schedule, generator=torch.Generator().manual_seed(0)
    )(examples)
    with pytest.raises(ValueError, match="another noise schedule.*schedule=model.config.noise_schedule"):
        model(**mismatched)
    assert torch.isfinite(model(**matched).loss)
    bert = enable_diffusion_training(BertForMaskedLM(tiny_bert_config(len(tokenizer))))
    outputs = bert(**{key: value for key, value in mismatched.items() if key != "labels"})
    with pytest.raises(ValueError, match="another noise schedule"):
        masked_diffusion_loss(outputs, mismatched["labels"], schedule=model_schedule)
    assert torch.isfinite(masked_diffusion_loss(outputs, mismatched["labels"], schedule="linear"))
