"""Warnings for the caller of one request (Kubernetes' `Warning:` response headers).

Admission adds them with `add`; the servicer opens `collect()` around each unary request and sends what was
added as trailing metadata under WARNING_KEY, which the client hands to its warning handler (the CLI prints
`Warning: <text>` on stderr, as kubectl does).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

WARNING_KEY = "warning"
# Many warnings for one request are cut here, as Kubernetes caps its warning headers.
MAX_WARNINGS = 16
MAX_LENGTH = 4096

_current: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("warnings", default=None)


def add(text: str) -> None:
    """A warning for the current request's caller (dropped outside a request, e.g. the server's own writes)."""
    found = _current.get()
    if found is not None and text not in found and len(found) < MAX_WARNINGS:
        found.append(text[:MAX_LENGTH])


@contextlib.contextmanager
def collect() -> Iterator[list[str]]:
    """The warnings added while the block runs."""
    found: list[str] = []
    token = _current.set(found)
    try:
        yield found
    finally:
        _current.reset(token)


def metadata(found: list[str]) -> tuple[tuple[str, str], ...]:
    """As gRPC trailing metadata: printable ASCII only (metadata values must be)."""
    return tuple((WARNING_KEY, text.encode("ascii", "backslashreplace").decode("ascii")) for text in found)
