"""train_autoregressive_baseline: a LlamaForCausalLM of the MDM's size, trained on its data by the stock Trainer."""

from transformers import (
    DataCollatorForLanguageModeling,
    LlamaConfig,
    LlamaForCausalLM,
    Trainer,
    TrainingArguments,
)
from transformers.utils import logging


logger = logging.get_logger(__name__)

_SHARED_FIELDS = (
    "hidden_size",
    "intermediate_size",
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "head_dim",
    "hidden_act",
    "max_position_embeddings",
    "rms_norm_eps",
    "rope_parameters",
    "attention_bias",
    "mlp_bias",
    "tie_word_embeddings",
)


def autoregressive_config(reference, tokenizer, **overrides) -> LlamaConfig:
    """A `LlamaConfig` with the reference MDM's architecture (width, depth, heads, RoPE) and the tokenizer's vocab.

    `max_position_embeddings` grows by one for the prepended <bos>.
    """
    config = getattr(reference, "config", reference)
    missing = [
        name for name in ("hidden_size", "num_hidden_layers", "num_attention_heads") if not hasattr(config, name)
    ]
    if missing:
        raise ValueError(
            f"The reference has no {missing}; pass an MDM model or its MDMConfig (a LLaMA-style architecture)."
        )
    fields = {name: getattr(config, name) for name in _SHARED_FIELDS if getattr(config, name, None) is not None}
    fields["max_position_embeddings"] = fields.get("max_position_embeddings", 2048) + 1
    fields.update(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    fields.update(overrides)
    return LlamaConfig(**fields)


def train_autoregressive_baseline(
    reference,
    train_dataset,
    tokenizer,
    args: TrainingArguments | None = None,
    eval_dataset=None,
    resume_from_checkpoint: "str | bool | None" = None,
    **config_overrides,
) -> LlamaForCausalLM:
    r"""Train the AR row of a step-vs-error table: a causal LLaMA with the MDM's size, on the same sequences.

    Each sequence is prefixed with <bos>, so the model scores every token of it (-log q(x) = sum_i -log q(x_i | x_<i),
    comparable with the MDM's NELBO over the same tokens), and trained with next-token cross-entropy by the stock
    `Trainer` and `DataCollatorForLanguageModeling(mlm=False)`. As a sampler it takes one step per token
    (steps = length).

    Args:
        reference: the MDM (or its config) whose architecture to match.
        train_dataset: a dataset with `input_ids` (e.g. `language.dataset(...)`).
        tokenizer: the tokenizer of those ids; it needs <bos> and <pad> tokens.
        args: `TrainingArguments`; default: 1 epoch into `./autoregressive-baseline`, no reporting.
        eval_dataset: optional evaluation sequences.
        resume_from_checkpoint: passed to `Trainer.train` (a checkpoint folder under `args.output_dir`, or True).
        **config_overrides: `LlamaConfig` fields to change.

    Returns:
        The trained `LlamaForCausalLM`, also saved (with the Trainer) to `args.output_dir`.
    """
    if tokenizer.bos_token_id is None or tokenizer.pad_token_id is None:
        raise ValueError(
            "The tokenizer needs <bos> and <pad> tokens, e.g. tokenizer.add_special_tokens({'bos_token': '<bos>', "
            "'pad_token': '<pad>'}) (`hf_mdm.languages` tokenizers have both)."
        )
    if train_dataset is None or len(train_dataset) == 0 or "input_ids" not in train_dataset.column_names:
        raise ValueError("train_dataset must be a non-empty datasets.Dataset with an `input_ids` column.")
    model = LlamaForCausalLM(autoregressive_config(reference, tokenizer, **config_overrides))
    if hasattr(reference, "num_parameters"):
        logger.info(f"AR baseline: {model.num_parameters():,} parameters (reference: {reference.num_parameters():,}).")

    def with_bos(batch):
        return {"input_ids": [[tokenizer.bos_token_id, *ids] for ids in batch["input_ids"]]}

    def prepare(dataset):
        return None if dataset is None else dataset.map(with_bos, batched=True, remove_columns=dataset.column_names)

    args = args or TrainingArguments(output_dir="autoregressive-baseline", num_train_epochs=1, report_to="none")
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=prepare(train_dataset),
        eval_dataset=prepare(eval_dataset),
        data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False),
    )
    trainer.train(resume_from_checkpoint=resume_from_checkpoint)
    trainer.save_model()
    return model
