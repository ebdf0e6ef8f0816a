"""What a node-loss scenario waits for, from the pods that ran before the node was lost."""

from __future__ import annotations

import pytest

from chaos.scenarios import expectations

from ..controllers.builders import pod


def owned(name: str, owner: str, kind: str = "ReplicaSet", **kw: object) -> object:
    p = pod(name, owner=owner, **kw)  # type: ignore[arg-type]
    p.metadata.owner_references[0].kind = kind
    return p


CASES = [
    pytest.param([owned("a", "rs", node="n1", ready=True, ip="10.0.0.1"), owned("b", "rs", node="n2", ready=True)],
                 {"victims": {"uid-a": "10.0.0.1"}, "held": {}, "replaced": {"uid-rs": 2}, "replaceable": {"uid-a"}},
                 id="a-replica-on-the-node-waits-for-all-replicas"),
    pytest.param([owned("db-1", "db", "StatefulSet", node="n1", ready=True), owned("db-0", "db", "StatefulSet",
                                                                                    node="n2", ready=True)],
                 {"victims": {"uid-db-1": ""}, "held": {"db-1": "uid-db-1"}, "replaced": {}, "replaceable": set()},
                 id="a-statefulset-pod-is-held-not-replaced"),
    pytest.param([owned("ds-a", "ds", "DaemonSet", node="n1", ready=True), owned("ds-b", "ds", "DaemonSet",
                                                                                 node="n2", ready=True)],
                 {"victims": {"uid-ds-a": ""}, "held": {}, "replaced": {}, "replaceable": set()},
                 id="a-daemonset-pod-belongs-to-its-node"),
    pytest.param([owned("a", "rs", node="n1", ready=True), owned("gone", "old", node="n1", ready=True, deleting=1.0)],
                 {"victims": {"uid-a": ""}, "held": {}, "replaced": {"uid-rs": 1}, "replaceable": {"uid-a"}},
                 id="a-terminating-pod-of-a-deleted-owner-is-not-waited-for"),
    pytest.param([owned("a", "rs", node="n1", ready=True), owned("elsewhere", "other", node="n2", ready=True)],
                 {"victims": {"uid-a": ""}, "held": {}, "replaced": {"uid-rs": 1}, "replaceable": {"uid-a"}},
                 id="a-controller-with-nothing-on-the-node-is-not-waited-for"),
    pytest.param([owned("a", "rs", node="n1", ready=True), owned("crash", "rs", node="n2", ready=False),
                  owned("done", "job", "Job", node="n1", phase="Succeeded", ready=False)],
                 {"victims": {"uid-a": "", "uid-done": ""}, "held": {}, "replaced": {"uid-rs": 1},
                  "replaceable": {"uid-a", "uid-done"}},
                 id="only-ready-pods-must-be-ready-again"),
]


@pytest.mark.parametrize(("before", "want"), CASES)
def test_expectations(before: list, want: dict) -> None:
    """Each case names the rule: which pods must leave Services, which are held, and what must run elsewhere."""
    got = expectations(before, "n1")
    assert got.victims == want["victims"]
    assert got.held == want["held"]
    assert dict(got.replaced) == want["replaced"]
    assert got.replaceable == want["replaceable"]
    assert sum(got.desired.values()) == sum(1 for p in before if not p.metadata.HasField("deletion_timestamp"))
