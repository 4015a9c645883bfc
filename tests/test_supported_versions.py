"""The supported range is declared once and said the same everywhere: pyproject's floors, the CI constraints that
install exactly those floors, the floor the package enforces at import, and the README's "Supported versions", which
`ci/supported_versions.py` renders from the versions CI resolved (and `.ci/run` compares with README.md)."""

import importlib.util
import json
import pathlib
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.version import Version

from hf_mdm.transformers_compat import TRANSFORMERS_FLOOR


ROOT = pathlib.Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("supported_versions", ROOT / "ci" / "supported_versions.py")
supported_versions = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(supported_versions)
DEPENDENCIES = supported_versions.DEPENDENCIES
OPTIONAL_DEPENDENCIES = supported_versions.OPTIONAL_DEPENDENCIES  # extras in `[dev]`, so CI tests their floors too
PYPROJECT = (ROOT / "pyproject.toml").read_text()


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


def test_the_readme_line_is_well_formed_and_consistent_with_the_floors():
    """README.md's line is one that ci/supported_versions.py renders from the versions it states; its floors are
    pyproject's and no newest version is below its floor."""
    line = supported_versions.readme_line((ROOT / "README.md").read_text())
    floor, newest = supported_versions.parse(line)
    assert floor | {"torch": declared_floors()["torch"]} == declared_floors() | declared_optional_floors()
    assert all(Version(newest[name]) >= Version(floor[name]) for name in floor)
    assert Version(newest["python"]) >= Version(supported_versions.requires_python(PYPROJECT))
    tested = {"torch": newest["torch"], "python": newest["python"]}
    assert supported_versions.render(newest, floor | tested, PYPROJECT) == line


def recorded(tmp_path, name, **changes):
    """A versions file like `record` writes: this environment's versions, with `changes` (None removes a name)."""
    versions = supported_versions.record(tmp_path / f"{name}.json") | changes
    versions = {key: value for key, value in versions.items() if value is not None}
    (tmp_path / f"{name}.json").write_text(json.dumps(versions))
    return tmp_path / f"{name}.json"


def test_record_writes_the_installed_versions(tmp_path):
    import importlib.metadata

    versions = json.loads(recorded(tmp_path, "newest").read_text())
    assert set(versions) == {"torch", *DEPENDENCIES, *OPTIONAL_DEPENDENCIES, "python"}
    assert versions["transformers"] == importlib.metadata.version("transformers")


def test_the_report_says_whether_the_readme_states_what_ci_proved(tmp_path, capsys):
    floors = {name: version for name, version in (declared_floors() | declared_optional_floors()).items()
              if name != "torch"}  # fmt: skip
    newest, floor = recorded(tmp_path, "newest"), recorded(tmp_path, "floor", **floors)
    readme = tmp_path / "README.md"
    run = ["report", str(newest), str(floor), "--readme", str(readme)]

    readme.write_text("# hf-mdm\n")
    assert supported_versions.main(run) == 0  # loud, never red
    out = capsys.readouterr().out
    line = out.splitlines()[1]
    assert line.startswith("**Supported versions**") and "README.md has no **Supported versions** line" in out

    readme.write_text(f"# hf-mdm\n\n{line}\n")
    assert supported_versions.main(run) == 0
    assert capsys.readouterr().out.endswith("README.md states them.\n")

    stale = re.sub(r"transformers (\S+) -> \S+,", r"transformers \1 -> 5.0.0,", line)
    readme.write_text(f"# hf-mdm\n\n{stale}\n")
    assert supported_versions.main(run) == 0
    out = capsys.readouterr().out
    assert "!!! README.md is out of date" in out
    assert f"transformers: README.md says {floors['transformers']} -> 5.0.0, CI proved" in out
    assert "accelerate:" not in out  # only what differs


@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_every_rendered_line_parses_back_to_its_versions(data):
    version = st.from_regex(r"[0-9]{1,2}(\.[0-9]{1,3}){1,3}", fullmatch=True)
    names = (*DEPENDENCIES, *OPTIONAL_DEPENDENCIES)
    floor = {name: data.draw(version) for name in names}
    newest = {name: data.draw(version) for name in names}
    newest["python"] = data.draw(st.from_regex(r"3\.[0-9]{1,2}", fullmatch=True))
    newest["torch"] = data.draw(version) + data.draw(st.sampled_from(["", "+cpu", "+cu121"]))
    tested = {"torch": newest["torch"], "python": newest["python"]}
    line = supported_versions.render(newest, floor | tested, PYPROJECT)
    assert supported_versions.parse(line) == (floor, newest)


@pytest.mark.bad_input
@pytest.mark.parametrize("missing", ["transformers", "numba", "torch", "python"])
@pytest.mark.parametrize("run", ["newest", "floor"])
def test_a_run_that_recorded_no_version_of_a_package_is_an_error_naming_it(tmp_path, capsys, missing, run):
    files = {name: recorded(tmp_path, name) for name in ("newest", "floor")}
    files[run] = recorded(tmp_path, run, **{missing: None})
    (tmp_path / "README.md").write_text("")
    assert supported_versions.main(["report", str(files["newest"]), str(files["floor"]), "--readme",
                                    str(tmp_path / "README.md")]) == 2  # fmt: skip
    error = capsys.readouterr().err
    assert f"The {run} run recorded no version of {missing}; record it with" in error


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "line",
    [
        "**Supported versions**: transformers 5.18.0 -> 5.25.0",  # another prefix
        supported_versions.PREFIX + "transformers 5.18.0 -> 5.25.0.",  # no Python / torch tail
        supported_versions.PREFIX + "transformers 5.18.0 -> 5.25.0; Python 3.10+, torch 2.13.0 tested.",
    ],
)
def test_a_malformed_readme_line_is_refused_by_parse_and_reported_loudly(tmp_path, capsys, line):
    with pytest.raises(ValueError, match="Not a line of the form"):
        supported_versions.parse(line)
    newest, floor = recorded(tmp_path, "newest"), recorded(tmp_path, "floor")
    (tmp_path / "README.md").write_text(line + "\n")
    assert supported_versions.main(["report", str(newest), str(floor), "--readme", str(tmp_path / "README.md")]) == 0
    assert "!!!   Not a line of the form" in capsys.readouterr().out
