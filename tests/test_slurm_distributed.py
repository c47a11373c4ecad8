"""One distillation on several processes as ONE Slurm job (issue 35, item 5): ``podd distill
--executor slurm --distributed … --nodes M --gpus-per-node N`` submits one job of M x N submitit
tasks, each a rank. No Slurm here: ``sbatch`` is a fake that records the script it is given.
Checked: the script (nodes, tasks, GPUs, warning signal), the pickled job (the variant, the
resume path), each task's rank and rendezvous from Slurm's variables, the dry run and the
documented example (docs/cluster.md), the ranks stopping after the same step on a warning, and
a 2-process run through submitit's local executor against a plain run."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from cli_support import cli, tiny_digits_config

from podd import jobs
from podd.parallel import Parallel, shutdown
from podd.run_loop import RunStopped, distill

ROOT = Path(__file__).resolve().parents[1]
JOB_ID = "4242"
SMALL = ["--dataset", "digits", "--ipc", "1", "--profile", "smoke", "--steps", "2", "--quiet"]


@pytest.fixture(autouse=True)
def _environment_restored():
    """Every test here leaves os.environ as it found it: jobs.export_torch_env writes RANK,
    WORLD_SIZE, MASTER_ADDR ... into it (as a Slurm task must), and a later test in the same
    process would otherwise think it was started by torchrun."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    """``srun`` and ``sbatch`` on PATH; sbatch keeps a copy of the script it is given."""
    bin_dir, record = tmp_path / "bin", tmp_path / "submitted.sh"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "sbatch").write_text(
        f'#!/bin/sh\ncp "$1" {shlex.quote(str(record))}\necho "Submitted batch job {JOB_ID}"\n'
    )
    for tool in ("srun", "sbatch"):
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    for name in [n for n in os.environ if n.startswith("PODD_SLURM_")]:
        monkeypatch.delenv(name)
    return record


def _sbatch_lines(script: str) -> set[str]:
    return {line for line in script.splitlines() if line.startswith("#SBATCH")}


def test_a_distributed_run_is_one_job_of_one_task_per_gpu(fake_slurm, tmp_path, capsys):
    from submitit.core.utils import DelayedSubmission

    jobs_folder = tmp_path / "jobs"
    argv = [
        "distill",
        *SMALL,
        "--out",
        tmp_path / "run",
        "--executor",
        "slurm",
        "--distributed",
        "tasks",
        "--nodes",
        "2",
        "--gpus-per-node",
        "4",
        "--partition",
        "gpu",
        "--time-min",
        "600",
        "--jobs-folder",
        jobs_folder / "%j",
    ]
    code, out, _ = cli(argv, capsys)
    assert code == 0 and f"submitted job {JOB_ID} (slurm)" in out
    script = fake_slurm.read_text()
    assert {
        "#SBATCH --nodes=2",
        "#SBATCH --ntasks-per-node=4",
        "#SBATCH --gpus-per-node=4",
        "#SBATCH --signal=USR2@90",
        "#SBATCH --partition=gpu",
        "#SBATCH --time=600",
    } <= _sbatch_lines(script)
    (srun,) = [line for line in script.splitlines() if line.startswith("srun ")]
    assert srun.endswith(f"-m submitit.core._submit {jobs_folder / '%j'}")  # one per task

    # what every task runs: the same checkpointable job, as one rank of the variant
    submitted = DelayedSubmission.load(jobs_folder / JOB_ID / f"{JOB_ID}_submitted.pkl")
    job = submitted.function
    assert isinstance(job, jobs.ResumableJob) and not job.resume
    assert job.kwargs["distributed"] == "tasks" and job.out_dir == str(tmp_path / "run")
    # on the warning signal task 0 requeues it: resumed from the checkpoint rank 0 wrote
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoint.pt").write_bytes(b"")
    requeued = job.checkpoint().function
    assert requeued.resume and requeued.kwargs == job.kwargs

    # the dry run prints exactly the script that was submitted, and submits nothing
    fake_slurm.unlink()
    code, out, err = cli(argv + ["--dry-run"], capsys)
    assert code == 0 and out == script and not fake_slurm.exists()
    assert "nothing submitted; its 8 tasks are the ranks of one run" in err


def _task_env(monkeypatch, procid: int, localid: int, nodeid: int) -> None:
    """Slurm's variables in task ``procid`` of a 2 x 4 job on gpu07 and gpu08."""
    for key, value in dict(
        SUBMITIT_EXECUTOR="slurm",
        SLURM_JOB_ID=JOB_ID,
        SLURM_JOB_NODELIST="gpu[07-08]",
        SLURM_JOB_NUM_NODES="2",
        SLURM_NTASKS="8",
        SLURM_NODEID=str(nodeid),
        SLURM_PROCID=str(procid),
        SLURM_LOCALID=str(localid),
        CUDA_VISIBLE_DEVICES="0,1,2,3",
    ).items():
        monkeypatch.setenv(key, value)


def test_each_task_is_a_rank_that_meets_the_others_at_the_first_node(monkeypatch):
    monkeypatch.delenv("MASTER_PORT", raising=False)
    monkeypatch.setenv("RANK", "3")  # inherited from the submitting shell: overwritten
    _task_env(monkeypatch, procid=6, localid=2, nodeid=1)
    six = jobs.export_torch_env()
    assert {k: six[k] for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR")} == {
        "RANK": "6",
        "WORLD_SIZE": "8",
        "LOCAL_RANK": "2",
        "LOCAL_WORLD_SIZE": "4",
        "MASTER_ADDR": "gpu07",
    }
    assert {k: os.environ[k] for k in six} == six  # what podd.parallel.from_env reads
    assert os.environ["CUDA_VISIBLE_DEVICES"] == "0,1,2,3"  # Slurm's; the rank takes GPU 2
    assert jobs._other_task()
    _task_env(monkeypatch, procid=0, localid=0, nodeid=0)
    zero = jobs.export_torch_env()
    assert zero["RANK"] == "0" and not jobs._other_task()
    assert (zero["MASTER_ADDR"], zero["MASTER_PORT"]) == (six["MASTER_ADDR"], six["MASTER_PORT"])


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--nodes", "2"], "add --distributed"),
        (["--distributed", "tasks"], "give --gpus-per-node N"),
        (
            ["--distributed", "tasks", "--gpus-per-node", "4", "--tasks-per-node", "2"],
            "as many processes per node as GPUs",
        ),
        (["--distributed", "real-batch", "--gpus-per-node", "3", "--set", "real_batch=64"], "divides"),
        (["--distributed", "tasks", "--tasks-per-node", "2", "--executor", "debug"], "--executor submitit-local"),
        (["--dry-run", "--executor", "local"], "add --executor slurm"),
    ],
    ids=["nodes-alone", "no-gpus", "tasks-not-gpus", "real-batch-split", "debug", "dry-run-local"],
)
def test_a_job_that_cannot_be_split_is_refused_before_submitting(fake_slurm, tmp_path, capsys, argv, message):
    if "--executor" not in argv:
        argv = argv + ["--executor", "slurm"]
    code, _, err = cli(["distill", *SMALL, "--out", tmp_path / "run", *argv], capsys)
    assert code == 2 and message in err
    assert not fake_slurm.exists() and not (tmp_path / "run").exists()


def test_the_documented_example_is_what_the_dry_run_prints(fake_slurm, tmp_path, monkeypatch, capsys):
    """docs/cluster.md shows a command and the script it prints, for a checkout in
    /home/me/podd with its virtualenv; here it runs in a temporary directory."""
    text = (ROOT / "docs" / "cluster.md").read_text()
    match = re.search(r"```bash\n\$ (podd distill [^\n]*--dry-run)\n```\n.*?```bash\n(#!/bin/bash\n.*?)```", text, re.S)
    assert match, "docs/cluster.md: a ```bash block with '$ podd distill ... --dry-run', then the script"
    command, documented = match.group(1), match.group(2)
    monkeypatch.chdir(tmp_path)
    code, out, _ = cli(shlex.split(command)[1:], capsys)
    assert code == 0
    shown = out.replace(shlex.quote(sys.executable), "/home/me/podd/.venv/bin/python")
    shown = shown.replace(str(tmp_path), "/home/me/podd")
    assert shown == documented, "docs/cluster.md is out of date: put this script there\n" + shown
    assert not (tmp_path / "runs").exists()

    # the README's scale-out section shows the same job in short, and links the page
    readme = (ROOT / "README.md").read_text()
    assert "docs/cluster.md" in readme
    (short,) = re.findall(r"`(podd distill [^`]*--executor slurm --nodes 2 --gpus-per-node 4)`", readme)
    code, out, _ = cli(shlex.split(short)[1:] + ["--dry-run"], capsys)
    assert code == 0 and {
        "#SBATCH --nodes=2",
        "#SBATCH --ntasks-per-node=4",
        "#SBATCH --gpus-per-node=4",
    } <= _sbatch_lines(out)


# --------------------------------------------------------------------------------------------
# every rank stops after the same step (the warning reaches rank 1 only), rank 0 saves it
# --------------------------------------------------------------------------------------------
def tiny(**overrides):
    return tiny_digits_config(**{"steps": 5, **overrides})


class _SetOnCall:
    """A stop event that is set from its ``at``-th look on (as when the signal arrives)."""

    def __init__(self, at: int | None):
        self.at, self.calls = at, 0

    def is_set(self) -> bool:
        self.calls += 1
        return self.at is not None and self.calls >= self.at


def _stopping_rank(rank: int, tmp: str) -> None:
    import torch.distributed as dist

    from podd.data import load_dataset, make_preprocessor

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{tmp}/store", rank=rank, world_size=2)
    finished = None
    try:
        ds = load_dataset("digits", root=tmp, download=False)
        pre = make_preprocessor(ds, zca=False)
        parallel = Parallel("tasks", rank, 2)
        try:  # the warning reaches rank 1 alone, during its second step
            distill(
                tiny(),
                ds,
                out_dir=f"{tmp}/run",
                progress=False,
                preprocessor=pre,
                parallel=parallel,
                stop=_SetOnCall(2 if rank == 1 else None),
            )
            stopped = None
        except RunStopped as error:
            stopped = error.step
        resumed = distill(
            tiny(), ds, out_dir=f"{tmp}/run", resume=True, progress=False, preprocessor=pre, parallel=parallel
        )
        whole = distill(tiny(), ds, progress=False, preprocessor=pre, parallel=parallel)
        torch.save(
            {"stopped": stopped, "resumed": resumed.artifact.poster, "whole": whole.artifact.poster},
            f"{tmp}/rank{rank}.pt",
        )
        finished = parallel
    finally:
        shutdown(finished)


def test_the_ranks_stop_after_the_same_step_and_resume_to_the_same_poster(tmp_path):
    mp.spawn(_stopping_rank, args=(str(tmp_path),), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    assert [r["stopped"] for r in ranks] == [2, 2]
    history = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in history if "loss" in r] == [1, 2, 3, 4, 5]  # one writer, no gap
    for r in ranks:
        assert torch.equal(r["resumed"], ranks[0]["whole"])


@pytest.mark.skipif(jobs.warning_signal() is None, reason="needs SIGUSR2")
@pytest.mark.parametrize("task", [0, 1])
def test_only_the_first_task_of_a_stopped_job_raises(tmp_path, monkeypatch, task):
    """submitit's handler requeues from task 0 (and exits); another task returns quietly, so
    that its exit cannot end the job before task 0 has requeued it."""
    for key, value in dict(
        SUBMITIT_EXECUTOR="local",
        SUBMITIT_LOCAL_JOB_ID="7",
        SUBMITIT_LOCAL_NTASKS="2",
        SUBMITIT_LOCAL_GLOBALID=str(task),
        SUBMITIT_LOCAL_LOCALID=str(task),
    ).items():
        monkeypatch.setenv(key, value)
    handed = []

    def run(*, out_dir, resume, stop, distributed):
        os.kill(os.getpid(), jobs.warning_signal())
        assert stop.is_set()
        raise RunStopped(3, "stopped at step 3")

    previous = signal.signal(jobs.warning_signal(), lambda *a: handed.append(task))
    try:
        job = jobs.ResumableJob(run, tmp_path / "run", distributed="tasks")
        if task == 0:
            with pytest.raises(RunStopped):
                job()
        else:
            assert job() == {"out_dir": str(tmp_path / "run"), "stopped_at": 3}
    finally:
        signal.signal(jobs.warning_signal(), previous)
    assert handed == [task]  # submitit's handler ran in both


# --------------------------------------------------------------------------------------------
# end to end: two local tasks (gloo) through submitit, against one process
# --------------------------------------------------------------------------------------------
def test_two_local_tasks_give_one_process_trajectory(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    settings = [
        "--device",
        "cpu",
        "--threads",
        "1",
        "--set",
        f"data_root={tmp_path}",
        "--set",
        "width=8",
        "--set",
        "eval_models=0",
        "--set",
        "real_batch=32",
        "--set",
        "window=2",
        "--set",
        "total_window=3",
    ]
    code, out, _ = cli(
        [
            "distill",
            *SMALL,
            *settings,
            "--out",
            tmp_path / "job",
            "--executor",
            "submitit-local",
            "--distributed",
            "real-batch",
            "--tasks-per-node",
            "2",
            "--wait",
            "--jobs-folder",
            tmp_path / "jobs" / "%j",
        ],
        capsys,
    )
    assert code == 0 and out.count("run directory:") == 2, out  # submitted, then done
    assert json.loads((tmp_path / "job" / "distributed.json").read_text()) == [
        {"from_step": 0, "variant": "real-batch", "world_size": 2}
    ]
    code, _, _ = cli(["distill", *SMALL, *settings, "--out", tmp_path / "plain"], capsys)
    assert code == 0

    def poster(run):
        return torch.load(tmp_path / run / "poster.pt", weights_only=True)["poster"]

    assert torch.allclose(poster("job"), poster("plain"), atol=1e-5)
