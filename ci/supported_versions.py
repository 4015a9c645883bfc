"""The README's "Supported versions" line from the versions CI resolved, and whether README.md still says it.

    python ci/supported_versions.py record FILE                 # inside a CI virtualenv: its versions, as JSON
    python ci/supported_versions.py report NEWEST FLOOR [--readme README.md]

`.ci/run` records the versions of its two runs (the newest releases; every dependency at its declared floor) and,
after both passed, reports the line they prove. A README.md that says something else is printed loudly but does not
fail CI: a new release breaks nothing by itself; copy the printed line into README.md. The line's other parts come
from pyproject.toml (which extra installs an optional dependency, `requires-python`). Standard library only, so it
runs with any python3, inside or outside the virtualenvs.
"""

import argparse
import importlib.metadata as metadata
import json
import re
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
PREFIX = "**Supported versions** (floor -> newest tested): "
DEPENDENCIES = ("transformers", "accelerate", "datasets", "evaluate", "safetensors", "huggingface-hub", "scipy")
OPTIONAL_DEPENDENCIES = ("peft", "lm-eval", "numba", "diffusers")  # extras in `[dev]`, so both CI runs install them
RANGED = (*DEPENDENCIES, *OPTIONAL_DEPENDENCIES)  # stated as floor -> newest; torch and python as tested
RECORDED = ("torch", *RANGED)
RANGE = re.compile(r"([A-Za-z0-9_.-]+) ([0-9][0-9A-Za-z.+-]*) -> ([0-9][0-9A-Za-z.+-]*)")
TAIL = re.compile(
    r"; Python ([0-9.]+)\+ \(tested on ([0-9.]+)\), torch ([0-9][0-9A-Za-z.]*)(?: \((\w+) wheel\))? tested\.$"
)


def extras(pyproject: str) -> dict[str, str]:
    """The extra that installs each optional dependency (not `dev`, which installs them all)."""
    block = re.search(r"^\[project.optional-dependencies\](.*?)^\[", pyproject, re.S | re.M).group(1)
    found = {}
    for extra, requirements in re.findall(r"^([A-Za-z0-9_-]+) = \[(.*?)\]$", block, re.M):
        for name in re.findall(r'"([A-Za-z0-9_.-]+)[<>=!~\[]', requirements):
            if extra != "dev":
                found.setdefault(name, extra)
    return found


def requires_python(pyproject: str) -> str:
    return re.search(r'^requires-python = ">=([0-9.]+)"', pyproject, re.M).group(1)


def record(path: Path) -> dict[str, str]:
    """Write this environment's versions of the dependencies, torch and python to `path` as JSON; return them."""
    versions = {name: metadata.version(name) for name in RECORDED}
    versions["python"] = "{}.{}".format(*sys.version_info[:2])
    path.write_text(json.dumps(versions, indent=1) + "\n")
    return versions


def render(newest: dict[str, str], floor: dict[str, str], pyproject: str) -> str:
    """The README line: each dependency's floor -> newest tested version, then Python and torch of the newest run."""
    for label, versions in (("newest", newest), ("floor", floor)):
        missing = [name for name in (*RECORDED, "python") if name not in versions]
        if missing:
            raise ValueError(
                f"The {label} run recorded no version of {', '.join(missing)}; record it with "
                "`python ci/supported_versions.py record FILE` inside that run's virtualenv."
            )
    where = extras(pyproject)
    ranges = [f"{name} {floor[name]} -> {newest[name]}" for name in DEPENDENCIES]
    ranges += [
        f"{name} {floor[name]} -> {newest[name]} (optional, `[{where[name]}]`)" for name in OPTIONAL_DEPENDENCIES
    ]
    torch_version, _, build = newest["torch"].partition("+")
    wheel = f" ({build.upper()} wheel)" if build else ""
    return (
        f"{PREFIX}{', '.join(ranges)}; Python {requires_python(pyproject)}+ (tested on {newest['python']}), "
        f"torch {torch_version}{wheel} tested."
    )


def readme_line(readme: str) -> str | None:
    return next((line for line in readme.splitlines() if line.startswith("**Supported versions**")), None)


def parse(line: str) -> tuple[dict[str, str], dict[str, str]]:
    """(floor, newest) versions that a README line states, python and torch (with its build) in newest; a line
    that `render` could not have written raises ValueError."""
    tail = TAIL.search(line)
    if not line.startswith(PREFIX) or tail is None:
        raise ValueError(f"Not a line of the form `render` writes: {line!r}")
    ranges = RANGE.findall(line[: tail.start()])
    floor = {name: low for name, low, _ in ranges}
    newest = {name: high for name, _, high in ranges}
    newest["python"] = tail.group(2)
    newest["torch"] = tail.group(3) + (f"+{tail.group(4).lower()}" if tail.group(4) else "")
    return floor, newest


def differences(stated: str, newest: dict[str, str], floor: dict[str, str]) -> list[str]:
    """What a README line says differently from the versions CI proved, one entry per package."""
    try:
        said_floor, said_newest = parse(stated)
    except ValueError as error:
        return [str(error)]

    def versions(low, high):
        return f"{low} -> {high}" if low else str(high)

    changes = []
    for name in (*RECORDED, "python"):
        proved = (floor[name] if name in RANGED else None, newest[name])
        said = (said_floor.get(name), said_newest.get(name))
        if said != proved:
            changes.append(f"{name}: README.md says {versions(*said)}, CI proved {versions(*proved)}")
    return changes or ["the wording differs"]


def report(newest_path: Path, floor_path: Path, readme_path: Path) -> bool:
    """Print the line CI proved and whether README.md states it (loudly when not); True when it does."""
    newest, floor = (json.loads(Path(path).read_text()) for path in (newest_path, floor_path))
    line = render(newest, floor, (ROOT / "pyproject.toml").read_text())
    print(f"Supported versions that this CI run proved (README.md's line):\n{line}")
    stated = readme_line(readme_path.read_text())
    if stated == line:
        print("README.md states them.")
        return True
    changes = (
        ["README.md has no **Supported versions** line"] if stated is None else differences(stated, newest, floor)
    )
    banner = "!" * 100
    print(f"{banner}\n!!! README.md is out of date: replace its Supported versions line with the line above.")
    for change in changes:
        print(f"!!!   {change}")
    print(f"!!! (CI stays green: a new release breaks nothing by itself.)\n{banner}")
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    recording = commands.add_parser("record", help="write this environment's versions as JSON")
    recording.add_argument("file", type=Path)
    reporting = commands.add_parser("report", help="print the proved line and compare it with README.md")
    reporting.add_argument("newest", type=Path)
    reporting.add_argument("floor", type=Path)
    reporting.add_argument("--readme", type=Path, default=ROOT / "README.md")
    args = parser.parse_args(argv)
    try:
        if args.command == "record":
            versions = record(args.file)
            print("resolved: " + " ".join(f"{name}=={version}" for name, version in versions.items()))
        else:
            report(args.newest, args.floor, args.readme)
    except (ValueError, OSError, metadata.PackageNotFoundError) as error:
        print(f"supported_versions.py {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
