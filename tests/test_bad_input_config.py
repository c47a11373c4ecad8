"""Bad input, round 2 (issue 37): class order and embeddings said up front, through the real
entry points. Each test checks the message and that nothing runs before it."""

from __future__ import annotations

import json

import pytest
import torch
from cli_support import TINY, cli

from podd import clip_text, ordering
from podd.data import load_dataset
from podd.experiments import Sweep, compare_methods
from podd.presets import resolve_config


@pytest.fixture(autouse=True)
def data_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("PODD_DATA", str(tmp_path / "data"))


@pytest.fixture
def no_clip(monkeypatch):
    """CLIP weights unavailable, as on a machine without the hub (and counted)."""
    calls = []

    def unavailable(names, **kwargs):
        calls.append(list(names))
        raise clip_text.WeightsUnavailableError(
            clip_text._unavailable_message("ViT-B-32", "openai", "no copy is cached (test)")
        )

    monkeypatch.setattr(ordering, "text_embeddings", unavailable)
    return calls


def test_embeddings_are_used_on_digits_and_checked_up_front(tmp_path, capsys):
    embeddings = tmp_path / "emb.pt"
    torch.save(torch.randn(10, 6), embeddings)
    out = tmp_path / "run"
    code, _, err = cli(
        ["distill", "--dataset", "digits", "--ipc", "1", "--out", out, "--embeddings", embeddings, *TINY], capsys
    )
    assert code == 0, err
    assert json.loads((out / "config.json").read_text())["class_order"] == str(embeddings)

    refused = {
        "does not exist": ["--embeddings", tmp_path / "missing.pt"],
        "baseline mode has none to order": ["--embeddings", embeddings, "--mode", "baseline"],
        "both choose the class order": ["--embeddings", embeddings, "--set", "class_order=identity"],
    }
    torch.save(torch.randn(3, 6), tmp_path / "three.pt")
    refused["10"] = ["--embeddings", tmp_path / "three.pt"]  # one row per class
    for message, extra in refused.items():
        target = tmp_path / "refused"
        code, _, err = cli(["distill", "--dataset", "digits", "--ipc", "1", "--out", target, *TINY, *extra], capsys)
        assert code == 2 and message in err, (extra, err)
        assert not target.exists()


def test_missing_clip_weights_stop_a_run_before_its_preprocessing(tmp_path, capsys, monkeypatch, no_clip):
    import podd.data

    fitted = []
    real = podd.data.make_preprocessor
    monkeypatch.setattr(podd.data, "make_preprocessor", lambda *a, **k: fitted.append(1) or real(*a, **k))
    code, _, err = cli(
        ["distill", "--dataset", "digits", "--ipc", "1", "--out", tmp_path / "run", "--set", "class_order=poco", *TINY],
        capsys,
    )
    assert code == 2 and no_clip and not fitted
    first = err.splitlines()[0]
    assert "CLIP weights" in first and "not available" in first
    assert "--embeddings FILE" in err and "--class-order identity" in err
    assert "--class-order data" in err and "-p class_order data" in err
    assert "-p class_order identity" in err


def test_missing_clip_weights_stop_a_sweep_before_any_run(no_clip, monkeypatch):
    import podd.experiments.sweep as sweep_module

    ds = load_dataset("digits")
    ran = []
    monkeypatch.setattr(sweep_module, "_distill_job", lambda *a, **k: ran.append(1))
    monkeypatch.setattr(sweep_module, "_reference_job", lambda *a, **k: ran.append(1))
    with pytest.raises(clip_text.WeightsUnavailableError):
        compare_methods(
            ds, "digits", "digits", profile="smoke", methods=(("baseline", 1.0), ("podd", 1.0)), class_order="poco"
        )
    assert no_clip and not ran

    sweep = Sweep(ds)
    sweep.distill(resolve_config("digits", "smoke", mode="baseline", verbose=False))
    assert ran == [1]  # the baseline needs no class order
    with pytest.raises(clip_text.WeightsUnavailableError):
        sweep.distill(resolve_config("digits", "smoke", class_order="poco", verbose=False))
    assert ran == [1]  # the PoDD run was never started


def test_a_long_zca_fit_is_announced_once_and_then_read_from_its_cache(tmp_path, monkeypatch, capsys):
    from podd.data import make_preprocessor, preprocess, stand_in
    from podd.notes import _SHOWN

    monkeypatch.setattr(preprocess, "SLOW_FIT_FLOPS", 0)  # a small stand-in counts as slow
    monkeypatch.setattr("podd.notes._SHOWN", set(_SHOWN))
    ds = stand_in("cifar10", 10, (3, 8, 8), 4, 2, seed=0)
    make_preprocessor(ds, zca=True, root=tmp_path)
    out = capsys.readouterr().out
    assert "NOTE: fitting ZCA whitening on 40 training images of 3×8×8" in out and "later runs read it" in out
    monkeypatch.setattr(preprocess, "fit_zca", lambda *a, **k: pytest.fail("fitted again"))
    make_preprocessor(ds, zca=True, root=tmp_path)  # the cache: no fit, no note
    assert "fitting" not in capsys.readouterr().out


def test_list_parameters_read_as_papermill_hands_them_over():
    from papermill.cli import _resolve_type

    from podd.notebooks.parameters import list_parameter

    as_text = _resolve_type("[0.5, 0.3]")  # what `papermill -p ipcs '[0.5, 0.3]'` passes
    assert as_text == "[0.5, 0.3]"
    assert list_parameter(as_text, "ipcs") == [0.5, 0.3]
    assert list_parameter([0.9, 0.5], "ipcs") == [0.9, 0.5]  # -y "ipcs: [0.9, 0.5]", or the cell
    assert list_parameter(_resolve_type("0.5"), "ipcs") == [0.5]
    assert list_parameter("(3, 3)", "per_class_patches", int, length=2) == [3, 3]
    for bad, message in [
        ("0.5;0.3", "give a list of numbers"),
        ("['a']", "give a list of numbers"),
        ("[2.5, 3]", "whole numbers"),
        ("[3]", "give 2 numbers"),
    ]:
        with pytest.raises(ValueError, match=message) as refused:
            list_parameter(bad, "per_class_patches", int, length=2)
        assert "-y" in str(refused.value) or message != "give a list of numbers"
