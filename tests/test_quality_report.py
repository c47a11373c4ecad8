"""benchmarks/quality_report.py: a report's files are named after ``--out`` as given, dots and all."""

import importlib.util
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _quality_report():
    spec = importlib.util.spec_from_file_location("quality_report", BENCHMARKS / "quality_report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_dot_in_the_name_is_kept():
    # Path.with_suffix would turn "probes/lr-1e-2-podd-0.5" into "probes/lr-1e-2-podd-0.json"
    report_path = _quality_report().report_path
    assert report_path("probes/lr-1e-2-podd-0.5", ".json") == Path("probes/lr-1e-2-podd-0.5.json")
    assert report_path(Path("probes/podd-0.5"), "_loss.png") == Path("probes/podd-0.5_loss.png")


def test_a_name_given_with_a_report_extension_is_not_doubled():
    report_path = _quality_report().report_path
    assert report_path("results/quality.json", ".md") == Path("results/quality.md")
    assert report_path("results/quality.md", ".json") == Path("results/quality.json")


def test_write_report_writes_both_files_under_the_dotted_name(tmp_path, capsys):
    module = _quality_report()
    report = {
        "dataset": "a test",
        "seeds": [0],
        "eval_models_per_seed": 1,
        "eval_steps": 3,
        "profile": "smoke",
        "rows": [{"method": "PoDD", "ipc": 0.5, "pixels": 5085, "mean": 27.9, "std": 1.5}],
        "provenance": {"command": "python x.py", "git_commit": "abc", "device": "cpu", "wall_time_s": 1.0},
    }
    paths = module.write_report(report, tmp_path / "podd-0.5", verdict="ok")
    assert [p.name for p in paths] == ["podd-0.5.json", "podd-0.5.md"]
    assert all(p.exists() for p in paths)
    assert not (tmp_path / "podd-0.json").exists()
    assert "python x.py" in paths[1].read_text()
