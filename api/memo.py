"""A bounded memo for pure checks of a message, keyed by its encoding.

The pods of one template (a ReplicaSet's replicas, a Job's, a file of thousands applied at once) differ in
their names, not their specs: a check that reads only the spec gives each of them the same answer, and is
worked out once. Only small encodings are kept, so memory stays bounded whatever clients send.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

V = TypeVar("V")

MAX_KEY_BYTES = 8 * 1024


class Memo(Generic[V]):
    def __init__(self, entries: int = 1024) -> None:
        self.entries = entries
        self._values: dict[tuple[Hashable, bytes], V] = {}

    def get(self, tag: Hashable, encoded: bytes, compute: Callable[[], V]) -> V:
        """compute()'s answer for this (tag, encoding), worked out once while it stays among the recent ones."""
        if len(encoded) > MAX_KEY_BYTES:
            return compute()
        key = (tag, encoded)
        try:
            return self._values[key]
        except KeyError:
            pass
        value = compute()
        if len(self._values) >= self.entries:
            del self._values[next(iter(self._values))]  # the oldest
        self._values[key] = value
        return value
