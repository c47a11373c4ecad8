"""The paper's reported numbers, from one data file, and tables that put them beside measured ones.

``reported_results.json`` (next to this module) holds every accuracy the paper reports in Tables 1
and 2 — typed once from the paper, never measured here. Table 1's cells for PoDD below one IPC did
not survive the paper's text extraction except CIFAR-100 at 0.4 IPC (35.7); the others are absent
from the file on purpose, and show up as missing ("–") in every table, never guessed.

Measured numbers never enter this file: notebooks compute them and :func:`side_by_side` joins them
with the reported ones in columns whose names say which is which.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import lru_cache
from importlib import resources
from typing import Any

import pandas as pd

#: Column names used in every measured-vs-reported table.
MEASURED = "measured accuracy (%)"
MEASURED_STD = "measured ± std"
REPORTED = "reported by the paper (%)"
MEASURED_ON = "measured on"

_COLUMNS = ["table", "group", "method", "ipc", "dataset", "accuracy"]


@lru_cache(maxsize=1)
def _document() -> dict[str, Any]:
    text = resources.files("podd").joinpath("reported_results.json").read_text(encoding="utf-8")
    return json.loads(text)


def about() -> str:
    """Where the numbers come from and what is deliberately missing."""
    return _document()["_about"]


def load_reported(
    table: str | None = None, dataset: str | None = None, methods: Iterable[str] | None = None
) -> pd.DataFrame:
    """The paper's reported accuracies as a DataFrame (columns table, group, method, ipc, dataset,
    accuracy), optionally filtered by ``table`` ('table1' | 'table2'), ``dataset`` and ``methods``.

    A dataset the paper does not report (e.g. 'digits', a stand-in) gives an empty frame, not an
    error: there is simply nothing to compare with.
    """
    frame = pd.DataFrame(_document()["rows"], columns=_COLUMNS)
    frame["ipc"] = frame["ipc"].astype(float)
    if table is not None:
        if table not in ("table1", "table2"):
            raise ValueError(f"table {table!r} must be 'table1' or 'table2'")
        frame = frame[frame["table"] == table]
    if dataset is not None:
        frame = frame[frame["dataset"] == dataset]
    if methods is not None:
        frame = frame[frame["method"].isin(list(methods))]
    return frame.reset_index(drop=True)


def reported_accuracy(method: str, dataset: str, ipc: float | None, table: str = "table2") -> float | None:
    """One reported number, or ``None`` where the paper has none (or it was lost in extraction)."""
    frame = load_reported(table=table, dataset=dataset, methods=[method])
    if ipc is None:
        frame = frame[frame["ipc"].isna()]
    else:
        frame = frame[(frame["ipc"] - float(ipc)).abs() < 1e-9]
    return None if frame.empty else float(frame["accuracy"].iloc[0])


def paper_dataset(name: str) -> str | None:
    """The paper's dataset key for a podd dataset name, or ``None`` (digits, folders, npz files)."""
    return name if name in _document()["datasets"] else None


def side_by_side(
    measured: pd.DataFrame,
    reported: pd.DataFrame,
    *,
    on=("method", "ipc"),
    measured_on: str,
    keep_reported_only: bool = True,
) -> pd.DataFrame:
    """Measured and reported accuracies in one table, in columns that say which is which.

    ``measured`` has the ``on`` columns plus ``accuracy`` and ``std`` (percent) and any extra
    columns to keep; ``reported`` is a
    frame from :func:`load_reported`. ``measured_on`` says what the measured numbers were measured
    on (e.g. "smoke profile, synthetic stand-in with CIFAR-10's shape") and is repeated in its own
    column so a reader of the CSV alone cannot mistake them for the paper's setting. Rows only the
    paper has (other methods) are kept when ``keep_reported_only``.
    """
    on = list(on)
    missing = [c for c in on + ["accuracy", "std"] if c not in measured.columns]
    if missing:
        raise ValueError(f"measured table lacks columns {missing}; it needs {on + ['accuracy', 'std']}")
    # Extra measured columns (e.g. the poster's exact IPC, patch count) are kept, after the keys.
    left = measured.rename(columns={"accuracy": MEASURED, "std": MEASURED_STD})
    right = reported[on + ["accuracy"]].rename(columns={"accuracy": REPORTED})
    # The same (method, ipc) can only be reported once per dataset and table; join on it.
    how = "outer" if keep_reported_only else "left"
    table = left.merge(right, on=on, how=how, sort=False)
    table[MEASURED_ON] = [measured_on if pd.notna(v) else "–" for v in table[MEASURED]]
    order = {m: i for i, m in enumerate(pd.unique(pd.concat([reported["method"], measured["method"]])))}
    if "method" in on:
        table = (
            table.assign(_order=table["method"].map(order))
            .sort_values(
                ["_order"] + [c for c in on if c != "method"], ascending=[True] + [False] * (len(on) - 1), kind="stable"
            )
            .drop(columns="_order")
        )
    for column in (MEASURED, MEASURED_STD, REPORTED):
        table[column] = table[column].astype(float).round(1)
    extra = [c for c in left.columns if c not in on + [MEASURED, MEASURED_STD]]
    for column in extra:  # the outer join turns integer columns (patch counts) into floats
        if pd.api.types.is_integer_dtype(measured[column]) and pd.api.types.is_float_dtype(table[column]):
            table[column] = table[column].astype("Int64")
    table = table[on + extra + [MEASURED, MEASURED_STD, REPORTED, MEASURED_ON]]
    return table.reset_index(drop=True)
