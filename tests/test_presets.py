"""One resolver from (dataset, profile, request) to a run's settings, used by every entry point.

``podd distill``, ``podd.experiments`` (the demo, the benchmarks) and the notebooks must build the
SAME config for the same request; built-in dataset names are spelling-insensitive; the paper
presets give the authors' posters.
No data is downloaded and nothing is distilled here (local data is a tiny temporary .npz).
"""

from __future__ import annotations

import numpy as np
import pytest

from podd import poster
from podd.cli import build_parser, config_from_args
from podd.config import DistillConfig
from podd.data import canonical_name, load_dataset, stand_in
from podd.experiments import job_config
from podd.notebooks import run_config
from podd.presets import resolve_config


@pytest.fixture(autouse=True)
def data_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("PODD_DATA", str(tmp_path / "data"))
    monkeypatch.delenv("PODD_PROFILE", raising=False)


def cli_config(*argv):
    return config_from_args(build_parser().parse_args(["distill", *argv]))


def fake(name, num_classes, shape):
    """A small stand-in carrying ``name`` (what a notebook's smoke data looks like)."""
    return stand_in(name, num_classes, shape, 2, 1, seed=0)


# ---------------------------------------------------------------------------------------------
# names
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "spelling, canonical",
    [
        ("cifar10", "cifar10"),
        ("CIFAR10", "cifar10"),
        ("cifar-10", "cifar10"),
        ("CIFAR_10", "cifar10"),
        (" Cifar 10 ", "cifar10"),
        ("CIFAR-100", "cifar100"),
        ("cifar_100", "cifar100"),
        ("Digits", "digits"),
        ("CUB-200", "cub200"),
        ("cub_200_2011", "cub200"),
        ("Tiny-ImageNet", "tinyimagenet"),
        ("tiny_imagenet", "tinyimagenet"),
        ("tiny-imagenet-200", "tinyimagenet"),
        ("npz:/Data/My-Set_1.npz", "npz:/Data/My-Set_1.npz"),
        ("NPZ:/a/B.npz", "npz:/a/B.npz"),
        ("imagefolder:./Some Folder", "imagefolder:./Some Folder"),
    ],
)
def test_canonical_name(spelling, canonical):
    assert canonical_name(spelling) == canonical


@pytest.mark.parametrize("bad", ["cifar1000", "mnist", "", "npz:"])
def test_unknown_names_fail_clearly(bad):
    with pytest.raises(ValueError, match="valid|give a path"):
        canonical_name(bad)
    with pytest.raises(ValueError, match="valid|give a path"):
        resolve_config(bad, "quick")


def test_load_dataset_accepts_every_spelling():
    assert load_dataset("DIGITS").name == load_dataset("digits").name == "digits"


@pytest.mark.parametrize("spelling", ["CIFAR10", "cifar-10", "Cifar_10"])
def test_any_spelling_gets_the_cifar10_preset(spelling):
    reference = resolve_config("cifar10", "paper")
    assert resolve_config(spelling, "paper") == reference
    assert cli_config("--dataset", spelling, "--ipc", "0.9", "--profile", "paper") == reference
    assert reference.dataset == "cifar10" and reference.patches == (6, 16)


# ---------------------------------------------------------------------------------------------
# the paper's posters
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "dataset, size, patches",
    [
        ("cifar10", (60, 153), (6, 16)),
        ("cifar100", (303, 303), (20, 20)),
        ("cub200", (302, 610), (30, 60)),
        ("tinyimagenet", (608, 1211), (20, 40)),
    ],
)
@pytest.mark.parametrize("profile", ["paper", "quick"])
def test_paper_presets_give_the_authors_posters(dataset, size, patches, profile):
    config = resolve_config(dataset, profile)
    assert (config.poster_size, config.patches) == (size, patches)
    assert poster.PAPER_POSTERS[dataset]["size"] == size
    from podd.data import DATASET_SHAPES

    k, shape = DATASET_SHAPES[dataset]
    geometry = poster.make_geometry(
        k, shape, config.ipc, grid=config.grid, size=config.poster_size, patches=config.patches
    )
    assert (geometry.size, geometry.patches) == (size, patches)
    assert abs(geometry.ipc - 0.9) < 0.01


def test_the_distiller_builds_the_authors_cifar10_poster():
    from podd.distiller import Distiller

    data = fake("cifar10", 10, (3, 32, 32))
    config = resolve_config("cifar10", "smoke", steps=0, eval_models=0, zca=False)
    assert config.poster_size == (60, 153) and config.class_order == "identity"
    distiller = Distiller(config, dataset=data)
    assert (distiller.geometry.size, distiller.geometry.patches) == ((60, 153), (6, 16))
    # a poster size that contradicts the budget is refused, not silently used
    with pytest.raises(ValueError, match="poster_size"):
        Distiller(config.replace(ipc=0.5), dataset=data)


def test_poster_size_is_validated_and_round_trips():
    config = resolve_config("cifar100", "paper")
    again = DistillConfig.from_dict({**config.to_dict(), "poster_size": [303, 303]})
    assert again == config and again.poster_size == (303, 303)
    assert (
        DistillConfig.from_dict({k: v for k, v in config.to_dict().items() if k != "poster_size"}).poster_size is None
    )  # old runs
    with pytest.raises(ValueError, match="poster_size"):
        config.replace(poster_size=(0, 303)).validate()


# ---------------------------------------------------------------------------------------------
# other budgets and other data
# ---------------------------------------------------------------------------------------------
def test_other_budgets_keep_the_authors_patch_count_or_their_stride():
    config = resolve_config("cifar10", "quick", ipc=0.5)
    assert poster.make_geometry(10, (3, 32, 32), 0.5, grid=config.grid).size == (45, 113)
    # below the authors' IPC their stride alone would thin the patches out to 3×11 ...
    assert poster.patch_counts_for_ipc(10, (3, 32, 32), 0.5, (2, 5), stride=(6, 8)) == (3, 11)
    # ... so their count (6×16) stays, as far as the poster has room (35 rows: 4 positions)
    assert config.poster_size is None and config.patches == (6, 16)
    assert resolve_config("cifar10", "quick", ipc=0.3).patches == (4, 16)
    # above it their stride gives more than their count
    assert resolve_config("cifar10", "quick", ipc=1.0).patches == (6, 17)
    assert config.distill_batch is None  # every patch, as the authors
    # a preset's batch larger than the poster's patches is capped at the patch count
    assert resolve_config("cifar10", "paper", ipc=0.3).distill_batch == 64
    assert resolve_config("cifar100", "paper", ipc=0.5).patches == (20, 20)
    # overrides are never adjusted
    assert resolve_config("cifar10", "quick", ipc=0.5, patches=[2, 2]).patches == (2, 2)
    assert resolve_config("cifar10", "quick", ipc=0.5, distill_batch=50).distill_batch == 50


def test_digits_keeps_its_patches():
    for ipc in (1.0, 0.5):
        assert resolve_config("digits", "quick", ipc=ipc).patches == (4, 10)
    assert resolve_config("digits", "quick", ipc=0.3).patches == (2, 10)  # 9×22: two rows fit


def test_generic_data_gets_the_paper_overlap():
    config = resolve_config("npz:/nowhere/x.npz", "quick", ipc=0.5, num_classes=10, image_shape=(3, 32, 32))
    assert config.grid == (2, 5) and config.depth == 3
    assert config.patches[0] * config.patches[1] >= 30
    # the engine's default for a poster without patch counts is the same rule
    assert poster.make_geometry(10, (3, 32, 32), 0.5).patches == config.patches
    # without the data's shape, the engine derives grid, patches and depth itself
    bare = resolve_config("npz:/nowhere/x.npz", "quick", ipc=0.5)
    assert (bare.grid, bare.patches, bare.depth) == (None, None, None)


def test_paper_stride_fraction_is_the_authors_cifar10_stride():
    geometry = poster.make_geometry(10, (3, 32, 32), **poster.PAPER_POSTERS["cifar10"])
    assert poster.geometry_stride(geometry) == (6, 8)
    assert tuple(32 * f for f in poster.PAPER_STRIDE_FRACTION) == (6, 8)


def test_smoke_rules(tmp_path):
    assert resolve_config("cifar10", "smoke").class_order == "identity"
    np.save(tmp_path / "e.npy", np.eye(10, dtype=np.float32))
    embeddings = str(tmp_path / "e.npy")
    assert resolve_config("cifar10", "smoke", embeddings=embeddings).class_order == embeddings
    assert resolve_config("cifar10", "quick").class_order == "poco"
    assert resolve_config("tinyimagenet", "smoke").zca is False
    assert resolve_config("tinyimagenet", "quick").zca is True
    assert resolve_config("cifar10", "smoke").zca is True
    assert resolve_config("cifar10", "quick").device == "auto"


def test_like_needs_a_built_in_dataset():
    with pytest.raises(ValueError, match="like="):
        resolve_config("npz:/x.npz", "quick", like="npz:/y.npz")


# ---------------------------------------------------------------------------------------------
# one config, whichever way it is asked for
# ---------------------------------------------------------------------------------------------
def test_cli_and_notebooks_agree_on_cifar10_at_half_ipc():
    notebook = run_config(fake("cifar10", 10, (3, 32, 32)), "quick", ipc=0.5, seed=3)
    cli = cli_config("--dataset", "CIFAR-10", "--ipc", "0.5", "--profile", "quick", "--seed", "3")
    assert cli == notebook == resolve_config("cifar10", "quick", ipc=0.5, seed=3)
    assert cli.patches == (6, 16) and cli.distill_batch is None and cli.device == "auto"


@pytest.mark.parametrize("mode, ipc", [("podd", 1.0), ("podd", 0.5), ("baseline", 1.0)])
def test_cli_demo_and_notebooks_agree_on_digits(mode, ipc):
    ds = load_dataset("digits")
    demo = job_config(ds, "quick", mode, ipc, seed=1, eval_models=4, eval_steps=(300,))
    notebook = run_config(ds, "quick", mode=mode, ipc=ipc, seed=1, eval_models=4, eval_steps=(300,))
    cli = cli_config(
        "--dataset",
        "Digits",
        "--ipc",
        str(ipc),
        "--mode",
        mode,
        "--profile",
        "quick",
        "--seed",
        "1",
        "--set",
        "eval_models=4",
        "--set",
        "eval_steps=[300]",
    )
    assert demo == notebook == cli


def test_cli_and_notebooks_agree_on_the_cifar10_baseline():
    notebook = run_config(fake("cifar10", 10, (3, 32, 32)), "paper", mode="baseline", ipc=1.0)
    cli = cli_config("--dataset", "cifar10", "--ipc", "1", "--mode", "baseline")
    assert cli == notebook
    assert (cli.ipc, cli.distill_batch, cli.labels, cli.poster_size) == (1.0, None, "fixed", None)


def test_local_data_like_cifar10(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "c10.npz"
    np.savez(
        path,
        x_train=rng.integers(0, 255, (20, 3, 32, 32), dtype=np.uint8),
        y_train=np.repeat(np.arange(10), 2),
        x_test=rng.integers(0, 255, (10, 3, 32, 32), dtype=np.uint8),
        y_test=np.arange(10),
    )
    spec = f"npz:{path}"
    ds = load_dataset(spec)
    for ipc in ("0.9", "0.5"):
        cli = cli_config("--dataset", spec, "--like", "CIFAR10", "--ipc", ipc, "--profile", "quick")
        notebook = run_config(ds, "quick", ipc=float(ipc), like="cifar10")
        assert cli == notebook
        assert cli.dataset == spec
        reference = resolve_config("cifar10", "quick", ipc=float(ipc))
        assert cli.replace(dataset="cifar10") == reference
    # without --like: the generic preset, grid and patches from the data's own shape
    plain = cli_config("--dataset", spec, "--ipc", "0.5", "--profile", "quick")
    assert plain == run_config(ds, "quick", ipc=0.5)
    assert plain.grid == (2, 5) and plain.patches[0] * plain.patches[1] >= 30


def test_cli_help_mentions_like(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["distill", "--help"])
    text = capsys.readouterr().out
    assert "--like" in text and "--embeddings" in text
