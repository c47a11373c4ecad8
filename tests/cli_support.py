"""What the command-line tests share: running ``podd`` in-process, and the tiny run settings."""

from __future__ import annotations

from podd.cli import main

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
