"""The storage the apiserver needs: a small interface over a revisioned KV store.

Every write returns the store revision; updates and deletes take the revision
they expect, so every write is compare-and-swap. Several writes can commit
atomically (a Service and the cluster IP it claims).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from api.errors import UnavailableError


@dataclass(frozen=True)
class KV:
    key: str
    value: bytes
    mod_revision: int
    create_revision: int


@dataclass(frozen=True)
class Create:
    """Write `key` only if it does not exist."""

    key: str
    value: bytes
    lease: int = 0


@dataclass(frozen=True)
class Update:
    """Write `key` only if its revision is still `revision`."""

    key: str
    value: bytes
    revision: int


@dataclass(frozen=True)
class Delete:
    """Remove `key`; only if its revision is still `revision` (0: whatever it is)."""

    key: str
    revision: int = 0


Op = Create | Update | Delete


class StorageError(Exception):
    """A write's precondition failed; `key` names which."""

    def __init__(self, key: str, current: KV | None = None) -> None:
        super().__init__(key)
        self.key = key
        self.current = current


class KeyExistsError(StorageError):
    pass


class KeyNotFoundError(StorageError):
    pass


class RevisionMismatchError(StorageError):
    """The key changed since it was read; `current` is what it holds now."""


class CompactedError(Exception):
    """The revision asked for was compacted away."""

    def __init__(self, compact_revision: int) -> None:
        super().__init__(f"revision compacted (oldest available: {compact_revision})")
        self.compact_revision = compact_revision


class WatchMovedError(UnavailableError):
    """The storage moved to another etcd member, and this watch was on the one it left: watch again now."""


@dataclass(frozen=True)
class Event:
    type: str  # PUT or DELETE
    key: str
    value: bytes  # new value; for DELETE the last value
    revision: int  # mod revision of this change
    create_revision: int


class Storage(Protocol):
    async def get(self, key: str) -> KV | None: ...

    async def list(self, prefix: str, *, revision: int = 0) -> tuple[list[KV], int]:
        """All keys under prefix (at `revision`, 0 = now), and the revision read."""
        ...

    async def commit(self, ops: Sequence[Op]) -> int:
        """Apply all ops atomically; raises AlreadyExists/Conflict/NotFound naming the first failed key."""
        ...

    def watch(self, prefix: str, *, from_revision: int) -> AsyncIterator[tuple[list[Event], int]]:
        """Batches of changes with revision >= from_revision, each with the store revision it
        brings the reader up to (progress notices come as empty batches); CompactedError if the
        revision was compacted away."""
        ...

    async def revision(self) -> int: ...

    async def compact(self, revision: int) -> None: ...

    async def grant_lease(self, ttl: int) -> int: ...

    async def close(self) -> None: ...
