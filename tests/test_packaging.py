"""environment.yml (conda) and pyproject.toml (pip) declare the same dependencies."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

ROOT = Path(__file__).resolve().parents[1]
# conda package name -> pip distribution name, where they differ
CONDA_TO_PIP = {"pytorch": "torch"}
CONDA_ONLY = {"python", "pip"}  # the interpreter and the installer, not package dependencies


def normalise(name: str) -> str:
    """PEP 503 normalisation plus the conda aliases: open-clip-torch == open_clip_torch, pytorch == torch."""
    name = re.sub(r"[-_.]+", "-", name.strip().lower())
    return CONDA_TO_PIP.get(name, name)


def split_requirement(text: str) -> tuple[str, str]:
    """'scikit-learn>=1.3' -> ('scikit-learn', '>=1.3'); extras and markers are dropped."""
    text = text.split(";")[0].strip()
    match = re.match(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*(.*)$", text)
    assert match, f"cannot parse requirement {text!r}"
    return normalise(match.group(1)), match.group(3).replace(" ", "")


def pyproject_requirements(path: Path = ROOT / "pyproject.toml") -> dict[str, str]:
    project = tomllib.loads(path.read_text())["project"]
    requirements = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        requirements += extra
    return dict(split_requirement(r) for r in requirements if not r.startswith("podd"))


def environment_yml(path: Path = ROOT / "environment.yml") -> tuple[dict[str, str], list[str]]:
    """The conda dependencies and the pip sub-list, read without a YAML library (kept simple on purpose)."""
    conda, pip, in_deps, in_pip = {}, [], False, False
    for raw in path.read_text().splitlines():
        line = raw.split("#")[0].rstrip()
        if not line.strip():
            continue
        if not raw.startswith(" "):
            in_deps = line.startswith("dependencies:")
            in_pip = False
            continue
        if not in_deps:
            continue
        item = line.strip()
        if item.startswith("- pip:"):
            in_pip = True
            continue
        entry = item[2:].strip() if item.startswith("- ") else item
        indent = len(line) - len(line.lstrip())
        if in_pip and indent > 2:
            pip.append(entry)
            continue
        in_pip = False
        name, spec = split_requirement(entry)
        if name not in CONDA_ONLY:
            conda[name] = spec
    return conda, pip


def test_every_dependency_is_declared_in_both_files():
    pip_side = pyproject_requirements()
    conda_side, _ = environment_yml()
    assert pip_side, "no dependencies read from pyproject.toml"
    only_pip = sorted(set(pip_side) - set(conda_side))
    only_conda = sorted(set(conda_side) - set(pip_side))
    assert not only_pip, f"in pyproject.toml but not in environment.yml: {only_pip}"
    assert not only_conda, f"in environment.yml but not in pyproject.toml: {only_conda}"


def test_version_bounds_agree():
    pip_side = pyproject_requirements()
    conda_side, _ = environment_yml()
    differ = {
        n: (pip_side[n], conda_side[n]) for n in pip_side.keys() & conda_side.keys() if pip_side[n] != conda_side[n]
    }
    assert not differ, f"version bounds differ (pyproject, environment.yml): {differ}"


def test_issue_dependencies_are_declared():
    required = {
        "torch",
        "torchvision",
        "open-clip-torch",
        "numpy",
        "scikit-learn",
        "matplotlib",
        "seaborn",
        "pandas",
        "tqdm",
        "jupyterlab",
        "jupytext",
        "papermill",
        "nbval",
        "pytest",
    }
    assert required <= set(pyproject_requirements())


def test_conda_environment_installs_the_package_itself():
    _, pip = environment_yml()
    assert any(entry in ("-e .", ".", "-e ./") for entry in pip), f"environment.yml pip section: {pip}"


def test_normalisation_of_names():
    assert normalise("open-clip-torch") == normalise("open_clip_torch") == "open-clip-torch"
    assert normalise("pytorch") == "torch" and normalise("Scikit_Learn") == "scikit-learn"


def test_the_check_sees_a_missing_dependency(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\ndependencies = ["torch>=2.4", "open_clip_torch", "tqdm"]\n'
        '[project.optional-dependencies]\ndev = ["pytest>=8.0"]\n'
    )
    (tmp_path / "environment.yml").write_text(
        "name: x\ndependencies:\n  - python>=3.10\n  - pip\n  - pytorch>=2.4\n  - open-clip-torch\n"
        "  - pytest>=8.0\n  - pip:\n      - -e .\n"
    )
    conda, pip = environment_yml(tmp_path / "environment.yml")
    assert set(pyproject_requirements(tmp_path / "pyproject.toml")) - set(conda) == {"tqdm"}
    assert pip == ["-e ."] and conda["torch"] == ">=2.4"
