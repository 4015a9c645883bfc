"""Export hf-mdm's code next to a checkpoint so that `AutoModel.from_pretrained(dir, trust_remote_code=True)` works
where hf-mdm is not installed.

transformers' dynamic modules are flat: every file sits in the checkpoint folder and imports its siblings with
`from .name import ...`. The exporter walks the relative-import closure of `modeling_mdm`, writes each module under a
flat name (`generation/mixin.py` -> `generation_mixin.py`, a package's `__init__.py` -> `<package>.py`) with its
relative imports rewritten to those names, and points `auto_map` at the classes. The closure is what the model file
imports: the model, `masked_diffusion_objective`, the config, `generation/` and the Hub-facing
`checkpoint_formats.pretrained_mixin` with what it needs; no training, evaluation or Hub-card code.
"""

import ast
import importlib.util
import json
from pathlib import Path


PACKAGE = __name__.rpartition(".")[0]
AUTO_MAP = {
    "AutoConfig": "configuration_mdm.MDMConfig",
    "AutoModel": "modeling_mdm.MDMForMaskedGeneration",
    "AutoModelForMaskedLM": "modeling_mdm.MDMForMaskedGeneration",
}


def flat_name(module: str) -> str:
    """hf_mdm.generation.mixin -> generation_mixin."""
    return module.removeprefix(PACKAGE + ".").replace(".", "_")


def source_path(module: str) -> Path:
    return Path(importlib.util.find_spec(module).origin)


def absolute_module(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    """Resolve `from .x import y` inside `module` to the absolute name of `.x`."""
    base = module if is_package else module.rpartition(".")[0]
    for _ in range(node.level - 1):
        base = base.rpartition(".")[0]
    return f"{base}.{node.module}" if node.module else base


def flattened_sources(root: str = f"{PACKAGE}.modeling_mdm") -> dict[str, str]:
    """Flat file name -> rewritten source, for `root` and every module it reaches by relative imports."""
    sources, pending = {}, [root]
    while pending:
        module = pending.pop()
        if flat_name(module) + ".py" in sources:
            continue
        path = source_path(module)
        lines = path.read_text().splitlines(keepends=True)
        replacements = []
        for node in ast.walk(ast.parse("".join(lines))):
            if isinstance(node, ast.ImportFrom) and node.level > 0:
                target = absolute_module(module, node, path.name == "__init__.py")
                if node.module is None:  # `from . import x`: x are modules
                    raise ValueError(f"{module}: `from . import` is not exportable; import the names from modules.")
                pending.append(target)
                names = ", ".join(a.name if a.asname is None else f"{a.name} as {a.asname}" for a in node.names)
                indent = " " * node.col_offset
                replacements.append(
                    (node.lineno, node.end_lineno, f"{indent}from .{flat_name(target)} import {names}\n")
                )
        for start, end, text in sorted(replacements, reverse=True):
            lines[start - 1 : end] = [text]
        sources[flat_name(module) + ".py"] = "".join(lines)
    return sources


def write_remote_code(save_directory: "str | Path") -> list[str]:
    """Write the flattened modules into `save_directory` and add `auto_map` to its config.json; return file names."""
    save_directory = Path(save_directory)
    sources = flattened_sources()  # configuration_mdm is in the closure: modeling_mdm imports it
    for name, text in sources.items():
        (save_directory / name).write_text(text)
    config_path = save_directory / "config.json"
    config = json.loads(config_path.read_text())
    config["auto_map"] = AUTO_MAP
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return sorted(sources)
