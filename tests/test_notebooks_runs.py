"""The notebooks' run settings, run-and-evaluate rows, sweeps and result tables — on small
stand-ins, with the engine replaced where only the bookkeeping around it is under test."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from podd import reported
from podd.config import DistillConfig
from podd.data import stand_in
from podd.experiments import run, sweep
from podd.experiments.data import request_for
from podd.notebooks import configs, data_choice, tables


@pytest.fixture(scope="module")
def cifar_like():
    return stand_in("cifar10", 10, (3, 32, 32), 4, 2, seed=0)


def test_run_config_is_the_resolvers_config_for_the_data(cifar_like):
    config = configs.run_config(
        cifar_like, "smoke", ipc=0.5, verbose=False, steps=3, **configs.class_order_override("random")
    )
    assert isinstance(config, DistillConfig)
    assert (config.dataset, config.mode, config.ipc, config.profile) == ("cifar10", "podd", 0.5, "smoke")
    assert (config.grid, config.patches, config.labels) == ((2, 5), (6, 16), "fixed")
    assert (config.steps, config.class_order, config.device) == (3, "random", "auto")


def test_poco_keeps_the_presets_fallback(cifar_like):
    assert configs.class_order_override("poco") == {} == configs.class_order_override(None)
    config = configs.run_config(cifar_like, "smoke", verbose=False)
    assert config.class_order == "identity"  # smoke without embeddings: dataset order


def test_patch_counts_from_strides_drop_duplicates(cifar_like):
    # stride = the image side: one patch per class on the 2×5 grid at 1 IPC (the baseline)
    assert configs.patch_counts_for_strides(cifar_like, 1.0, [1, 1, 0.5]) == [(2, 5), (3, 9)]


def test_config_dict_is_plain_data():
    values = run.config_dict(DistillConfig(grid=(2, 5), eval_steps=(3, 6)))
    assert values["grid"] == [2, 5] and values["eval_steps"] == [3, 6]
    assert run.config_dict({"a": (1,)}) == {"a": [1]}


class _Evaluation:
    num_models, steps = 2, (10, 20)

    def mean(self):
        return 41.5

    def std(self):
        return 1.25


def _fake_distill(config, dataset, out_dir, progress, preprocessor, resume=False, stop=None):
    geometry = SimpleNamespace(ipc=0.49876, size=(40, 100), num_patches=33)
    artifact = SimpleNamespace(geometry=geometry, label_mode="fixed")
    return SimpleNamespace(artifact=artifact, evaluation=_Evaluation())


def test_distill_and_evaluate_makes_the_table_row(cifar_like, monkeypatch):
    monkeypatch.setattr(run, "distill", _fake_distill)  # the name podd.experiments.run calls
    config = DistillConfig(dataset="cifar10", ipc=0.5, eval_models=2)
    outcome = run.distill_and_evaluate(config, cifar_like, score=0.3)
    assert outcome.row == {
        "method": "PoDD",
        "ipc": 0.5,
        "exact IPC": 0.499,
        "poster H×W": "40×100",
        "patches": 33,
        "labels": "fixed",
        "score": 0.3,
        "accuracy": 41.5,
        "std": 1.25,
        "eval": "2 models × 20 steps",
    }
    assert outcome.config is config and outcome.wall_time_s >= 0
    with pytest.raises(ValueError, match="eval_models is 0"):
        run.distill_and_evaluate(DistillConfig(eval_models=0), cifar_like)


class _Recorder:
    def __init__(self, in_process):
        self.in_process, self.calls = in_process, []

    def submit(self, fn, *args):
        self.calls.append((fn, args))
        return SimpleNamespace(result=lambda: None)


def test_a_sweep_sends_a_request_to_jobs_elsewhere_and_the_data_inline(tmp_path):
    ds = data_choice.load_for_profile("cifar10", "smoke", verbose=False)
    config = DistillConfig(dataset="cifar10")
    away, here = _Recorder(in_process=False), _Recorder(in_process=True)
    sweep.Sweep(ds, away, out_dir=tmp_path).distill(config, note="x")
    sweep.Sweep(ds, here).reference(config, 2, 5)
    ((job, args),) = away.calls  # elsewhere: a resumable job in the cell's run directory
    assert args == () and job.fn is sweep._distill_job and job.out_dir == str(tmp_path / "podd-ipc1")
    assert job.args == (config, request_for(ds), {"note": "x"})
    assert here.calls[0][0] is sweep._reference_job and here.calls[0][1][1] is ds
    assert here.calls[0][1][2:] == (2, 5)


def test_our_rows_sit_beside_the_papers_labelled(cifar_like):
    outcomes = [SimpleNamespace(row={"method": "PoDD", "ipc": 1.0, "accuracy": 40.04, "std": 0.5})]
    measured, paper, table = tables.measured_and_reported("table2", outcomes, cifar_like, "smoke", "cifar10")
    assert list(measured["accuracy"]) == [40.04] and "RaT-BPTT" in set(paper["method"])
    podd_row = table[table["method"] == "PoDD"].iloc[0]
    assert podd_row[reported.MEASURED] == 40.0 and podd_row[reported.REPORTED] == 59.1
    assert podd_row[reported.MEASURED_ON] == "podd, profile smoke, synthetic stand-in with CIFAR-10's shape"
    rat = table[table["method"] == "RaT-BPTT"].iloc[0]
    assert rat[reported.REPORTED] == 53.2 and rat[reported.MEASURED_ON] == "–"


def test_data_the_paper_does_not_use_has_no_reported_rows(cifar_like):
    outcomes = [SimpleNamespace(row={"method": "PoDD", "ipc": 1.0, "accuracy": 40.0, "std": 0.5})]
    _, paper, table = tables.measured_and_reported("table2", outcomes, cifar_like, "smoke", "npz:/x.npz")
    assert len(paper) == 0 and list(table["method"]) == ["PoDD"]


def test_poster_budget_rows_are_geometry():
    table = tables.poster_budget_table(ipcs=(1.0, 0.5), datasets=("cifar10",))
    first = table.iloc[0].to_dict()
    assert first == {
        "dataset": "CIFAR-10",
        "classes": 10,
        "image": "3×32×32",
        "grid": "2×5",
        "IPC": 1.0,
        "poster H×W": "64×160",
        "poster pixels": 10240,
        "pixels of IPC·K images": 10240,
        "exact IPC": 1.0,
    }
    assert table.iloc[1]["pixels of IPC·K images"] == 5120 and len(table) == 2


def test_majority_share_rows_follow_the_presets_poster():
    table = tables.majority_share_table("cifar10", "smoke", ipcs=(1.0, 0.5))
    assert list(table["poster H×W"]) == ["64×160", "45×113"]
    assert list(table["patches"]) == ["6×17", "6×16"]  # the authors' 96 below 1 IPC
    one, half = table.iloc[0], table.iloc[1]
    assert 0.25 <= half["lowest share"] <= half["mean share"] < one["mean share"] < 1.0
    assert half["patches under one half"] > one["patches under one half"]
