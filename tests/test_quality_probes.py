"""benchmarks/quality_probes.py sets a probe beside the reference's same seeds and models."""

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "quality_probes.py"


@pytest.fixture(scope="module")
def probes():
    spec = importlib.util.spec_from_file_location("quality_probes", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _report(seeds, models, rows, commit="abc1234def", overrides=None):
    return {
        "seeds": seeds,
        "eval_models_per_seed": models,
        "rows": rows,
        "overrides": overrides or {},
        "provenance": {"git_commit": commit, "wall_time_s": 12.0},
    }


# reference: 2 seeds × 3 models; the baseline's accuracies are seed*10 + model index
REFERENCE = _report(
    [0, 1],
    3,
    [
        {"mode": "real", "method": "random real", "ipc": 1.0, "accuracies": [1.0] * 6},
        {
            "mode": "baseline",
            "method": "RaT-BPTT baseline",
            "ipc": 1.0,
            "accuracies": [0.0, 1.0, 2.0, 10.0, 11.0, 12.0],
        },
        {"mode": "podd", "method": "PoDD", "ipc": 0.497, "accuracies": [5.0] * 6},
    ],
)


def test_the_reference_is_the_probes_seeds_and_first_models(probes):
    row = {"mode": "baseline", "ipc": 1.0}
    assert probes.reference_accuracies(REFERENCE, row, [1], 2) == [10.0, 11.0]
    assert probes.reference_accuracies(REFERENCE, row, [0, 1], 1) == [0.0, 10.0]
    # the IPC is matched on the requested-IPC grid (0.497 is the 0.5-IPC row, 0.55 is not)
    assert probes.reference_accuracies(REFERENCE, {"mode": "podd", "ipc": 0.5}, [0], 3) == [5.0] * 3
    assert probes.reference_accuracies(REFERENCE, {"mode": "podd", "ipc": 0.55}, [0], 3) is None
    # more models than the reference trained, or a seed it did not run: no reference
    assert probes.reference_accuracies(REFERENCE, row, [0], 4) is None
    assert probes.reference_accuracies(REFERENCE, row, [2], 1) is None
    assert probes.reference_accuracies(REFERENCE, {"mode": "podd", "ipc": 0.3}, [0], 1) is None


def test_the_readme_shows_each_distilled_row_and_its_difference(probes, tmp_path):
    probe = _report(
        [1],
        2,
        [
            {"mode": "real", "method": "random real", "ipc": 1.0, "mean": 18.0, "std": 0.1},
            {"mode": "baseline", "method": "RaT-BPTT baseline", "ipc": 1.0, "mean": 13.5, "std": 0.5},
        ],
        overrides={"inner_lr": 0.003, "class_order": "identity"},
    )
    folder = tmp_path / "probes"
    folder.mkdir()
    (folder / "lr.json").write_text(json.dumps(probe))
    reference = tmp_path / "reference.json"
    reference.write_text(json.dumps(REFERENCE))
    assert probes.main(["--probes", str(folder), "--reference", str(reference)]) == 0
    table = [line for line in (folder / "README.md").read_text().splitlines() if line.startswith("| lr |")]
    assert len(table) == 1  # the random-real row is not a distilled row
    assert "`inner_lr=0.003`" in table[0] and "class_order" not in table[0]
    # a baseline probe's baseline columns are its reference again
    assert "| 13.5 ± 0.5 | 10.5 | +3.0 | 10.5 | +3.0 | 1 × 2 |" in table[0]


def test_no_probe_files_is_an_error(probes, tmp_path):
    with pytest.raises(SystemExit):
        probes.main(["--probes", str(tmp_path), "--reference", str(tmp_path / "none.json")])


def test_overrides_the_reference_already_had_are_not_shown_as_the_probes(probes, tmp_path):
    reference = dict(REFERENCE, overrides={"width": 64, "steps": 300, "class_order": "identity"})
    probe = _report(
        [0],
        1,
        [{"mode": "podd", "method": "PoDD", "ipc": 0.497, "mean": 7.0, "std": 0.0}],
        overrides={"width": 64, "steps": 300, "patches": [8, 24]},
    )
    text = probes.render({"patches": probe}, reference, "reference/r.json")
    row = next(line for line in text.splitlines() if line.startswith("| patches |"))
    assert "`patches=[8, 24]`" in row and "width" not in row and "steps" not in row
    # the PoDD row beside the baseline of the same seed and model (0.0)
    assert "| 7.0 ± 0.0 | 5.0 | +2.0 | 0.0 | +7.0 | 1 × 1 |" in row
    assert "itself run with `steps=300`, `width=64`" in text and "`reference/r.json`" in text


def test_the_commit_shown_is_where_the_probe_was_distilled(probes):
    probe = _report(
        [0], 1, [{"mode": "podd", "method": "PoDD", "ipc": 0.497, "mean": 7.0, "std": 0.0}], commit="eeeeeee999"
    )

    def row(text):
        return next(line for line in text.splitlines() if line.startswith("| p |"))

    assert "| `eeeeeee` |" in row(probes.render({"p": probe}, REFERENCE))  # older probes
    probe["made_at"] = {"podd-ipc0.5-seed0": "1234567abc"}
    assert "| `1234567` |" in row(probes.render({"p": probe}, REFERENCE))


def test_a_continued_probe_says_its_wall_time_counts_only_the_added_steps(probes):
    probe = _report(
        [0], 1, [{"mode": "podd", "method": "PoDD", "ipc": 0.497, "mean": 7.0, "std": 0.0}], overrides={"steps": 600}
    )

    def row(text):
        return next(line for line in text.splitlines() if line.startswith("| p |"))

    assert row(probes.render({"p": probe}, REFERENCE)).endswith("| 12 |")
    probe["continued"] = {"from": "earlier.json", "steps": 300, "commit": "c6e52ec7ec", "runs": {}}
    assert row(probes.render({"p": probe}, REFERENCE)).endswith("| 12 (from step 300, `c6e52ec`) |")


def test_a_probe_at_an_ipc_the_reference_lacks_still_meets_the_baseline(probes):
    """PoDD at 0.7 IPC has no reference row of its own, but its gap to the baseline on the
    same seeds and models (the second claim's measure) is shown."""
    probe = _report([1], 2, [{"mode": "podd", "method": "PoDD", "ipc": 0.707, "mean": 12.0, "std": 0.5}])
    row = next(line for line in probes.render({"p": probe}, REFERENCE).splitlines() if line.startswith("| p |"))
    assert "| 0.71 | 12.0 ± 0.5 | – | – | 10.5 | +1.5 | 1 × 2 |" in row


def test_below_one_ipc_is_podd_minus_the_same_seeds_baseline(probes, tmp_path):
    # only the IPC changed (the reference's own overrides again): on the curve
    ipc_probe = _report(
        [1],
        2,
        [{"mode": "podd", "method": "PoDD", "ipc": 0.707, "mean": 13.0, "std": 1.0, "accuracies": [12.0, 14.0]}],
        overrides={"width": 64},
    )
    # another setting changed: not on the curve
    other = _report(
        [0],
        3,
        [{"mode": "podd", "method": "PoDD", "ipc": 0.707, "mean": 50.0, "std": 0.0, "accuracies": [50.0] * 3}],
        overrides={"width": 64, "inner_lr": 0.003},
    )
    reference = dict(REFERENCE, overrides={"width": 64})
    points = probes.below_one_ipc({"ipc": ipc_probe, "lr": other}, reference)
    gaps = sorted((p["source"], p["seed"], p["gap"]) for p in points)
    # the reference's 0.5-IPC row (5.0) against its baseline per seed (means 1.0 and 11.0); the
    # probe's mean 13.0 against seed 1's first two baseline models (10.0, 11.0)
    assert gaps == [("ipc", 1, 2.5), ("reference", 0, 4.0), ("reference", 1, -6.0)]

    folder = tmp_path / "probes"
    folder.mkdir()
    (folder / "ipc.json").write_text(json.dumps(ipc_probe))
    (tmp_path / "reference.json").write_text(json.dumps(reference))
    assert probes.main(["--probes", str(folder), "--reference", str(tmp_path / "reference.json")]) == 0
    text = (folder / "README.md").read_text()
    assert "| ipc | 0.71 | 1 | 13.0 | +2.5 |" in text and "](below_one_ipc.png)" in text
    assert (folder / "below_one_ipc.png").read_bytes()[:4] == b"\x89PNG"
