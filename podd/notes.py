"""Notes for the user: things podd decided on their behalf that they should know about.

A note is printed once per session (a loop that loads the same data twice prints it once), to
stdout, prefixed ``NOTE:`` (the notes of :func:`podd.presets.resolve_config`, of the data
readers and of the run directory alike).
"""

from __future__ import annotations

import sys

_SHOWN: set[str] = set()


def note_once(message: str, file=None, prefix: str = "NOTE: ") -> None:
    """Print ``NOTE: message`` the first time ``message`` comes up in this session (one memory
    for all of podd's notes: the engine's lines to stderr, with their own prefix, go here too)."""
    if message in _SHOWN:
        return
    _SHOWN.add(message)
    print(f"{prefix}{message}", file=file or sys.stdout, flush=True)
