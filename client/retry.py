"""retry_on_conflict: read, change, write; on a lost compare-and-swap read again and retry.

Every write in kubelite is a compare-and-swap on the object's resourceVersion,
so a writer that loses a race gets ConflictError and must start from a fresh
read. This is the one loop for it (Kubernetes' retry.RetryOnConflict).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from api.errors import AlreadyExistsError, ConflictError, NotFoundError

T = TypeVar("T")
R = TypeVar("R")


async def retry_on_conflict(read: Callable[[], Awaitable[T]], mutate: Callable[[T], T | None],
                            write: Callable[[T], Awaitable[R]], *, attempts: int = 10,
                            what: str = "the object") -> R | None:
    """Run read → mutate → write until a write wins; None when `mutate` says nothing needs changing.

    `mutate` returns the object to write, or None for "already as wanted". Only ConflictError
    is retried; any other error goes to the caller. After `attempts` lost races: ConflictError.
    """
    for _ in range(attempts):
        current = await read()
        new = mutate(current)
        if new is None:
            return None
        try:
            return await write(new)
        except ConflictError:
            continue
    raise ConflictError(f"{what} kept changing; try again")


def cached_first(cached: T, fetch: Callable[[], Awaitable[T]]) -> Callable[[], Awaitable[T]]:
    """A `read` that returns `cached` (an informer's copy) the first time and `fetch()` after a conflict."""
    first = True

    async def read() -> T:
        nonlocal first
        if first:
            first = False
            return cached
        return await fetch()

    return read


async def create_or_update(client: Any, obj: T) -> T:
    """Create `obj` if it carries no resourceVersion (never read from the server), else update it.

    Losing a race either way (created, changed or deleted meanwhile) is a ConflictError, so
    that retry_on_conflict reads again.
    """
    try:
        if not obj.metadata.resource_version:  # type: ignore[attr-defined]
            return await client.create(obj)  # type: ignore[no-any-return]
        return await client.update(obj)  # type: ignore[no-any-return]
    except (AlreadyExistsError, NotFoundError) as e:
        raise ConflictError(e.message) from None
