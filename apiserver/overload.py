"""Overload limits: how many calls one connection and one client may have open at once.

A flood from one client must not starve the others, nor leave the server queueing
work it cannot finish before the callers give up (their deadlines would cancel
the calls, which looks to them like a failure of their own). So calls are counted
per connection (the peer address with its port) and per client (the address
alone), in three kinds: plain requests, watches (and the kubelets' status
streams), and logs and exec (proxied to kubelets, the costliest). A call over a
limit is refused at once with RESOURCE_EXHAUSTED saying which limit; the caller
may retry later. Connections over a unix socket share one peer name, so there
only the per-client limits apply.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import Counter as Metric

from api.errors import TooManyRequestsError

REFUSED = Metric("apiserver_overload_refused_total", "Calls refused by an overload limit", ["kind", "scope"])

REQUEST, WATCH, STREAM = "request", "watch", "stream"
_WHAT = {REQUEST: "requests", WATCH: "watches", STREAM: "log and exec streams"}
_FIELD = {REQUEST: "requests", WATCH: "watches", STREAM: "streams"}


@dataclass(frozen=True)
class OverloadLimits:
    requests_per_connection: int = 1000
    requests_per_client: int = 4000
    watches_per_connection: int = 4000
    watches_per_client: int = 16000
    streams_per_connection: int = 32
    streams_per_client: int = 128
    # A log follow ends after this long (the client may start another); exec may ask for at most this timeout.
    max_follow_seconds: float = 4 * 3600
    max_exec_seconds: int = 3600

    def limit(self, kind: str, scope: str) -> int:
        return int(getattr(self, f"{_FIELD[kind]}_per_{scope}"))


def peer_keys(peer: str) -> tuple[str | None, str]:
    """(connection, client) for a gRPC peer: `ipv4:10.0.0.5:41234` -> (that, `10.0.0.5`); a unix socket
    peer names no single connection."""
    scheme, _, rest = peer.partition(":")
    if scheme in ("ipv4", "ipv6"):
        host = rest.rpartition(":")[0] or rest
        return peer, host
    return None, scheme or peer


class Admission:
    """The open calls per connection and client, and the gate every call passes."""

    def __init__(self, limits: OverloadLimits | None = None) -> None:
        self.limits = limits or OverloadLimits()
        self._open: Counter[tuple[str, str, str]] = Counter()  # (kind, scope, key) -> open calls

    def open(self, kind: str, scope: str, key: str) -> int:
        return self._open[(kind, scope, key)]

    @contextlib.contextmanager
    def admit(self, kind: str, peer: str) -> Iterator[None]:
        """Count one call of `kind` from `peer` while the block runs; TooManyRequestsError if over a limit."""
        connection, client = peer_keys(peer)
        keys = [("client", client)] if connection is None else [("connection", connection), ("client", client)]
        for scope, key in keys:
            limit = self.limits.limit(kind, scope)
            if self._open[(kind, scope, key)] >= limit:
                REFUSED.labels(kind, scope).inc()
                raise TooManyRequestsError(
                    f"too many concurrent {_WHAT[kind]} from this {scope} (limit {limit}); "
                    f"retry after some finish, or spread them over more connections")
        for scope, key in keys:
            self._open[(kind, scope, key)] += 1
        try:
            yield
        finally:
            for scope, key in keys:
                self._open[(kind, scope, key)] -= 1
                if not self._open[(kind, scope, key)]:
                    del self._open[(kind, scope, key)]
