"""Result tables: our measured rows beside the paper's reported ones (labelled, never mixed), the
poster pixel-budget table and the fixed labels' majority shares (both geometry only)."""

from __future__ import annotations

from podd.data.builtin import DATASET_SHAPES
from podd.notebooks.data_choice import measured_on
from podd.notebooks.names import pretty

PAPER_DATASETS = ("cifar10", "cifar100", "cub200", "tinyimagenet")


def measured_and_reported(table_id: str, outcomes, ds, profile: str, requested: str, like: str | None = None):
    """(measured rows, the paper's reported rows, both side by side) for one of the paper's tables.

    ``like`` names the paper dataset to compare with when ``requested`` is not one (e.g. an
    ``npz:`` copy of CIFAR-10); for data the paper does not use the reported rows are empty.
    """
    import pandas as pd

    from podd import reported

    measured = pd.DataFrame([o.row for o in outcomes])
    paper_name = reported.paper_dataset(like or requested)
    paper_rows = (
        reported.load_reported(table_id, dataset=paper_name)
        if paper_name
        else reported.load_reported(table_id).iloc[0:0]
    )
    table = reported.side_by_side(measured, paper_rows, measured_on=measured_on(ds, profile, requested))
    return measured, paper_rows, table


def poster_budget_table(ipcs=(1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3), datasets=PAPER_DATASETS):
    """Poster sizes and pixel budgets (§4.1) for the paper's datasets: geometry only, no data.

    One row per (dataset, IPC): class grid, poster H×W from :func:`podd.poster.poster_size`, its
    pixels, the pixels of ``IPC × K`` separate images, and the poster's exact IPC after rounding.
    """
    import pandas as pd

    rows = [_budget_row(name, ipc) for name in datasets for ipc in ipcs]
    return pd.DataFrame(rows)


def _budget_row(name: str, ipc: float) -> dict:
    from podd.poster import make_geometry

    k, shape = DATASET_SHAPES[name]
    g = make_geometry(k, shape, ipc=ipc)
    return {
        "dataset": pretty(name),
        "classes": k,
        "image": f"{shape[0]}×{shape[1]}×{shape[2]}",
        "grid": f"{g.grid[0]}×{g.grid[1]}",
        "IPC": ipc,
        "poster H×W": f"{g.size[0]}×{g.size[1]}",
        "poster pixels": g.pixels,
        "pixels of IPC·K images": round(ipc * k * shape[1] * shape[2]),
        "exact IPC": round(g.ipc, 4),
    }


def majority_share_table(dataset: str, profile: str, ipcs=(1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3)):
    """How much of each patch its fixed label's class owns (§4.3), for ``dataset``'s preset
    poster at every IPC of ``ipcs``: geometry only, no data.

    One row per IPC, the poster and patch counts that :func:`podd.presets.resolve_config` gives
    under ``profile``, then the majority class's share of a patch's pixels
    (:func:`podd.labels.majority_share`, classes in dataset order): mean, lowest, and the
    fraction of patches where it is under one half. The 1-IPC baseline's images each lie in one
    class (share 1).
    """
    import pandas as pd

    from podd import labels, layout
    from podd.modes import plan_geometry
    from podd.presets import resolve_config

    k, shape = DATASET_SHAPES[dataset]
    rows = []
    for ipc in ipcs:
        geometry = plan_geometry(resolve_config(dataset, profile, ipc=ipc, verbose=False), k, shape)
        share = labels.majority_share(layout.identity_order(k, *geometry.grid), geometry)
        rows.append(
            {
                "IPC": ipc,
                "poster H×W": f"{geometry.size[0]}×{geometry.size[1]}",
                "patches": f"{geometry.patches[0]}×{geometry.patches[1]}",
                "mean share": round(float(share.mean()), 3),
                "lowest share": round(float(share.min()), 3),
                "patches under one half": round(float((share < 0.5).float().mean()), 3),
            }
        )
    return pd.DataFrame(rows)
