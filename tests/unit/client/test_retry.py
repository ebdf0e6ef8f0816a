"""retry_on_conflict: the one read-modify-write loop every component uses."""

from __future__ import annotations

import pytest

from api.errors import ConflictError, NotFoundError
from client.retry import cached_first, retry_on_conflict


class _Store:
    """A value with a version; a write must name the version it read (compare-and-swap)."""

    def __init__(self, value: int, *, racing_writes: int = 0) -> None:
        self.value, self.version, self.reads = value, 1, 0
        self.racing_writes = racing_writes  # another writer wins this many times

    async def read(self) -> tuple[int, int]:
        self.reads += 1
        return self.value, self.version

    async def write(self, new: tuple[int, int]) -> int:
        value, version = new
        if self.racing_writes:
            self.racing_writes -= 1
            self.version += 1
        if version != self.version:
            raise ConflictError("modified")
        self.value, self.version = value, version + 1
        return self.value


@pytest.mark.parametrize(("races", "attempts", "result", "reads"), [
    pytest.param(0, 10, 6, 1, id="first-write-wins"),
    pytest.param(3, 10, 6, 4, id="retried-after-lost-races"),
])
async def test_retries_lost_races(races: int, attempts: int, result: int, reads: int) -> None:
    """A lost compare-and-swap is retried from a fresh read until a write wins."""
    store = _Store(5, racing_writes=races)
    out = await retry_on_conflict(store.read, lambda cur: (cur[0] + 1, cur[1]), store.write, attempts=attempts)
    assert (out, store.reads) == (result, reads)


async def test_gives_up_naming_the_object() -> None:
    """After the given number of lost races it raises ConflictError naming what kept changing."""
    store = _Store(5, racing_writes=99)
    with pytest.raises(ConflictError, match="node n1 kept changing"):
        await retry_on_conflict(store.read, lambda cur: (cur[0] + 1, cur[1]), store.write, attempts=3,
                                what="node n1")
    assert store.reads == 3


async def test_nothing_to_change_writes_nothing() -> None:
    """When mutate returns None nothing is written and the result is None."""
    store = _Store(5)
    assert await retry_on_conflict(store.read, lambda cur: None, store.write) is None
    assert store.version == 1


async def test_other_errors_are_not_retried() -> None:
    """Only conflicts are retried: NotFound goes straight to the caller."""
    store = _Store(5)

    async def gone(_: object) -> int:
        raise NotFoundError("gone")

    with pytest.raises(NotFoundError):
        await retry_on_conflict(store.read, lambda cur: cur, gone)
    assert store.reads == 1


async def test_cached_first_reads_the_cache_once() -> None:
    """cached_first hands out the informer's copy first, then fresh reads after a conflict."""
    store = _Store(5, racing_writes=1)
    out = await retry_on_conflict(cached_first((5, 1), store.read), lambda cur: (cur[0] + 1, cur[1]), store.write)
    assert out == 6 and store.reads == 1
