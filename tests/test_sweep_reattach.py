"""Sweeps that reattach (podd.experiments.sweep): each cell of a sweep run elsewhere has its own run
directory and a line in the sweep's manifest, so a second session of the notebook collects the
finished cells, waits for Slurm jobs still running, and resubmits only the lost ones, which
continue from their checkpoint."""

from __future__ import annotations

import json
import threading
from types import SimpleNamespace

import pytest
import torch

from podd import notebooks as nbs
from podd.experiments import sweep as sweeps
from podd.jobs import ResumableJob
from podd.run_loop import RunStopped


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield nbs.load_for_profile("digits", "smoke", root=tmp_path_factory.mktemp("data"), verbose=False)
    torch.set_num_threads(before)


def _config(data, ipc):
    return nbs.run_config(
        data,
        "smoke",
        ipc=ipc,
        verbose=False,
        steps=3,
        width=8,
        checkpoint_every=10,
        eval_models=1,
        eval_steps=(3,),
        device="cpu",
    )


class _Named:
    """submitit's debug executor, recording the job names a sweep gives."""

    def __init__(self, tmp_path, kind="debug"):
        from podd.executors import make_executor

        self.inner = make_executor("debug", folder=str(tmp_path / "jobs" / "%j"))
        self.kind, self.folder, self.names = kind, self.inner.folder, []

    def submit_as(self, name, fn, *args):
        self.names.append(name)
        return self.inner.submit_as(name, fn, *args)


def _run(data, executor, folder, ipcs=(1.0, 0.5)):
    sweep = nbs.Sweep(data, executor, name="table1-digits-smoke", out_dir=folder)
    for ipc in ipcs:
        sweep.distill(_config(data, ipc), note=f"ipc {ipc}")
    return sweep.gather()


def test_cells_run_in_their_own_directories_and_a_second_session_collects_them(digits, tmp_path, monkeypatch, capsys):
    folder = tmp_path / "sweep"
    executor = _Named(tmp_path)
    first = _run(digits, executor, folder)
    assert executor.names == ["podd-table1-digits-smoke-podd-ipc1", "podd-table1-digits-smoke-podd-ipc0.5"]
    cells = json.loads((folder / sweeps.MANIFEST).read_text())["cells"]
    assert sorted(cells) == ["podd-ipc0.5", "podd-ipc1"]
    assert cells["podd-ipc1"]["run_dir"] == str(folder / "podd-ipc1") and cells["podd-ipc1"]["job_id"]
    assert (folder / "podd-ipc0.5" / "final.json").is_file()

    def no_run(*args, **kwargs):
        raise AssertionError("a finished cell was distilled again")

    monkeypatch.setattr(sweeps, "_distill_job", no_run)
    again = _Named(tmp_path)
    second = _run(digits, again, folder)
    assert again.names == [] and "finished earlier, collected" in capsys.readouterr().out
    assert [o.row for o in second] == [o.row for o in first]
    for a, b in zip(first, second):
        assert torch.equal(a.artifact.poster, b.artifact.poster)


def test_a_lost_cell_is_resubmitted_and_continues_from_its_checkpoint(digits, tmp_path):
    folder = tmp_path / "sweep"
    config = _config(digits, 1.0)
    stop = threading.Event()
    stop.set()  # the job that was lost: stopped after step 1, checkpoint kept
    with pytest.raises(RunStopped):
        sweeps._distill_job(config, digits, {}, out_dir=folder / "podd-ipc1", stop=stop)
    (whole,) = _run(digits, "local", tmp_path / "whole", ipcs=(1.0,))
    executor = _Named(tmp_path)
    calls = []
    submit = executor.inner.submit_as
    executor.inner.submit_as = lambda name, job: calls.append(job) or submit(name, job)
    (continued,) = _run(digits, executor, folder, ipcs=(1.0,))
    assert isinstance(calls[0], ResumableJob) and calls[0].resume
    assert torch.equal(continued.artifact.poster, whole.artifact.poster)
    assert continued.row == whole.row


def test_a_job_still_queued_is_waited_for_and_a_failed_one_resubmitted(digits, tmp_path, monkeypatch):
    folder = tmp_path / "sweep"
    folder.mkdir()
    entry = {
        "job_id": "4242",
        "run_dir": str(folder / "podd-ipc1"),
        "executor": "slurm",
        "jobs_folder": str(tmp_path / "jobs" / "%j"),
    }
    (folder / sweeps.MANIFEST).write_text(json.dumps({"cells": {"podd-ipc1": entry}}))
    state = {"now": "RUNNING"}
    running = SimpleNamespace(state=None, result=lambda: "the job's outcome")
    monkeypatch.setattr(sweeps, "slurm_job", lambda folder, job_id: setattr(running, "state", state["now"]) or running)
    executor = _Named(tmp_path, kind="slurm")
    sweep = nbs.Sweep(digits, executor, name="table1-digits-smoke", out_dir=folder)
    assert sweep.distill(_config(digits, 1.0)) is running and executor.names == []
    state["now"] = "FAILED"
    sweep = nbs.Sweep(digits, executor, name="table1-digits-smoke", out_dir=folder)
    sweep.distill(_config(digits, 1.0))
    assert executor.names == ["podd-table1-digits-smoke-podd-ipc1"]


def test_a_cell_whose_directory_holds_other_settings_is_refused(digits, tmp_path):
    folder = tmp_path / "sweep"
    (folder / "podd-ipc1").mkdir(parents=True)
    (folder / "podd-ipc1" / "config.json").write_text(json.dumps(_config(digits, 1.0).replace(seed=5).to_dict()))
    sweep = nbs.Sweep(digits, _Named(tmp_path), name="t", out_dir=folder)
    with pytest.raises(
        ValueError, match="holds a run with other settings .seed: run has 5, asked 0.; delete that directory"
    ):
        sweep.distill(_config(digits, 1.0))
    with pytest.raises(ValueError, match="two runs named 'a'"):
        sweep.distill(_config(digits, 0.5), cell="a")
        sweep.distill(_config(digits, 0.6), cell="a")
