"""`hf-mdm generate`: decode from a prompt, or fill the mask tokens of a template, showing drafts live."""

from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import AutoTokenizer, TextDiffusionStreamer

from ..generation.strategies import STRATEGIES
from ..model_loading import load_for_diffusion_generation
from ..model_source import check_model_source
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
    max_new_tokens: int | None = field(
        default=None,
        metadata={
            "help": "Tokens appended after --prompt (default: generate()'s, 32 or the positions the model has left)."
        },
    )
    steps: int | None = field(default=None, metadata={"help": "Reverse steps (default: one per generated token)."})
    steps_per_block: int | None = field(
        default=None, metadata={"help": "Reverse steps of each block, instead of --steps (block-diffusion models)."}
    )
    strategy: str = field(
        default="confidence", metadata={"help": f"Reveal strategy: {', '.join(STRATEGIES)} (or any registered name)."}
    )
    block_length: int | None = field(default=None, metadata={"help": "Semi-autoregressive block size."})
    do_sample: bool = field(default=False, metadata={"help": "Sample tokens instead of taking the most likely."})
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature (with --do_sample)."})
    seed: int = field(default=0, metadata={"help": "Seed of the sampling generator."})
    live: bool = field(default=True, metadata={"help": "Redraw the draft after every step in the terminal."})


ARGUMENTS = (GenerateArguments,)
# Any of these files makes a folder loadable by AutoTokenizer (fast, sentencepiece, or vocabulary-file tokenizers).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "vocab.txt")


def run(args: GenerateArguments):
    if (args.prompt is None) == (args.template is None):
        raise ValueError("Give exactly one of --prompt (text to continue) or --template (text with mask tokens).")
    check_model_source(args.model_name_or_path, "--model_name_or_path", required_file="config.json")
    if Path(args.model_name_or_path).is_dir() and not any(
        (Path(args.model_name_or_path) / name).exists() for name in TOKENIZER_FILES
    ):
        raise ValueError(
            f"{args.model_name_or_path} has no tokenizer; save one there: tokenizer.save_pretrained(folder)."
        )
    tokenizer = AutoTokenizer.from_pretrained(args.model_name_or_path)
    if args.template is not None and (tokenizer.mask_token is None or tokenizer.mask_token not in args.template):
        raise ValueError(f"--template must contain the tokenizer's mask token {tokenizer.mask_token!r}.")
    model = load_for_diffusion_generation(args.model_name_or_path, tokenizer).eval()
    check_mask_token(model, tokenizer)
    inputs = tokenizer([args.prompt if args.prompt is not None else args.template], return_tensors="pt")
    streamer = TextDiffusionStreamer(tokenizer, skip_special_tokens=True) if args.live else None
    sequences = model.generate(
        **inputs,
        max_new_tokens=args.max_new_tokens if args.prompt is not None else None,  # a template only fills its masks
        steps=args.steps,
        steps_per_block=args.steps_per_block,
        strategy=args.strategy,
        block_length=args.block_length,
        do_sample=args.do_sample,
        temperature=args.temperature,
        generator=torch.Generator().manual_seed(args.seed),
        streamer=streamer,
    )
    if streamer is None:
        print(tokenizer.decode(sequences[0], skip_special_tokens=True))
