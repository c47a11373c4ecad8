"""Figures and tables land on disk complete, with provenance; the paper's numbers load as reported."""

import json
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from podd import figures, notebooks, reported  # noqa: E402
from podd.ordering import poco  # noqa: E402
from podd.poster import make_geometry  # noqa: E402


def _sidecar(**extra):
    return figures.make_sidecar(
        dataset="digits",
        data_source="full",
        profile="smoke",
        hyperparameters={"ipc": 1.0},
        seeds=[0],
        wall_time_s=1.23456,
        **extra,
    )


def test_save_figure_writes_png_pdf_and_sidecar(tmp_path):
    figures.use_style()
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    ax.set(title="t", xlabel="x (px)", ylabel="y (%)")
    paths = figures.save_figure(fig, "demo", _sidecar(), directory=tmp_path)
    plt.close(fig)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo.json", "demo.pdf", "demo.png"]
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert paths["pdf"].read_bytes()[:5] == b"%PDF-"
    record = json.loads(paths["json"].read_text())
    for key in (
        "dataset",
        "data_source",
        "profile",
        "hyperparameters",
        "seeds",
        "git_commit",
        "device",
        "versions",
        "wall_time_s",
    ):
        assert key in record, key
    assert record["data_source"] == "full" and record["seeds"] == [0]
    assert record["wall_time_s"] == pytest.approx(1.235)
    assert record["files"] == ["demo.png", "demo.pdf", "demo.json"]


def test_save_table_writes_csv_markdown_and_sidecar(tmp_path, monkeypatch):
    monkeypatch.setenv(figures.FIGURES_DIR_ENV, str(tmp_path))  # the env var redirects output
    df = pd.DataFrame({"method": ["PoDD", "RaT|BPTT"], "accuracy": [59.1, math.nan]})
    paths = figures.save_table(df, "tab", _sidecar(), caption="Caption.")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tab.csv", "tab.json", "tab.md"]
    assert pd.read_csv(paths["csv"]).shape == (2, 2)
    markdown = paths["md"].read_text()
    assert markdown.startswith("Caption.")
    assert "| method | accuracy |" in markdown and "|---|---:|" in markdown
    assert "RaT\\|BPTT" in markdown and "| – |" in markdown  # escaped pipe, missing shown as –
    record = json.loads(paths["json"].read_text())
    assert record["kind"] == "table" and record["rows"] == 2 and record["profile"] == "smoke"


def test_sidecar_must_say_what_the_data_was(tmp_path):
    with pytest.raises(ValueError, match="data_source"):
        figures.make_sidecar(dataset="x", data_source="real", profile="smoke")
    with pytest.raises(ValueError, match="sidecar lacks"):
        figures.save_table(pd.DataFrame({"a": [1]}), "t", {"dataset": "x"}, directory=tmp_path)
    with pytest.raises(ValueError, match="plain file stem"):
        figures.save_table(pd.DataFrame({"a": [1]}), "../t", _sidecar(), directory=tmp_path)
    assert not list(tmp_path.iterdir())


def test_reported_table2_has_the_papers_rows():
    t2 = reported.load_reported("table2")
    assert list(pd.unique(t2["method"])) == [
        "BPTT",
        "FRePO",
        "RCIG",
        "RaT-BPTT",
        "DSA",
        "DM",
        "MTT",
        "FTD",
        "TESLA",
        "PoDD",
        "full dataset",
    ]
    wide = t2.pivot(index="method", columns="dataset", values="accuracy")
    assert wide.loc["PoDD", ["cifar10", "cifar100", "cub200", "tinyimagenet"]].tolist() == [59.1, 38.3, 16.2, 20.0]
    assert wide.loc["RaT-BPTT", "cifar10"] == 53.2
    assert wide.loc["full dataset", ["cifar10", "cifar100", "cub200", "tinyimagenet"]].tolist() == [
        83.5,
        55.3,
        20.1,
        37.6,
    ]
    assert math.isnan(wide.loc["BPTT", "cub200"])  # "–" in the paper stays missing
    assert t2.loc[t2["method"] == "full dataset", "ipc"].isna().all()


def test_reported_table1_holds_only_known_cells():
    t1 = reported.load_reported("table1")
    below_one = t1[t1["ipc"] < 1.0]
    assert below_one[["method", "ipc", "dataset", "accuracy"]].values.tolist() == [
        ["PoDD", 0.4, "cifar100", 35.7]
    ]  # every other Table 1 cell is absent
    assert reported.reported_accuracy("PoDD", "cifar10", 0.5, table="table1") is None
    assert reported.reported_accuracy("RaT-BPTT", "cub200", 1.0, table="table1") == 13.8
    assert reported.load_reported("table2", dataset="digits").empty


def test_side_by_side_labels_measured_and_reported():
    measured = pd.DataFrame(
        {"method": ["PoDD", "PoDD"], "ipc": [1.0, 0.4], "accuracy": [10.04, 9.0], "std": [1.0, 2.0]}
    )
    table = reported.side_by_side(measured, reported.load_reported("table1", "cifar100"), measured_on="smoke stand-in")
    row = table[(table["method"] == "PoDD") & (table["ipc"] == 0.4)].iloc[0]
    assert row[reported.MEASURED] == 9.0 and row[reported.REPORTED] == 35.7
    assert row[reported.MEASURED_ON] == "smoke stand-in"
    reported_only = table[table["method"] == "full dataset"].iloc[0]
    assert math.isnan(reported_only[reported.MEASURED]) and reported_only[reported.MEASURED_ON] == "–"
    with pytest.raises(ValueError, match="lacks columns"):
        reported.side_by_side(measured.drop(columns="std"), reported.load_reported("table1"), measured_on="x")


def test_make_figures_strips_papermill_bookkeeping():
    import nbformat

    from podd.make_figures import strip_papermill

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("x = 2", metadata={"tags": ["injected-parameters"]}),
        nbformat.v4.new_code_cell("print(x)", metadata={"tags": [], "papermill": {}, "execution": {}}),
    ]
    nb.metadata["papermill"] = {"parameters": {"x": 2}}
    clean = strip_papermill(nb)
    assert [c.source for c in clean.cells] == ["x = 1", "print(x)"]
    assert clean.cells[1].metadata == {} and "papermill" not in clean.metadata
    assert len(nb.cells) == 3  # the input is left untouched


def test_slug_and_index(tmp_path):
    from podd.make_figures import write_index

    assert notebooks.slug("cifar10") == "cifar10"
    assert notebooks.slug("npz:/data/cifar10-train-subset.npz") == "npz_cifar10-train-subset"
    figures.save_table(pd.DataFrame({"a": [1]}), "t", _sidecar(), directory=tmp_path, verbose=False)
    index = write_index(tmp_path).read_text()
    assert "| t | table | .csv .md .json | digits | full | smoke |" in index


def test_build_commit_overrides_the_sidecar_commit(tmp_path, monkeypatch):
    monkeypatch.setenv(figures.BUILD_COMMIT_ENV, "abc123")
    paths = figures.save_table(pd.DataFrame({"a": [1]}), "t", _sidecar(), directory=tmp_path, verbose=False)
    assert json.loads(paths["json"].read_text())["git_commit"] == "abc123"


def test_plot_loss_curves_one_colour_per_method_one_line_per_seed():
    curves = {
        "podd-ipc1-seed0": [[10, 2.3], [20, 2.1]],
        "podd-ipc1-seed1": [[10, 2.2], [20, 2.0]],
        "baseline-ipc1-seed0": [[10, 2.3], [20, 2.2]],
    }
    fig, ax = plt.subplots()
    figures.plot_loss_curves(ax, curves)
    lines = ax.get_lines()
    assert len(lines) == 3
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == ["baseline-ipc1", "podd-ipc1"]
    colours = {line.get_label(): line.get_color() for line in lines}
    podd_lines = [line for line in lines if list(line.get_ydata()) in ([2.3, 2.1], [2.2, 2.0])]
    assert podd_lines[0].get_color() == podd_lines[1].get_color() != colours["baseline-ipc1"]
    plt.close(fig)


def test_figures_go_to_runs_figures_unless_make_figures_asks_for_paper_figures(monkeypatch):
    """Notebooks run by hand or with papermill never rewrite the committed paper_figures/."""
    from pathlib import Path

    root = Path(figures.__file__).resolve().parent.parent
    monkeypatch.delenv(figures.FIGURES_DIR_ENV, raising=False)
    assert figures.figures_dir() == root / "runs" / "figures"
    assert "/runs/" in (root / ".gitignore").read_text().split()
    makefile = (root / "Makefile").read_text()
    recipe = makefile.split("\nfigures:")[1].split("\n\n")[0]
    assert "PODD_FIGURES_DIR=$(CURDIR)/paper_figures" in recipe


# ---------------------------------------------------------------- PoCO figures (figs 4 and 7)


def test_plot_traversal_and_class_tiling():
    fig, axes = plt.subplots(1, 3, figsize=(12, 3))
    figures.plot_traversal(axes[0], 2, 5)
    assert [t.get_text() for t in axes[0].texts if t.get_text()] == [str(i) for i in range(10)]
    figures.plot_traversal(axes[1], 3, 3, alternate=False)
    cluster = torch.arange(10) % 2  # two interleaved clusters of classes
    d = torch.where(cluster[:, None] == cluster[None, :], 0.1, 1.0).fill_diagonal_(0.0)
    order = poco(d, 2, 5)
    names = [f"class_{i}" for i in range(10)]
    figures.plot_class_tiling(axes[2], order, names, clusters=cluster)
    shown = {t.get_text() for t in axes[2].texts}
    assert shown == {f"class\n{i}" for i in range(10)}
    assert all(t.get_fontsize() >= 4 for t in axes[2].texts)
    fig2, ax = plt.subplots()
    padded = poco(d[:7, :7], 3, 3)
    figures.plot_class_tiling(ax, padded, names[:7], distances=d[:7, :7])
    assert len(ax.texts) == 7
    plt.close(fig)
    plt.close(fig2)


# ---------------------------------------------------------------- the poster (fig 3)


def test_plot_patch_grid():
    geometry = make_geometry(10, (3, 32, 32), size=(60, 153), patches=(6, 16))
    fig, ax = plt.subplots()
    figures.plot_patch_grid(ax, torch.randn(3, 60, 153), geometry, highlight=[0, 95])
    assert len(ax.patches) == 96 + 2
    with pytest.raises(ValueError, match="highlight patch 96"):
        figures.plot_patch_grid(ax, torch.randn(3, 60, 153), geometry, highlight=[96])
    plt.close(fig)


def test_make_figures_params_are_json_where_they_parse():
    from podd.make_figures import parse_param

    assert parse_param("ipcs=[0.9,0.5,0.3]") == ("ipcs", [0.9, 0.5, 0.3])
    assert parse_param("n_val=1000") == ("n_val", 1000)
    assert parse_param("embeddings=null") == ("embeddings", None)
    assert parse_param("class_order=identity") == ("class_order", "identity")
    assert parse_param("dataset=npz:/a=b.npz") == ("dataset", "npz:/a=b.npz")
    with pytest.raises(SystemExit, match="KEY=VALUE"):
        parse_param("identity")
