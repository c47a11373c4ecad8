"""``make figures [PROFILE=quick]``: re-execute every notebook with papermill; they rewrite paper_figures/.

Where the figures go is :func:`podd.figures.figures_dir`: ``$PODD_FIGURES_DIR``, else
``runs/figures/`` (not committed). ``make figures`` sets ``PODD_FIGURES_DIR=paper_figures``; run
directly, ``python -m podd.make_figures`` writes to ``runs/figures/`` unless told otherwise.

Each notebook in ``notebooks/`` is a Jupytext pair: the ``.py`` percent file is the source, the
``.ipynb`` its executed twin. This script

1. rebuilds each ``.ipynb``'s inputs from its ``.py`` source (so an edit of the ``.py`` is what runs),
2. executes it with papermill, ``-p profile PROFILE`` (and ``-p dataset NAME`` if given), writing
   the executed copy to ``runs/notebooks/PROFILE/`` (ignored by git); the notebooks themselves save
   every table and figure of the paper, with provenance sidecars, into the figures folder,
3. with ``--update-notebooks`` (the default for the ``smoke`` profile, the profile the committed
   notebooks are executed under), writes the executed notebook back as ``notebooks/NAME.ipynb``
   without papermill's injected-parameters cell and bookkeeping, so the pair stays in sync.

Usage: ``python -m podd.make_figures --profile smoke [--only table1 table2] [--dataset cifar10]``.
On local data: ``--dataset npz:PATH --like cifar10 --n-val 1000`` (the notebooks then name their
outputs after ``like`` and label every number a subset).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

from podd.figures import BUILD_COMMIT_ENV, figures_dir, to_markdown
from podd.io import write_text
from podd.provenance import git_commit

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"

#: Execution order: the §4 pieces first, then the experiments (the README's reading order).
ORDER = (
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


def notebook_from_source(name: str):
    """The notebook as its ``.py`` source defines it (inputs only), paired formats set."""
    import jupytext

    source = NOTEBOOKS / f"{name}.py"
    if not source.is_file():
        raise FileNotFoundError(f"no notebook source {source}; known notebooks: {', '.join(ORDER)}")
    nb = jupytext.read(source)
    nb.metadata.setdefault("jupytext", {})["formats"] = "ipynb,py:percent"
    nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    return nb


def strip_papermill(nb):
    """Drop papermill's injected-parameters cell and its per-cell/notebook bookkeeping."""
    nb = copy.deepcopy(nb)
    nb.cells = [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    for cell in nb.cells:
        for key in ("papermill", "execution"):
            cell.metadata.pop(key, None)
        if cell.metadata.get("tags") == []:  # papermill adds empty tag lists everywhere
            cell.metadata.pop("tags")
    nb.metadata.pop("papermill", None)
    return nb


def run_notebook(
    name: str,
    profile: str,
    out_dir: Path,
    dataset: str | None = None,
    update_notebook: bool = False,
    timeout_s: int | None = None,
    extra: dict | None = None,
) -> float:
    """Execute one notebook with papermill; return its wall time in seconds. ``extra``: more
    papermill parameters (e.g. ``like``, ``n_val``)."""
    import nbformat
    import papermill

    out_dir.mkdir(parents=True, exist_ok=True)
    source_nb = notebook_from_source(name)
    staged = out_dir / f".{name}.input.ipynb"
    nbformat.write(source_nb, staged)
    parameters = {"profile": profile}
    if dataset:
        parameters["dataset"] = dataset
    parameters.update(extra or {})
    executed = out_dir / f"{name}.ipynb"
    start = time.perf_counter()
    try:
        papermill.execute_notebook(
            str(staged),
            str(executed),
            parameters=parameters,
            cwd=str(NOTEBOOKS),
            kernel_name="python3",
            execution_timeout=timeout_s,
            progress_bar=False,
        )
    finally:
        staged.unlink(missing_ok=True)
    seconds = time.perf_counter() - start
    if update_notebook:
        update_committed(name, executed)
    return seconds


def parse_param(item: str) -> tuple[str, object]:
    """``KEY=VALUE`` → (key, value): VALUE as JSON where it parses (``ipcs=[0.9,0.5]``,
    ``steps=400``, ``embeddings=null``), else the text itself (``class_order=identity``)."""
    import json

    key, sep, text = item.partition("=")
    if not sep or not key:
        raise SystemExit(f"--param {item!r}: write KEY=VALUE, e.g. --param class_order=identity")
    try:
        return key, json.loads(text)
    except json.JSONDecodeError:
        return key, text


def update_committed(name: str, executed: Path) -> None:
    """Write an executed notebook back as ``notebooks/NAME.ipynb`` (papermill bookkeeping removed)."""
    import nbformat

    clean = strip_papermill(nbformat.read(executed, as_version=4))
    write_text(NOTEBOOKS / f"{name}.ipynb", nbformat.writes(clean) + "\n")


def write_index(directory: Path | None = None) -> Path:
    """``INDEX.md`` of the figures folder (``paper_figures/`` under ``make figures``): every
    figure and table with what its sidecar says it was made from (dataset, data source, profile,
    commit) — regenerated after each build."""
    import json

    import pandas as pd

    folder = figures_dir(directory)
    rows = []
    for sidecar in sorted(folder.glob("*.json")):
        try:
            record = json.loads(sidecar.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(record, dict) or "profile" not in record:
            continue
        rows.append(
            {
                "name": record.get("name", sidecar.stem),
                "kind": record.get("kind", "?"),
                "files": " ".join(Path(f).suffix for f in record.get("files", [])),
                "dataset": record.get("dataset"),
                "data": record.get("data_source"),
                "profile": record.get("profile"),
                "commit": str(record.get("git_commit", "?"))[:12],
                "made (UTC)": record.get("created_utc"),
            }
        )
    text = (
        f"# Index of {folder.name}/\n\nGenerated by `python -m podd.make_figures` from the JSON "
        "sidecars; see README.md for how to regenerate.\n\n"
    )
    text += to_markdown(pd.DataFrame(rows)) if rows else "(no figures yet)\n"
    return write_text(folder / "INDEX.md", text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m podd.make_figures",
        description="Re-execute the notebooks with papermill; they regenerate the figures in "
        "$PODD_FIGURES_DIR (make figures: paper_figures/), else runs/figures/.",
    )
    parser.add_argument("--profile", default="smoke", choices=("smoke", "quick", "paper"))
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="NAME",
        choices=ORDER,
        help="run only these notebooks (default: all, in reading order)",
    )
    parser.add_argument(
        "--dataset", default=None, help="pass -p dataset NAME to every notebook (default: each notebook's own)"
    )
    parser.add_argument(
        "--like", default=None, help="with --dataset npz:PATH: the paper dataset the file holds (-p like)"
    )
    parser.add_argument(
        "--n-val", type=int, default=None, help="hold out this many training images as the test set (-p n_val)"
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="another papermill parameter for every notebook (-p KEY VALUE); "
        "VALUE is JSON where it parses, e.g. --param class_order=identity "
        "--param 'ipcs=[0.9,0.5,0.3]'",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="folder for the executed copies (default: runs/notebooks/PROFILE)"
    )
    parser.add_argument(
        "--update-notebooks",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write the executed notebooks back into notebooks/ (default: only "
        "for profile smoke with no --dataset, the committed state)",
    )
    parser.add_argument("--timeout", type=int, default=None, help="seconds allowed per cell")
    args = parser.parse_args(argv)
    update = args.update_notebooks
    if update is None:
        update = args.profile == "smoke" and args.dataset is None
    out = args.out or ROOT / "runs" / "notebooks" / args.profile
    import os

    # One commit for the whole build, taken before anything is written (kernels inherit it).
    os.environ[BUILD_COMMIT_ENV] = git_commit()
    print(f"[figures] building from commit {os.environ[BUILD_COMMIT_ENV]}", flush=True)
    total = 0.0
    names = list(args.only or ORDER)
    extra = {k: v for k, v in (("like", args.like), ("n_val", args.n_val)) if v is not None}
    extra.update(parse_param(item) for item in args.param)
    for name in names:
        print(f"[figures] {name} (profile {args.profile}) ...", flush=True)
        # Notebooks are written back only after all have run: a tracked file changed mid-build
        # would mark the git commit in the later sidecars as "-dirty".
        seconds = run_notebook(name, args.profile, out, args.dataset, False, args.timeout, extra)
        total += seconds
        print(f"[figures] {name}: {seconds:.1f} s", flush=True)
    if update:
        for name in names:
            update_committed(name, out / f"{name}.ipynb")
    index = write_index()
    print(
        f"[figures] done in {total:.1f} s; executed copies in {out}; "
        f"figures and tables in {index.parent} (listed in {index.name})",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
