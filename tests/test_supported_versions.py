"""The supported range is declared once and said the same everywhere: pyproject's floors, the CI constraints that
install exactly those floors, the floor the package enforces at import, and the README's "Supported versions"."""

import pathlib
import re

from hf_mdm.transformers_compat import TRANSFORMERS_FLOOR


ROOT = pathlib.Path(__file__).resolve().parents[1]
DEPENDENCIES = ("transformers", "accelerate", "datasets", "evaluate", "safetensors", "huggingface-hub", "scipy")
OPTIONAL_DEPENDENCIES = ("peft", "lm-eval", "numba")  # extras in `[dev]`, so CI tests their floors too


def declared_floors() -> dict[str, str]:
    block = re.search(r"^dependencies = \[(.*?)\]", (ROOT / "pyproject.toml").read_text(), re.S | re.M).group(1)
    return dict(re.findall(r'"([A-Za-z0-9_.-]+)>=([0-9][0-9.]*)"', block))


def declared_optional_floors() -> dict[str, str]:
    text = (ROOT / "pyproject.toml").read_text()
    block = re.search(r"^\[project.optional-dependencies\](.*?)^\[", text, re.S | re.M).group(1)
    floors = dict(re.findall(r'"([A-Za-z0-9_.-]+)>=([0-9][0-9.]*)"', block))
    return {name: floors[name] for name in OPTIONAL_DEPENDENCIES}


def test_every_dependency_declares_a_floor_and_no_upper_pin():
    block = re.search(r"^dependencies = \[(.*?)\]", (ROOT / "pyproject.toml").read_text(), re.S | re.M).group(1)
    assert set(DEPENDENCIES) | {"torch"} == set(declared_floors())
    assert "<" not in block and "==" not in block


def test_the_floor_constraints_pin_exactly_the_declared_floors():
    lines = (ROOT / "ci" / "constraints-min.txt").read_text().splitlines()
    pins = dict(line.split("==") for line in lines if line and not line.startswith("#"))
    floors = declared_floors()
    assert pins == {name: floors[name] for name in DEPENDENCIES} | declared_optional_floors()  # torch: local wheel


def test_the_package_enforces_the_declared_transformers_floor():
    assert declared_floors()["transformers"] == TRANSFORMERS_FLOOR


def test_the_readme_states_the_supported_range():
    readme = (ROOT / "README.md").read_text()
    line = next(line for line in readme.splitlines() if line.startswith("**Supported versions**"))
    for name, floor in (declared_floors() | declared_optional_floors()).items():
        if name != "torch":
            assert f"{name} {floor}" in line, name
