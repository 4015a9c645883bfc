"""The package's layering: no module imports from a higher layer, no import cycle, every module has a layer.

The analysis (AST, hf_mdm is not imported) and the layer map `LAYERS` live in benchmarks/architecture_figures.py,
which also prints the import figures; a new module outside the listed prefixes needs an entry there and in the layer
table of docs/architecture.md, which must say the same.
"""

import importlib.util
import re
from pathlib import Path

import pytest

from .conftest import load_script


# The repository whose src/hf_mdm is the installed (editable) package: find_spec locates it without importing it.
REPO = Path(importlib.util.find_spec("hf_mdm").origin).parents[2]
SCRIPT = REPO / "benchmarks" / "architecture_figures.py"


@pytest.fixture(scope="module")
def architecture():
    return load_script(SCRIPT)


@pytest.fixture(scope="module")
def graph(architecture):
    return architecture.import_graph(REPO)


def test_the_graph_sees_the_package(graph):
    """Guards the other tests against passing on an empty or misread graph."""
    assert "hf_mdm.modeling_mdm" in graph and "hf_mdm.generation.mixin" in graph
    assert "hf_mdm.generation" in graph["hf_mdm"]


def test_the_checks_catch_a_cycle_and_an_upward_import_inside_a_function(architecture, tmp_path):
    """A bottom-layer module importing the CLI inside a function is an upward arrow and, with the CLI importing it
    back, a cycle: the analysis reads imports at any depth, relative and absolute."""
    package = tmp_path / "src" / "hf_mdm"
    (package / "cli").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "registry.py").write_text("def build():\n    from hf_mdm.cli import main\n")
    (package / "cli" / "__init__.py").write_text("from ..registry import build\n\n\ndef main():\n    pass\n")
    graph = architecture.import_graph(tmp_path)
    assert graph["hf_mdm.registry"] == {"hf_mdm.cli"} and graph["hf_mdm.cli"] == {"hf_mdm.registry"}
    assert architecture.upward_arrows(graph) == [("hf_mdm.registry", "hf_mdm.cli")]
    assert architecture.cycles(graph) == [["hf_mdm.cli", "hf_mdm.registry"]]


def test_every_module_has_a_layer(architecture, graph):
    unmapped = architecture.unmapped_modules(graph)
    assert not unmapped, (
        f"{unmapped} belong to no layer; add each to LAYERS in benchmarks/architecture_figures.py (and to the layer "
        "table of docs/architecture.md)."
    )


def test_no_import_cycle(architecture, graph):
    cycles = architecture.cycles(graph)
    assert not cycles, (
        f"Import cycles {cycles}: move the shared code into a module that both import, or pass the dependency in."
    )


def test_no_upward_import(architecture, graph):
    layer_names = [name for name, _ in architecture.LAYERS]
    upward = [
        f"{source} ({layer_names[architecture.layer_of(source)]}) imports {target} "
        f"({layer_names[architecture.layer_of(target)]})"
        for source, target in architecture.upward_arrows(graph)
    ]
    assert not upward, (
        "Imports from a higher layer: " + "; ".join(upward) + ". Move the code down to a layer both may import, "
        "or invert the dependency (registry, argument); LAYERS in benchmarks/architecture_figures.py is the map."
    )


def test_the_docs_layer_table_is_the_map_the_checks_use(architecture):
    """docs/architecture.md's table lists the layers of `LAYERS`, in order, with the same modules."""
    rows = re.findall(r"^\| (\d+) \| ([^|]+) \| ([^|]+) \|", (REPO / "docs" / "architecture.md").read_text(), re.M)
    documented = [(int(index), name.strip(), re.findall(r"`([\w.]+)`", modules)) for index, name, modules in rows]
    expected = [(index, name, prefixes) for index, (name, prefixes) in enumerate(architecture.LAYERS)]
    assert documented == expected, "Update the layer table of docs/architecture.md to LAYERS."
