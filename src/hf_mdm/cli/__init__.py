"""The `hf-mdm` command line: `hf-mdm {train,generate,sweep,card,demo,eval,reproduce} [--help]`.

Each command is one module with the dataclasses it parses (through transformers' `HfArgumentParser`) and a `run`.
Every command also takes `--threads` (`thread_policy`: by default one intra-op thread for a small model).
A user error prints one line, `hf-mdm <command>: error: <what to fix>`, and exits with status 2.
"""

import importlib
import sys

import torch
from huggingface_hub.errors import StrictDataclassClassValidationError
from transformers import HfArgumentParser
from transformers.utils import logging

from .thread_policy import ThreadArguments, intra_op_threads


COMMANDS = {
    "train": "Train an MDM with the stock Trainer on a local dataset or a formal language.",
    "generate": "Decode from a prompt, or fill the mask tokens of a template, showing drafts live.",
    "sweep": "Measure sequence and token error against steps; write the table as JSON, Markdown and a plot.",
    "card": "Write a model card (README.md with model-index, table and plot) from a sweep.",
    "demo": "Train a small MDM and an AR baseline on a bigram language and print their step-vs-error table.",
    "eval": "Run lm-eval generation tasks at each step budget (the [eval] extra); resumable rows for a model card.",
    "reproduce": "Measure the research claims: steps needed for SER and TER against length (--preset quick|paper).",
}
# A config's class validators (huggingface_hub strict dataclasses) wrap the ValueError that names the problem.
USER_ERRORS = (ValueError, TypeError, FileNotFoundError, OSError, StrictDataclassClassValidationError)


class CommandParser(HfArgumentParser):
    """`HfArgumentParser` whose usage errors (`--hidden_size abc`, an unknown flag) are the one line every other
    command error is, instead of the whole usage (over a hundred lines) before it; still exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        listing = "\n".join(f"  {name:<9} {help}" for name, help in COMMANDS.items())
        print(f"usage: hf-mdm <command> [--help]\n\ncommands:\n{listing}")
        if argv and argv[0] not in ("-h", "--help"):
            print(f"hf-mdm: error: unknown command {argv[0]!r}", file=sys.stderr)
            return 2
        return 0
    name, arguments = argv[0], argv[1:]
    logging.disable_progress_bar()  # weight-loading bars; training and sweep bars are tqdm's own
    command = importlib.import_module(f"{__name__}.{name}")
    # --threads comes first so that a bad count is reported before the command's own checks run
    parser = CommandParser((ThreadArguments, *command.ARGUMENTS), prog=f"hf-mdm {name}", description=COMMANDS[name])
    try:
        threads, *parsed = parser.parse_args_into_dataclasses(args=arguments)
        with intra_op_threads(threads.threads):
            command.run(*parsed)
    except USER_ERRORS as error:
        if isinstance(error, StrictDataclassClassValidationError) and error.__cause__ is not None:
            error = error.__cause__
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        print(f"hf-mdm {name}: error: {message}", file=sys.stderr)
        return 2
    finally:
        # Under torchrun / accelerate launch: a gloo group left alive at interpreter exit can abort the process
        # ("terminate called without an active exception"), failing a run that finished its work.
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    return 0


def entry_point():
    sys.exit(main())
