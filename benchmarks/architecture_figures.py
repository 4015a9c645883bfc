"""Architecture figures of src/hf_mdm, read from the source with `ast` (hf_mdm is never imported, so this runs on any
checkout): `python benchmarks/architecture_figures.py <repo root>` prints a Markdown report.

Figures:

* Modules: every `.py` file under src/hf_mdm; packages: folders with an `__init__.py`; units: the package root, each
  top-level module and each subpackage (`generation/`, `languages/`, ...).
* Import graph: one arrow per (importing module, imported module) pair, for relative imports and `hf_mdm.` absolute
  ones, at any depth (imports inside functions count). `from .pkg import name` points at `pkg.name` when that is a
  module, else at `pkg` (its `__init__`). Levels: nodes on the longest path of the graph after collapsing each cycle
  (strongly connected component) into one node. Cycles: components of more than one module. Upward arrows: arrows
  whose target sits in a higher layer of `LAYERS` than their source (same-layer arrows are allowed; a cycle is not).
* Lines per file (physical lines), the longest functions (`def` line to last line, nested ones listed on their own)
  and the length of `DiffusionGenerationMixin.generate` (whole, and its body without docstring, blanks or comments).
* Remote-code export: the modules and lines `hf_mdm.remote_code.flattened_sources()` ships, replicated here: the
  closure of `modeling_mdm` under relative imports (`from .x import ...` ships `x`, a package ships its `__init__`),
  each multi-line relative import rewritten to one line as the exporter does (the source lines are given too).
* Files touched per extension kind, an estimate. For each kind (`EXTENSION_KINDS`) the members are found in the code:
  a class given to its registration decorator is one member, named by the class and by the decorator's string
  (`@register_strategy("confidence")`) or, for a bare decorator, a class attribute (`model_type`); the subclasses of
  a base class are members; a name in a hand-kept collection (`LANGUAGE_KINDS`, `TABLE_COLUMNS`) is a member, merged
  with the one member class whose name it begins (`ngram` -> `NGramLanguage`). Then every place that spells out
  several members is collected in src/hf_mdm, docs/ and README.md (examples/ and benchmarks/ are listed apart, not
  counted). A place is:
    - in Python: one list / tuple / set / dict literal (its string elements, its names, the first element of each
      tuple element, a dict's keys); the comparisons of one function (`x == "name"`, `x in (...)`, `match`,
      `isinstance(x, Class)`); one string (docstring, help text, f-string), where a member counts when quoted or
      backticked, in a run like `a, b, c` or `a|b|c`, or anywhere when its name looks like an identifier (`_`, a
      digit, CamelCase); the imports of a package's `__init__.py` together (re-exports and registrations);
    - in Markdown: one block (lines up to a blank line; a fenced block whole), members matched as in a Python
      string, plus the first cell of each table row.
  A place counts when it names at least three members of the kind (all of them for a kind of two or three), and a
  quarter of a large kind (5 of 17 sweep columns: two sweep columns, `steps` and `strategy`, are also everyday
  generate() arguments); a name shared by two kinds (`llada` is a checkpoint format and a reveal-count rule) counts
  only beside an unshared one. Files touched = the file defining the members (one new file when each member has a
  file of its own) + the files of hand-kept collections + every file with a place. docs/benchmarks.md is skipped:
  it records measured results, not lists a new member must join. The estimate misses places that name one member at
  a time (a dispatch on a single name) and counts lists that a new member need not join (a mapping from another
  library's names); the per-place listing under the table is there to check it by eye.
"""

import argparse
import ast
import math
import re
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path


PACKAGE = "hf_mdm"

# Bottom to top; a module may import its own layer and the layers below it. A module's layer is that of the longest
# dotted prefix listed (`generation` covers every module of the package); the package root `hf_mdm` (its __init__,
# the public API that imports everything) is matched exactly and sits at the top with the CLI.
LAYERS = [
    (
        "foundation",
        [
            "registry",
            "transformers_compat",
            "schedules",
            "tokenizer_checks",
            "weight_files",
            "logits_shift",
            "model_source",
            "value_checks",
            "block_positions",
        ],
    ),
    ("training objective", ["masked_diffusion_objective", "diffusion_attention"]),
    (
        "model configuration",
        [
            "configuration_mdm",
            "configuration_dit",
            "configuration_llada2_moe",
            "configuration_llada_moe",
            "configuration_sdar",
        ],
    ),
    ("generation", ["generation", "own_decoders"]),
    # Below the model: `MDMForMaskedGeneration` gets its Hub-facing classmethods from checkpoint_formats'
    # MDMPretrainedMixin, which needs only the config, the formats and a `cls`.
    ("checkpoint formats, conversion, export", ["checkpoint_formats", "causal_lm_adaptation", "remote_code"]),
    ("modeling", ["modeling_mdm", "modeling_dit", "modeling_llada2_moe", "modeling_llada_moe", "modeling_sdar"]),
    ("training", ["training"]),
    ("evaluation, languages, metrics", ["evaluation", "languages", "metrics"]),
    ("hub", ["hub"]),
    ("integrations", ["integrations", "peft_auto_model", "text_generation_pipeline", "model_loading"]),
    ("cli and package API", ["cli", PACKAGE]),
]


# ----------------------------------------------------------------------------------------------- modules and imports


def package_modules(repo: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of src/hf_mdm (a package is named by its folder)."""
    src = repo / "src"
    modules = {}
    for path in sorted((src / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def relative_base(module: str, is_package: bool, level: int) -> str:
    """The package that `from <level dots>` means inside `module`."""
    base = module if is_package else module.rpartition(".")[0]
    for _ in range(level - 1):
        base = base.rpartition(".")[0]
    return base


def imported_modules(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The hf_mdm modules that `module` imports, at any depth of its code."""
    targets = set()
    for node in ast.walk(parse(path)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = relative_base(module, path.name == "__init__.py", node.level)
                target = f"{base}.{node.module}" if node.module else base
            elif node.module and (node.module == PACKAGE or node.module.startswith(PACKAGE + ".")):
                target = node.module
            else:
                continue
            for alias in node.names:
                targets.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in modules else target)
        elif isinstance(node, ast.Import):
            targets |= {alias.name for alias in node.names if alias.name.split(".")[0] == PACKAGE}
    return {target for target in targets if target != module}


def import_graph(repo: Path) -> dict[str, set[str]]:
    """module -> the modules it imports (every module is a key). An import of a name that is not a module of the
    package raises, so that a typo or a stale path is not silently dropped from the graph."""
    modules = package_modules(repo)
    graph = {module: imported_modules(module, path, modules) for module, path in modules.items()}
    unknown = sorted(
        f"{source} -> {target}" for source, targets in graph.items() for target in targets if target not in modules
    )
    if unknown:
        raise ValueError(f"Imports of modules that do not exist: {unknown}.")
    return graph


def unit_of(module: str) -> str:
    """hf_mdm.generation.mixin -> generation; hf_mdm.registry -> registry; hf_mdm -> hf_mdm."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else PACKAGE


def unit_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    units = {unit_of(module): set() for module in graph}
    for source, targets in graph.items():
        units[unit_of(source)] |= {unit_of(t) for t in targets} - {unit_of(source)}
    return units


def strongly_connected_components(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative), each component sorted."""
    index, low, on_stack, stack, components, counter = {}, {}, set(), [], [], 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, successors = work[-1]
            for successor in successors:
                if successor not in index:
                    index[successor] = low[successor] = counter
                    counter += 1
                    stack.append(successor)
                    on_stack.add(successor)
                    work.append((successor, iter(sorted(graph[successor]))))
                    break
                if successor in on_stack:
                    low[node] = min(low[node], index[successor])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(sorted(component))
    return components


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles: strongly connected components of more than one module."""
    return sorted(component for component in strongly_connected_components(graph) if len(component) > 1)


def levels(graph: dict[str, set[str]]) -> dict[str, int]:
    """node -> its level: 1 for a node that imports nothing, else 1 + the highest level it imports; the nodes of a
    cycle share one level."""
    component_of = {node: tuple(c) for c in strongly_connected_components(graph) for node in c}
    memo = {}

    def level(component: tuple) -> int:
        if component not in memo:
            below = {component_of[t] for node in component for t in graph[node]} - {component}
            memo[component] = 1 + max((level(c) for c in below), default=0)
        return memo[component]

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(graph)))
    return {node: level(component_of[node]) for node in graph}


def layer_of(module: str) -> "int | None":
    """Index in LAYERS of the longest listed prefix of `module`; None when no entry covers it."""
    best, best_length = None, -1
    for number, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            name = prefix if prefix == PACKAGE else f"{PACKAGE}.{prefix}"
            covers = module == name or (prefix != PACKAGE and module.startswith(name + "."))
            if covers and len(name) > best_length:
                best, best_length = number, len(name)
    return best


def unmapped_modules(graph: dict[str, set[str]]) -> list[str]:
    return sorted(module for module in graph if layer_of(module) is None)


def upward_arrows(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """(source, target) arrows that import from a higher layer than the source's."""
    return sorted(
        (source, target)
        for source, targets in graph.items()
        for target in targets
        if None not in (layer_of(source), layer_of(target)) and layer_of(target) > layer_of(source)
    )


# --------------------------------------------------------------------------------------------- file and function size


def line_count(path: Path) -> int:
    return len(path.read_text().splitlines())


def functions(path: Path):
    """(qualified name, lines, node) of every function of the file, nested ones included."""

    def visit(body, prefix):
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = f"{prefix}{node.name}"
                yield name, node.end_lineno - node.lineno + 1, node
                yield from visit(node.body, name + ".")
            elif isinstance(node, ast.ClassDef):
                yield from visit(node.body, f"{prefix}{node.name}.")
            else:
                for field in ("body", "orelse", "finalbody", "handlers"):
                    children = getattr(node, field, None)
                    if isinstance(children, list):
                        yield from visit(children, prefix)

    yield from visit(parse(path).body, "")


def body_code_lines(node: ast.FunctionDef, path: Path) -> int:
    """Lines of the function's body after its docstring that are neither blank nor only a comment."""
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
        body = body[1:]
    if not body:
        return 0
    lines = path.read_text().splitlines()[body[0].lineno - 1 : node.end_lineno]
    return sum(1 for line in lines if line.strip() and not line.strip().startswith("#"))


def method(modules: dict[str, Path], class_name: str, method_name: str):
    """(module, node, path) of `class_name.method_name` in the package, or None."""
    for module, path in modules.items():
        for node in ast.walk(parse(path)):
            if isinstance(node, ast.ClassDef) and node.name == class_name:
                for item in node.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name == method_name:
                        return module, item, path
    return None


# ------------------------------------------------------------------------------------------------ remote-code export


def flat_name(module: str) -> str:
    return module.removeprefix(PACKAGE + ".").replace(".", "_")


def remote_code_export(modules: dict[str, Path], root: str = f"{PACKAGE}.modeling_mdm") -> tuple[dict[str, int], list]:
    """(module -> lines shipped, problems) for the relative-import closure of `root`, as
    `hf_mdm.remote_code.flattened_sources` writes it."""
    shipped, problems, pending = {}, [], [root]
    while pending:
        module = pending.pop()
        if module in shipped:
            continue
        if module not in modules:
            problems.append(f"{module} is imported but is not a module")
            continue
        path = modules[module]
        lines = path.read_text().splitlines()
        rewritten = []
        for node in ast.walk(parse(path)):
            if isinstance(node, ast.ImportFrom) and node.level > 0:
                if node.module is None:
                    problems.append(f"{module}:{node.lineno} `from . import` (the exporter refuses it)")
                    continue
                pending.append(f"{relative_base(module, path.name == '__init__.py', node.level)}.{node.module}")
                rewritten.append((node.lineno, node.end_lineno))
        for start, end in sorted(rewritten, reverse=True):
            lines[start - 1 : end] = ["from ... import ..."]
        shipped[module] = len(lines)
    return shipped, problems


# ---------------------------------------------------------------------------------------- files per extension kind


@dataclass
class ExtensionKind:
    """Where the members of an extension kind are found (see the module docstring)."""

    name: str
    decorators: tuple = ()  # registration decorators; a call's first string argument is the member's name
    name_attribute: str = "name"  # the name of a class registered by a bare decorator
    base_class: str = ""  # subclasses (transitively) are members
    collections: str = ""  # regex on module-level names whose literal lists the members
    collection_modules: str = ""  # prefix of the modules searched for those collections


EXTENSION_KINDS = [
    ExtensionKind("strategy", decorators=("register_strategy",)),
    ExtensionKind("cache", decorators=("register_cache",)),
    ExtensionKind("denoiser", decorators=("register_denoiser",)),
    ExtensionKind("checkpoint format", decorators=("register_checkpoint_format",), name_attribute="model_type"),
    ExtensionKind(
        "sweep column",
        collections=r"(TABLE|REQUIRED|SWEEP)_COLUMNS|COLUMNS",
        collection_modules=f"{PACKAGE}.evaluation",
    ),
    ExtensionKind(
        "formal language",
        decorators=("register_language",),
        base_class="FormalLanguage",
        collections=r"LANGUAGE_KINDS|LANGUAGES",
        collection_modules=f"{PACKAGE}.cli",
    ),
    ExtensionKind("reveal-count rule", decorators=("register_reveal_counts",)),
    ExtensionKind("schedule", decorators=("register_schedule",)),
]


def callee(node: ast.AST) -> str:
    node = node.func if isinstance(node, ast.Call) else node
    return node.attr if isinstance(node, ast.Attribute) else getattr(node, "id", "")


def literal_names(node: ast.AST) -> list[str]:
    """The names a collection literal spells: string elements, bare names, each tuple element's first item, a dict's
    keys and name values."""
    if isinstance(node, ast.Dict):
        elements = [key for key in node.keys if key is not None] + [v for v in node.values if isinstance(v, ast.Name)]
    elif isinstance(node, (ast.List, ast.Tuple, ast.Set)):
        elements = [e.elts[0] if isinstance(e, (ast.Tuple, ast.List)) and e.elts else e for e in node.elts]
        elements = [e.args[0] if isinstance(e, ast.Call) and e.args else e for e in elements]
    else:
        return []
    names = []
    for element in elements:
        if isinstance(element, ast.Constant) and isinstance(element.value, str):
            names.append(element.value)
        elif isinstance(element, (ast.Name, ast.Attribute)):
            names.append(callee(element))
    return names


def members(kind: ExtensionKind, modules: dict[str, Path]) -> tuple[list[frozenset], dict[str, str], set[str]]:
    """(the members, each the set of its names: class and registered name; class name -> its file; the files of the
    collections that list members). A name
    from a collection joins the one class whose name it begins (`ngram` -> `NGramLanguage`), if there is one."""
    entities, class_files, classes, listed = [], {}, {}, []
    for module, path in modules.items():
        tree = parse(path)
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                classes[node.name] = (node, path)
                for decorator in node.decorator_list:
                    if callee(decorator) not in kind.decorators:
                        continue
                    found = {node.name}
                    if isinstance(decorator, ast.Call) and decorator.args:
                        found |= {a.value for a in decorator.args[:1] if isinstance(a, ast.Constant)}
                    for item in node.body:
                        targets = item.targets if isinstance(item, ast.Assign) else [getattr(item, "target", None)]
                        value = getattr(item, "value", None)
                        if any(getattr(t, "id", None) == kind.name_attribute for t in targets) and isinstance(
                            value, ast.Constant
                        ):
                            found.add(value.value)
                    entities.append(frozenset(found))
                    class_files[node.name] = str(path)
        if kind.collections and module.startswith(kind.collection_modules):
            for node in tree.body:
                if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
                    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                    if any(re.fullmatch(kind.collections, getattr(t, "id", "")) for t in targets):
                        listed += [(name, str(path)) for name in literal_names(node.value)]
    if kind.base_class:
        subclasses, grew = {kind.base_class}, True
        while grew:
            grew = False
            for name, (node, path) in classes.items():
                if name not in subclasses and any(callee(base) in subclasses for base in node.bases):
                    subclasses.add(name)
                    grew = True
                    if name not in class_files:
                        entities.append(frozenset({name}))
                        class_files[name] = str(path)
    for name, _ in listed:
        key = re.sub(r"[-_]", "", name.lower())
        owners = [e for e in entities if any(a[:1].isupper() and a.lower().startswith(key) for a in e)]
        if any(name in e for e in entities):
            continue
        if len(owners) == 1:
            entities[entities.index(owners[0])] = owners[0] | {name}
        else:
            entities.append(frozenset({name}))
    return entities, class_files, {path for _, path in listed}


def prose_names(text: str, names: set[str]) -> set[str]:
    """Members a piece of prose spells: quoted or backticked, in a separated run (`a, b, c`, `a|b`, `a / b`), or an
    identifier-like name anywhere."""
    found = set()
    for name in names:
        escaped = re.escape(name)
        quoted = re.search(rf"[`'\"]{escaped}[`'\"]", text)
        bare = re.search(rf"(?<![\w-]){escaped}(?![\w-])", text)
        identifier_like = re.search(r"_|\d|[a-z][A-Z]|[A-Z]{2}", name)
        if quoted or (bare and identifier_like):
            found.add(name)
    word = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    for run in re.finditer(rf"(?<![\w-])(?:{word})(?:\s*(?:,|\||/|\bor\b|\band\b)\s*(?:{word})(?![\w-]))+", text):
        found |= {n for n in names if re.search(rf"(?<![\w-]){re.escape(n)}(?![\w-])", run.group())}
    return found


def python_spellings(path: Path, names: set[str]):
    """(first line, last line, names) of each place of a Python file that spells names."""
    tree = parse(path)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    if path.name == "__init__.py":  # re-exports and registration imports
        imported = [
            (node.lineno, node.end_lineno, {a.name for a in node.names} & names)
            for node in tree.body
            if isinstance(node, ast.ImportFrom)
        ]
        imported = [entry for entry in imported if entry[2]]
        if imported:
            yield min(e[0] for e in imported), max(e[1] for e in imported), set().union(*(e[2] for e in imported))
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and not isinstance(parents.get(node), ast.JoinedStr)
        ):
            yield node.lineno, node.end_lineno, prose_names(node.value, names)
        elif isinstance(node, ast.JoinedStr):
            text = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
            yield node.lineno, node.end_lineno, prose_names(text, names)
        elif isinstance(node, (ast.List, ast.Tuple, ast.Set, ast.Dict)):
            yield node.lineno, node.end_lineno, set(literal_names(node)) & names
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            compared = set()
            for inner in ast.walk(node):
                if isinstance(inner, ast.Compare):
                    for operand in [inner.left, *inner.comparators]:
                        if isinstance(operand, ast.Constant) and isinstance(operand.value, str):
                            compared.add(operand.value)
                        compared |= set(literal_names(operand))
                elif isinstance(inner, ast.MatchValue) and isinstance(inner.value, ast.Constant):
                    compared.add(inner.value.value)
                elif isinstance(inner, ast.Call) and callee(inner) == "isinstance" and len(inner.args) == 2:
                    classes = inner.args[1]
                    compared |= {callee(c) for c in getattr(classes, "elts", [classes])}
            yield node.lineno, node.end_lineno, compared & names


def markdown_spellings(path: Path, names: set[str]):
    """(first line, last line, names) of each block of a Markdown file that spells names."""
    lines = path.read_text().splitlines()
    blocks, start, fenced = [], 0, False
    for number, line in enumerate(lines + [""]):
        if line.strip().startswith("```"):
            fenced = not fenced
        if not line.strip() and not fenced:
            if number > start:
                blocks.append((start, number))
            start = number + 1
    for first, end in blocks:
        found = prose_names("\n".join(lines[first:end]), names)
        for line in lines[first:end]:
            if line.startswith("|"):
                found |= {line.strip("|").split("|")[0].strip().strip("`").strip()} & names
        yield first + 1, end, found


SKIPPED_FILES = {"docs/benchmarks.md", "benchmarks/architecture_figures.py"}
OPTIONAL_FOLDERS = ("examples/", "benchmarks/")


def minimum_members(count: int) -> int:
    """Members a place must name to count as a spelling of the kind: three (all when the kind has fewer), and a
    quarter of a large kind."""
    return min(count, max(3, math.ceil(count / 4)))


def spellings(repo: Path, entities: list[frozenset], shared: set[str]) -> list[tuple[str, int, int, list[str]]]:
    """(file, first line, last line, names) of every place that names `minimum_members` members of a kind,
    overlapping places merged; a shared name counts only beside an unshared one."""
    names = set().union(*entities)
    files = sorted((repo / "src" / PACKAGE).rglob("*.py")) + sorted((repo / "docs").rglob("*.md"))
    files += (
        [repo / "README.md"] + sorted((repo / "examples").rglob("*.py")) + sorted((repo / "benchmarks").rglob("*.py"))
    )
    found = []
    for path in files:
        if not path.exists() or path.relative_to(repo).as_posix() in SKIPPED_FILES:
            continue
        reader = markdown_spellings if path.suffix == ".md" else python_spellings
        places = []
        for first, last, spelled in reader(path, names):
            named = [e for e in entities if e & spelled]
            if len(named) >= minimum_members(len(entities)) and spelled - shared:
                places.append([first, last, set(spelled)])
        places.sort()
        merged = []
        for place in places:
            if merged and place[0] <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], place[1])
                merged[-1][2] |= place[2]
            else:
                merged.append(place)
        found += [(path.relative_to(repo).as_posix(), first, last, sorted(n)) for first, last, n in merged]
    return found


def extension_kinds(repo: Path, modules: dict[str, Path]) -> list[dict]:
    """Per kind: members, the defining file(s), the spellings, and the files a new member touches."""
    found = {kind.name: members(kind, modules) for kind in EXTENSION_KINDS}
    report = []
    for kind in EXTENSION_KINDS:
        entities, class_files, collection_files = found[kind.name]
        names = set().union(*entities) if entities else set()
        others = {n for other, (e, _, _) in found.items() if other != kind.name for entity in e for n in entity}
        places = spellings(repo, entities, names & others) if entities else []
        relative = lambda paths: sorted({Path(p).relative_to(repo).as_posix() for p in paths})  # noqa: E731
        definition_files = relative(class_files.values()) or relative(collection_files)
        own_file_each = len(definition_files) > 1 and len(definition_files) == len(class_files)
        touched = {"<a new file>"} if own_file_each else set(definition_files)
        touched |= {p[0] for p in places if not p[0].startswith(OPTIONAL_FOLDERS)} - set(definition_files)
        touched |= set(relative(collection_files))
        report.append(
            {
                "kind": kind.name,
                "members": sorted(sorted(entity) for entity in entities),
                "definition_files": definition_files,
                "places": places,
                "touched": sorted(touched),
                "optional": sorted({p[0] for p in places if p[0].startswith(OPTIONAL_FOLDERS)}),
            }
        )
    return report


# ------------------------------------------------------------------------------------------------------------ report


def short(module: str) -> str:
    return module.removeprefix(PACKAGE + ".") if module != PACKAGE else f"{PACKAGE} (package root)"


def commit_of(repo: Path) -> str:
    result = subprocess.run(
        ["git", "-C", str(repo), "describe", "--always", "--dirty"], capture_output=True, text=True
    )
    return result.stdout.strip() or "unknown"


def report(repo: Path) -> str:
    modules = package_modules(repo)
    graph = import_graph(repo)
    units = unit_graph(graph)
    module_levels, unit_levels = levels(graph), levels(units)
    packages = [m for m, p in modules.items() if p.name == "__init__.py"]
    arrows = sum(len(t) for t in graph.values())
    unit_arrows = sum(len(t) for t in units.values())
    out = [f"# Architecture figures of `{repo}` (commit {commit_of(repo)})", ""]

    out += ["## Modules and imports", "", "| figure | value |", "|---|---|"]
    out += [
        f"| modules (.py files) | {len(modules)} |",
        f"| packages (folders with `__init__.py`) | {len(packages)} |",
        f"| units (package root + top-level modules + subpackages) | {len(units)} |",
        f"| import arrows, module -> module | {arrows} |",
        f"| import arrows, unit -> unit | {unit_arrows} |",
        f"| levels, module graph | {max(module_levels.values())} |",
        f"| levels, unit graph | {max(unit_levels.values())} |",
        f"| cycles, module graph | {len(cycles(graph))} |",
        f"| cycles, unit graph | {len(cycles(units))} |",
        f"| upward arrows (layer map below) | {len(upward_arrows(graph))} |",
        f"| modules without a layer | {len(unmapped_modules(graph))} |",
        "",
    ]
    out += ["Cycles (module graph): " + ("; ".join(" <-> ".join(map(short, c)) for c in cycles(graph)) or "none")]
    out += ["", "Cycles (unit graph): " + ("; ".join(" <-> ".join(c) for c in cycles(units)) or "none"), ""]
    out += ["Units by level (unit graph, 1 = imports no other unit):", ""]
    for level in range(max(unit_levels.values()), 0, -1):
        out.append(f"- {level}: " + ", ".join(sorted(u for u, v in unit_levels.items() if v == level)))
    out += ["", "Layer map (bottom to top; a module may import its own layer and those below):", ""]
    out += ["| layer | name | modules (dotted prefixes under hf_mdm) |", "|---|---|---|"]
    out += [f"| {n} | {name} | {', '.join(prefixes)} |" for n, (name, prefixes) in enumerate(LAYERS)]
    out += ["", "Upward arrows:", ""]
    out += [f"- {short(s)} (layer {layer_of(s)}) -> {short(t)} (layer {layer_of(t)})" for s, t in upward_arrows(graph)]
    out += ["- none"] if not upward_arrows(graph) else []
    out += ["", "Modules without a layer: " + (", ".join(map(short, unmapped_modules(graph))) or "none"), ""]

    sizes = {p.relative_to(repo / "src").as_posix(): line_count(p) for p in modules.values()}
    out += ["## Lines per file", ""]
    out += [
        f"{len(sizes)} files, {sum(sizes.values())} lines; max {max(sizes.values())}, "
        f"median {statistics.median(sizes.values()):g}.",
        "",
    ]
    out += ["| file | lines |", "|---|---|"]
    out += [f"| {f} | {n} |" for f, n in sorted(sizes.items(), key=lambda item: (-item[1], item[0]))[:10]]

    lengths = [
        (f"{p.relative_to(repo / 'src').as_posix()}::{name}", n)
        for p in modules.values()
        for name, n, _ in functions(p)
    ]
    out += ["", "## Longest functions", "", "| function | lines |", "|---|---|"]
    out += [f"| {name} | {n} |" for name, n in sorted(lengths, key=lambda item: (-item[1], item[0]))[:10]]
    found = method(modules, "DiffusionGenerationMixin", "generate")
    if found:
        module, node, path = found
        out += [
            "",
            f"`DiffusionGenerationMixin.generate` ({short(module)}): {node.end_lineno - node.lineno + 1} lines "
            f"(`def` to end), {body_code_lines(node, path)} lines of code after the docstring.",
        ]
    else:
        out += ["", "`DiffusionGenerationMixin.generate`: not found."]

    shipped, problems = remote_code_export(modules)
    out += ["", "## Remote-code export (closure of `modeling_mdm` under relative imports)", ""]
    source_lines = sum(line_count(modules[m]) for m in shipped if m in modules)
    out += [
        f"{len(shipped)} modules, {sum(shipped.values())} lines shipped ({source_lines} lines of source before the "
        "exporter joins multi-line imports): "
        + ", ".join(f"{flat_name(m)}.py ({n})" for m, n in sorted(shipped.items()))
    ]
    out += [f"Problems: {'; '.join(problems)}"] if problems else []

    kinds = extension_kinds(repo, modules)
    out += ["", "## Files a new member of an extension kind touches (estimate; method in the script's docstring)", ""]
    out += ["| kind | members found | spellings (places) | files touched | files |", "|---|---|---|---|---|"]
    for entry in kinds:
        counted = [p for p in entry["places"] if not p[0].startswith(OPTIONAL_FOLDERS)]
        out.append(
            f"| {entry['kind']} | {len(entry['members'])} | {len(counted)} in {len({p[0] for p in counted})} "
            f"files | {len(entry['touched'])} | {', '.join(entry['touched'])} |"
        )
    for entry in kinds:
        spelled = ", ".join(" / ".join(names) for names in entry["members"]) or "NONE FOUND"
        out += [
            "",
            f"**{entry['kind']}** ({len(entry['members'])} members: {spelled}; at least "
            f"{minimum_members(len(entry['members']))} per spelling); defined in "
            f"{', '.join(entry['definition_files']) or '-'}.",
        ]
        if entry["optional"]:
            out.append(f"Also spelled in (not counted): {', '.join(entry['optional'])}.")
        out += [""] + [f"- {f}:{a}-{b}: {', '.join(n)}" for f, a, b, n in entry["places"]]
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repo", type=Path, help="root of an hf-mdm checkout (the folder holding src/hf_mdm)")
    args = parser.parse_args()
    if not (args.repo / "src" / PACKAGE / "__init__.py").is_file():
        parser.error(f"{args.repo} has no src/{PACKAGE}/__init__.py; pass the repository root.")
    print(report(args.repo.resolve()), end="")


if __name__ == "__main__":
    main()
