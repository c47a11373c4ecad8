"""benchmarks/quality_eval_steps.py: longer evaluations of a benchmark's posters repeat the
benchmark's own numbers at its step count, model for model."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def scripts():
    sys.path.insert(0, str(BENCHMARKS))  # quality_cifar10 imports its sibling quality_report
    try:
        yield _load("quality_cifar10"), _load("quality_eval_steps")
    finally:
        sys.path.remove(str(BENCHMARKS))


def _tiny_cifar(path):
    """120 CIFAR-shaped images, 12 per class: a fixed template per class plus noise."""
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(10), 12)
    templates = rng.integers(0, 255, (10, 32, 32, 3))
    x = 0.7 * templates[y] + 0.3 * rng.integers(0, 255, (120, 32, 32, 3))
    np.savez(path, x_train=x.astype(np.uint8), y_train=y, class_names=np.array([f"class{i}" for i in range(10)]))


@pytest.fixture(scope="module")
def bench(scripts, tmp_path_factory):
    """A smoke benchmark on tiny CIFAR-shaped data: (its folder, the options every script shares)."""
    quality, _ = scripts
    tmp_path = tmp_path_factory.mktemp("bench")
    data = tmp_path / "tiny.npz"
    _tiny_cifar(data)
    common = ["--data", str(data), "--n-val", "40", "--workers", "1"]
    threads = torch.get_num_threads()
    seen = []
    real_compare = quality.compare_methods
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("PODD_DATA", str(tmp_path / "cache"))
        monkeypatch.setattr(
            quality, "compare_methods", lambda *a, **k: (seen.append(torch.get_num_threads()), real_compare(*a, **k))[1]
        )
        quality.main(
            [
                *common,
                "--seeds",
                "0",
                "--eval-models",
                "2",
                "--profile",
                "smoke",
                "--methods",
                "baseline-1",
                "podd-0.5",
                "--runs",
                str(tmp_path / "runs"),
                "--out",
                str(tmp_path / "bench"),
            ]
        )
    # one inline worker is single-threaded, as the report says; torch's setting is given back
    assert seen == [1] and torch.get_num_threads() == threads
    return tmp_path, common


def test_the_benchmarks_step_count_gives_its_numbers_and_longer_ones_are_added(scripts, bench, monkeypatch):
    _, eval_steps = scripts
    tmp_path, common = bench
    monkeypatch.setenv("PODD_DATA", str(tmp_path / "cache"))
    eval_steps.main(
        [*common, "--results", str(tmp_path / "bench.json"), "--steps", "20", "40", "--out", str(tmp_path / "longer")]
    )
    eval_steps.main(
        [
            *common,
            "--results",
            str(tmp_path / "bench.json"),
            "--steps",
            "20",
            "--models",
            "1",
            "--out",
            str(tmp_path / "first"),
        ]
    )
    bench = json.loads((tmp_path / "bench.json").read_text())
    longer = json.loads((tmp_path / "longer.json").read_text())
    assert bench["eval_steps"] == 20  # the smoke profile's
    assert [r["row"] for r in longer["rows"]] == ["random real 1 IPC", "RaT-BPTT baseline 1 IPC", "PoDD 0.497 IPC"]
    for row, again in zip(bench["rows"], longer["rows"]):
        at_20 = [round(models[0], 2) for models in again["accuracies"]]
        assert at_20 == row["accuracies"], row["method"]
        assert again["steps"] == [20, 40] and all(len(m) == 2 for m in again["accuracies"])
    table = (tmp_path / "longer.md").read_text()
    assert "| row | 20 steps | 40 steps |" in table
    base, podd = longer["rows"][1]["mean"], longer["rows"][2]["mean"]
    assert (f"| PoDD 0.497 IPC − baseline | {podd[0] - base[0]:+.1f} | {podd[1] - base[1]:+.1f} |") in table
    # the first model of each seed is the benchmark's first model
    first = json.loads((tmp_path / "first.json").read_text())
    assert [r["accuracies"] for r in first["rows"]] == [[[m[0]] for m in r["accuracies"][:1]] for r in longer["rows"]]
    assert all(r["std"] == [0.0] for r in first["rows"])  # one model: no spread (not NaN)


def test_a_row_finds_its_runs_by_requested_ipc(scripts):
    _, eval_steps = scripts
    report = {
        "rows": [{"mode": "podd", "method": "PoDD", "ipc": 0.497}, {"mode": "podd", "method": "PoDD", "ipc": 1.0}],
        "seeds": [3],
        "eval_models_per_seed": 1,
        "settings": {},
        "runs": {"podd-ipc1-seed3": "/r/one", "podd-ipc0.5-seed3": "/r/half"},
    }
    jobs = eval_steps.jobs_of(report, "x.npz", 10, 0, [300])
    assert [(job["row"], job["run_dir"]) for job in jobs] == [("PoDD 0.497 IPC", "/r/half"), ("PoDD 1 IPC", "/r/one")]
    with pytest.raises(ValueError, match="trained 1 per seed"):
        eval_steps.jobs_of(report, "x.npz", 10, 0, [300], models=2)


def test_a_cut_off_run_resumes_from_its_journal_and_split_jobs_give_the_same_students(
    scripts, bench, monkeypatch, tmp_path
):
    """Jobs of one model each, cut off after two: the journal holds those two, a rerun without
    --resume refuses to overwrite it, --resume does only the rest, and the tables equal one
    uninterrupted run with whole-poster jobs."""
    _, eval_steps = scripts
    folder, common = bench
    monkeypatch.setenv("PODD_DATA", str(folder / "cache"))
    args = [*common, "--results", str(folder / "bench.json"), "--steps", "20"]
    eval_steps.main([*args, "--out", str(tmp_path / "whole")])
    assert not (tmp_path / "whole.jobs.jsonl").exists()  # removed once the JSON is written

    real_job, calls = eval_steps._evaluate_job, []

    def cut_off_after_two(job):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append((job["row"], job["first_model"]))
        return real_job(job)

    monkeypatch.setattr(eval_steps, "_evaluate_job", cut_off_after_two)
    split = [*args, "--models-per-job", "1", "--out", str(tmp_path / "split")]
    with pytest.raises(KeyboardInterrupt):
        eval_steps.main(split)
    # largest first: the PoDD poster's two single-model jobs went first
    assert calls == [("PoDD 0.497 IPC", 0), ("PoDD 0.497 IPC", 1)]
    journal = tmp_path / "split.jobs.jsonl"
    assert len(journal.read_text().splitlines()) == 2
    with pytest.raises(SystemExit):
        eval_steps.main(split)  # would lose the journal
    calls.clear()
    monkeypatch.setattr(
        eval_steps, "_evaluate_job", lambda job: (calls.append((job["row"], job["first_model"])), real_job(job))[1]
    )
    eval_steps.main([*split, "--resume"])
    assert calls == [
        ("RaT-BPTT baseline 1 IPC", 0),
        ("RaT-BPTT baseline 1 IPC", 1),
        ("random real 1 IPC", 0),
    ]  # random real stays one job
    whole = json.loads((tmp_path / "whole.json").read_text())
    resumed = json.loads((tmp_path / "split.json").read_text())
    assert resumed["resumed_jobs"] == 2 and not journal.exists()
    assert [r["accuracies"] for r in resumed["rows"]] == [r["accuracies"] for r in whole["rows"]]
    podd = whole["rows"][2]["accuracies"]
    assert podd[0] != podd[1]  # the models differ, so a swapped reassembly would show
    assert [(j["row"], j["first_model"], j["eval_models"]) for j in resumed["jobs"]] == [
        ("random real 1 IPC", 0, 2),
        ("RaT-BPTT baseline 1 IPC", 0, 1),
        ("RaT-BPTT baseline 1 IPC", 1, 1),
        ("PoDD 0.497 IPC", 0, 1),
        ("PoDD 0.497 IPC", 1, 1),
    ]


def test_jobs_split_a_posters_models_and_reject_a_bad_split(scripts):
    _, eval_steps = scripts
    report = {
        "rows": [{"mode": "real", "method": "random real", "ipc": 1.0}, {"mode": "podd", "method": "PoDD", "ipc": 1.0}],
        "seeds": [0],
        "eval_models_per_seed": 8,
        "settings": {},
        "runs": {"podd-ipc1-seed0": "/r/one"},
    }
    jobs = eval_steps.jobs_of(report, "x.npz", 10, 0, [300], models_per_job=3)
    assert [(j["row"], j["first_model"], j["eval_models"]) for j in jobs] == [
        ("random real 1 IPC", 0, 8),
        ("PoDD 1 IPC", 0, 3),
        ("PoDD 1 IPC", 3, 3),
        ("PoDD 1 IPC", 6, 2),
    ]
    assert eval_steps.largest_first(jobs) == [1, 2, 3, 0]
    assert len({eval_steps.job_key(j) for j in jobs}) == 4
    with pytest.raises(ValueError, match="at least 1"):
        eval_steps.jobs_of(report, "x.npz", 10, 0, [300], models_per_job=0)


def test_students_can_train_on_other_labels_than_the_posters_own(scripts, bench, monkeypatch):
    """--labels fixed on posters distilled with fixed labels repeats the benchmark model for
    model (the same students, the same labels); --labels area changes only the PoDD row's
    labels, to each class's share of the patch's pixels."""
    from podd.labels import area_labels, fixed_labels
    from podd.rundir import load_run

    _, eval_steps = scripts
    tmp_path, common = bench
    monkeypatch.setenv("PODD_DATA", str(tmp_path / "cache"))
    bench_json = json.loads((tmp_path / "bench.json").read_text())
    for kind in ("fixed", "area"):
        eval_steps.main(
            [
                *common,
                "--results",
                str(tmp_path / "bench.json"),
                "--steps",
                "20",
                "--labels",
                kind,
                "--out",
                str(tmp_path / kind),
            ]
        )
    fixed = json.loads((tmp_path / "fixed.json").read_text())
    area = json.loads((tmp_path / "area.json").read_text())
    assert fixed["labels"] == "fixed" and area["labels"] == "area"
    assert [[round(m[0], 2) for m in r["accuracies"]] for r in fixed["rows"]] == [
        r["accuracies"] for r in bench_json["rows"]
    ]
    assert area["rows"][:2] == fixed["rows"][:2]  # random real and baseline: one-hot
    assert "PoDD students trained on area labels" in (tmp_path / "area.md").read_text()

    podd_run = next(d for n, d in bench_json["runs"].items() if n.startswith("podd-"))
    artifact, _ = load_run(podd_run)
    own = fixed_labels(artifact.class_order, artifact.geometry)
    assert artifact.label_mode == "fixed"
    shares = eval_steps.student_labels(artifact, own, "area")
    assert torch.equal(shares, area_labels(artifact.class_order, artifact.geometry))
    assert not torch.equal(shares, own)  # 0.5 IPC: mixed patches
    assert eval_steps.student_labels(artifact, own, "run") is own
    with pytest.raises(ValueError, match="one of run, fixed, area"):
        eval_steps.student_labels(artifact, own, "soft")
