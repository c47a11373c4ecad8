"""Tests for podd.artifacts: a poster saved to disk loads back whole; foreign files are refused."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from podd.artifacts import PosterArtifact, load_artifact, save_artifact
from podd.poster import make_geometry


def test_save_load_roundtrip(tmp_path):
    geometry = make_geometry(10, (3, 32, 32), 0.9, patches=(6, 16))
    artifact = PosterArtifact(
        poster=torch.randn(3, *geometry.size),
        geometry=geometry,
        class_order=torch.arange(10).view(2, 5),
        labels=torch.rand(10, 2, 5),
        label_mode="learned",
        mode="podd",
        class_names=[f"c{i}" for i in range(10)],
        preprocessing={"zca": True, "matrix": torch.eye(4), "mean": np.zeros(3)},
        config={"ipc": 0.9, "seed": 0, "grid": (2, 5), "data_root": tmp_path / "data"},
    )
    path = save_artifact(tmp_path / "run" / "poster.pt", artifact)
    loaded = load_artifact(path)
    assert loaded.geometry == geometry
    assert torch.equal(loaded.poster, artifact.poster)
    assert torch.equal(loaded.class_order, artifact.class_order)
    assert torch.equal(loaded.labels, artifact.labels)
    assert_close(loaded.preprocessing["matrix"], torch.eye(4))
    assert_close(loaded.preprocessing["mean"], torch.zeros(3, dtype=torch.float64))
    assert (loaded.label_mode, loaded.mode, loaded.class_names) == ("learned", "podd", artifact.class_names)
    assert loaded.config == {"ipc": 0.9, "seed": 0, "grid": (2, 5), "data_root": str(tmp_path / "data")}
    assert list(tmp_path.joinpath("run").iterdir()) == [path]  # no temporary left behind


def test_load_rejects_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no poster artifact"):
        load_artifact(tmp_path / "missing.pt")
    torch.save({"state_dict": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a podd poster artifact"):
        load_artifact(tmp_path / "other.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(ValueError, match="not a podd poster artifact"):
        load_artifact(tmp_path / "text.pt")
    torch.save({"format": "podd.poster", "version": 99}, tmp_path / "future.pt")
    with pytest.raises(ValueError, match="version 99"):
        load_artifact(tmp_path / "future.pt")
