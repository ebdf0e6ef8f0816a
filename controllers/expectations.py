"""Controller expectations: do not act on a key again until the informer has seen its last writes.

A replicaset that just asked for 10 pods sees them in its cache only as the
watch delivers them; reconciling before that would create 10 more. So before
writing, a controller records what it expects (creations by count, deletions
by pod key); the informer's handlers tick them off; the key needs a new sync
only once every expectation is met, or after a timeout in case a watch event
was lost for good.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

# Kubernetes waits five minutes; here a missed event should not stall a controller that long.
EXPECTATIONS_TTL = 30.0


@dataclass
class _Expected:
    adds: int = 0
    deletes: set[str] = field(default_factory=set)
    since: float = 0.0


class Expectations:
    def __init__(self, *, ttl: float = EXPECTATIONS_TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._items: dict[str, _Expected] = {}

    def expect_creations(self, key: str, count: int) -> None:
        e = self._items.setdefault(key, _Expected())
        e.adds = max(0, e.adds) + count
        e.since = self._clock()

    def expect_deletions(self, key: str, victims: Iterable[str]) -> None:
        e = self._items.setdefault(key, _Expected())
        e.deletes.update(victims)
        e.since = self._clock()

    def creation_observed(self, key: str) -> None:
        e = self._items.get(key)
        if e is not None and e.adds > 0:
            e.adds -= 1

    def lower_creations(self, key: str, count: int) -> None:
        """Creations that will never be observed (the request failed or was skipped)."""
        e = self._items.get(key)
        if e is not None:
            e.adds = max(0, e.adds - count)

    def deletion_observed(self, key: str, victim: str) -> None:
        e = self._items.get(key)
        if e is not None:
            e.deletes.discard(victim)

    def satisfied(self, key: str) -> bool:
        e = self._items.get(key)
        if e is None:
            return True
        if e.adds <= 0 and not e.deletes:
            return True
        return self._clock() - e.since > self.ttl

    def pending(self, key: str) -> tuple[int, int]:
        e = self._items.get(key)
        return (0, 0) if e is None else (max(0, e.adds), len(e.deletes))

    def forget(self, key: str) -> None:
        self._items.pop(key, None)
