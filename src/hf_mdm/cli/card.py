"""`hf-mdm card`: write a model card (README.md, plot, model-index) from a sweep."""

from dataclasses import dataclass, field
from pathlib import Path

from transformers import AutoModelForMaskedLM

from ..evaluation import read_sweep_rows
from ..evaluation.step_scaling import check_target
from ..evaluation.sweep_table import check_sweep_rows
from ..hub import ModelCard
from ..own_decoders import load_own_decoder_model


@dataclass
class CardArguments:
    sweep: str = field(metadata={"help": "sweep.jsonl written by `hf-mdm sweep` (or sweep_steps(output_path=...))."})
    output_dir: str = field(metadata={"help": "Folder to write README.md and the plot into (e.g. the model folder)."})
    model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "Model folder (ours, LLaDA/Dream, DiffusionGemma, or any masked LM): its size facts, and the "
            "folder the card's usage snippet loads."
        },  # fmt: skip
    )
    model_name: str = "hf-mdm model"
    task_name: str = "formal language"
    ser_target: float = field(default=0.1, metadata={"help": "SER level whose step count the card fits vs length."})


ARGUMENTS = (CardArguments,)


def run(args: CardArguments):
    """The rows and the target are checked before the model is loaded; the card's usage snippet loads the model's
    folder (`--model_name_or_path`, else `--output_dir` when it holds the model)."""
    path = Path(args.sweep)
    if not path.is_file():
        raise FileNotFoundError(f"--sweep {args.sweep} does not exist; run `hf-mdm sweep` first.")
    rows = read_sweep_rows(path)
    check_sweep_rows(rows)
    check_target(args.ser_target)
    model, model_id = None, None
    if args.model_name_or_path:
        model = load_own_decoder_model(args.model_name_or_path) or AutoModelForMaskedLM.from_pretrained(
            args.model_name_or_path
        )
        local = Path(args.model_name_or_path)
        model_id = str(local.resolve()) if local.is_dir() else args.model_name_or_path
    card = ModelCard.from_sweep(rows, model=model, model_name=args.model_name, task_name=args.task_name,
                                ser_target=args.ser_target, model_id=model_id)  # fmt: skip
    print(f"Wrote {card.save_pretrained(args.output_dir)}")
