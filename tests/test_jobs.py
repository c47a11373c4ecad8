"""Jobs that survive Slurm's time limit and preemption (podd.jobs): the warning signal stops the
run at a step boundary with a checkpoint, submitit's own signal handler requeues the job through
its ``checkpoint`` method, and the requeued job resumes to the same poster as an uninterrupted
run. submitit's real handler and pickles are used; only the requeue command is local."""

from __future__ import annotations

import os
import signal
import time

import pytest
import torch

from podd import jobs
from podd.cli import _distill_job
from podd.presets import resolve_config
from podd.run_loop import RunStopped
from podd.rundir import RunDir

pytestmark = pytest.mark.skipif(jobs.warning_signal() is None, reason="needs SIGUSR2")


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _config(tmp_path):
    # checkpoint_every 4: the signal after step 3 meets no periodic checkpoint
    return resolve_config(
        "digits",
        "smoke",
        verbose=False,
        device="cpu",
        steps=6,
        width=8,
        checkpoint_every=4,
        eval_models=1,
        eval_steps=(3,),
        data_root=str(tmp_path / "data"),
    )


def _signal_after_step(monkeypatch, at: int):
    """The warning signal arrives while step ``at`` runs (as Slurm's would, from outside)."""
    from podd.distiller import Distiller

    step = Distiller.step

    def signalled(self):
        loss = step(self)
        if self.step_count == at:
            os.kill(os.getpid(), jobs.warning_signal())
        return loss

    monkeypatch.setattr(Distiller, "step", signalled)


@pytest.fixture
def submitit_job(tmp_path, monkeypatch):
    """submitit's job environment, as in a job it started (its local flavour: the requeue is an
    exit with submitit's requeue code): its signal handler installed for ``delayed``."""
    from submitit.core.utils import DelayedSubmission, JobPaths
    from submitit.local.local import LocalJobEnvironment

    for key, value in dict(
        SUBMITIT_LOCAL_JOB_ID="7",
        SUBMITIT_LOCAL_NTASKS="1",
        SUBMITIT_LOCAL_JOB_NUM_NODES="1",
        SUBMITIT_LOCAL_NODEID="0",
        SUBMITIT_LOCAL_GLOBALID="0",
        SUBMITIT_LOCAL_LOCALID="0",
    ).items():
        monkeypatch.setenv(key, value)
    paths = JobPaths(tmp_path / "jobs", job_id="7")
    paths.folder.mkdir()
    signals = (signal.SIGTERM, signal.SIGCONT, jobs.warning_signal())
    before = {sig: signal.getsignal(sig) for sig in signals}

    def start(job, timeout_min: float) -> DelayedSubmission:
        delayed = DelayedSubmission(job)
        delayed.set_timeout(timeout_min, 3)
        delayed.dump(paths.submitted_pickle)
        LocalJobEnvironment()._handle_signals(paths, delayed)
        return delayed

    yield start, paths
    for sig, handler in before.items():
        signal.signal(sig, handler)


@pytest.mark.parametrize("timeout_min", [0.001, 600], ids=["time-limit", "preemption"])
def test_a_signalled_job_checkpoints_requeues_and_resumes_to_the_same_poster(
    tmp_path, monkeypatch, submitit_job, timeout_min
):
    from submitit.core.utils import DelayedSubmission
    from submitit.local.local import LOCAL_REQUEUE_RETURN_CODE

    config = _config(tmp_path)
    whole = _distill_job(config, 1, out_dir=str(tmp_path / "whole"), resume=False)
    start, paths = submitit_job
    out = tmp_path / "run"
    _signal_after_step(monkeypatch, 3)
    with pytest.raises(SystemExit) as exit_:
        start(jobs.ResumableJob(_distill_job, out, config, 1), timeout_min).result()
    assert exit_.value.code == LOCAL_REQUEUE_RETURN_CODE  # submitit requeued it
    assert RunDir(out).load_checkpoint()["distiller"]["step"] == 3  # saved on the signal
    assert not (out / ".podd.lock").exists()
    requeued = DelayedSubmission.load(paths.submitted_pickle)  # what the new job runs
    assert isinstance(requeued.function, jobs.ResumableJob) and requeued.function.resume
    monkeypatch.undo()
    summary = requeued.result()
    assert summary["out_dir"] == str(out) and summary["accuracy"] == whole["accuracy"]
    assert torch.equal(
        torch.load(out / "poster.pt", weights_only=True)["poster"],
        torch.load(tmp_path / "whole" / "poster.pt", weights_only=True)["poster"],
    )


def test_a_job_requeued_before_its_first_checkpoint_starts_over(tmp_path):
    job = jobs.ResumableJob(_distill_job, tmp_path / "run", "config", 1, resume=False)
    assert not job.checkpoint().function.resume
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoint.pt").write_bytes(b"")
    again = job.checkpoint().function
    assert again.resume and again.args == ("config", 1) and again.out_dir == str(tmp_path / "run")


def test_without_submitit_a_stopped_run_says_how_to_resume(tmp_path, monkeypatch):
    config = _config(tmp_path)
    _signal_after_step(monkeypatch, 2)
    previous = signal.signal(jobs.warning_signal(), signal.SIG_IGN)
    try:
        with pytest.raises(RunStopped, match="stopped at step 2 of 6.*--resume"):
            jobs.ResumableJob(_distill_job, tmp_path / "run", config, 1)()
        assert signal.getsignal(jobs.warning_signal()) == signal.SIG_IGN  # given back
    finally:
        signal.signal(jobs.warning_signal(), previous)
    assert RunDir(tmp_path / "run").load_checkpoint()["distiller"]["step"] == 2


def test_a_run_that_does_not_reach_a_step_boundary_is_handed_over_after_the_grace():
    handed = []
    previous = signal.signal(jobs.warning_signal(), lambda *a: handed.append("submitit"))
    try:
        with jobs.WarningSignal(grace_s=0.2) as warning:
            os.kill(os.getpid(), jobs.warning_signal())
            deadline = time.monotonic() + 5
            while not handed and time.monotonic() < deadline:  # "a long evaluation"
                time.sleep(0.01)
            assert warning.stop.is_set() and handed == ["submitit"]
        with jobs.WarningSignal(grace_s=0.05):
            pass  # closed: a late timer hands nothing over
        time.sleep(0.2)
        assert handed == ["submitit"]
    finally:
        signal.signal(jobs.warning_signal(), previous)
