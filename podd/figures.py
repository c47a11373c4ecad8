"""Figures and tables for the notebooks: one style, one place on disk, provenance beside each file.

Every figure the notebooks make goes through :func:`save_figure` (PNG + PDF + JSON sidecar) and
every table through :func:`save_table` (CSV + Markdown + JSON sidecar). The sidecar is a
:func:`podd.provenance.provenance` record — dataset and whether it was the full dataset, a subset
or a stand-in, profile, hyper-parameters, seeds, commit, device, library versions, wall time —
because a number without provenance is not a result. All files are written atomically
through :mod:`podd.io`, so an interrupted notebook never leaves half a figure behind.

Every plot lives here: accuracy curves, the class-order scatter, label matrices, poster panels,
and the figures of the methods themselves (PoCO's traversal and class tiling, figs 4 and 7).
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.patches import Rectangle

from podd import io as podd_io
from podd.display import poster_image
from podd.layout import check_grid
from podd.ordering import check_distances, check_traversal, mean_neighbour_distance, zigzag
from podd.poster import PosterGeometry
from podd.provenance import provenance

#: Environment variable that says where every saved figure and table goes. ``make figures`` sets
#: it to the committed ``paper_figures/``; without it, figures go to ``runs/figures/`` (ignored by
#: git), so that running a notebook by hand or with papermill never rewrites the committed files.
FIGURES_DIR_ENV = "PODD_FIGURES_DIR"
#: The default folder (relative to the source checkout, else to the working directory).
DEFAULT_FIGURES_DIR = Path("runs") / "figures"

#: Set by ``podd.make_figures`` to the commit a whole build started from (see _check_sidecar).
BUILD_COMMIT_ENV = "PODD_BUILD_COMMIT"

#: Colours used for the same meaning in every figure.
COLORS = {"podd": "#0072B2", "baseline": "#D55E00", "reported": "#555555", "real": "#009E73", "highlight": "#CC79A7"}

_STYLE_RC = {
    "figure.dpi": 110,
    "savefig.dpi": 200,
    "savefig.bbox": "tight",
    "axes.titlesize": 12,
    "axes.labelsize": 11,
    "legend.fontsize": 9,
    "legend.frameon": False,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "image.interpolation": "nearest",  # posters are pixels: never blur them
    "pdf.fonttype": 42,  # editable text in the PDFs
}


def use_style() -> None:
    """The one matplotlib/seaborn style of every podd figure (call once, before plotting)."""
    import seaborn as sns

    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind", rc=_STYLE_RC)


def figures_dir(directory: str | os.PathLike | None = None) -> Path:
    """Where figures and tables go: ``directory`` > ``$PODD_FIGURES_DIR`` > ``runs/figures/``.

    ``runs/figures/`` is under the root of the source checkout this module lives in (found
    through ``pyproject.toml``; git ignores ``runs/``); outside a checkout, ``./runs/figures``.
    The committed ``paper_figures/`` is written only when asked for: ``make figures`` sets
    ``PODD_FIGURES_DIR`` to it.
    """
    if directory is not None:
        return Path(directory)
    if os.environ.get(FIGURES_DIR_ENV):
        return Path(os.environ[FIGURES_DIR_ENV])
    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file():
        return root / DEFAULT_FIGURES_DIR
    return Path.cwd() / DEFAULT_FIGURES_DIR


def _check_name(name: str) -> str:
    if not name or any(ch in name for ch in "/\\") or name.startswith("."):
        raise ValueError(
            f"figure/table name {name!r} must be a plain file stem such as "
            f"'table2_cifar10' (no folders, no leading dot)"
        )
    return name


def make_sidecar(
    *,
    dataset: str,
    data_source: str,
    profile: str,
    hyperparameters: Mapping[str, Any] | None = None,
    seeds: Sequence[int] | int | None = None,
    wall_time_s: float | None = None,
    device: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A provenance record for a figure or table (checks ``data_source`` — it must be honest).

    ``data_source`` is the dataset's ``source`` ('full' | 'subset' | 'stand-in'), or 'none' for
    figures computed from geometry alone (poster sizes, traversals) that use no data at all.
    """
    if data_source not in ("full", "subset", "stand-in", "none"):
        raise ValueError(f"data_source {data_source!r} must be 'full', 'subset', 'stand-in' or 'none' (no data used)")
    if isinstance(seeds, int):
        seeds = [seeds]
    return provenance(
        dataset=dataset,
        data_source=data_source,
        profile=profile,
        hyperparameters=dict(hyperparameters or {}),
        seeds=list(seeds) if seeds is not None else [],
        wall_time_s=None if wall_time_s is None else round(float(wall_time_s), 3),
        device=device,
        **extra,
    )


_REQUIRED_SIDECAR_KEYS = ("dataset", "data_source", "profile")


def _check_sidecar(sidecar: Mapping[str, Any]) -> dict[str, Any]:
    missing = [k for k in _REQUIRED_SIDECAR_KEYS if k not in sidecar]
    if missing:
        raise ValueError(
            f"sidecar lacks {missing}; build it with podd.figures.make_sidecar(...) "
            f"or podd.provenance.provenance(dataset=..., data_source=..., profile=...)"
        )
    record = dict(sidecar)
    if "git_commit" not in record:  # a bare dict: add the environment facts
        record = provenance(**record)
    if os.environ.get(BUILD_COMMIT_ENV):
        # `make figures` records the commit the build started from: the figures it writes are
        # tracked files, so the tree is "dirty" from the second figure on by construction.
        record["git_commit"] = os.environ[BUILD_COMMIT_ENV]
    return record


def _report(paths: Mapping[str, Path], verbose: bool) -> None:
    if verbose:
        first = next(iter(paths.values()))
        kinds = ", ".join(f".{k}" for k in paths if k != "json")
        print(f"saved {first.parent.name}/{first.stem} ({kinds}) with provenance {first.stem}.json")


def save_figure(
    fig: matplotlib.figure.Figure,
    name: str,
    sidecar: Mapping[str, Any],
    directory: str | os.PathLike | None = None,
    verbose: bool = True,
) -> dict[str, Path]:
    """Write ``name.png``, ``name.pdf`` and ``name.json`` (the provenance sidecar); return the paths.

    The PDF carries no creation date, so regenerating an unchanged figure gives the same file.
    """
    name = _check_name(name)
    out = figures_dir(directory)
    record = _check_sidecar(sidecar)
    paths = {"png": out / f"{name}.png", "pdf": out / f"{name}.pdf", "json": out / f"{name}.json"}
    for kind, metadata in (
        ("png", {"Software": None}),
        ("pdf", {"CreationDate": None, "ModDate": None, "Producer": None}),
    ):
        buffer = io.BytesIO()
        fig.savefig(buffer, format=kind, metadata=metadata)
        podd_io.write_bytes(paths[kind], buffer.getvalue())
    record.update(kind="figure", name=name, files=[p.name for p in paths.values()])
    podd_io.write_json(paths["json"], record)
    _report(paths, verbose)
    return paths


def _markdown_cell(value: Any) -> str:
    if value is None or (not isinstance(value, (str, list, tuple, dict)) and pd.isna(value)):
        return "–"
    text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(df: pd.DataFrame, index: bool = False) -> str:
    """A GitHub-flavoured Markdown table (no ``tabulate`` needed); missing values shown as '–'."""
    frame = df.reset_index() if index else df
    header = [str(c) for c in frame.columns]
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) for c in frame.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if num else "---" for num in numeric) + "|"]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(_markdown_cell(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def save_table(
    df: pd.DataFrame,
    name: str,
    sidecar: Mapping[str, Any],
    directory: str | os.PathLike | None = None,
    caption: str | None = None,
    verbose: bool = True,
) -> dict[str, Path]:
    """Write ``name.csv``, ``name.md`` and ``name.json`` (the provenance sidecar); return the paths."""
    name = _check_name(name)
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"save_table expects a pandas DataFrame, got {type(df).__name__}")
    out = figures_dir(directory)
    record = _check_sidecar(sidecar)
    paths = {"csv": out / f"{name}.csv", "md": out / f"{name}.md", "json": out / f"{name}.json"}
    podd_io.write_text(paths["csv"], df.to_csv(index=False))
    markdown = to_markdown(df)
    if caption:
        markdown = f"{caption}\n\n{markdown}"
    markdown += (
        f"\n<sub>dataset: {record['dataset']} ({record['data_source']}), profile: "
        f"{record['profile']}, commit: {record.get('git_commit', 'unknown')}; "
        f"full provenance in {name}.json</sub>\n"
    )
    podd_io.write_text(paths["md"], markdown)
    record.update(
        kind="table",
        name=name,
        files=[p.name for p in paths.values()],
        columns=[str(c) for c in df.columns],
        rows=int(len(df)),
    )
    podd_io.write_json(paths["json"], record)
    _report(paths, verbose)
    return paths


# --------------------------------------------------------------------------- plotting helpers


def show_image(ax, image: np.ndarray, title: str | None = None) -> None:
    """Show a uint8 (H, W, c) or (H, W) image pixel-exactly, without ticks."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    if title:
        ax.set_title(title)


def patch_gallery(
    images: np.ndarray,
    titles: Sequence[str] | None = None,
    ncols: int = 10,
    size: float = 1.35,
    suptitle: str | None = None,
):
    """A grid of small images (uint8, (N, H, W, c)); returns the figure."""
    images = np.asarray(images)
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = max(1, math.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + 0.4), squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i < n:
            show_image(ax, images[i], titles[i] if titles is not None else None)
            ax.title.set_fontsize(7)
        else:
            ax.axis("off")
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


def annotate_class_areas(
    ax, class_order, size: tuple[int, int], class_names: Sequence[str], fontsize: float = 8
) -> None:
    """Write each class's name at the centre of its area on a poster shown in ``ax``.

    ``class_order`` is the ``(rows, cols)`` class grid (−1 empty), ``size`` the poster ``(H, W)``;
    cell ``(r, q)`` covers rows ``[r·H/rows, (r+1)·H/rows)`` as in :func:`podd.layout.class_map`.
    """
    order = np.asarray(class_order)
    rows, cols = order.shape
    H, W = size
    if rows * cols > 60:  # too many to read on one poster: the class grid says it better
        return
    for r in range(rows):
        for q in range(cols):
            k = int(order[r, q])
            if k >= 0:
                ax.text(
                    (q + 0.5) * W / cols - 0.5,
                    (r + 0.5) * H / rows - 0.5,
                    str(class_names[k]),
                    ha="center",
                    va="center",
                    fontsize=fontsize,
                    bbox={"facecolor": "white", "alpha": 0.75, "pad": 1.5, "linewidth": 0},
                )


def plot_label_matrix(
    ax, labels, class_names: Sequence[str], title: str | None = None, max_patches: int | None = None
) -> None:
    """Soft labels (N patches × K classes) as a heat map: which class each patch teaches."""
    labels = np.asarray(labels, dtype=float)
    if max_patches is not None:
        labels = labels[:max_patches]
    image = ax.imshow(labels.T, aspect="auto", cmap="viridis", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xlabel("patch index (row-major over the poster)")
    ax.set_ylabel("class")
    if len(class_names) <= 30:  # beyond that, names would overlap: keep index ticks
        ax.set_yticks(range(len(class_names)))
        ax.set_yticklabels(class_names, fontsize=7)
    else:
        ax.set_ylabel("class index")
    ax.grid(False)
    ax.figure.colorbar(image, ax=ax, label="label probability")
    if title:
        ax.set_title(title)


def plot_class_map(ax, class_map, class_names: Sequence[str], title: str | None = None) -> None:
    """The up-sampled class order (H × W class indices, −1 empty) with class names at cell centres."""
    cmap_values = np.asarray(class_map)
    masked = np.ma.masked_less(cmap_values, 0)
    ax.imshow(masked, cmap="tab20", interpolation="nearest", vmin=0, vmax=max(len(class_names) - 1, 1))
    for k, name in enumerate(class_names if len(class_names) <= 40 else []):
        ys, xs = np.nonzero(cmap_values == k)
        if len(ys):
            ax.text(
                xs.mean(),
                ys.mean(),
                name,
                ha="center",
                va="center",
                fontsize=7,
                bbox={"facecolor": "white", "alpha": 0.7, "pad": 1, "linewidth": 0},
            )
    ax.set_xlabel("poster x (pixels)")
    ax.set_ylabel("poster y (pixels)")
    ax.grid(False)
    if title:
        ax.set_title(title)


def plot_accuracy_vs(
    ax,
    df: pd.DataFrame,
    x: str,
    *,
    label: str,
    color: str | None = None,
    mean: str = "accuracy",
    std: str | None = "std",
    marker: str = "o",
) -> None:
    """A measured accuracy curve with ± std error bars (one row of ``df`` per point)."""
    frame = df.sort_values(x)
    ax.errorbar(
        frame[x],
        frame[mean],
        yerr=None if std is None else frame[std],
        label=label,
        color=color,
        marker=marker,
        capsize=3,
        linewidth=1.5,
    )


def plot_reference_line(ax, value: float | None, label: str, color: str | None = None, linestyle: str = "--") -> None:
    """A horizontal reference (e.g. the baseline at 1 IPC); nothing when ``value`` is missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return
    ax.axhline(value, color=color or COLORS["reported"], linestyle=linestyle, linewidth=1.2, label=label)


def plot_score_vs_accuracy(
    ax,
    scores: Iterable[float],
    accuracies: Iterable[float],
    stds: Iterable[float] | None = None,
    *,
    r: float | None = None,
    highlight: tuple[float, float, str] | None = None,
    also: Sequence[tuple[float, float, str]] = (),
) -> None:
    """Class-order ablation (§5.3): ordering score vs accuracy, with a least-squares trend line.

    ``highlight``: one order drawn as a star (PoCO's); ``also``: more named orders drawn as
    diamonds (e.g. the dataset's own order), outside the trend line like the star.
    """
    scores = np.asarray(list(scores), dtype=float)
    accuracies = np.asarray(list(accuracies), dtype=float)
    yerr = None if stds is None else np.asarray(list(stds), dtype=float)
    ax.errorbar(scores, accuracies, yerr=yerr, fmt="o", color=COLORS["podd"], capsize=3, label="random class orderings")
    if len(scores) >= 2 and np.ptp(scores) > 0:
        slope, intercept = np.polyfit(scores, accuracies, 1)
        xs = np.linspace(scores.min(), scores.max(), 50)
        trend = "least-squares fit" + (f" (Pearson r = {r:.2f})" if r is not None else "")
        ax.plot(xs, slope * xs + intercept, color=COLORS["reported"], linestyle="--", label=trend)
    if highlight is not None:
        hx, hy, hlabel = highlight
        ax.scatter([hx], [hy], marker="*", s=160, color=COLORS["highlight"], zorder=5, label=hlabel)
    for i, (ox, oy, olabel) in enumerate(also):
        ax.scatter([ox], [oy], marker="D", s=60, color=plt.get_cmap("tab10")(i + 2), zorder=5, label=olabel)
    ax.set_xlabel("ordering score = 1 / Σ neighbour distances (higher = more similar neighbours)")
    ax.set_ylabel("test accuracy (%)")
    ax.legend(loc="best")


def plot_loss_curves(ax, curves: Mapping[str, Sequence[Sequence[float]]]) -> None:
    """Outer loss against outer step for several runs named ``MODE-ipcR-seedS``: one colour per
    method (mode and IPC), one line per seed — does the poster learn within its steps?"""
    import seaborn as sns

    groups: dict[str, list] = {}
    for name, points in sorted(curves.items()):
        groups.setdefault(name.rsplit("-seed", 1)[0], []).append(np.asarray(points, dtype=float))
    palette = sns.color_palette("colorblind", max(len(groups), 1))
    for color, (method, runs) in zip(palette, groups.items()):
        for i, run in enumerate(runs):
            if len(run):
                ax.plot(run[:, 0], run[:, 1], color=color, alpha=0.8, linewidth=1.2, label=method if i == 0 else None)
    ax.set_xlabel("outer step")
    ax.set_ylabel("outer loss (cross-entropy on real images)")
    ax.legend(loc="best")


# --------------------------------------------------------------------------- PoCO (§4.2)


def _setup_grid_axes(ax, rows: int, cols: int) -> None:
    ax.set_xlim(-0.5, cols - 0.5)
    ax.set_ylim(rows - 0.5, -0.5)  # row 0 at the top, like the poster
    ax.set_aspect("equal")
    ax.set_xticks(range(cols))
    ax.set_yticks(range(rows))
    ax.set_xticks([x - 0.5 for x in range(cols + 1)], minor=True)
    ax.set_yticks([y - 0.5 for y in range(rows + 1)], minor=True)
    ax.grid(which="minor", color="0.6", linewidth=0.8)
    ax.tick_params(which="minor", length=0)
    ax.set_xlabel("column")
    ax.set_ylabel("row")


def plot_traversal(ax, rows: int, cols: int, alternate: bool = True, traversal=None, numbers: bool = True):
    """Draw the visiting order of the class grid (paper fig. 4) on a matplotlib Axes.

    Each cell shows its step number; arrows join consecutive cells. ``traversal`` overrides the
    default :func:`podd.ordering.zigzag` ``(rows, cols, alternate)``. Returns ``ax``.
    """
    rows, cols = check_grid(rows, cols)
    cells = zigzag(rows, cols, alternate) if traversal is None else check_traversal(traversal, rows, cols)
    _setup_grid_axes(ax, rows, cols)
    ys, xs = cells[:, 0].tolist(), cells[:, 1].tolist()
    for i in range(len(xs) - 1):
        ax.annotate(
            "",
            xy=(xs[i + 1], ys[i + 1]),
            xytext=(xs[i], ys[i]),
            arrowprops=dict(arrowstyle="-|>", color="tab:blue", lw=1.5, shrinkA=9, shrinkB=9),
        )
    ax.scatter(xs[:1], ys[:1], s=120, color="tab:green", zorder=3, label="start")
    if numbers:
        for i, (x, y) in enumerate(zip(xs, ys)):
            ax.text(
                x,
                y,
                str(i),
                ha="center",
                va="center",
                fontsize=9,
                zorder=4,
                bbox=dict(boxstyle="circle,pad=0.2", fc="white", ec="none", alpha=0.8),
            )
    ax.set_title(f"{'zigzag' if alternate else 'anti-diagonal'} traversal, {rows}x{cols}")
    return ax


def plot_class_tiling(
    ax,
    order,
    class_names: Sequence[str],
    clusters=None,
    distances=None,
    cmap=None,
    fontsize: float | None = None,
):
    """Write each class name in its grid cell (paper fig. 7) on a matplotlib Axes.

    Args:
        order: (rows, cols) class indices, −1 for empty cells (shown grey).
        class_names: the K names (underscores shown as spaces; long names wrap).
        clusters: optional (K,) integer cluster id per class: cells are coloured by cluster.
        distances: optional (K, K) matrix: cells are coloured by the mean distance to their
            placed 4-neighbours (pale yellow = close neighbours, orange/red = far), unless
            ``clusters`` is given.
        cmap: matplotlib colormap name (default ``"tab20"`` for clusters, ``"YlOrRd"`` for distances).
        fontsize: text size in points; default fits the longest word into a cell.

    Returns ``ax``.
    """
    order = torch.as_tensor(order, dtype=torch.long)
    if order.dim() != 2:
        raise ValueError(f"order must be a (rows, cols) matrix, got shape {tuple(order.shape)}.")
    rows, cols = order.shape
    k = len(class_names)
    if order.numel() and int(order.max()) >= k:
        raise ValueError(f"order holds class index {int(order.max())} but only {k} class names were given.")

    colours = np.ones((rows, cols, 4))
    colours[order.numpy() < 0] = (0.85, 0.85, 0.85, 1.0)
    if clusters is not None:
        clusters = np.asarray(clusters)
        if clusters.shape != (k,):
            raise ValueError(f"clusters must have one entry per class ({k}), got shape {clusters.shape}.")
        cm = plt.get_cmap(cmap or "tab20")
        for r in range(rows):
            for c in range(cols):
                if order[r, c] >= 0:
                    # blended with white so black names stay readable on dark colours
                    colours[r, c] = 0.6 * np.asarray(cm(int(clusters[order[r, c]]) % cm.N)) + 0.4
    elif distances is not None:
        dist = check_distances(distances)
        fit = mean_neighbour_distance(order, dist)
        valid = order >= 0
        lo, hi = float(fit[valid].min()), float(fit[valid].max())
        cm = plt.get_cmap(cmap or "YlOrRd")
        norm = (fit - lo) / max(hi - lo, 1e-12)
        for r in range(rows):
            for c in range(cols):
                if valid[r, c]:
                    colours[r, c] = cm(float(norm[r, c]) * 0.7)  # avoid the darkest end: text stays readable
    ax.imshow(colours, interpolation="nearest")
    _setup_grid_axes(ax, rows, cols)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("")
    ax.set_ylabel("")

    labels = {}
    for r in range(rows):
        for c in range(cols):
            idx = int(order[r, c])
            labels[(r, c)] = "" if idx < 0 else str(class_names[idx]).replace("_", " ").replace(" ", "\n")
    if fontsize is None:
        fontsize = _fitting_fontsize(ax, [t for t in labels.values() if t], rows, cols)
    for (r, c), text in labels.items():
        if text:
            ax.text(c, r, text, ha="center", va="center", fontsize=fontsize, linespacing=0.9)
    return ax


def _fitting_fontsize(ax, texts: list[str], rows: int, cols: int) -> float:
    """Largest font size (4-14 pt) at which every text fits in a grid cell of ``ax``.

    Measured with the figure's renderer where it has one (Agg, the notebook default); otherwise
    estimated at about 0.5 em per character.
    """
    fig = ax.figure
    bbox = ax.get_window_extent().transformed(fig.dpi_scale_trans.inverted())
    cell_w, cell_h = 72.0 * bbox.width / cols, 72.0 * bbox.height / rows  # points
    if not texts:
        return 10.0
    lines = max(t.count("\n") + 1 for t in texts)
    words = {w for t in texts for w in t.split("\n")}
    try:
        renderer = fig.canvas.get_renderer()
        probe = ax.text(0, 0, "", fontsize=10)
        width = 0.0
        for w in words:  # at 10 pt, in points
            probe.set_text(w)
            width = max(width, probe.get_window_extent(renderer).width * 72.0 / fig.dpi)
        probe.remove()
    except Exception:  # noqa: BLE001 - a backend without a renderer: estimate instead
        width = 10 * 0.5 * max(len(w) for w in words)
    by_width = 10.0 * 0.88 * cell_w / max(width, 1e-6)
    by_height = 0.85 * cell_h / (1.1 * lines)
    return float(np.clip(min(by_width, by_height), 4.0, 14.0))


# --------------------------------------------------------------------------- the poster (§4.1)


def plot_patch_grid(
    ax,
    image,
    geometry: PosterGeometry,
    highlight=None,
    *,
    color: str = "white",
    highlight_color: str = "red",
    alpha: float = 0.35,
):
    """Draw the poster with its patch windows on a matplotlib axis (the paper's fig 3).

    Args:
        ax: a matplotlib ``Axes``.
        image: ``(H, W, c)`` uint8 array (from :func:`podd.display.poster_image`) or a ``(c, H, W)`` tensor
            (min-max scaled for display).
        geometry: the poster's geometry.
        highlight: patch indices (ints, row-major) to draw boldly; ``None`` for none.
    Returns:
        ``ax``.
    """
    if isinstance(image, torch.Tensor):
        image = poster_image(image)
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None, interpolation="nearest")
    h, w = geometry.patch_hw
    positions = geometry.positions().tolist()
    for y, x in positions:
        ax.add_patch(Rectangle((x - 0.5, y - 0.5), w, h, fill=False, edgecolor=color, linewidth=0.6, alpha=alpha))
    for n in [] if highlight is None else highlight:
        n = int(n)
        if not 0 <= n < len(positions):
            raise ValueError(f"highlight patch {n} is out of range 0..{len(positions) - 1}")
        y, x = positions[n]
        ax.add_patch(Rectangle((x - 0.5, y - 0.5), w, h, fill=False, edgecolor=highlight_color, linewidth=2.0))
    H, W = geometry.size
    ax.set_xlim(-0.5, W - 0.5)
    ax.set_ylim(H - 0.5, -0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"{geometry.num_patches} patches of {h}×{w} on a {H}×{W} poster (IPC {geometry.ipc:.2f})")
    return ax
