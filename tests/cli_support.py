"""What the command-line tests share: running ``podd`` in-process, and the tiny run settings."""

from __future__ import annotations

from podd.cli import main
from podd.presets import resolve_config

#: A run of a few seconds: two smoke steps, one evaluation model of five steps.
TINY = [
    "--profile",
    "smoke",
    "--steps",
    "2",
    "--device",
    "cpu",
    "--quiet",
    "--set",
    "eval_models=1",
    "--set",
    "eval_steps=[5]",
]


def cli(argv, capsys):
    """(exit code, stdout, stderr) of ``podd ARGV``; never a traceback."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "Traceback" not in out, err
    return code, out, err


def tiny_digits_config(**overrides):
    """A digits config of a few tiny steps (width 8, window 2 of 4) for the multi-process tests."""
    values = dict(
        width=8,
        depth=1,
        window=2,
        total_window=4,
        real_batch=64,
        distill_batch=8,
        steps=3,
        eval_models=0,
        device="cpu",
        checkpoint_every=0,
        log_every=1,
    )
    values.update(overrides)
    return resolve_config("digits", "smoke", verbose=False, **values)
