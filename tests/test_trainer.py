"""The stock Trainer, nothing subclassed: our model + collator, resume, and a stock BERT on the same objective."""

import pytest
import torch
from datasets import Dataset
from transformers import BertForMaskedLM, Trainer, TrainerCallback, TrainingArguments

from hf_mdm import (
    DataCollatorForMaskedDiffusion,
    MDMForMaskedGeneration,
    enable_diffusion_training,
    masked_diffusion_loss,
)

from .conftest import tiny_bert_config, tiny_config, toy_corpus


def toy_dataset(tokenizer, num=64):
    return Dataset.from_dict({"text": toy_corpus(num)}).map(lambda b: tokenizer(b["text"]), batched=True)


def training_args(output_dir, max_steps, **overrides):
    values = dict(
        output_dir=str(output_dir),
        max_steps=max_steps,
        per_device_train_batch_size=16,
        learning_rate=3e-3,
        lr_scheduler_type="constant",
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
        use_cpu=True,
        seed=0,
        data_seed=0,
        dataloader_num_workers=0,
    )
    values.update(overrides)
    return TrainingArguments(**values)


class StepCounter(TrainerCallback):
    def __init__(self):
        self.count = 0

    def on_step_end(self, args, state, control, **kwargs):
        self.count += 1


def logged_losses(trainer):
    return [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]


def new_model(seed=0):
    torch.manual_seed(seed)
    return MDMForMaskedGeneration(tiny_config())


def test_stock_trainer_lowers_the_nelbo(tmp_path, tokenizer):
    trainer = Trainer(
        model=new_model(),
        args=training_args(tmp_path, 60),
        train_dataset=toy_dataset(tokenizer),
        data_collator=DataCollatorForMaskedDiffusion(tokenizer),
    )
    trainer.train()
    losses = logged_losses(trainer)
    assert len(losses) == 60
    assert sum(losses[-10:]) / 10 < 0.6 * sum(losses[:10]) / 10


def test_resume_from_checkpoint_continues_the_same_run(tmp_path, tokenizer):
    dataset = toy_dataset(tokenizer)

    def trainer(output_dir):
        return Trainer(
            model=new_model(),
            args=training_args(output_dir, 8, save_strategy="steps", save_steps=4),
            train_dataset=dataset,
            data_collator=DataCollatorForMaskedDiffusion(tokenizer),
        )

    uninterrupted = trainer(tmp_path / "full")
    uninterrupted.train()
    resumed = trainer(tmp_path / "full")
    steps_taken = StepCounter()
    resumed.add_callback(steps_taken)
    resumed.train(resume_from_checkpoint=str(tmp_path / "full" / "checkpoint-4"))
    assert steps_taken.count == 4  # it continued from step 4 (a fresh seeded run would repeat all 8 losses)
    after_checkpoint = logged_losses(resumed)[4:]
    assert len(after_checkpoint) == 4
    assert after_checkpoint == pytest.approx(logged_losses(uninterrupted)[4:], rel=1e-5)


def tiny_bert(tokenizer):
    torch.manual_seed(0)
    config = tiny_bert_config(
        len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        pad_token_id=tokenizer.pad_token_id,
    )
    return enable_diffusion_training(BertForMaskedLM(config))


def test_stock_bert_trains_on_the_same_objective(tmp_path, tokenizer):
    trainer = Trainer(
        model=tiny_bert(tokenizer),
        args=training_args(tmp_path, 60),
        train_dataset=toy_dataset(tokenizer),
        data_collator=DataCollatorForMaskedDiffusion(tokenizer),
        compute_loss_func=masked_diffusion_loss,
    )
    trainer.train()
    losses = logged_losses(trainer)
    assert sum(losses[-10:]) / 10 < 0.6 * sum(losses[:10]) / 10


@pytest.mark.parametrize(
    "overrides, model_overrides",
    [
        ({}, {}),
        ({"gradient_accumulation_steps": 2, "per_device_train_batch_size": 8}, {}),
        ({}, {"attention_dropout": 0.3}),
    ],
    ids=["plain", "gradient_accumulation_2", "dropout"],
)
def test_resume_mid_epoch_reproduces_the_uninterrupted_losses(tmp_path, tokenizer, overrides, model_overrides):
    """4 optimizer steps per epoch; the checkpoint at step 3 is mid-epoch and the run continues into epoch 2."""
    dataset = toy_dataset(tokenizer)

    def trainer(output_dir):
        torch.manual_seed(0)
        args = training_args(output_dir, 6, save_strategy="steps", save_steps=3, **overrides)
        return Trainer(
            model=MDMForMaskedGeneration(tiny_config(**model_overrides)),
            args=args,
            train_dataset=dataset,
            data_collator=DataCollatorForMaskedDiffusion(tokenizer),
        )

    uninterrupted = trainer(tmp_path / "full")
    uninterrupted.train()
    resumed = trainer(tmp_path / "resumed")
    resumed.train(resume_from_checkpoint=str(tmp_path / "full" / "checkpoint-3"))
    assert logged_losses(resumed)[3:] == logged_losses(uninterrupted)[3:]  # bit-identical, not approximately
    assert len(logged_losses(uninterrupted)) == 6


def test_collator_noise_is_keyed_to_batch_and_epoch(tokenizer):
    examples = [tokenizer(text) for text in toy_corpus(8)]
    collator = DataCollatorForMaskedDiffusion(tokenizer)
    collator.set_epoch(0)
    first, again = collator(examples), collator(examples)
    assert all(torch.equal(first[key], again[key]) for key in first)
    collator.set_epoch(1)
    assert not torch.equal(collator(examples)["t"], first["t"])
    other_seed = DataCollatorForMaskedDiffusion(tokenizer, seed=1)
    other_seed.set_epoch(0)
    assert not torch.equal(other_seed(examples)["t"], first["t"])


def instruction_dataset(tokenizer, prompt_column, iterable):
    """Rows 'the cat sat on a mat'-like; the first three tokens are the prompt."""
    rows = [tokenizer(text) for text in toy_corpus(32)]
    for row in rows:
        if prompt_column == "prompt_length":
            row["prompt_length"] = 3
        else:
            row["prompt_mask"] = [1, 1, 1] + [0] * (len(row["input_ids"]) - 3)
    dataset = Dataset.from_list([dict(row) for row in rows])
    return dataset.to_iterable_dataset() if iterable else dataset


@pytest.mark.parametrize("iterable", [False, True], ids=["dataset", "iterable_dataset"])
@pytest.mark.parametrize("prompt_column", ["prompt_length", "prompt_mask"])
@pytest.mark.parametrize("stock", [False, True], ids=["mdm", "stock_bert"])
def test_prompt_columns_survive_default_training_arguments(tmp_path, tokenizer, stock, prompt_column, iterable):
    """Default `remove_unused_columns=True`: no batch the collator makes masks or scores a prompt token."""
    collator = DataCollatorForMaskedDiffusion(tokenizer, eps=0.5)
    batches = []

    def recording_collator(examples):
        batches.append(collator(examples))
        return batches[-1]

    trainer = Trainer(
        model=tiny_bert(tokenizer) if stock else new_model(),
        args=training_args(tmp_path, 4, per_device_train_batch_size=8),
        train_dataset=instruction_dataset(tokenizer, prompt_column, iterable),
        data_collator=recording_collator,
        compute_loss_func=masked_diffusion_loss if stock else None,
    )
    assert trainer.args.remove_unused_columns
    trainer.train()
    assert len(batches) == 4
    subjects = {tuple(tokenizer(s)["input_ids"]) for s in ("the cat", "the dog")}
    verbs = set(tokenizer.convert_tokens_to_ids(["sat", "ran"]))
    for batch in batches:
        assert bool((batch["labels"][:, :3] == -100).all())
        assert {tuple(row) for row in batch["input_ids"][:, :2].tolist()} <= subjects
        assert set(batch["input_ids"][:, 2].tolist()) <= verbs
        assert bool((batch["labels"][:, 3:] != -100).any())  # the responses are trained on


@pytest.mark.bad_input
@pytest.mark.parametrize("stock", [False, True], ids=["mdm", "stock_bert"])
@pytest.mark.parametrize("prompt", [{"prompt_length": torch.tensor([2])}, {"prompt_mask": torch.tensor([[1, 1, 0]])}])
def test_a_forward_given_prompt_columns_refuses_labels_on_the_prompt(tokenizer, stock, prompt):
    model = tiny_bert(tokenizer) if stock else new_model()
    input_ids = torch.tensor([tokenizer("the cat sat")["input_ids"]])
    inputs = dict(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), t=torch.tensor([0.5]))
    model(**inputs, labels=torch.tensor([[-100, -100, input_ids[0, 2]]]), **prompt)  # the response only: fine
    with pytest.raises(ValueError, match="prompt tokens have labels.*DataCollatorForMaskedDiffusion"):
        model(**inputs, labels=torch.tensor([[input_ids[0, 0], -100, -100]]), **prompt)


@pytest.mark.bad_input
def test_a_text_column_dropped_by_the_trainer_names_the_fix(tmp_path, tokenizer):
    """An iterable `text` dataset reaches the collator with no columns left; the error names both fixes."""
    trainer = Trainer(
        model=new_model(),
        args=training_args(tmp_path, 1),
        train_dataset=Dataset.from_dict({"text": toy_corpus(8)}).to_iterable_dataset(),
        data_collator=DataCollatorForMaskedDiffusion(tokenizer),
    )
    with pytest.raises(ValueError, match=r"got keys \[\].*dataset\.map.*remove_unused_columns=False"):
        trainer.train()


@pytest.mark.parametrize("stock", [False, True], ids=["mdm", "stock_bert"])
def test_a_prompted_loss_is_the_nelbo_per_response_token(tokenizer, stock):
    """With prompts the loss divides by the response's tokens: sum_b w(t_b) sum_i -log p / sum_b (L_b - prompt_b)."""
    tokenizer.padding_side = "left"
    examples = [dict(tokenizer(text), prompt_length=3) for text in toy_corpus(6)] + [tokenizer("a dog")]
    batch = DataCollatorForMaskedDiffusion(tokenizer, generator=torch.Generator().manual_seed(0))(examples)
    assert batch["prompt_mask"].sum(1).tolist() == [3] * 6 + [0]
    model = tiny_bert(tokenizer) if stock else new_model()
    labels = batch.pop("labels")
    outputs = model(**batch) if stock else model(**batch, labels=labels)
    loss = masked_diffusion_loss(outputs, labels) if stock else outputs.loss
    row_nelbo = masked_diffusion_loss(outputs.logits, labels, t=batch["t"], reduction="none")
    response_tokens = (batch["attention_mask"].bool() & ~batch["prompt_mask"].bool()).sum()
    assert response_tokens < batch["attention_mask"].sum()
    torch.testing.assert_close(loss, row_nelbo.sum() / response_tokens)


def test_eval_predictions_are_the_logits_alone(tmp_path, tokenizer):
    """`t` is declared in `keys_to_ignore_at_inference`: compute_metrics gets the logits, not a (logits, t) tuple."""
    seen = []

    def compute_metrics(prediction):
        seen.append(prediction.predictions)
        return {}

    dataset = toy_dataset(tokenizer, num=8)
    trainer = Trainer(
        model=new_model(),
        args=training_args(tmp_path, 1, per_device_eval_batch_size=4),
        eval_dataset=dataset,
        data_collator=DataCollatorForMaskedDiffusion(tokenizer),
        compute_metrics=compute_metrics,
    )
    trainer.evaluate()
    (predictions,) = seen
    assert not isinstance(predictions, tuple)
    assert predictions.shape[0] == len(dataset) and predictions.shape[-1] == tiny_config().vocab_size
