"""Experiment tracking (podd.tracking): `podd distill --log tensorboard wandb` on tiny digits runs,
read back with TensorBoard's EventAccumulator and from W&B's offline run files."""

from __future__ import annotations

import json
import shutil
import struct
import sys

import pytest
from cli_support import TINY, cli

from podd import tracking

DISTILL = ["distill", "--dataset", "digits", "--ipc", "0.5"]
#: every step a metrics line, the poster every step
EVERY_STEP = ["--set", "log_every=1", "--log-image-every", "1"]


@pytest.fixture(autouse=True)
def data_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setenv("PODD_DATA", str(tmp_path / "data"))


def metrics(run) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


# --------------------------------------------------------------------------------------------
# TensorBoard
# --------------------------------------------------------------------------------------------
def event_accumulator(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    return events


def test_tensorboard_logs_the_scalars_and_the_poster(tmp_path, capsys):
    run = tmp_path / "run"
    code, out, err = cli([*DISTILL, "--out", run, *TINY, *EVERY_STEP, "--log", "tensorboard"], capsys)
    assert code == 0, err
    assert f"TensorBoard logs go to {run / 'tensorboard'}" in out
    assert json.loads((run / "tracking.json").read_text())["log"] == ["tensorboard"]

    events = event_accumulator(run / "tensorboard")
    tags = set(events.Tags()["scalars"])
    assert {"loss/outer", "lr/outer", "lr/inner", "time/step_s", "time/steps_per_s", "eval/accuracy"} <= tags
    assert [e.step for e in events.Scalars("loss/outer")] == [1, 2]
    # the same numbers as metrics.jsonl
    lines = metrics(run)
    assert [e.value for e in events.Scalars("loss/outer")] == pytest.approx([r["loss"] for r in lines if "loss" in r])
    final = next(r for r in lines if r.get("final"))
    assert [(e.step, e.value) for e in events.Scalars("eval/accuracy")] == [(2, pytest.approx(final["eval_accuracy"]))]
    # the first poster, every step's, and the final one
    images = events.Images("poster")
    assert [e.step for e in images] == [0, 1, 2]
    assert images[-1].width > 0 and images[-1].height > 0


def test_tensorboard_resume_continues_the_steps(tmp_path, capsys):
    """A resume (without --log: tracking.json says what to continue) writes into the same
    directory; what a lost part logged after the checkpoint is purged, not shown twice."""
    run = tmp_path / "run"
    code, _, err = cli([*DISTILL, "--out", run, *TINY, *EVERY_STEP, "--log", "tensorboard"], capsys)
    assert code == 0, err
    shutil.copy(run / "checkpoint.pt", tmp_path / "step2.pt")
    code, _, err = cli(["distill", "--resume", "--out", run, "--steps", "3", "--quiet"], capsys)
    assert code == 0, err
    assert [e.step for e in event_accumulator(run / "tensorboard").Scalars("loss/outer")] == [1, 2, 3]

    # the run crashed after step 3 was logged, its last checkpoint at step 2: resume from that
    shutil.copy(tmp_path / "step2.pt", run / "checkpoint.pt")
    code, _, err = cli(["distill", "--resume", "--out", run, "--steps", "4", "--quiet"], capsys)
    assert code == 0, err
    events = event_accumulator(run / "tensorboard")
    assert [e.step for e in events.Scalars("loss/outer")] == [1, 2, 3, 4]
    assert [e.value for e in events.Scalars("loss/outer")] == pytest.approx(
        [r["loss"] for r in metrics(run) if "loss" in r]
    )
    assert [e.step for e in events.Images("poster")] == [0, 1, 2, 3, 4]


# --------------------------------------------------------------------------------------------
# Weights & Biases (offline)
# --------------------------------------------------------------------------------------------
def wandb_history(run_file, wait_s: float = 30.0) -> list[dict]:
    """The history rows in a W&B run file (``run-ID.wandb``: a ":W&B" header, then records in
    32 KiB blocks, each piece with a 7-byte header of checksum, length and kind). W&B's service
    process may still be writing it when the run has finished: read until its exit record."""
    import time

    deadline = time.monotonic() + wait_s
    while True:
        kinds, rows = _wandb_records(run_file)
        if "exit" in kinds or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)


def _wandb_records(run_file) -> tuple[list[str], list[dict]]:
    from wandb.proto import wandb_internal_pb2

    data = run_file.read_bytes()
    assert data[:4] == b":W&B", run_file
    kinds, rows, pos, block, record = [], [], 7, 32768, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header: padding
            pos += block - pos % block
            continue
        length, kind = struct.unpack_from("<HB", data, pos + 4)
        if pos + 7 + length > len(data):  # a piece still being written
            break
        piece, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        record = piece if kind in (1, 2) else record + piece  # full / first, middle / last
        if kind in (1, 4):
            parsed = wandb_internal_pb2.Record.FromString(record)
            kinds.append(parsed.WhichOneof("record_type"))
            if kinds[-1] == "history":
                rows.append(
                    {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in parsed.history.item}
                )
    return kinds, rows


def offline_runs(wandb_dir) -> list:
    return sorted((wandb_dir / "wandb").glob("offline-run-*"))


@pytest.fixture
def wandb_env(tmp_path, monkeypatch):
    """W&B offline, its files in tmp_path, no key and no settings of this machine's user."""
    for name in ("WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_PROJECT", "WANDB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    for name, folder in (
        ("WANDB_DIR", "wandb_dir"),
        ("WANDB_CONFIG_DIR", "wandb_config"),
        ("WANDB_CACHE_DIR", "wandb_cache"),
        ("WANDB_DATA_DIR", "wandb_data"),
    ):
        (tmp_path / folder).mkdir()
        monkeypatch.setenv(name, str(tmp_path / folder))
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    return tmp_path / "wandb_dir"


def test_wandb_offline_logs_the_history_and_resume_continues_the_run(tmp_path, capsys, monkeypatch, wandb_env):
    run = tmp_path / "run"
    code, out, err = cli([*DISTILL, "--out", run, *TINY, *EVERY_STEP, "--log", "wandb"], capsys)
    assert code == 0, err
    run_id = json.loads((run / "tracking.json").read_text())["wandb_id"]
    assert "W&B logs offline, because WANDB_MODE=offline" in out and run_id in out
    [first] = offline_runs(wandb_env)
    assert first.name.endswith(run_id)
    rows = wandb_history(first / f"run-{run_id}.wandb")
    assert [r["_step"] for r in rows if "loss/outer" in r] == [1, 2]
    assert [r["loss/outer"] for r in rows if "loss/outer" in r] == pytest.approx(
        [r["loss"] for r in metrics(run) if "loss" in r]
    )
    assert all("lr/outer" in r and "time/step_s" in r for r in rows if "loss/outer" in r)
    assert [r["_step"] for r in rows if "eval/accuracy" in r] == [2]
    posters = [r for r in rows if r.get("poster/_type") == "image-file"]
    assert [r["_step"] for r in posters] == [0, 1, 2]
    assert (first / "files" / posters[-1]["poster/path"]).is_file()

    # resumed without --log and, this time, without WANDB_MODE: no key, so offline by default,
    # and the same W&B run id (wandb sync uploads both parts into one run)
    monkeypatch.delenv("WANDB_MODE")
    code, out, err = cli(["distill", "--resume", "--out", run, "--steps", "3", "--quiet"], capsys)
    assert code == 0, err
    assert "W&B logs offline, because no W&B API key is configured" in out
    runs = offline_runs(wandb_env)
    assert len(runs) == 2 and all(r.name.endswith(run_id) for r in runs)
    resumed = next(r for r in runs if r != first)
    rows = wandb_history(resumed / f"run-{run_id}.wandb")
    assert [r["_step"] for r in rows if "loss/outer" in r] == [3]
    assert json.loads((run / "tracking.json").read_text())["wandb_id"] == run_id


def test_wandb_mode_without_and_with_a_key(tmp_path, monkeypatch):
    for name in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "WANDB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "netrc"))
    mode, why = tracking.wandb_mode()
    assert mode == "offline" and "no W&B API key is configured" in why
    (tmp_path / "netrc").write_text("machine api.wandb.ai\n  login user\n  password 0123456789\n")
    assert tracking.wandb_mode()[0] is None  # `wandb login` wrote a key: online
    (tmp_path / "netrc").unlink()
    monkeypatch.setenv("WANDB_API_KEY", "0123456789")
    assert tracking.wandb_mode()[0] is None
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert tracking.wandb_mode() == (None, "WANDB_MODE=offline")  # W&B reads it itself


def test_wandb_errors_are_one_line(tmp_path, monkeypatch, wandb_env):
    import wandb

    def no_network(**options):
        raise wandb.errors.CommError("failed to reach api.wandb.ai\nmore detail")

    monkeypatch.setattr(wandb, "init", no_network)
    with pytest.raises(
        RuntimeError,
        match=r"W&B could not start run abc \(WANDB_MODE=offline\): "
        r"failed to reach api.wandb.ai; check the API key",
    ):
        tracking.WandbTracker(tmp_path, "abc", {})


# --------------------------------------------------------------------------------------------
# what is refused, before any work
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["tensorboard", "wandb"])
def test_a_missing_package_names_the_extra_before_any_work(backend, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, backend, None)  # `import backend` fails
    run = tmp_path / "run"
    code, _, err = cli([*DISTILL, "--out", run, *TINY, "--log", backend], capsys)
    assert code == 2
    assert f"--log {backend} needs the {backend} package" in err
    assert f"pip install 'podd[{backend}]'" in err
    assert not run.exists()

    from podd.presets import resolve_config
    from podd.run_loop import distill

    config = resolve_config("digits", "smoke", ipc=0.5, steps=1, device="cpu")
    with pytest.raises(tracking.TrackingUnavailable, match=rf"podd\[{backend}\]"):
        distill(config, out_dir=run, log=backend, progress=False)
    assert not run.exists()


def test_the_choices_and_the_records():
    assert tracking.parse_backends("tensorboard wandb") == ("tensorboard", "wandb")
    assert tracking.parse_backends(["wandb", "wandb", "none"]) == ("wandb",)
    assert tracking.parse_backends("none") == tracking.parse_backends([]) == ()
    with pytest.raises(ValueError, match="choose from tensorboard, wandb"):
        tracking.parse_backends(["mlflow"])
    with pytest.raises(ValueError, match="run directory"):
        tracking.plan(["tensorboard"], None, None, resume=False)
    with pytest.raises(ValueError, match="--log-image-every -1"):
        tracking.plan(["tensorboard"], -1, "run", resume=False)
    with pytest.raises(ValueError, match="no tracker is on: add --log"):
        tracking.plan(None, 10, None, resume=False)

    record = {"step": 10, "loss": 2.5, "epoch": 1, "steps_per_s": 4.0}
    rates = {"lr/outer": 0.01, "lr/inner": 0.001}
    assert tracking.scalars(record, rates) == {
        "loss/outer": 2.5,
        "progress/epoch": 1.0,
        "time/steps_per_s": 4.0,
        "time/step_s": 0.25,
        "lr/outer": 0.01,
        "lr/inner": 0.001,
    }
    assert tracking.scalars({"step": 10, "eval_accuracy": 50.0, "eval_std": 1.0, "final": True}, rates) == {
        "eval/accuracy": 50.0,
        "eval/accuracy_std": 1.0,
    }


def test_log_none_on_resume_stops_the_tracking(tmp_path, monkeypatch):
    monkeypatch.setattr(tracking, "require", lambda backends: None)  # packages not needed here
    (tmp_path / tracking.TRACKING_FILE).write_text(json.dumps({"log": ["wandb"], "image_every": 5, "wandb_id": "abc"}))
    chosen = tracking.plan(None, None, tmp_path, resume=True)
    assert chosen.image_every == 5 and chosen.wandb_id == "abc"
    stopped = tracking.plan("none", None, tmp_path, resume=True)
    assert stopped.backends == () and tracking.open_tracking(stopped, tmp_path, {}, resume=True) is None
    assert tracking.read_saved(tmp_path) == {"log": [], "image_every": 5, "wandb_id": "abc"}
