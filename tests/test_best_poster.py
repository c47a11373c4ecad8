"""Best-poster selection (``best_every``, the authors' practice): the run ends with the poster
whose students score best on the TRAINING images, the trajectory itself is unchanged, and a
resumed run remembers the best so far."""

from __future__ import annotations

import json

import pytest
import torch

from podd.distiller import SELECTION_SEED_OFFSET, Distiller
from podd.evaluate import EvalProtocol
from podd.presets import resolve_config
from podd.run_loop import distill


def tiny(**overrides):
    values = dict(
        width=8,
        depth=1,
        window=2,
        total_window=5,
        real_batch=500,
        distill_batch=8,
        steps=6,
        eval_models=1,
        eval_steps=(3,),
        device="cpu",
        checkpoint_every=2,
        log_every=1,
    )
    values.update(overrides)
    return resolve_config("digits", "smoke", **values)


def scripted(scores: dict[int, float]):
    """A training_accuracy that returns ``scores[step]`` (and says which steps were scored)."""
    asked = []

    def score(self):
        asked.append(self.step_count)
        return scores[self.step_count]

    return score, asked


def _metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_the_run_ends_with_the_best_scoring_poster_and_the_trajectory_is_unchanged(digits, tmp_path, monkeypatch):
    ds, pre = digits
    plain4 = distill(tiny(steps=4), ds, out_dir=tmp_path / "plain4", progress=False, preprocessor=pre)
    plain6 = distill(tiny(steps=6), ds, out_dir=tmp_path / "plain6", progress=False, preprocessor=pre)
    score, asked = scripted({2: 50.0, 4: 70.0, 6: 60.0})
    monkeypatch.setattr(Distiller, "training_accuracy", score)
    out = tmp_path / "best"
    best = distill(tiny(steps=6, best_every=2), ds, out_dir=out, progress=False, preprocessor=pre)

    assert asked == [2, 4, 6]  # every best_every steps, and the last
    assert not torch.equal(plain4.artifact.poster, plain6.artifact.poster)
    assert torch.equal(best.artifact.poster, plain4.artifact.poster)  # step 4's poster
    assert torch.equal(best.artifact.labels, plain4.artifact.labels)
    # the final evaluation tested the chosen poster: the same students as plain4's
    assert torch.equal(best.evaluation.accuracy, plain4.evaluation.accuracy)
    # the checkpoint is where the trajectory ended, so the run can go on from there
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=False)
    assert torch.equal(checkpoint["distiller"]["poster"], plain6.artifact.poster)
    metrics = _metrics(out)
    assert [(m["step"], m["train_accuracy"]) for m in metrics if "train_accuracy" in m] == [
        (2, 50.0),
        (4, 70.0),
        (6, 60.0),
    ]
    assert {"step": 6, "best_step": 4, "best_train_accuracy": 70.0} in metrics
    final = json.loads((out / "final.json").read_text())
    assert final["result"]["best"] == {"step": 4, "train_accuracy": 70.0}
    plain_final = json.loads((tmp_path / "plain6" / "final.json").read_text())
    assert plain_final["result"]["best"] is None


def test_ties_keep_the_earlier_poster(digits, monkeypatch):
    ds, pre = digits
    score, _ = scripted({2: 40.0, 4: 40.0})
    monkeypatch.setattr(Distiller, "training_accuracy", score)
    first = distill(tiny(steps=2, eval_models=0, best_every=0), ds, progress=False, preprocessor=pre)
    tied = distill(tiny(steps=4, best_every=2), ds, progress=False, preprocessor=pre)
    assert torch.equal(tied.artifact.poster, first.artifact.poster)
    assert tied.history[-2] == {"step": 4, "best_step": 2, "best_train_accuracy": 40.0}


def test_the_score_is_training_accuracy_of_students_seeded_apart(digits):
    ds, pre = digits
    config = tiny(steps=1, eval_models=2, eval_steps=(2, 3), seed=3)
    distiller = Distiller(config, ds, pre)
    distiller.step()
    images, labels = distiller.patches_and_labels()
    own = EvalProtocol.from_config(config, seed=3 + SELECTION_SEED_OFFSET, steps=(3,), device="cpu").run(
        images, labels, distiller.x_real, distiller.y_real
    )  # the last step only
    assert distiller.training_accuracy() == own.mean()
    assert 0.0 <= own.mean() <= 100.0 and len(distiller.y_real) == len(ds.y_train)
    # scoring draws nothing from the run's generator: the next step is the same either way
    state = distiller.generator.get_state()
    distiller.consider_best()
    assert torch.equal(distiller.generator.get_state(), state)
    assert distiller.best["step"] == 1


def test_a_resumed_run_remembers_the_best_so_far(digits, tmp_path, monkeypatch):
    ds, pre = digits
    config = tiny(steps=6, best_every=2)
    score, _ = scripted({2: 80.0, 4: 30.0, 6: 20.0})
    monkeypatch.setattr(Distiller, "training_accuracy", score)
    straight = distill(config, ds, out_dir=tmp_path / "straight", progress=False, preprocessor=pre)

    real_step = Distiller.step

    def crashing(self):
        if self.step_count == 5:  # after the checkpoint at step 4
            raise KeyboardInterrupt
        return real_step(self)

    monkeypatch.setattr(Distiller, "step", crashing)
    with pytest.raises(KeyboardInterrupt):
        distill(config, ds, out_dir=tmp_path / "resumed", progress=False, preprocessor=pre)
    monkeypatch.setattr(Distiller, "step", real_step)
    resumed = distill(config, ds, out_dir=tmp_path / "resumed", resume=True, progress=False, preprocessor=pre)
    assert torch.equal(resumed.artifact.poster, straight.artifact.poster)
    assert resumed.history[-2]["best_step"] == 2 == straight.history[-2]["best_step"]


def test_best_every_needs_students_to_score_with():
    with pytest.raises(ValueError, match="best_every=5 scores each poster with eval_models"):
        tiny(best_every=5, eval_models=0).validate()


def test_resumed_without_selection_the_run_ends_with_its_last_poster(digits, tmp_path, monkeypatch):
    ds, pre = digits
    plain6 = distill(tiny(steps=6), ds, progress=False, preprocessor=pre)
    score, _ = scripted({2: 90.0, 4: 10.0})
    monkeypatch.setattr(Distiller, "training_accuracy", score)
    out = tmp_path / "run"
    first = distill(tiny(steps=4, best_every=2), ds, out_dir=out, progress=False, preprocessor=pre)
    assert json.loads((out / "final.json").read_text())["result"]["best"]["step"] == 2
    longer = distill(tiny(steps=6, best_every=0), ds, out_dir=out, resume=True, progress=False, preprocessor=pre)
    assert not torch.equal(first.artifact.poster, longer.artifact.poster)
    assert torch.equal(longer.artifact.poster, plain6.artifact.poster)  # from step 4's end
    assert json.loads((out / "final.json").read_text())["result"]["best"] is None
