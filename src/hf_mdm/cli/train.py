"""`hf-mdm train`: train an MDM with the stock Trainer on a local text/JSON dataset or a formal language."""

from dataclasses import dataclass, field
from pathlib import Path

from datasets import load_dataset
from transformers import AutoTokenizer, Trainer, TrainingArguments

from ..configuration_mdm import MDMConfig
from ..modeling_mdm import MDMForMaskedGeneration
from ..tokenizer_checks import check_mask_token
from ..training import DataCollatorForMaskedDiffusion
from .language_arguments import LanguageArguments


DATA_FILE_TYPES = {".txt": "text", ".json": "json", ".jsonl": "json", ".csv": "csv"}


@dataclass
class ModelArguments:
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "An MDM, LLaDA or Dream folder to continue from; omitted: a new model."}
    )
    tokenizer_name_or_path: str | None = field(
        default=None, metadata={"help": "Tokenizer folder (default: the model's; a formal language brings its own)."}
    )
    hidden_size: int = field(default=128, metadata={"help": "Width of a new model."})
    num_hidden_layers: int = field(default=4, metadata={"help": "Layers of a new model."})
    num_attention_heads: int = field(default=4, metadata={"help": "Attention heads of a new model."})
    num_key_value_heads: int | None = field(default=None, metadata={"help": "KV heads (GQA) of a new model."})
    intermediate_size: int | None = field(default=None, metadata={"help": "MLP width of a new model (4x hidden)."})
    schedule: str = field(default="linear", metadata={"help": "Noise schedule alpha(t) of the training objective."})


@dataclass
class DataArguments:
    dataset: str | None = field(
        default=None, metadata={"help": "Local .txt/.json/.jsonl/.csv file or folder of them (or use --language)."}
    )
    text_column: str = field(default="text", metadata={"help": "Column holding the text."})
    max_length: int = field(default=128, metadata={"help": "Truncate examples to this many tokens."})
    num_examples: int = field(default=10_000, metadata={"help": "Formal language: training sequences to sample."})
    sequence_length: int = field(default=32, metadata={"help": "Formal language: tokens per sequence."})


ARGUMENTS = (ModelArguments, DataArguments, LanguageArguments, TrainingArguments)


def load_text_dataset(data: DataArguments):
    """A `datasets.Dataset` from a local file or folder (text lines, JSON records or CSV rows)."""
    path = Path(data.dataset)
    if not path.exists():
        raise FileNotFoundError(f"--dataset {data.dataset} does not exist; give a local file or folder.")
    files = sorted(p for p in path.iterdir() if p.suffix in DATA_FILE_TYPES) if path.is_dir() else [path]
    kinds = {DATA_FILE_TYPES.get(p.suffix) for p in files}
    if not files or None in kinds or len(kinds) != 1:
        raise ValueError(
            f"--dataset {data.dataset}: expected files of one kind among {sorted(DATA_FILE_TYPES)}, found "
            f"{[p.name for p in files] or 'none'}."
        )
    if all(p.stat().st_size == 0 for p in files):
        raise ValueError(f"--dataset {data.dataset} is empty; give a file with at least one example.")
    dataset = load_dataset(kinds.pop(), data_files=[str(p) for p in files], split="train")
    if data.text_column not in dataset.column_names:
        raise ValueError(f"--text_column {data.text_column!r} is not a column of the dataset: {dataset.column_names}.")
    return dataset


def build_training_inputs(model_args: ModelArguments, data: DataArguments, language_args: LanguageArguments):
    """(tokenizer, train_dataset, model) described by the arguments."""
    if (data.dataset is None) == (language_args.language is None):
        raise ValueError("Give exactly one of --dataset (a local file or folder) or --language (ngram, hmm, copy).")
    if language_args.language is not None:
        language = language_args.build()
        tokenizer = language.tokenizer()
        dataset = language.dataset(data.num_examples, data.sequence_length, seed=language_args.language_seed)
        max_positions = data.sequence_length
    else:
        source = model_args.tokenizer_name_or_path or model_args.model_name_or_path
        if source is None:
            raise ValueError(
                "A text dataset needs --tokenizer_name_or_path (or --model_name_or_path with a tokenizer)."
            )
        text = load_text_dataset(data)
        tokenizer = AutoTokenizer.from_pretrained(source)
        dataset = text.map(
            lambda batch: tokenizer(batch[data.text_column], truncation=True, max_length=data.max_length),
            batched=True,
            remove_columns=text.column_names,
        )
        max_positions = data.max_length
        # Blank lines carry no tokens to train on.
        dataset = dataset.filter(lambda example: len(example["input_ids"]) > 0)
    if len(dataset) == 0:
        raise ValueError(
            "The training dataset has no example with tokens; give a --dataset with text (or --num_examples >= 1)."
        )
    if tokenizer.mask_token_id is None:
        raise ValueError(
            "The tokenizer has no mask token: add one with tokenizer.add_special_tokens({'mask_token': '<|mask|>'}), "
            "save it, and pass that folder."
        )
    if model_args.model_name_or_path is not None:
        model = MDMForMaskedGeneration.from_pretrained(model_args.model_name_or_path)
        check_mask_token(model, tokenizer)
    else:
        config = MDMConfig(
            vocab_size=len(tokenizer),
            hidden_size=model_args.hidden_size,
            intermediate_size=model_args.intermediate_size or 4 * model_args.hidden_size,
            num_hidden_layers=model_args.num_hidden_layers,
            num_attention_heads=model_args.num_attention_heads,
            num_key_value_heads=model_args.num_key_value_heads,
            max_position_embeddings=max_positions,
            mask_token_id=tokenizer.mask_token_id,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            schedule=model_args.schedule,
        )
        model = MDMForMaskedGeneration(config)
    return tokenizer, dataset, model


def run(model_args: ModelArguments, data: DataArguments, language_args: LanguageArguments, args: TrainingArguments):
    tokenizer, dataset, model = build_training_inputs(model_args, data, language_args)
    collator = DataCollatorForMaskedDiffusion(tokenizer, schedule=model.config.schedule)
    trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=collator)
    trainer.train(resume_from_checkpoint=args.resume_from_checkpoint)
    trainer.save_model(args.output_dir)
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(args.output_dir)
        print(f"Saved the model and tokenizer to {args.output_dir}")
