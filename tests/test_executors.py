"""Sweeps as jobs: the executors, Slurm settings from arguments and environment, and a
notebook-style sweep that gives the same results in this process and through submitit (its
debug executor, and its local executor: a subprocess per job, the Slurm code path)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from podd import notebooks as nbs
from podd.executors import KINDS, PARENT_POLL_S, gather, make_executor, slurm_parameters

REPO = Path(__file__).resolve().parents[1]


def _fail():
    raise ValueError("boom")


def test_local_runs_inline_and_keeps_errors_in_the_future():
    executor = make_executor("local")
    assert gather([executor.submit(pow, 2, 5), executor.submit(divmod, 7, 2)]) == [32, (3, 1)]
    future = executor.submit(_fail)
    with pytest.raises(ValueError, match="boom"):
        future.result()


def test_bad_kinds_and_settings_are_refused():
    with pytest.raises(ValueError, match="choose one of"):
        make_executor("kubernetes")
    with pytest.raises(ValueError, match="need executor='slurm'"):
        make_executor("local", partition="gpu")
    with pytest.raises(ValueError, match="unknown Slurm setting"):
        slurm_parameters(gpu=1)
    assert set(KINDS) == {"local", "slurm", "debug", "submitit-local"}


def test_slurm_settings_from_arguments_and_environment(monkeypatch):
    monkeypatch.setenv("PODD_SLURM_PARTITION", "gpu")
    monkeypatch.setenv("PODD_SLURM_TIME_MIN", "600")
    monkeypatch.setenv("PODD_SLURM_GPUS", "1")
    assert slurm_parameters(gpus=2, account="lab", extra={"slurm_mail_type": "END"}) == {
        "slurm_partition": "gpu",
        "timeout_min": 600,
        "gpus_per_node": 2,
        "slurm_account": "lab",
        "slurm_mail_type": "END",
    }
    monkeypatch.setenv("PODD_SLURM_GPUS", "one")
    with pytest.raises(ValueError, match="PODD_SLURM_GPUS"):
        slurm_parameters()


def _sweep(data, executor, ipcs=(1.0, 0.5), reference=True, **options):
    sweep = nbs.Sweep(data, executor, **options)
    for ipc in ipcs:
        config = nbs.run_config(
            data, "smoke", ipc=ipc, verbose=False, steps=2, width=8, eval_models=1, eval_steps=(3,), device="cpu"
        )
        sweep.distill(config, note=f"ipc {ipc}")
    if reference:
        sweep.reference(config)
    return sweep.gather()


@pytest.fixture(scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the subprocess job: the same float sums
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def digits(tmp_path_factory, one_thread):
    return nbs.load_for_profile("digits", "smoke", root=tmp_path_factory.mktemp("data"), verbose=False)


@pytest.fixture(scope="module")
def in_process(digits):
    return _sweep(digits, "local")


def test_a_sweep_gives_the_same_results_in_process_and_through_submitit(digits, in_process, tmp_path):
    here = in_process
    debug = _sweep(digits, "debug", folder=str(tmp_path / "%j"), out_dir=tmp_path / "sweep")
    assert [o.row["method"] for o in here] == ["PoDD", "PoDD", "random real images (1 per class)"]
    assert here[0].row["note"] == "ipc 1.0"
    assert [o.row for o in debug] == [o.row for o in here]
    for a, b in zip(debug[:2], here[:2]):
        assert torch.equal(a.artifact.poster, b.artifact.poster)


def test_a_job_in_another_process_loads_the_data_itself_and_gives_the_same_run(digits, in_process, tmp_path):
    (job,) = _sweep(
        digits,
        "submitit-local",
        ipcs=(1.0,),
        reference=False,
        folder=str(tmp_path / "%j"),
        out_dir=tmp_path / "sweep",
        extra={"local_setup": ["export OMP_NUM_THREADS=1"]},
    )
    assert job.row == in_process[0].row
    assert torch.equal(job.artifact.poster, in_process[0].artifact.poster)


def test_podd_distill_as_a_job(tmp_path, capsys, one_thread):
    from podd.cli import main

    common = [
        "distill",
        "--dataset",
        "digits",
        "--ipc",
        "1",
        "--profile",
        "smoke",
        "--steps",
        "2",
        "--device",
        "cpu",
        "--quiet",
        "--set",
        f"data_root={tmp_path}",
        "--set",
        "width=8",
        "--set",
        "eval_models=1",
        "--set",
        "eval_steps=[3]",
        "--jobs-folder",
        str(tmp_path / "jobs" / "%j"),
    ]
    assert main(common + ["--out", str(tmp_path / "run"), "--executor", "debug"]) == 0
    out = capsys.readouterr().out
    assert "submitted job" in out and "test accuracy (1 models, 3 steps)" in out
    assert (tmp_path / "run" / "metrics.jsonl").exists()
    assert main(common + ["--out", str(tmp_path / "other"), "--executor", "debug", "--distributed", "tasks"]) == 2
    assert "--executor submitit-local" in capsys.readouterr().err  # debug: one process


_ORPHAN_PARENT = """
import os, sys, time
from podd.executors import make_executor


def report_and_wait(path):
    with open(path + ".tmp", "w") as file:
        file.write(str(os.getpid()))
    os.replace(path + ".tmp", path)
    time.sleep(120)


if __name__ == "__main__":
    make_executor("local", workers=2, threads=1).submit(report_and_wait, sys.argv[1]).result()
"""


def _running(pid: int) -> bool:
    """Alive and not a zombie waiting for a parent that does not reap it (Linux /proc)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states in /proc")
def test_a_pool_worker_exits_when_its_parent_is_killed(tmp_path):
    """``kill -9`` of a sweep's parent must not leave its workers running their jobs: each worker
    watches the process that started it and exits when it is gone."""
    script, pid_file = tmp_path / "parent.py", tmp_path / "worker.pid"
    script.write_text(_ORPHAN_PARENT)
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    parent = subprocess.Popen([sys.executable, str(script), str(pid_file)], env=env)
    try:
        deadline = time.monotonic() + 120
        while not pid_file.exists():
            assert parent.poll() is None, "the parent ended before its worker started the job"
            assert time.monotonic() < deadline, "the worker never started the job"
            time.sleep(0.2)
        worker = int(pid_file.read_text())
        assert _running(worker)
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 10 * PARENT_POLL_S + 5
    while _running(worker) and time.monotonic() < deadline:
        time.sleep(0.2)
    orphaned = _running(worker)
    if orphaned:
        os.kill(worker, signal.SIGKILL)  # do not leave it behind when the test fails
    assert not orphaned, "the worker kept running its 120 s job after its parent died"
