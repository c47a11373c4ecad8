"""Atomic writes leave nothing half-written; provenance records what a result needs."""

import json

import pytest

from podd import io
from podd.provenance import provenance


def test_atomic_path_replaces_target_only_on_success(tmp_path):
    target = tmp_path / "sub" / "file.json"
    io.write_json(target, {"a": 1})
    assert json.loads(target.read_text()) == {"a": 1}
    with pytest.raises(RuntimeError):
        with io.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in target.parent.iterdir()] == ["file.json"]


def test_provenance_carries_environment_and_caller_facts():
    record = provenance(dataset="digits", data_source="full", seeds=[0])
    assert record["dataset"] == "digits" and record["data_source"] == "full"
    assert record["versions"]["torch"] and record["device"].startswith("cpu")
    assert record["git_commit"]  # a sha, sha-dirty, or "unknown" outside a checkout
