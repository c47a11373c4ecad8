"""A small explicit cache for values a session makes once (fitted preprocessors, loaded data): an
object rather than a module-level dict, so tests and long sessions can reset it."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any


class SessionCache:
    """Values by key, made on first request and kept until :meth:`clear`."""

    def __init__(self, name: str):
        self.name = name
        self._values: dict[Hashable, Any] = {}

    def get(self, key: Hashable, make: Callable[[], Any]) -> Any:
        """The value stored under ``key``; ``make()`` it first if there is none."""
        if key not in self._values:
            self._values[key] = make()
        return self._values[key]

    def put(self, key: Hashable, value: Any) -> None:
        self._values[key] = value

    def peek(self, key: Hashable, default: Any = None) -> Any:
        """The value under ``key`` without making one (``default`` when absent)."""
        return self._values.get(key, default)

    def clear(self) -> None:
        self._values.clear()

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._values

    def __repr__(self) -> str:
        return f"SessionCache({self.name!r}, {len(self)} entries)"
