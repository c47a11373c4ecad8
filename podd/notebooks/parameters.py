"""A notebook's list parameters, as papermill hands them over.

``papermill -p ipcs '[0.5, 0.3]'`` passes the TEXT ``"[0.5, 0.3]"`` (``-p`` parses only numbers,
booleans and None); ``-y "ipcs: [0.5, 0.3]"`` passes a list. Both are read here, as is a single
number, so a parameter cell stays what it was written as. Settings dicts (``-p settings
'{"width": 32}'``, ``podd distill --set``'s notebook twin) are read the same way.
"""

from __future__ import annotations

import ast
from typing import Any


def list_parameter(value: Any, name: str, kind: type = float, length: int | None = None) -> list:
    """``value`` as a list of ``kind``: a list or tuple, one number, or the text of either."""
    given = value
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            value = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value]
    example = "[0.5, 0.3]" if kind is float else "[3, 3]"
    if not isinstance(value, (list, tuple)) or any(
        isinstance(v, bool) or not isinstance(v, (int, float)) for v in value
    ):
        raise ValueError(
            f"{name}={given!r}: give a list of numbers, e.g. papermill -y "
            f"\"{name}: {example}\" (or -p {name} '{example}')"
        )
    if kind is int and any(float(v) != int(v) for v in value):
        raise ValueError(f"{name}={given!r}: give whole numbers, e.g. {example}")
    if length is not None and len(value) != length:
        raise ValueError(f"{name}={given!r}: give {length} numbers, e.g. {example}")
    return [kind(v) for v in value]


def settings_parameter(value: Any, name: str = "settings") -> dict[str, Any]:
    """``value`` as a dict of extra ``DistillConfig`` settings: None, a dict, or the text of one.

    The keys are checked where the config is built (an unknown one is refused there, with the
    list of known settings), so this only reads the papermill value.
    """
    given = value
    if value is None:
        return {}
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            value = None
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ValueError(
            f"{name}={given!r}: give a dict of settings, e.g. papermill -y "
            f'"{name}: {{width: 32}}" (or -p {name} \'{{"width": 32}}\')'
        )
    return dict(value)
