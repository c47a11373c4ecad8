"""Notes for the user: things podd decided on their behalf that they should know about.

A note is printed once per session (a loop that loads the same data twice prints it once), to
stdout, prefixed ``NOTE:`` like the notes of :func:`podd.presets.resolve_config`.
"""

from __future__ import annotations

import sys

_SHOWN: set[str] = set()


def note_once(message: str, file=None) -> None:
    """Print ``NOTE: message`` the first time ``message`` comes up in this session."""
    if message in _SHOWN:
        return
    _SHOWN.add(message)
    print(f"NOTE: {message}", file=file or sys.stdout, flush=True)
