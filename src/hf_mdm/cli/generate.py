"""`hf-mdm generate`: decode from a prompt, or fill the mask tokens of a template, showing drafts live."""

from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import AutoModelForMaskedLM, AutoTokenizer, PreTrainedConfig, TextDiffusionStreamer

from ..checkpoint_formats import CHECKPOINT_FORMATS
from ..configuration_mdm import MDMConfig
from ..generation import enable_diffusion_generation
from ..modeling_mdm import MDMForMaskedGeneration
from ..tokenizer_checks import check_mask_token


@dataclass
class GenerateArguments:
    model_name_or_path: str = field(
        metadata={"help": "An MDM, LLaDA or Dream folder, or any masked-LM folder (BERT, ...), with its tokenizer."}
    )
    prompt: str | None = field(default=None, metadata={"help": "Text to continue with --max_new_tokens tokens."})
    template: str | None = field(
        default=None, metadata={"help": "Text whose mask tokens (the tokenizer's, e.g. <mask>) are filled in."}
    )
    max_new_tokens: int = field(default=32, metadata={"help": "Tokens appended after --prompt."})
    steps: int | None = field(default=None, metadata={"help": "Reverse steps (default: one per generated token)."})
    strategy: str = field(default="confidence", metadata={"help": "random, confidence, margin, entropy, threshold."})
    block_length: int | None = field(default=None, metadata={"help": "Semi-autoregressive block size."})
    do_sample: bool = field(default=False, metadata={"help": "Sample tokens instead of taking the most likely."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature (with --do_sample)."})
    seed: int = field(default=0, metadata={"help": "Seed of the sampling generator."})
    live: bool = field(default=True, metadata={"help": "Redraw the draft after every step in the terminal."})


ARGUMENTS = (GenerateArguments,)
# Any of these files makes a folder loadable by AutoTokenizer (fast, sentencepiece, or vocabulary-file tokenizers).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "vocab.txt")


def load_denoiser(model_name_or_path: str, tokenizer):
    """An hf-mdm, LLaDA or Dream folder as `MDMForMaskedGeneration`; any other masked LM (BERT, RoBERTa, ModernBERT,
    ...) through `AutoModelForMaskedLM` with diffusion `generate()` (its special tokens suppressed)."""
    model_type = PreTrainedConfig.get_config_dict(model_name_or_path)[0].get("model_type")
    if model_type == MDMConfig.model_type or model_type in CHECKPOINT_FORMATS:
        return MDMForMaskedGeneration.from_pretrained(model_name_or_path)
    try:
        model = AutoModelForMaskedLM.from_pretrained(model_name_or_path)
    except ValueError as error:
        raise ValueError(
            f"{model_name_or_path} (model_type {model_type!r}) is neither an hf-mdm/LLaDA/Dream folder nor a masked "
            f"LM that AutoModelForMaskedLM loads: {error.args[0].splitlines()[0]}"
        ) from None
    return enable_diffusion_generation(model, tokenizer)


def run(args: GenerateArguments):
    if (args.prompt is None) == (args.template is None):
        raise ValueError("Give exactly one of --prompt (text to continue) or --template (text with mask tokens).")
    if Path(args.model_name_or_path).is_dir() and not any(
        (Path(args.model_name_or_path) / name).exists() for name in TOKENIZER_FILES
    ):
        raise ValueError(
            f"{args.model_name_or_path} has no tokenizer; save one there: tokenizer.save_pretrained(folder)."
        )
    tokenizer = AutoTokenizer.from_pretrained(args.model_name_or_path)
    if args.template is not None and (tokenizer.mask_token is None or tokenizer.mask_token not in args.template):
        raise ValueError(f"--template must contain the tokenizer's mask token {tokenizer.mask_token!r}.")
    model = load_denoiser(args.model_name_or_path, tokenizer).eval()
    check_mask_token(model, tokenizer)
    inputs = tokenizer([args.prompt if args.prompt is not None else args.template], return_tensors="pt")
    streamer = TextDiffusionStreamer(tokenizer, skip_special_tokens=True) if args.live else None
    sequences = model.generate(
        **inputs,
        max_new_tokens=args.max_new_tokens if args.prompt is not None else None,  # a template only fills its masks
        steps=args.steps,
        strategy=args.strategy,
        block_length=args.block_length,
        do_sample=args.do_sample,
        temperature=args.temperature,
        generator=torch.Generator().manual_seed(args.seed),
        streamer=streamer,
    )
    if streamer is None:
        print(tokenizer.decode(sequences[0], skip_special_tokens=True))
