"""Profiles, dataset names, data per profile and class embeddings for the notebooks."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from podd import notebooks as nbs
from podd import presets
from podd.data import stand_in
from podd.experiments.data import request_for
from podd.notebooks import data_choice, embeddings, names, profiles


def test_one_profile_list_shared_with_the_presets():
    assert nbs.PROFILES is presets.PROFILES and profiles.PROFILES is presets.PROFILES


def test_profile_from_argument_then_environment_then_paper(monkeypatch):
    monkeypatch.delenv("PODD_PROFILE", raising=False)
    assert profiles.resolve_profile() == "paper"
    monkeypatch.setenv("PODD_PROFILE", "quick")
    assert profiles.resolve_profile() == "quick"
    assert profiles.resolve_profile("smoke") == "smoke"
    with pytest.raises(ValueError, match="choose one of smoke, quick, paper"):
        profiles.resolve_profile("fast")
    assert profiles.profile_default("smoke", 1, 2, 3) == 1
    assert profiles.profile_default("paper", 1, 2, 3) == 3


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("cifar10", "cifar10"),
        ("npz:/data/cifar10-train-subset.npz", "npz_cifar10-train-subset"),
        ("imagefolder:/data/my birds/", "imagefolder_my_birds"),
        ("a  b", "a_b"),
        ("::", "dataset"),
    ],
)
def test_slug_keeps_scheme_and_stem(spec, expected):
    assert names.slug(spec) == expected


def test_pretty_names_the_paper_datasets_and_passes_others_through():
    assert names.pretty("cifar100") == "CIFAR-100"
    assert names.pretty("npz:x.npz") == "npz:x.npz"


@pytest.mark.parametrize("dataset, classes, train, test", [("cifar10", 10, 600, 200), ("CIFAR-100", 100, 1200, 400)])
def test_smoke_gives_a_labelled_stand_in_with_the_datasets_shape(dataset, classes, train, test, capsys):
    ds = data_choice.load_for_profile(dataset, "smoke")
    assert ds.source == "stand-in" and ds.num_classes == classes
    assert tuple(ds.image_shape) == (3, 32, 32)
    assert (len(ds.y_train), len(ds.y_test)) == (train, test)
    assert torch.bincount(ds.y_train).tolist() == [train // classes] * classes
    assert "SYNTHETIC STAND-IN" in capsys.readouterr().out
    assert (
        data_choice.measured_on(ds, "smoke", dataset)
        == f"podd, profile smoke, synthetic stand-in with {names.pretty(ds.name)}'s shape"
    )


def test_setup_resolves_the_profile_prints_the_header_then_the_note_and_names_after_like(monkeypatch, capsys):
    monkeypatch.setenv("PODD_PROFILE", "smoke")
    profile, ds, paper_name = nbs.setup("cifar10", None, n_val=50, like="cifar100", about="seed 0")
    assert (profile, paper_name) == ("smoke", "cifar100") and len(ds.y_test) == 50
    header, note = capsys.readouterr().out.splitlines()
    assert header == "profile: smoke, dataset: cifar10, seed 0" and note.startswith("NOTE (profile smoke)")
    setup = nbs.setup("cifar10", "smoke", about=None)
    assert setup.paper_name == "cifar10" and capsys.readouterr().out.startswith("NOTE")


def test_a_validation_split_is_held_out_and_recorded_in_the_request():
    ds = data_choice.load_for_profile("cifar10", "smoke", n_val=50, verbose=False)
    assert ds.source == "stand-in" and len(ds.y_test) == 50 and len(ds.y_train) == 550
    assert request_for(ds).n_val == 50


def test_notes_say_subset_and_full_data_apart():
    subset = SimpleNamespace(
        image_shape=(1, 8, 8), num_classes=10, y_train=[0] * 90, y_test=[0] * 10, source="subset", name="digits"
    )
    assert data_choice.data_note(subset, "cifar10", "quick") == (
        "NOTE (profile quick): a SUBSET of CIFAR-10 (10 classes, 1×8×8 images, 90 train / 10 "
        "test); numbers are results on this subset, not on the paper's full setting."
    )
    full = SimpleNamespace(**{**vars(subset), "source": "full"})
    assert data_choice.data_note(full, "digits", "paper").startswith(
        "Data (profile paper): digits (scikit-learn 8×8), full dataset (10 classes"
    )
    assert data_choice.measured_on(full, "paper") == "podd, profile paper, digits (scikit-learn 8×8)"
    assert data_choice.measured_on(subset, "quick", "cifar10") == "podd, profile quick, subset of CIFAR-10"


def test_class_names_without_loading_where_known():
    assert data_choice.class_names_for("cifar10", "smoke")[:2] == ["airplane", "automobile"]
    assert data_choice.class_names_for("cub200", "smoke")[:2] == ["class 0", "class 1"]


def test_smoke_embeddings_are_seeded_unit_vectors_and_say_so():
    emb, source = embeddings.class_embeddings(["a", "b", "c"], "smoke", seed=3, dim=8, verbose=False)
    assert emb.shape == (3, 8)
    assert torch.allclose(emb.norm(dim=1), torch.ones(3))
    again, _ = embeddings.class_embeddings(["a", "b", "c"], "smoke", seed=3, dim=8, verbose=False)
    assert torch.equal(emb, again)
    assert source.startswith("SYNTHETIC embeddings") and "seed 3" in source


def test_a_file_wins_and_quick_asks_clip(tmp_path, monkeypatch):
    path = tmp_path / "emb.pt"
    torch.save(torch.eye(3), path)
    emb, source = embeddings.class_embeddings(["a", "b", "c"], "smoke", embeddings=str(path), verbose=False)
    assert torch.allclose(emb, torch.eye(3)) and source == "precomputed embeddings from emb.pt"
    from podd import clip_text

    asked = []
    monkeypatch.setattr(clip_text, "text_embeddings", lambda names: asked.append(names) or torch.zeros(len(names), 4))
    emb, source = embeddings.class_embeddings(("x", "y"), "quick", verbose=False)
    assert asked == [["x", "y"]] and emb.shape == (2, 4) and source.startswith("CLIP ViT-B/32")


def test_a_stand_in_made_elsewhere_has_no_request():
    assert request_for(stand_in("digits", 10, (1, 8, 8), 2, 1, seed=0)) is None
