"""etcd's errors map to the gRPC status a client can act on: only what a retry mends is UNAVAILABLE."""

from __future__ import annotations

import grpc
import pytest

from apiserver.storage.errors import describe_key, from_etcd

C = grpc.StatusCode


@pytest.mark.parametrize(("code", "details", "expected", "text"), [
    pytest.param(C.UNAVAILABLE, "connection refused", C.UNAVAILABLE, "connection refused", id="down"),
    pytest.param(C.DEADLINE_EXCEEDED, "Deadline Exceeded", C.UNAVAILABLE, "Deadline", id="slow"),
    pytest.param(C.UNAVAILABLE, "etcdserver: leader changed", C.UNAVAILABLE, "leader changed", id="leader-changed"),
    pytest.param(C.RESOURCE_EXHAUSTED, "etcdserver: too many requests", C.UNAVAILABLE, "too many requests",
                 id="busy"),
    pytest.param(C.RESOURCE_EXHAUSTED, "grpc: received message larger than max (2097183 vs. 2097152)",
                 C.RESOURCE_EXHAUSTED, 'pods "big" in namespace default: object is larger than etcd accepts',
                 id="message-too-large"),
    pytest.param(C.INVALID_ARGUMENT, "etcdserver: request is too large", C.RESOURCE_EXHAUSTED,
                 'pods "big" in namespace default: object is larger than etcd accepts', id="request-too-large"),
    pytest.param(C.INVALID_ARGUMENT, "etcdserver: too many operations in txn request", C.INVALID_ARGUMENT,
                 "more operations than etcd accepts", id="too-many-ops"),
    pytest.param(C.INVALID_ARGUMENT, "etcdserver: duplicate key given in txn request", C.INTERNAL,
                 "duplicate key", id="duplicate-key"),
    pytest.param(C.RESOURCE_EXHAUSTED, "etcdserver: mvcc: database space exceeded", C.INTERNAL,
                 "database space exceeded", id="no-space"),
    pytest.param(C.PERMISSION_DENIED, "etcdserver: permission denied", C.INTERNAL, "permission denied",
                 id="auth"),
])
def test_etcd_errors_map_to_actionable_codes(code: grpc.StatusCode, details: str, expected: grpc.StatusCode,
                                             text: str) -> None:
    """Each etcd refusal becomes the status a client can act on, and its message names the object."""
    err = from_etcd(code, details, what=describe_key("/registry/pods/default/big"))
    assert err.code == expected
    assert text in err.message


@pytest.mark.parametrize(("key", "shown"), [
    pytest.param("/registry/pods/default/web", 'pods "web" in namespace default', id="namespaced"),
    pytest.param("/registry/nodes/n1", 'nodes "n1"', id="cluster-scoped"),
    pytest.param("/registry/ranges/nodeports/tcp/30000", "/registry/ranges/nodeports/tcp/30000", id="claim"),
])
def test_keys_are_named_as_objects(key: str, shown: str) -> None:
    """Errors name the object a key holds, as a user knows it."""
    assert describe_key(key) == shown
