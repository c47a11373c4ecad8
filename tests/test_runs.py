"""Run directories: what a run writes, bit-identical resume, and clear errors on foreign dirs."""

from __future__ import annotations

import json

import pytest
import torch

from podd.artifacts import load_artifact
from podd.distiller import Distiller
from podd.presets import resolve_config
from podd.run_loop import distill
from podd.rundir import RunDir, load_run


def tiny(**overrides):
    # real_batch 500: 3 outer steps per epoch, so the runs below cross epoch boundaries
    # (new permutation and window start) on both sides of the interruption.
    values = dict(
        width=8,
        depth=1,
        window=2,
        total_window=5,
        real_batch=500,
        distill_batch=8,
        steps=8,
        eval_models=0,
        device="cpu",
        checkpoint_every=2,
        log_every=1,
    )
    values.update(overrides)
    return resolve_config("digits", "smoke", **values)


class Crash(Exception):
    pass


def test_run_directory_contents(digits, tmp_path):
    ds, pre = digits
    out = tmp_path / "run"
    result = distill(tiny(steps=3, eval_models=1, eval_steps=(5,)), ds, out_dir=out, progress=False, preprocessor=pre)
    assert result.out_dir == out
    for name in ("poster.pt", "poster.png", "metrics.jsonl", "final.json", "checkpoint.pt", "config.json"):
        assert (out / name).is_file(), name
    artifact = load_artifact(out / "poster.pt")
    assert torch.equal(artifact.poster, result.artifact.poster)
    assert artifact.labels is not None and artifact.config["steps"] == 3
    metrics = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics if "loss" in m] == [1, 2, 3]
    assert all("steps_per_s" in m for m in metrics if "loss" in m)
    assert metrics[-1]["final"] and "eval_accuracy" in metrics[-1]
    final = json.loads((out / "final.json").read_text())
    prov = final["provenance"]
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
        assert key in prov, key
    assert prov["dataset"] == "digits" and prov["data_source"] == "full"
    assert final["result"]["evaluation"]["num_models"] == 1
    assert final["result"]["pixels"] == artifact.poster.shape[-1] * artifact.poster.shape[-2]
    loaded, record = load_run(out)
    assert torch.equal(loaded.poster, artifact.poster) and record["result"]["mode"] == "podd"


def test_resume_after_a_crash_is_bit_identical(digits, tmp_path, monkeypatch):
    ds, pre = digits
    config = tiny(steps=8)
    straight = distill(config, ds, out_dir=tmp_path / "straight", progress=False, preprocessor=pre)

    real_step = Distiller.step

    def crashing(self):
        if self.step_count == 5:  # after the checkpoint at step 4, mid-epoch
            raise Crash()
        return real_step(self)

    monkeypatch.setattr(Distiller, "step", crashing)
    with pytest.raises(Crash):
        distill(config, ds, out_dir=tmp_path / "resumed", progress=False, preprocessor=pre)
    monkeypatch.setattr(Distiller, "step", real_step)
    assert RunDir(tmp_path / "resumed").load_checkpoint()["distiller"]["step"] == 4
    resumed = distill(config, ds, out_dir=tmp_path / "resumed", resume=True, progress=False, preprocessor=pre)

    assert torch.equal(resumed.artifact.poster, straight.artifact.poster)
    assert torch.equal(resumed.artifact.labels, straight.artifact.labels)
    a = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=False)["distiller"]
    b = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=False)["distiller"]
    assert torch.equal(a["grad_ema"], b["grad_ema"]) and torch.equal(a["generator"], b["generator"])
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert torch.equal(sa["exp_avg"], sb["exp_avg"]) and torch.equal(sa["exp_avg_sq"], sb["exp_avg_sq"])
    # the metrics of the lost part were dropped, then rewritten by the resumed run
    steps = [json.loads(line)["step"] for line in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 9))


def test_resume_can_extend_a_finished_run(digits, tmp_path):
    ds, pre = digits
    straight = distill(tiny(steps=6), ds, progress=False, preprocessor=pre)
    distill(tiny(steps=3), ds, out_dir=tmp_path / "r", progress=False, preprocessor=pre)
    longer = distill(tiny(steps=6), ds, out_dir=tmp_path / "r", resume=True, progress=False, preprocessor=pre)
    assert torch.equal(longer.artifact.poster, straight.artifact.poster)


def test_resume_refuses_other_settings(digits, tmp_path):
    ds, pre = digits
    distill(tiny(steps=2), ds, out_dir=tmp_path / "r", progress=False, preprocessor=pre)
    with pytest.raises(ValueError, match="real_batch"):
        distill(
            tiny(steps=4, real_batch=100), ds, out_dir=tmp_path / "r", resume=True, progress=False, preprocessor=pre
        )


def test_new_run_refuses_to_overwrite(digits, tmp_path):
    ds, pre = digits
    distill(tiny(steps=2), ds, out_dir=tmp_path / "r", progress=False, preprocessor=pre)
    with pytest.raises(ValueError, match="--resume"):
        distill(tiny(steps=2), ds, out_dir=tmp_path / "r", progress=False, preprocessor=pre)


def test_bad_settings_leave_no_run_directory(digits, tmp_path):
    ds, pre = digits
    with pytest.raises(ValueError):
        distill(tiny(distill_batch=999), ds, out_dir=tmp_path / "r", progress=False, preprocessor=pre)
    assert not (tmp_path / "r").exists()


def test_resume_errors_are_clear(digits, tmp_path):
    ds, pre = digits
    with pytest.raises(FileNotFoundError, match="does not exist"):
        distill(tiny(), ds, out_dir=tmp_path / "missing", resume=True, preprocessor=pre)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="checkpoint.pt"):
        distill(tiny(), ds, out_dir=tmp_path / "empty", resume=True, preprocessor=pre)
    (tmp_path / "garbage").mkdir()
    (tmp_path / "garbage" / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="could not be read"):
        distill(tiny(), ds, out_dir=tmp_path / "garbage", resume=True, preprocessor=pre)
    (tmp_path / "foreign").mkdir()
    torch.save({"hello": 1}, tmp_path / "foreign" / "checkpoint.pt")
    with pytest.raises(ValueError, match="not a podd checkpoint"):
        distill(tiny(), ds, out_dir=tmp_path / "foreign", resume=True, preprocessor=pre)


def test_load_run_errors_are_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_run(tmp_path / "nothing")
    (tmp_path / "d").mkdir()
    with pytest.raises(FileNotFoundError, match="not a podd run"):
        load_run(tmp_path / "d")
    (tmp_path / "d" / "poster.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="not a podd poster"):
        load_run(tmp_path / "d")


def test_an_interrupted_writes_temporary_file_is_removed_when_the_run_lets_go(tmp_path):
    """A signal can land after mkstemp made a temporary file and before atomic_path owns it;
    the run, still holding its lock, removes such files as it stops (its finished files stay)."""
    run = RunDir(tmp_path / "run")
    with pytest.raises(KeyboardInterrupt):
        with run.locked():
            (run.path / "checkpoint.pt").write_bytes(b"finished")
            (run.path / ".checkpoint.pt.x1y2z3.tmp").write_bytes(b"half written")
            raise KeyboardInterrupt
    assert not list(run.path.glob(".*.tmp"))
    assert (run.path / "checkpoint.pt").read_bytes() == b"finished"
