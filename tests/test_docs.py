"""The documentation site builds offline, strictly (broken links or API references fail), from the `[docs]` extra."""

import importlib.util
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
