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


def test_atomic_path_gives_the_mode_a_plain_open_would(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    with io.atomic_path(tmp_path / "atomic.txt") as tmp:
        tmp.write_text("x")
    assert (tmp_path / "atomic.txt").stat().st_mode & 0o777 == plain.stat().st_mode & 0o777


def test_safe_filename_keeps_safe_characters_and_replaces_the_rest():
    assert io.safe_filename("ViT-B/32-openai") == "ViT-B_32-openai"
    assert io.safe_filename("npz:/data/my set.npz") == "npz__data_my_set.npz"
    assert io.safe_filename("café_1.0") == "café_1.0"  # str.isalnum: letters of any script
    assert io.safe_filename("x" * 50, max_len=40) == "x" * 40
    assert io.safe_filename("") == ""


def test_provenance_carries_environment_and_caller_facts():
    record = provenance(dataset="digits", data_source="full", seeds=[0])
    assert record["dataset"] == "digits" and record["data_source"] == "full"
    assert record["versions"]["torch"] and record["device"].startswith("cpu")
    assert record["git_commit"]  # a sha, sha-dirty, or "unknown" outside a checkout


def test_a_commit_named_by_the_sender_wins_over_git(monkeypatch, tmp_path):
    """A tree copied to a lent GPU may carry no .git, or the session's older one: the commit the
    sender names in PODD_GIT_COMMIT is recorded; without it, git's answer (or "unknown")."""
    from podd.provenance import git_commit

    monkeypatch.delenv("PODD_GIT_COMMIT", raising=False)
    assert git_commit(tmp_path) == "unknown"  # no checkout there
    monkeypatch.setenv("PODD_GIT_COMMIT", "4fe0f14cb01dfd8cc0b75f7a414c9893dfa15c08")
    assert git_commit(tmp_path) == "4fe0f14cb01dfd8cc0b75f7a414c9893dfa15c08"
    assert provenance()["git_commit"] == "4fe0f14cb01dfd8cc0b75f7a414c9893dfa15c08"
