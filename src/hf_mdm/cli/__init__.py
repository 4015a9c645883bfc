"""The `hf-mdm` command line: `hf-mdm {train,generate,sweep,card,demo} [--help]`.

Each command is one module with the dataclasses it parses (through transformers' `HfArgumentParser`) and a `run`.
A user error prints one line, `hf-mdm <command>: error: <what to fix>`, and exits with status 2.
"""

import importlib
import sys

from transformers import HfArgumentParser


COMMANDS = {
    "train": "Train an MDM with the stock Trainer on a local dataset or a formal language.",
}
USER_ERRORS = (ValueError, TypeError, FileNotFoundError, OSError)


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
    command = importlib.import_module(f"{__name__}.{name}")
    parser = HfArgumentParser(command.ARGUMENTS, prog=f"hf-mdm {name}", description=COMMANDS[name])
    try:
        parsed = parser.parse_args_into_dataclasses(args=arguments)
        command.run(*parsed)
    except USER_ERRORS as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        print(f"hf-mdm {name}: error: {message}", file=sys.stderr)
        return 2
    return 0


def entry_point():
    sys.exit(main())
