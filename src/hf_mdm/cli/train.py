"""`hf-mdm train`: train an MDM with the stock Trainer on a local text/JSON dataset or a formal language.

With `--block-size B` the new model is a block-diffusion model (`MDMConfig(block_size=B)`: block-causal attention,
trained on BD3-LM's objective, one noise time per block: the collator is built with the model's block size).
With `--prompt_column` and `--response_column` it fine-tunes on prompt/response pairs (SFT): the prompt is never
masked, and each response is followed by EOS padding that is trained on (`DataCollatorForMaskedDiffusion(...,
eos_padding=True)`), so the model learns to end its answers. The seed is set before the model is built, so a command
run twice gives the same weights and losses.
"""

from dataclasses import dataclass, field, fields
from pathlib import Path

from datasets import load_dataset
from transformers import AutoTokenizer, Trainer, TrainingArguments, enable_full_determinism, set_seed
from transformers.utils import logging

from ..configuration_mdm import MDMConfig
from ..generation.enable_diffusion_generation import appended_end_marker
from ..model_loading import diffusion_model_class
from ..modeling_mdm import MDMForMaskedGeneration
from ..tokenizer_checks import check_mask_token, use_sep_as_eos
from ..training import DataCollatorForMaskedDiffusion
from ..training.collator_arguments import check_count
from .language_arguments import LanguageArguments, language_choices


logger = logging.get_logger(__name__)


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
    block_size: int | None = field(
        default=None,
        metadata={"help": "A new block-diffusion model with blocks of this many tokens (default: bidirectional)."},
    )


@dataclass
class DataArguments:
    dataset: str | None = field(
        default=None, metadata={"help": "Local .txt/.json/.jsonl/.csv file or folder of them (or use --language)."}
    )
    text_column: str = field(default="text", metadata={"help": "Column holding the text."})
    prompt_column: str | None = field(
        default=None,
        metadata={"help": "SFT: column of prompts (with --response_column); the response and its EOS are learned."},
    )
    response_column: str | None = field(default=None, metadata={"help": "SFT: column of responses to the prompts."})
    max_length: int = field(
        default=128, metadata={"help": "Truncate texts to this many tokens (SFT: prompt + response + EOS must fit)."}
    )
    num_examples: int = field(default=10_000, metadata={"help": "Formal language: training sequences to sample."})
    sequence_length: int = field(default=32, metadata={"help": "Formal language: tokens per sequence."})


ARGUMENTS = (ModelArguments, DataArguments, LanguageArguments, TrainingArguments)
# Model arguments that describe a new model: a loaded one keeps its own.
NEW_MODEL_FIELDS = (
    "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "intermediate_size", "schedule",
    "block_size",
)  # fmt: skip


def changed(arguments, names) -> list[str]:
    """The flags among `names` given a value other than their default."""
    defaults = {f.name: f.default for f in fields(arguments)}
    return [f"--{name}" for name in names if getattr(arguments, name) != defaults[name]]


def check_train_arguments(model_args: ModelArguments, data: DataArguments, language_args: LanguageArguments) -> None:
    """The one check of `hf-mdm train`'s own arguments (TrainingArguments checks itself), before anything is loaded:
    ranges, and flags that the chosen data or model would silently ignore."""
    if (data.dataset is None) == (language_args.language is None):
        raise ValueError(
            f"Give exactly one of --dataset (a local file or folder) or --language ({language_choices()})."
        )
    for name in ("hidden_size", "num_hidden_layers", "num_attention_heads"):
        check_count(f"--{name}", getattr(model_args, name))
    for name in ("num_key_value_heads", "intermediate_size", "block_size"):
        check_count(f"--{name}", getattr(model_args, name), optional=True)
    for name in ("max_length", "num_examples", "sequence_length"):
        check_count(f"--{name}", getattr(data, name))
    if data.dataset is not None:
        language_fields = [f.name for f in fields(LanguageArguments) if f.name != "language"]
        ignored = changed(data, ("num_examples", "sequence_length")) + changed(language_args, language_fields)
        source = "--dataset (they describe a --language)"
    else:
        ignored = changed(model_args, ("tokenizer_name_or_path",))
        ignored += changed(data, ("text_column", "prompt_column", "response_column", "max_length"))
        source = "--language, which brings its own tokenizer and sequences (--sequence_length sets their length)"
    if ignored:
        raise ValueError(f"{', '.join(ignored)} would be ignored with {source}; drop them.")
    if model_args.model_name_or_path is not None and changed(model_args, NEW_MODEL_FIELDS):
        raise ValueError(
            f"{', '.join(changed(model_args, NEW_MODEL_FIELDS))} describe a new model and would be ignored with "
            "--model_name_or_path (the loaded model keeps its own config); drop them."
        )
    if (data.prompt_column is None) != (data.response_column is None):
        raise ValueError("Give both --prompt_column and --response_column (fine-tuning on pairs), or neither.")
    if data.prompt_column is not None and data.prompt_column == data.response_column:
        raise ValueError(f"--prompt_column and --response_column both name {data.prompt_column!r}; name two columns.")
    if data.prompt_column is not None and changed(data, ("text_column",)):
        raise ValueError("--text_column is not read with --prompt_column/--response_column; drop it.")


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
    columns = ("prompt_column", "response_column") if data.prompt_column is not None else ("text_column",)
    for flag in columns:
        column = getattr(data, flag)
        if column not in dataset.column_names:
            raise ValueError(f"--{flag} {column!r} is not a column of the dataset: {dataset.column_names}.")
        rows = [i for i, value in enumerate(dataset[column]) if not isinstance(value, str)]
        if rows:
            raise ValueError(
                f"--{flag} {column!r} must hold text in every row; row {rows[0]} holds {dataset[column][rows[0]]!r} "
                f"({len(rows)} such rows). Fix or drop them."
            )
    return dataset


def tokenized_texts(text, tokenizer, data: DataArguments):
    """Each text's tokens, truncated to --max_length; blank texts (no tokens) are dropped."""
    dataset = text.map(
        lambda batch: tokenizer(batch[data.text_column], truncation=True, max_length=data.max_length),
        batched=True,
        remove_columns=text.column_names,
    )
    return dataset.filter(lambda example: len(example["input_ids"]) > 0)  # blank lines carry no tokens


def tokenized_pairs(text, tokenizer, data: DataArguments):
    """Each pair as `input_ids` = the prompt's tokens as generate() shows them to the model, then the response's, and
    `prompt_length`; the collator ends each with EOS. The prompt keeps the tokenizer's special tokens except an end
    marker appended to every text (BERT's [SEP]): generate() moves that after the new tokens ([CLS] prompt response
    [SEP], as in pre-training). A pair that does not fit in --max_length with its EOS is refused: truncating it would
    cut the end the model must learn."""
    marker = appended_end_marker(tokenizer)

    def tokenize(batch):
        prompts = tokenizer(batch[data.prompt_column])["input_ids"]
        prompts = [ids[:-1] if ids and ids[-1] == marker else ids for ids in prompts]
        responses = tokenizer(batch[data.response_column], add_special_tokens=False)["input_ids"]
        return {
            "input_ids": [prompt + response for prompt, response in zip(prompts, responses)],
            "prompt_length": [len(prompt) for prompt in prompts],
        }

    dataset = text.map(tokenize, batched=True, remove_columns=text.column_names)
    eos = tokenizer.eos_token_id
    lengths = [len(ids) + (not ids or ids[-1] != eos) for ids in dataset["input_ids"]]
    too_long = [length for length in lengths if length > data.max_length]
    if too_long:
        raise ValueError(
            f"{len(too_long)} of {len(lengths)} prompt/response pairs need more than --max_length={data.max_length} "
            f"tokens with their EOS (the longest {max(too_long)}); raise --max_length or drop those pairs."
        )
    return dataset


def set_end_of_text(tokenizer, model) -> None:
    """The model's end tokens are those the data teaches: the tokenizer's EOS joins the config and the EOS ids
    generate() stops at; the end marker the tokenizer appends to every text (BERT's [SEP]) becomes
    `generation_config.sep_token_id`, so generate() shows it after the new tokens, as the model was trained."""
    if tokenizer.eos_token_id is not None:
        if model.config.eos_token_id is None:
            model.config.eos_token_id = tokenizer.eos_token_id
        eos, stops = tokenizer.eos_token_id, model.generation_config.eos_token_id
        stops = [] if stops is None else [stops] if isinstance(stops, int) else list(stops)
        if eos not in stops:
            model.generation_config.eos_token_id = [*stops, eos] if stops else eos
            logger.info(f"generate() now also stops at the tokenizer's EOS {tokenizer.eos_token!r}.")
    if model.generation_config.sep_token_id is None:
        model.generation_config.sep_token_id = appended_end_marker(tokenizer)


def build_training_inputs(model_args: ModelArguments, data: DataArguments, language_args: LanguageArguments):
    """(tokenizer, train_dataset, model) described by the arguments."""
    check_train_arguments(model_args, data, language_args)
    fine_tuning = data.prompt_column is not None
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
        use_sep_as_eos(tokenizer)
        if fine_tuning and tokenizer.eos_token_id is None:  # before the pairs are tokenized and a model is loaded
            raise ValueError(
                "Fine-tuning on pairs teaches the model to end each response with EOS, and the tokenizer has none: "
                "add one (tokenizer.add_special_tokens({'eos_token': '<|endoftext|>'})), save it, pass that folder."
            )
        dataset = (tokenized_pairs if fine_tuning else tokenized_texts)(text, tokenizer, data)
        max_positions = data.max_length
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
        model = diffusion_model_class(model_args.model_name_or_path).from_pretrained(model_args.model_name_or_path)
        check_mask_token(model, tokenizer)
        check_fits_model(model, tokenizer, max_positions)
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
            block_size=model_args.block_size,
        )
        model = MDMForMaskedGeneration(config)
    set_end_of_text(tokenizer, model)
    return tokenizer, dataset, model


def check_fits_model(model, tokenizer, max_positions: int) -> None:
    """A loaded model must hold every token id and every position the data can have."""
    if len(tokenizer) > model.config.vocab_size:
        raise ValueError(
            f"The tokenizer has {len(tokenizer)} tokens but the model only {model.config.vocab_size}; use the "
            "model's own tokenizer (or resize the model's embeddings first)."
        )
    if max_positions > model.config.max_position_embeddings:
        raise ValueError(
            f"Examples may have {max_positions} tokens but the model holds at most "
            f"{model.config.max_position_embeddings} positions; lower --max_length (or --sequence_length)."
        )


def training_collator(tokenizer, model, data: DataArguments) -> DataCollatorForMaskedDiffusion:
    """The collator of the run: EOS padding when fine-tuning on prompt/response pairs; one noise time per block of a
    block-diffusion model (the model's own block size, a new or a loaded one)."""
    return DataCollatorForMaskedDiffusion(
        tokenizer,
        schedule=model.config.noise_schedule,  # with its kwargs (the name alone would drop them)
        eos_padding=data.prompt_column is not None,
        block_size=model.config.block_size,
    )


def run(model_args: ModelArguments, data: DataArguments, language_args: LanguageArguments, args: TrainingArguments):
    # Seeded before the model is built, as the Trainer seeds before `model_init`: the same command, the same weights.
    enable_full_determinism(args.seed) if args.full_determinism else set_seed(args.seed)
    tokenizer, dataset, model = build_training_inputs(model_args, data, language_args)
    collator = training_collator(tokenizer, model, data)
    trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=collator)
    trainer.train(resume_from_checkpoint=args.resume_from_checkpoint)
    trainer.save_model(args.output_dir)
    trainer.save_state()  # trainer_state.json: the logged losses
    if trainer.is_world_process_zero():
        tokenizer.save_pretrained(args.output_dir)
        print(f"Saved the model and tokenizer to {args.output_dir}")
