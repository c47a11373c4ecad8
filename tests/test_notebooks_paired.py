"""Every notebook is a Jupytext pair that agrees with itself, and is parameterised for papermill.

The ``.py`` percent file is the source; the committed ``.ipynb`` is its executed twin. Editing one
without syncing the other (``jupytext --sync notebooks/NAME.py``) fails here, with the first
differing cell named by jupytext's own comparison.
"""

from pathlib import Path

import jupytext
import pytest
from jupytext.compare import compare_notebooks

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
EXPECTED = (
    "00_quickstart",
    "01_poster",
    "02_poco",
    "03_poddl",
    "table1",
    "table2",
    "ablation_class_order",
    "ablation_patch_number",
    "discussion",
)
SOURCES = sorted(p for p in NOTEBOOKS.glob("*.py") if p.name != "conftest.py")


def _inputs(nb):
    return [(c.cell_type, c.source.strip(), tuple(c.metadata.get("tags", []))) for c in nb.cells]


def test_all_nine_notebooks_exist_as_pairs():
    names = {p.stem for p in SOURCES}
    assert set(EXPECTED) <= names, f"missing notebook sources: {sorted(set(EXPECTED) - names)}"
    missing = [n for n in names if not (NOTEBOOKS / f"{n}.ipynb").is_file()]
    assert not missing, f"no paired .ipynb for {missing}; run: jupytext --sync notebooks/NAME.py"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_ipynb_and_py_agree(source):
    text_nb = jupytext.read(source)
    ipynb_path = source.with_suffix(".ipynb")
    ipynb_nb = jupytext.read(ipynb_path)
    formats = ipynb_nb.metadata.get("jupytext", {}).get("formats", "")
    assert formats == "ipynb,py:percent", f"{ipynb_path.name} is not paired (formats={formats!r})"
    # jupytext's own comparison: sources and cell types of both representations must match.
    compare_notebooks(text_nb, ipynb_nb, fmt="py:percent")
    assert _inputs(text_nb) == _inputs(ipynb_nb), (
        f"{source.name} and {ipynb_path.name} disagree; run: jupytext --sync {source}"
    )


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_one_parameters_cell_with_dataset_and_profile(source):
    nb = jupytext.read(source)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{source.name}: {len(cells)} cells tagged 'parameters', want exactly 1"
    code = cells[0].source
    assert "dataset =" in code and "profile =" in code, f"{source.name}: parameters cell lacks them"
    assert 'os.environ.get("PODD_PROFILE", "paper")' in code


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_committed_notebook_is_executed(source):
    nb = jupytext.read(source.with_suffix(".ipynb"))
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.get("execution_count") for c in code), (
        f"{source.stem}.ipynb is not fully executed; run: make figures PROFILE=smoke"
    )
