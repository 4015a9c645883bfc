"""train_research_models: an MDM and an autoregressive model of the same size, trained by the stock `Trainer` on a
formal language's sequences of several lengths, for the step-vs-error measurements at length; train_block_models:
block-diffusion MDMs of that size at several block sizes, on the same data.

Both see the same data: `examples_per_length` samples at each training length, shuffled together (the Trainer groups
them by length, so a batch pads little). Each model goes to its own folder (`mdm/`, `autoregressive/`) with the
language's tokenizer and a `training_time.json` (wall-clock and CPU seconds, optimizer steps), so a sweep can rerun
without training. A finished folder is loaded, not retrained; an interrupted run resumes from its last checkpoint.
"""

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from accelerate import PartialState
from datasets import concatenate_datasets
from transformers import AutoModelForCausalLM, TrainingArguments
from transformers.trainer_utils import get_last_checkpoint

from ..modeling_mdm import MDMForMaskedGeneration
from .argument_checks import check_positive_ints
from .autoregressive_baseline import train_autoregressive_baseline
from .train_twins import seeded_mdm, train_mdm, twin_mdm_config


FINISHED_MARKER = "training_time.json"


@dataclass
class ResearchTraining:
    """Size and optimisation of the two models (the defaults: about 20 minutes per model on one shared CPU core)."""

    hidden_size: int = 64
    num_hidden_layers: int = 3
    num_attention_heads: int = 4
    train_steps: int = 1200
    batch_size: int = 8
    learning_rate: float = 3e-3
    examples_per_length: int = 2500
    seed: int = 0
    # The MDMs' noise times: None draws t on [eps, 1) (the NELBO); (low, high) on [low, high) (BD3-LM's clipping).
    t_interval: tuple[float, float] | None = None

    def arguments(self, output_dir: Path) -> TrainingArguments:
        return TrainingArguments(
            output_dir=str(output_dir),
            max_steps=self.train_steps,
            per_device_train_batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            warmup_steps=self.train_steps // 20,
            lr_scheduler_type="cosine",
            train_sampling_strategy="group_by_length",
            logging_steps=max(self.train_steps // 20, 1),
            save_strategy="steps",
            save_steps=max(self.train_steps // 5, 1),
            save_total_limit=1,
            report_to=[],
            seed=self.seed,
        )


def training_data(language, lengths: list[int], examples_per_length: int, seed: int = 0):
    """`examples_per_length` samples of the language at each length, shuffled together (columns `input_ids`)."""
    parts = [
        language.dataset(examples_per_length, length, seed=seed + length).remove_columns("text") for length in lengths
    ]
    return concatenate_datasets(parts).shuffle(seed=seed)


def _timed(train, output_dir: Path, training: ResearchTraining, lengths: list[int]):
    """Run `train(last checkpoint or None)`, then write the marker with its wall-clock and CPU seconds (of this run:
    a resumed run counts only what it did)."""
    checkpoint = get_last_checkpoint(str(output_dir)) if output_dir.is_dir() else None
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    train(checkpoint)
    state = PartialState()
    if not state.is_main_process:  # under accelerate launch the Trainer ran data-parallel; one process writes
        state.wait_for_everyone()
        return
    record = {
        "wall_s": time.perf_counter() - start_wall,
        "cpu_s": time.process_time() - start_cpu,
        "resumed_from": checkpoint,
        "lengths": list(lengths),
        **asdict(training),
    }
    (output_dir / FINISHED_MARKER).write_text(json.dumps(record, indent=2) + "\n")
    state.wait_for_everyone()


def training_record(folder: "str | Path") -> dict | None:
    """The `training_time.json` of a finished model folder, or None while it is unfinished."""
    marker = Path(folder) / FINISHED_MARKER
    return json.loads(marker.read_text()) if marker.is_file() else None


def check_same_training(folder: Path, training: ResearchTraining, lengths: list[int]) -> None:
    """A finished folder is reused only for the training it had: other sizes or lengths are a ValueError."""
    record = training_record(folder)
    wanted = json.loads(json.dumps({"lengths": list(lengths), **asdict(training)}))  # as the record stores it
    differing = [
        f"{key}: {record.get(key)} there, {value} asked" for key, value in wanted.items() if record.get(key) != value
    ]
    if differing:
        raise ValueError(
            f"{folder} holds a model trained with other settings ({'; '.join(differing)}); use another output_dir, or "
            "delete the folder to train again."
        )


def train_research_models(language, lengths: list[int], output_dir: "str | Path", training: ResearchTraining = None):
    """Train (or load, when finished) the MDM and its autoregressive baseline on `language` at `lengths`.

    Returns (mdm, autoregressive), both in eval mode; their folders are `output_dir/mdm` and
    `output_dir/autoregressive`, each with the tokenizer and `training_time.json`.
    """
    training = training or ResearchTraining()
    output_dir = Path(output_dir)
    tokenizer = language.tokenizer()
    mdm_dir, autoregressive_dir = output_dir / "mdm", output_dir / "autoregressive"
    unfinished = [folder for folder in (mdm_dir, autoregressive_dir) if training_record(folder) is None]
    for folder in (mdm_dir, autoregressive_dir):
        if folder not in unfinished:
            check_same_training(folder, training, lengths)
    data = training_data(language, lengths, training.examples_per_length, training.seed) if unfinished else None
    if mdm_dir in unfinished:
        config = twin_mdm_config(
            tokenizer, training.hidden_size, training.num_hidden_layers, training.num_attention_heads, max(lengths)
        )
        model = seeded_mdm(config, training.seed)

        def train_and_save_mdm(checkpoint):
            train_mdm(
                model, data, tokenizer, training.arguments(mdm_dir), checkpoint, training.t_interval
            ).save_model()

        _timed(train_and_save_mdm, mdm_dir, training, lengths)
    mdm = MDMForMaskedGeneration.from_pretrained(mdm_dir).eval()

    if autoregressive_dir in unfinished:

        def train_autoregressive(checkpoint):
            train_autoregressive_baseline(
                mdm, data, tokenizer, args=training.arguments(autoregressive_dir), resume_from_checkpoint=checkpoint
            )

        _timed(train_autoregressive, autoregressive_dir, training, lengths)
    autoregressive = AutoModelForCausalLM.from_pretrained(autoregressive_dir).eval()
    return mdm, autoregressive


def train_block_models(
    language, lengths: list[int], output_dir: "str | Path", training: ResearchTraining = None, block_sizes=(4,)
) -> dict:
    """Train (or load, when finished) one block-diffusion MDM per block size B (`MDMConfig(block_size=B)`, the
    BD3-LM objective with one time per block), the size, data and optimisation of `train_research_models`' MDM.

    Returns {B: model in eval mode}; the folders are `output_dir/mdm-block{B}`, each with `training_time.json`.
    """
    training = training or ResearchTraining()
    block_sizes = check_positive_ints("block_sizes", block_sizes)
    output_dir = Path(output_dir)
    tokenizer = language.tokenizer()
    folders = {size: output_dir / f"mdm-block{size}" for size in block_sizes}
    unfinished = [size for size, folder in folders.items() if training_record(folder) is None]
    for size, folder in folders.items():
        if size not in unfinished:
            check_same_training(folder, training, lengths)
    data = training_data(language, lengths, training.examples_per_length, training.seed) if unfinished else None
    models = {}
    for size, folder in folders.items():
        if size in unfinished:
            config = twin_mdm_config(tokenizer, training.hidden_size, training.num_hidden_layers,
                                     training.num_attention_heads, max(lengths), block_size=size)  # fmt: skip
            model = seeded_mdm(config, training.seed)

            def train_and_save(checkpoint, model=model, folder=folder):
                train_mdm(
                    model, data, tokenizer, training.arguments(folder), checkpoint, training.t_interval
                ).save_model()

            _timed(train_and_save, folder, training, lengths)
        models[size] = MDMForMaskedGeneration.from_pretrained(folder).eval()
    return models
