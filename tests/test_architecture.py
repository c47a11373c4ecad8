"""The package's import graph has no cycles, counting imports inside functions (a lazy import
that closes a cycle is still a cycle: it only moves the failure to run time).

podd's own modules are imported at the top of a module, where the dependency shows. A
function-local import of a podd module is kept only for a measured reason, said in a comment
line ``# lazy: WHY`` directly above it (one comment covers the consecutive imports below it),
e.g. the ``podd`` command's imports of the engine, which load torch (``podd --help`` answers
without it). :func:`test_podd_imports_podd_at_the_top_unless_said_why` counts them.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "podd"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _absolute(node: ast.ImportFrom, importer: str, is_package: bool) -> str:
    """The absolute module of ``from X import …`` in ``importer``, relative forms included
    (``from .models import …``; level 1 is the importer's package, or the package itself for an
    ``__init__``)."""
    if node.level == 0:
        return node.module
    package = importer.split(".") if is_package else importer.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph() -> dict[str, set[str]]:
    """{module: podd modules it imports anywhere in its source}."""
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in files.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                module = _absolute(node, name, path.name == "__init__.py")
                targets |= {module} | {f"{module}.{a.name}" for a in node.names}
        graph[name] = {t for t in targets if t in files and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                found.append(sorted(component))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_podd_has_no_import_cycles():
    graph = import_graph()
    assert {"podd.distiller", "podd.run_loop", "podd.poster", "podd.labels"} <= set(graph)
    assert "podd.distiller" in graph["podd.run_loop"]  # the graph sees real edges
    assert "podd.models" in graph["podd.evaluate"]  # relative imports too
    assert cycles(graph) == []


def test_the_engine_never_imports_the_run_loop_or_notebook_code():
    graph = import_graph()
    for engine in (
        "podd.ratbptt",
        "podd.distiller",
        "podd.modes",
        "podd.poster",
        "podd.labels",
        "podd.layout",
        "podd.ordering",
    ):
        assert not {m for m in graph[engine] if m.startswith(("podd.run_loop", "podd.notebook"))}, engine


def test_the_names_a_user_chooses_from_live_in_one_leaf():
    """podd.choices imports nothing (so ``podd --help`` needs no torch), and the library checks
    against the same tuples the command line offers."""
    import argparse

    from podd import choices, cli, executors, modes, parallel, presets

    assert import_graph()["podd.choices"] == set()
    assert modes.MODES == choices.MODES and presets.PROFILES is choices.PROFILES
    assert parallel.VARIANTS is choices.VARIANTS and executors.KINDS is choices.EXECUTORS
    distill = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices[
        "distill"
    ]
    offered = {a.dest: tuple(a.choices) for a in distill._actions if a.choices}
    assert offered["mode"] == choices.MODES and offered["profile"] == choices.PROFILES
    assert offered["distributed"] == choices.VARIANTS and offered["executor"] == choices.EXECUTORS


def test_the_config_is_plain_data_without_the_engine():
    """podd.config (DistillConfig, its types and validation) imports no engine module, not even
    lazily, and no torch: a config is made, checked and saved before anything heavy loads."""
    import subprocess
    import sys

    graph = import_graph()
    reached, todo = set(), ["podd.config"]
    while todo:
        for module in graph[todo.pop()] - reached:
            reached.add(module)
            todo.append(module)
    assert reached <= {"podd.choices", "podd.layout"}, reached
    engine = {
        "podd.distiller",
        "podd.ratbptt",
        "podd.engine",
        "podd.modes",
        "podd.poster",
        "podd.labels",
        "podd.models",
        "podd.ordering",
        "podd.memory",
        "podd.devices",
    }
    assert "podd.config" in graph["podd.distiller"] and not reached & engine
    code = "import sys, podd.config; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_presets_ask_the_mode_instead_of_comparing_its_name():
    """What a mode does differently is podd.modes' (its PosterMode objects): podd.presets and
    podd.distiller never compare a value with a mode's name."""
    from podd.choices import MODES

    for module in ("presets", "distiller", "config"):
        tree = ast.parse((PACKAGE / f"{module}.py").read_text())
        compared = {
            c.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Compare)
            for c in [node.left, *node.comparators]
            if isinstance(c, ast.Constant)
        }
        assert not compared & set(MODES), (module, compared & set(MODES))


#: Function-local podd imports without a ``# lazy:`` comment, per file, that predate the rule
#: (the notebook helpers); these counts may only go down.
UNMARKED_LOCAL_IMPORTS = {
    "podd/notebooks/configs.py": 2,
    "podd/notebooks/data_choice.py": 3,
    "podd/notebooks/embeddings.py": 2,
    "podd/notebooks/tables.py": 5,
}


def local_podd_imports(path: Path, name: str | None = None) -> tuple[list[int], list[int]]:
    """(marked, unmarked): the lines of the function-local imports of podd modules in ``path``,
    split by whether a ``# lazy: WHY`` comment line stands directly above their group (consecutive
    import statements in one block)."""
    name, lines = name or _module_name(path), path.read_text().splitlines()
    tree = ast.parse("\n".join(lines))

    def is_podd(node) -> bool:
        if isinstance(node, ast.ImportFrom):
            return _absolute(node, name, path.name == "__init__.py").split(".")[0] == "podd"
        return isinstance(node, ast.Import) and any(a.name.split(".")[0] == "podd" for a in node.names)

    marked, unmarked, seen = [], [], set()
    for function in ast.walk(tree):
        if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(function):
            for body in (getattr(node, f, None) for f in ("body", "orelse", "finalbody", "handlers")):
                group_marked = False
                for statement in body if isinstance(body, list) else []:
                    if not isinstance(statement, (ast.Import, ast.ImportFrom)):
                        group_marked = False
                        continue
                    above = lines[statement.lineno - 2].strip() if statement.lineno > 1 else ""
                    if above.startswith("# lazy:") and above[len("# lazy:") :].strip():
                        group_marked = True
                    if is_podd(statement) and statement.lineno not in seen:
                        seen.add(statement.lineno)
                        (marked if group_marked else unmarked).append(statement.lineno)
    return marked, unmarked


def test_the_local_import_finder_sees_the_lazy_comment(tmp_path):
    import textwrap

    source = textwrap.dedent("""
        import podd.io


        def f():
            import json

            from podd.io import write_json


        def g():
            # lazy: loads torch
            import torch

            from podd.io import write_json
            from podd import runs
            x = 1
            from podd import modes
    """)
    path = tmp_path / "probe.py"
    path.write_text(source)
    assert local_podd_imports(path, "podd.probe") == ([15, 16], [8, 18])


def test_podd_imports_podd_at_the_top_unless_said_why():
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        marked, unmarked = local_podd_imports(path)
        key = path.relative_to(PACKAGE.parent).as_posix()
        if len(unmarked) > UNMARKED_LOCAL_IMPORTS.get(key, 0):
            found[key] = unmarked
    assert not found, (
        f"function-local imports of podd modules {found}: import them at the top of "
        f"the module, or say why not in a '# lazy: WHY' comment line directly above"
    )
