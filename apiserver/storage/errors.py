"""etcd's errors as the API errors a client can act on.

Only what a retry can mend travels as UNAVAILABLE (clients retry it); an object
too large is RESOURCE_EXHAUSTED, a transaction with too many operations is
INVALID_ARGUMENT, and anything else etcd refuses is INTERNAL (a retry of the same
request would fail the same way). Each error names the object it was about.
"""

from __future__ import annotations

import grpc

from api.errors import ApiError, InternalError, InvalidError, TooLargeError, UnavailableError

PREFIX = "/registry/"

# etcd's messages (server/etcdserver/api/v3rpc/rpctypes) for refusals a retry may mend.
_TRANSIENT = ("too many requests", "leader changed", "no leader", "request timed out", "timeout",
              "not capable", "stopped", "unhealthy cluster", "corrupt cluster")
_RETRYABLE_CODES = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED)


def describe_key(key: str) -> str:
    """`pods "web" in namespace default` for /registry/pods/default/web; other keys as they are."""
    if not key.startswith(PREFIX):
        return key
    parts = key[len(PREFIX):].split("/")
    if parts[0] == "ranges" or len(parts) not in (2, 3):
        return key
    if len(parts) == 2:
        return f'{parts[0]} "{parts[1]}"'
    return f'{parts[0]} "{parts[2]}" in namespace {parts[1]}'


def too_large(what: str, limit: int) -> TooLargeError:
    return TooLargeError(f"{what}: object is larger than {limit} bytes")


def too_many_ops(what: str, ops: int, limit: int) -> InvalidError:
    return InvalidError(f"{what}: the write needs {ops} etcd operations in one transaction, more than "
                        f"--etcd-max-txn-ops ({limit}) allows")


def from_etcd(code: grpc.StatusCode, details: str, *, what: str = "etcd") -> ApiError:
    """The API error for an etcd RPC that failed with `code` and `details`, about `what`.

    Writes are checked against the configured limits before they reach etcd; etcd refusing one
    for its size or operations means its own limits are lower (the apiserver's --etcd-max-*
    flags disagree with it), and the error says what etcd said.
    """
    text = details or code.name
    lowered = text.lower()
    if code in _RETRYABLE_CODES:
        return UnavailableError(f"etcd: {code.name}: {text}")
    if "request is too large" in lowered or "larger than max" in lowered:
        return TooLargeError(f"{what}: object is larger than etcd accepts ({text})")
    if "too many operations" in lowered:
        return InvalidError(f"{what}: the write has more operations than etcd accepts in one transaction ({text})")
    if any(word in lowered for word in _TRANSIENT):
        return UnavailableError(f"etcd: {text}")
    return InternalError(f"etcd refused the request for {what}: {code.name}: {text}")
