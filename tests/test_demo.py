"""make demo's comparison (podd.experiments.compare): the process-parallel run gives exactly the
sequential run's numbers; resumed and continued runs give those of a run that went there at once."""

import pytest
import torch

from podd.experiments import DIGITS_METHODS, compare_on_digits, default_workers, format_table


@pytest.fixture
def one_thread():
    # Worker processes run one torch thread; the inline run must too for bit-equal results.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _compare(tmp_path, workers):
    return compare_on_digits(
        "smoke",
        seeds=(0, 1),
        eval_models=2,
        out_dir=tmp_path / f"w{workers}",
        progress=False,
        methods=DIGITS_METHODS[1:],
        workers=workers,
    )


def test_parallel_workers_reproduce_the_sequential_comparison(tmp_path, one_thread):
    sequential, parallel = _compare(tmp_path, 1), _compare(tmp_path, 2)
    assert [r["method"] for r in sequential["rows"]] == ["random real", "PoDD", "RaT-BPTT baseline"]
    for a, b in zip(sequential["rows"], parallel["rows"]):
        assert (a["method"], a["ipc"], a["pixels"]) == (b["method"], b["ipc"], b["pixels"])
        assert len(a["accuracies"]) == 2 * 2  # 2 seeds x 2 evaluation models, pooled
        assert a["accuracies"] == b["accuracies"]
    # every distillation wrote its run directory and poster PNG
    assert sorted(parallel["runs"]) == [
        "baseline-ipc1-seed0",
        "baseline-ipc1-seed1",
        "podd-ipc1-seed0",
        "podd-ipc1-seed1",
    ]
    assert len(list((tmp_path / "w2").glob("*.png"))) == 4
    assert "| random real | 1.00 |" in format_table(parallel)


def test_workers_must_be_positive(tmp_path):
    with pytest.raises(ValueError, match="workers=0"):
        compare_on_digits("smoke", seeds=(0,), out_dir=None, progress=False, workers=0)


def test_default_workers_one_per_distillation_capped_by_cores(monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert default_workers(3) == 3
    assert default_workers(12) == 4
    assert default_workers(0) == 1


def test_the_longest_jobs_start_first(monkeypatch):
    """PoDD distillations, then baselines, then real subsets: started in the order of their cost,
    the pool's processes finish together (a baseline last would leave one core idle for a PoDD run)."""
    from types import SimpleNamespace

    from podd.experiments import sweep

    started = []

    def outcome(accuracy_models=2):
        geometry = SimpleNamespace(ipc=1.0, pixels=640)
        return SimpleNamespace(
            evaluation=SimpleNamespace(accuracy=torch.zeros(accuracy_models, 1)),
            artifact=SimpleNamespace(geometry=geometry),
            wall_time_s=0.0,
            made_at=None,
            collected=False,
        )

    monkeypatch.setattr(
        sweep,
        "_distill_job",
        lambda config, *a, **k: (started.append((config.mode, config.ipc, config.seed)), outcome())[1],
    )
    monkeypatch.setattr(
        sweep, "_reference_job", lambda config, *a, **k: (started.append(("real", 1.0, config.seed)), outcome())[1]
    )
    report = compare_on_digits(
        "smoke",
        seeds=(0, 1),
        eval_models=2,
        out_dir=None,
        progress=False,
        methods=(("baseline", 1.0), ("podd", 0.5), ("podd", 1.0)),
    )
    assert started == [
        ("podd", 0.5, 0),
        ("podd", 0.5, 1),
        ("podd", 1.0, 0),
        ("podd", 1.0, 1),
        ("baseline", 1.0, 0),
        ("baseline", 1.0, 1),
        ("real", 1.0, 0),
        ("real", 1.0, 1),
    ]
    assert [(r["mode"], r["ipc"]) for r in report["rows"]] == [
        ("real", 1.0),
        ("baseline", 1.0),
        ("podd", 1.0),
        ("podd", 1.0),
    ]


def test_continuing_earlier_runs_equals_running_longer_at_once(tmp_path, one_thread, monkeypatch):
    """More outer steps from an earlier comparison's runs cost only the new steps and give the
    numbers of a comparison that ran that long from the start (the CPU resumes bit-identically)."""
    from podd.distiller import Distiller

    steps_taken = []
    step = Distiller.step
    monkeypatch.setattr(Distiller, "step", lambda self: steps_taken.append(1) or step(self))

    def compare(out, steps, continue_from=None):
        steps_taken.clear()
        report = compare_on_digits(
            "smoke",
            seeds=(0,),
            eval_models=2,
            out_dir=tmp_path / out,
            progress=False,
            methods=DIGITS_METHODS[1:],
            steps=steps,
            continue_from=continue_from,
        )
        return report, len(steps_taken)

    (earlier, _), (at_once, _) = compare("short", steps=2), compare("long", 4)
    continued, taken = compare("continued", 4, continue_from=earlier["runs"])
    assert taken == 2 * 2  # two distillations (PoDD, baseline), two new steps each
    assert [r["accuracies"] for r in continued["rows"]] == [r["accuracies"] for r in at_once["rows"]]
    assert [r["accuracies"] for r in continued["rows"][1:]] != [r["accuracies"] for r in earlier["rows"][1:]]
    poster = "podd-ipc1-seed0/poster.pt"
    assert (tmp_path / "continued" / poster).read_bytes() != (tmp_path / "short" / poster).read_bytes()


def test_a_continuation_cut_off_resumes_from_its_own_checkpoint(tmp_path, one_thread, monkeypatch):
    """The copy of an earlier run holds no finished files while it goes on (so a cut-off copy is
    not taken finished at the earlier step count), and resume=True goes on from the copy's own
    checkpoint instead of copying the earlier run again: the numbers of running that long at once."""
    from podd.distiller import Distiller

    copy = tmp_path / "continued" / "podd-ipc1-seed0"
    steps_taken, finished_while_going_on = [], []
    step = Distiller.step

    def counted_step(self):
        steps_taken.append(1)
        finished_while_going_on.append((copy / "final.json").exists())
        return step(self)

    monkeypatch.setattr(Distiller, "step", counted_step)

    def compare(out, steps, **kwargs):
        steps_taken.clear()
        return compare_on_digits(
            "smoke",
            seeds=(0,),
            eval_models=2,
            out_dir=tmp_path / out,
            progress=False,
            methods=DIGITS_METHODS[1:2],
            steps=steps,
            **kwargs,
        )

    earlier, at_once = compare("short", 2), compare("long", 4)
    finished_while_going_on.clear()
    compare("continued", 3, continue_from=earlier["runs"])
    assert finished_while_going_on == [False]  # one new step, no stale final.json beside it
    (copy / "final.json").unlink()  # cut off after the checkpoint of step 3
    (copy / "poster.pt").unlink()
    resumed = compare("continued", 4, continue_from=earlier["runs"], resume=True)
    assert len(steps_taken) == 1  # from step 3, not again from step 2
    assert [r["accuracies"] for r in resumed["rows"]] == [r["accuracies"] for r in at_once["rows"]]


def test_continuing_needs_a_run_directory():
    with pytest.raises(ValueError, match="continue_from needs out_dir"):
        compare_on_digits(
            "smoke", seeds=(0,), out_dir=None, progress=False, continue_from={"podd-ipc1-seed0": "/earlier"}
        )


def test_resuming_keeps_finished_runs_and_goes_on_from_checkpoints(tmp_path, one_thread, monkeypatch):
    """A comparison cut off (or failed at its end) loses no finished distillation: run again with
    resume=True it takes the finished runs as they are (no outer step, the same numbers), goes on
    from the checkpoint of a run stopped before its end, and refuses runs of other settings."""
    from podd.distiller import Distiller
    from podd.provenance import git_commit

    steps_taken = []
    step = Distiller.step
    monkeypatch.setattr(Distiller, "step", lambda self: steps_taken.append(1) or step(self))

    def compare(resume, **settings):
        steps_taken.clear()
        return compare_on_digits(
            "smoke",
            seeds=(0,),
            eval_models=2,
            out_dir=tmp_path,
            progress=False,
            methods=DIGITS_METHODS[1:],
            resume=resume,
            **settings,
        )

    first = compare(False, steps=2)
    assert len(steps_taken) == 2 * 2 and set(first["made_at"].values()) == {git_commit()}
    (tmp_path / "podd-ipc1-seed0" / "final.json").unlink()  # PoDD stopped after its last
    (tmp_path / "podd-ipc1-seed0" / "poster.pt").unlink()  # checkpoint, before its files
    again = compare(True, steps=2)
    assert steps_taken == []
    assert first["taken_finished"] == [] and again["taken_finished"] == ["baseline-ipc1-seed0"]
    assert [r["accuracies"] for r in again["rows"]] == [r["accuracies"] for r in first["rows"]]
    assert (tmp_path / "podd-ipc1-seed0" / "final.json").exists()
    with pytest.raises(
        ValueError,
        match=r"ipc1-seed0 holds a finished run made with "
        r"other settings \(\['steps'\]\)",
    ):
        compare(True, steps=3)


def test_resuming_needs_a_run_directory():
    with pytest.raises(ValueError, match="resume needs out_dir"):
        compare_on_digits("smoke", seeds=(0,), out_dir=None, progress=False, resume=True)
