"""One distillation on two gloo processes (CPU): the ``tasks`` all-reduce is the mean of the
single-process gradients of the same plans; the ``real-batch`` split follows one process; rank 0
alone writes the run directory, which resumes at another world size; a finished rank leaves the
group only when every rank is done; the torchrun entry point."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from cli_support import tiny_digits_config

from podd.data import load_dataset, make_preprocessor
from podd.distiller import Distiller
from podd.parallel import SINGLE, Parallel, from_env, shutdown
from podd.run_loop import distill

ROOT = Path(__file__).resolve().parents[1]
RANK0_LINGERS_S = 1.0


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny nets: one thread is fastest, and the machine's cores go to the rank processes."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny(**overrides):
    return tiny_digits_config(**overrides)


def _data(root):
    ds = load_dataset("digits", root=root, download=False)
    return ds, make_preprocessor(ds, zca=False)


def _worker(rank: int, world_size: int, tmp: str) -> None:
    """One rank: a ``tasks`` step's reduced gradients, then a ``real-batch`` run into a
    directory (both processes are started once: starting them is most of the test's time)."""
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{tmp}/store", rank=rank, world_size=world_size)
    finished = None
    try:
        ds, pre = _data(tmp)
        parallel = Parallel("tasks", rank, world_size)
        d = Distiller(tiny(), ds, pre, parallel)
        plan = parallel.plan(d.plan)
        loss, grads = parallel.reduce(*d.outer_gradients(plan), plan)
        torch.save({"loss": loss, "grads": list(grads)}, f"{tmp}/grads{rank}.pt")

        parallel = Parallel("real-batch", rank, world_size)
        result = distill(
            tiny(steps=4, checkpoint_every=2),
            ds,
            out_dir=f"{tmp}/run",
            progress=False,
            preprocessor=pre,
            parallel=parallel,
        )
        torch.save(result.artifact.poster, f"{tmp}/poster{rank}.pt")
        # digits' 1437 training images in batches of 718: the third batch has one image, and
        # rank 1 none of it
        short = distill(tiny(steps=3, real_batch=718), ds, progress=False, preprocessor=pre, parallel=parallel)
        torch.save(short.artifact.poster, f"{tmp}/short{rank}.pt")
        if rank == 0:
            time.sleep(RANK0_LINGERS_S)  # as when rank 0 writes the run's last files
        finished, leaving = parallel, time.perf_counter()
    finally:
        shutdown(finished)
    Path(f"{tmp}/shutdown{rank}.txt").write_text(str(time.perf_counter() - leaving))


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("ranks")
    mp.spawn(_worker, args=(2, str(tmp)), nprocs=2, join=True)
    return tmp


def test_world_size_one_is_the_identity():
    loss, grads = torch.tensor(1.0), [torch.ones(2)]
    assert SINGLE.reduce(loss, grads) == (loss, grads)
    assert SINGLE.plan(lambda: "plan") == "plan" and SINGLE.is_main
    os.environ.pop("WORLD_SIZE", None)
    assert from_env(None).world_size == 1


def test_world_size_one_runs_are_bit_identical_to_plain_runs(tmp_path):
    ds, pre = _data(tmp_path)
    plain = distill(tiny(), ds, progress=False, preprocessor=pre).artifact.poster
    for variant in ("tasks", "real-batch"):
        one = distill(tiny(), ds, progress=False, preprocessor=pre, parallel=Parallel(variant, 0, 1)).artifact.poster
        assert torch.equal(one, plain)


def test_tasks_allreduce_is_the_mean_of_single_process_gradients(two_ranks):
    tmp_path = two_ranks
    reduced = [torch.load(tmp_path / f"grads{r}.pt") for r in range(2)]
    ds, pre = _data(tmp_path)
    d = Distiller(tiny(), ds, pre)
    singles = [d.outer_gradients(p) for p in (d.plan(), d.plan())]  # the plans ranks 0 and 1 ran
    for rank_result in reduced:  # every rank holds the same mean
        mean_loss = (singles[0][0] + singles[1][0]) / 2
        assert torch.allclose(rank_result["loss"], mean_loss, atol=1e-6)
        for i, g in enumerate(rank_result["grads"]):
            mean = (singles[0][1][i] + singles[1][1][i]) / 2
            assert torch.allclose(g, mean, atol=1e-6, rtol=1e-5)
    assert not torch.allclose(singles[0][1][0], singles[1][1][0])  # two different tasks


def test_real_batch_split_follows_one_process_and_resumes_at_world_size_one(two_ranks):
    tmp_path = two_ranks
    ds, pre = _data(tmp_path)
    alone = distill(tiny(steps=4), ds, progress=False, preprocessor=pre)
    posters = [torch.load(tmp_path / f"poster{r}.pt") for r in range(2)]
    assert torch.equal(posters[0], posters[1])
    assert torch.allclose(posters[0], alone.artifact.poster, atol=1e-5)
    run = tmp_path / "run"
    assert json.loads((run / "distributed.json").read_text()) == [
        {"from_step": 0, "variant": "real-batch", "world_size": 2}
    ]
    assert (
        len([r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if "loss" in r]) == 4
    )  # one writer: each step logged once
    longer = distill(tiny(steps=6, checkpoint_every=2), ds, out_dir=run, resume=True, progress=False, preprocessor=pre)
    assert json.loads((run / "distributed.json").read_text()) == [  # not "2 from step 0" alone
        {"from_step": 0, "variant": "real-batch", "world_size": 2},
        {"from_step": 4, "variant": None, "world_size": 1},
    ]
    straight = distill(tiny(steps=6), ds, progress=False, preprocessor=pre)
    assert torch.allclose(longer.artifact.poster, straight.artifact.poster, atol=1e-5)


def test_a_rank_without_real_images_in_a_short_last_batch_adds_nothing(two_ranks):
    ds, pre = _data(two_ranks)
    assert len(ds.y_train) % 718 == 1  # the repro of the bug: one image left
    alone = distill(tiny(steps=3, real_batch=718), ds, progress=False, preprocessor=pre)
    for rank in range(2):
        poster = torch.load(two_ranks / f"short{rank}.pt")
        assert torch.isfinite(poster).all()
        assert torch.allclose(poster, alone.artifact.poster, atol=1e-5)


def test_a_finished_rank_leaves_the_group_only_when_every_rank_is_done(two_ranks):
    waited = [float((two_ranks / f"shutdown{r}.txt").read_text()) for r in range(2)]
    assert waited[1] >= 0.5 * RANK0_LINGERS_S  # rank 1 waited for rank 0 at the barrier
    assert waited[0] < 0.5 * RANK0_LINGERS_S  # rank 0, the last to arrive, did not wait


def test_real_batch_needs_a_world_size_that_divides_the_batch(tmp_path):
    ds, pre = _data(tmp_path)
    with pytest.raises(ValueError, match="divides"):
        Distiller(tiny(real_batch=63), ds, pre, Parallel("real-batch", 0, 2))


def test_torchrun_without_a_variant_is_refused(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(ValueError, match="--distributed tasks"):
        from_env(None)


def test_torchrun_entry_point(tmp_path):
    out = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node",
        "2",
        "-m",
        "podd.cli",
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
        "--threads",
        "1",
        "--out",
        str(out),
        "--distributed",
        "tasks",
        "--quiet",
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
        "--track",
        "tensorboard",
    ]  # --log: torchrun's own --log-dir
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("run directory:") == 1  # printed by rank 0 only
    assert json.loads((out / "distributed.json").read_text())[0]["world_size"] == 2
    assert (out / "poster.pt").exists() or any(out.iterdir())
    assert len(list((out / "tensorboard").glob("events.out.tfevents.*"))) == 1  # rank 0 tracks
