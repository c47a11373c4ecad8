"""benchmarks/quality_cifar10.py: --reuse takes earlier rows only when nothing they depend on
changed; the loss plot says its settings."""

import importlib.util
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from podd.experiments import job_config

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
DATA = SimpleNamespace(name="npz:/data/cifar10.npz", num_classes=10, image_shape=(3, 32, 32))


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCHMARKS))  # the script imports its sibling quality_report
    try:
        spec = importlib.util.spec_from_file_location("quality_cifar10", BENCHMARKS / "quality_cifar10.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(BENCHMARKS))


def _row(mode, method, ipc, accuracies):
    return {
        "mode": mode,
        "method": method,
        "ipc": ipc,
        "accuracies": accuracies,
        "mean": 0.0,
        "std": 0.0,
        "seeds": [0],
        "pixels": 1,
    }


def _report(rows, runs=None):
    return {
        "profile": "quick",
        "seeds": [0],
        "eval_models_per_seed": 2,
        "eval_steps": 300,
        "overrides": {"class_order": "identity"},
        "rows": rows,
        "runs": runs or {},
        "provenance": {"git_commit": "f" * 40},
    }


def _earlier(tmp_path, baseline_config=None):
    """An earlier run with random real, baseline and PoDD 0.5 rows and their run directories."""
    runs = {}
    for mode, ipc in (("baseline", 1.0), ("podd", 0.5)):
        name = f"{mode}-ipc{ipc:g}-seed0"
        config = job_config(
            DATA, "quick", mode, ipc, 0, 2, (300,), {"class_order": "identity"}, preset="cifar10"
        ).to_dict()
        if mode == "baseline" and baseline_config:
            config.update(baseline_config)
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text(json.dumps(config))
        runs[name] = str(tmp_path / name)
    path = tmp_path / "earlier.json"
    path.write_text(
        json.dumps(
            _report(
                [
                    _row("real", "random real", 1.0, [18.0, 19.0]),
                    _row("baseline", "RaT-BPTT baseline", 1.0, [30.0, 31.0]),
                    _row("podd", "PoDD", 0.497, [24.0, 25.0]),
                ],
                runs,
            )
        )
    )
    return path


def _now():
    return _report(
        [_row("real", "random real", 1.0, [18.0, 19.0]), _row("podd", "PoDD", 0.497, [26.0, 27.0])],
        {"podd-ipc0.5-seed0": "/new/podd-ipc0.5-seed0"},
    )


def test_unchanged_rows_are_taken_and_named(bench, tmp_path):
    report = _now()
    reused = bench.reuse_rows(report, _earlier(tmp_path), DATA)
    assert reused["rows"] == ["RaT-BPTT baseline 1 IPC"] and reused["commit"] == "f" * 40
    assert [r["method"] for r in report["rows"]] == ["random real", "RaT-BPTT baseline", "PoDD"]
    podd = report["rows"][2]
    assert podd["accuracies"] == [26.0, 27.0]  # the row run now is kept, not replaced
    assert report["runs"]["baseline-ipc1-seed0"] == str(tmp_path / "baseline-ipc1-seed0")


def test_a_run_made_before_a_setting_existed_is_taken(bench, tmp_path):
    """An earlier config.json without a setting added since (here truncated_dtype) had that
    setting's default: the row is the same and is taken."""
    earlier = _earlier(tmp_path)
    config_path = tmp_path / "baseline-ipc1-seed0" / "config.json"
    config = json.loads(config_path.read_text())
    del config["truncated_dtype"]
    config_path.write_text(json.dumps(config))
    assert bench.reuse_rows(_now(), earlier, DATA)["rows"] == ["RaT-BPTT baseline 1 IPC"]


def test_a_row_made_with_other_settings_is_refused(bench, tmp_path):
    with pytest.raises(SystemExit, match="window"):
        bench.reuse_rows(_now(), _earlier(tmp_path, {"window": 11}), DATA)


def test_a_different_random_real_row_is_refused(bench, tmp_path):
    now = _now()
    now["rows"][0]["accuracies"] = [18.0, 19.0 + bench.REAL_ROW_TOLERANCE + 0.5]
    with pytest.raises(SystemExit, match=r"random-real row differs from the earlier run.s \(by up to 1.5 points"):
        bench.reuse_rows(now, _earlier(tmp_path), DATA)


def test_a_random_real_row_within_float_rounding_is_taken_and_said(bench, tmp_path):
    """Another CPU's vector kernels round differently, and training amplifies it a little."""
    now = _now()
    now["rows"][0]["accuracies"] = [18.2, 19.0]
    reused = bench.reuse_rows(now, _earlier(tmp_path), DATA)
    assert reused["rows"] == ["RaT-BPTT baseline 1 IPC"]
    assert "random-real row recomputed within 0.2 points per model" in reused["check"]
    (tmp_path / "again").mkdir()
    identical = bench.reuse_rows(_now(), _earlier(tmp_path / "again"), DATA)
    assert "random-real row identical" in identical["check"]


def test_other_seeds_are_refused(bench, tmp_path):
    now = _now()
    now["seeds"] = [0, 1]
    with pytest.raises(SystemExit, match="seeds"):
        bench.reuse_rows(now, _earlier(tmp_path), DATA)


def test_the_loss_plot_title_names_settings_changed_from_the_profile(bench):
    report = _now()
    assert bench.loss_plot_title(report) == "Outer loss, profile quick — CIFAR-10 10 % subset"
    report["overrides"]["width"] = 64
    assert "profile quick, width=64 —" in bench.loss_plot_title(report)


def test_the_report_names_the_poster_each_selecting_run_kept(bench, tmp_path):
    runs = {}
    for name, best in (
        ("podd-ipc0.5-seed0", {"step": 200, "train_accuracy": 41.25}),
        ("baseline-ipc1-seed0", None),
        ("podd-ipc1-seed0", "no final.json"),
    ):
        (tmp_path / name).mkdir()
        if best != "no final.json":
            (tmp_path / name / "final.json").write_text(json.dumps({"result": {"best": best}}))
        runs[name] = str(tmp_path / name)
    chosen = bench.best_selections({"runs": runs})
    assert chosen == {"podd-ipc0.5-seed0": {"step": 200, "train_accuracy": 41.25}}
    assert "kept: podd-ipc0.5-seed0 step 200 (41.2 % on the training images)" in bench.selection_note(chosen)
    assert bench.selection_note({}) == ""


def test_continuing_needs_more_steps_than_the_earlier_run(bench, tmp_path, capsys):
    import numpy as np

    data = tmp_path / "tiny.npz"
    np.savez(
        data,
        x_train=np.zeros((40, 32, 32, 3), np.uint8),
        y_train=np.repeat(np.arange(10), 4),
        class_names=np.array([f"class{i}" for i in range(10)]),
    )
    earlier = tmp_path / "earlier.json"
    earlier.write_text(
        json.dumps(_report([], {"podd-ipc1-seed0": "/runs/podd-ipc1-seed0"}) | {"settings": {"steps": 200}})
    )
    for steps in ([], ["--steps", "200"]):
        with pytest.raises(SystemExit):
            bench.main(["--data", str(data), "--n-val", "10", "--continue-from", str(earlier), *steps])
        assert "give --steps above the earlier run's 200" in capsys.readouterr().err


def _gone(tmp_path):
    """The earlier run of _earlier, its run directories deleted (they live outside the repo)."""
    import shutil

    path = _earlier(tmp_path)
    earlier = json.loads(path.read_text())
    earlier["loss_curves"] = {"baseline-ipc1-seed0": [[0, 2.3], [10, 2.1]]}
    path.write_text(json.dumps(earlier))
    for run_dir in earlier["runs"].values():
        shutil.rmtree(run_dir)
    return path


def test_gone_run_directories_are_taken_when_the_code_is_unchanged(bench, tmp_path, monkeypatch):
    asked = []
    monkeypatch.setattr(bench, "same_code", lambda commit, at: asked.append((commit, at)) or True)
    report = _now()
    reused = bench.reuse_rows(report, _gone(tmp_path), DATA)
    assert asked == [("f" * 40, None)]  # the new row was made from this work tree
    assert reused["rows"] == ["RaT-BPTT baseline 1 IPC"]
    assert "baseline-ipc1-seed0, whose run directories are gone" in reused["check"]
    assert "as where this run's distillations were made (this work tree)" in reused["check"]
    assert reused["loss_curves"] == {"baseline-ipc1-seed0": [[0, 2.3], [10, 2.1]]}
    assert report["runs"]["baseline-ipc1-seed0"] == str(tmp_path / "baseline-ipc1-seed0")


def test_gone_run_directories_are_refused_when_the_code_changed(bench, tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "same_code", lambda commit, at: False)
    with pytest.raises(
        SystemExit,
        match="is gone and podd/ or constraints.txt differ between "
        r"fffffff \(where it was made\) and where this run's "
        "distillations were made",
    ):
        bench.reuse_rows(_now(), _gone(tmp_path), DATA)


def test_runs_taken_finished_are_checked_at_the_commit_they_were_made_at(bench, tmp_path, monkeypatch):
    """A --resume'd run made at an earlier commit: the code that made it is what must equal the
    reused rows' code, whatever changed since (e.g. only the random-real row's plumbing)."""
    asked = []
    monkeypatch.setattr(bench, "same_code", lambda commit, at: asked.append((commit, at)) or True)
    report = _now() | {"made_at": {"podd-ipc0.5-seed0": "a" * 40}}
    reused = bench.reuse_rows(report, _gone(tmp_path), DATA)
    assert asked == [("f" * 40, "a" * 40)]
    assert "were made (aaaaaaa)" in reused["check"]


def test_same_code_asks_git(bench):
    import subprocess

    root = BENCHMARKS.parent
    log = subprocess.run(
        ["git", "log", "--format=%H", "--", "podd", "constraints.txt"], cwd=root, capture_output=True, text=True
    )
    if log.returncode != 0 or len(log.stdout.split()) < 2:
        pytest.skip("needs this repository's git history")
    last_change, before_it = log.stdout.split()[:2]
    dirty = (
        subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "podd", "constraints.txt"], cwd=root).returncode != 0
    )
    assert bench.same_code(last_change) is not dirty
    assert bench.same_code(before_it) is False
    assert bench.same_code("0" * 40) is False  # an unknown commit
    assert bench.same_code(last_change, last_change) is True
    assert bench.same_code(before_it, last_change) is False
    assert bench.same_code(last_change, f"{last_change}-dirty") is False  # git cannot tell


def test_rows_an_earlier_report_reused_are_checked_at_the_commit_they_were_made_at(bench, tmp_path, monkeypatch):
    """Reuse chains: a report whose baseline row was itself taken from an older report holds
    runs made at that older commit, and the code must be compared with that one."""
    asked = []
    monkeypatch.setattr(bench, "same_code", lambda commit, at: asked.append((commit, at)) or True)
    path = _gone(tmp_path)
    earlier = json.loads(path.read_text())
    earlier["reused"] = {"rows": ["RaT-BPTT baseline 1 IPC"], "commit": "b" * 40}
    path.write_text(json.dumps(earlier))
    reused = bench.reuse_rows(_now(), path, DATA)
    assert asked == [("b" * 40, None)]
    assert reused["made_at"] == {"baseline-ipc1-seed0": "b" * 40}
    assert "the same at bbbbbbb as where" in reused["check"]
    # recorded per run, as this version writes it, it is taken from there
    earlier["reused"]["made_at"] = {"baseline-ipc1-seed0": "c" * 40}
    path.write_text(json.dumps(earlier))
    asked.clear()
    assert bench.reuse_rows(_now(), path, DATA)["made_at"] == {"baseline-ipc1-seed0": "c" * 40}
    assert asked == [("c" * 40, None)]


def test_rows_an_earlier_report_made_itself_are_checked_at_their_own_commit(bench, tmp_path, monkeypatch):
    asked = []
    monkeypatch.setattr(bench, "same_code", lambda commit, at: asked.append((commit, at)) or True)
    path = _gone(tmp_path)
    earlier = json.loads(path.read_text())
    earlier["made_at"] = {"baseline-ipc1-seed0": "d" * 40}
    path.write_text(json.dumps(earlier))
    assert bench.reuse_rows(_now(), path, DATA)["made_at"] == {"baseline-ipc1-seed0": "d" * 40}
    assert asked == [("d" * 40, None)]


def test_methods_at_other_ipcs_and_their_checks(bench):
    """--methods podd-0.7 adds a PoDD row between the issue's; it is held to the second target
    (within 1 point of the baseline) and sorted by IPC, while names off the 0.05 grid, IPCs above
    one and a baseline below one IPC are refused."""
    assert bench.method_of("podd-0.5") == ("podd", 0.5)
    assert bench.method_of("podd-0.7") == ("podd", 0.7)
    for bad in ("podd-0.72", "podd-1.5", "podd-0", "baseline-0.5", "podd-x", "random-1"):
        with pytest.raises(ValueError, match="unknown method"):
            bench.method_of(bad)

    def row(mode, ipc, mean):
        return {**_row(mode, mode, ipc, [mean]), "mean": mean}

    # effective IPCs as the posters have them (0.707, 0.497, 0.301)
    rows = [
        row("podd", 0.301, 20.0),
        row("podd", 0.497, 30.0),
        row("real", 1.0, 15.0),
        row("podd", 0.707, 33.0),
        row("baseline", 1.0, 34.5),
    ]
    checks = bench.checks({"rows": rows})
    assert checks["PoDD 0.7 IPC within 1 point of the baseline or above"] == "MISSED (margin -0.5 points)"
    assert checks["PoDD 0.5 IPC within 1 point of the baseline or above"] == "MISSED (margin -3.5 points)"
    assert checks["PoDD 0.7 IPC beats random real 1 IPC"] == "met (margin +18.0 points)"
    assert not any("0.3" in name for name in checks)  # 0.3 IPC is shown, not a target
    rows[3]["mean"] = 33.5  # exactly 1 point below: met
    assert (
        bench.checks({"rows": rows})["PoDD 0.7 IPC within 1 point of the baseline or above"]
        == "met (margin +0.0 points)"
    )
    assert [bench._ipc_of(r) for r in sorted(rows, key=bench.row_order)] == [1.0, 1.0, 0.7, 0.5, 0.3]
    assert [r["mode"] for r in sorted(rows, key=bench.row_order)][:2] == ["real", "baseline"]


GPU_RESULTS = BENCHMARKS / "results" / "cuda_h200"


def test_render_writes_again_what_the_run_wrote(bench, tmp_path):
    """--render makes the markdown of a report from its JSON alone: for the GPU session's
    500-step run it gives back, byte for byte, the markdown that run wrote on the GPU machine."""
    name = "quality_cifar10_gpu_width64_steps500"
    copy = tmp_path / f"{name}.json"
    copy.write_text((GPU_RESULTS / f"{name}.json").read_text())
    written = bench.render(copy)
    assert (tmp_path / f"{name}.md").read_text() == (GPU_RESULTS / f"{name}.md").read_text()
    assert (tmp_path / f"{name}_loss.png") in written
    assert copy.read_text() == (GPU_RESULTS / f"{name}.json").read_text()


def test_render_refuses_verdicts_the_rows_do_not_give(bench, tmp_path):
    report = json.loads((GPU_RESULTS / "quality_cifar10_gpu_width64_steps500.json").read_text())
    podd = next(row for row in report["rows"] if row["mode"] == "podd" and row["ipc"] == 1.0)
    podd["mean"] += 10.0  # an edited number: the stored verdict no longer follows
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(report))
    with pytest.raises(ValueError, match="verdicts do not follow from its rows"):
        bench.render(path)


def test_a_repeated_set_adds_to_the_earlier_ones(bench):
    """`--set width=64 --set engine=compiled` keeps both (the second used to replace the
    first without a word, so a run meant for width 64 ran at the profile's width)."""
    args = bench.build_parser().parse_args(["--set", "width=64", "--set", "engine=compiled", "labels=fixed"])
    assert args.set == ["width=64", "engine=compiled", "labels=fixed"]
    assert bench.build_parser().parse_args([]).set == []
