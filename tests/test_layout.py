"""Tests for podd.layout: the class grid shared by the poster, PoCO and the labels."""

from __future__ import annotations

import pytest

from podd.layout import default_class_grid, identity_order


def test_default_class_grids():
    assert default_class_grid(10) == (2, 5)
    assert default_class_grid(100) == (10, 10)
    assert default_class_grid(200) == (10, 20)
    assert default_class_grid(12) == (3, 4)
    assert default_class_grid(1) == (1, 1)
    assert default_class_grid(7) == (2, 4)  # prime: near-square with one empty cell
    for k in range(1, 300):
        rows, cols = default_class_grid(k)
        assert rows <= cols and rows * cols >= k


def test_identity_order():
    assert identity_order(10, 3, 4).tolist() == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, -1, -1]]
    with pytest.raises(ValueError, match="too few for 10 classes"):
        identity_order(10, 3, 3)


def _podd_imports(module: str) -> set[str]:
    """Every podd module that ``module``'s source imports, at module or function level."""
    import ast
    from pathlib import Path

    import podd

    tree = ast.parse((Path(podd.__file__).parent / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("podd"):
            found |= {node.module} if node.module != "podd" else {f"podd.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("podd")}
    return found


def test_layout_is_a_leaf_and_poster_does_not_import_labels():
    # layout is read by poster, labels and ordering: it must depend on none of them.
    assert _podd_imports("layout") == set()
    # labels builds on the poster's geometry; the poster must not reach back (no cycle).
    assert "podd.labels" not in _podd_imports("poster")
