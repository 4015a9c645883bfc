"""The documentation site builds offline, strictly (broken links or API references fail), from the `[docs]` extra."""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest


ROOT = Path(__file__).parents[1]


@pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None, reason="needs the [docs] extra: pip install -e '.[docs]'"
)
def test_docs_site_builds_strictly(tmp_path):
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path)],
                            cwd=ROOT, capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "api" / "index.html").read_text().count("MDMForMaskedGeneration") > 3


def test_every_docs_page_is_in_the_site_navigation():
    nav = (ROOT / "mkdocs.yml").read_text()
    pages = {path.name for path in (ROOT / "docs").glob("*.md")}
    assert pages and all(page in nav for page in pages), pages


def test_every_test_that_guarantees_md_names_exists():
    """docs/guarantees.md names the test that proves each row; a renamed or deleted test must not leave a dead name.
    A name ending in `_` names a family of tests (`test_prepare_refuses_*`)."""
    text = (ROOT / "docs" / "guarantees.md").read_text()
    tests = list((ROOT / "tests").rglob("*.py"))
    source = "\n".join(path.read_text() for path in tests)
    files = {path.name for path in tests}
    named = set(re.findall(r"(test_[A-Za-z0-9_]+)", text))
    missing = sorted(
        name
        for name in named
        if not (re.search(rf"def {name}" + ("" if name.endswith("_") else r"\b"), source) or f"{name}.py" in files)
    )
    assert len(named) > 100 and not missing, missing
