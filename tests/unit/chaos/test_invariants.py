"""Invariants checked on the watcher's snapshots: each violation reported once, when it first shows."""

from __future__ import annotations

import pytest

from chaos.invariants import Invariants, PodView, RolloutView, lost_writes, resolve_int_or_percent


def pod(name: str, uid: str, node: str, kind: str = "ReplicaSet", **kw: object) -> PodView:
    return PodView(uid, name, "default", node, kind, "owner", **kw)  # type: ignore[arg-type]


NODES = {"n1", "n2", "n3"}


@pytest.mark.parametrize(("snapshots", "want"), [
    pytest.param([([pod("a", "u1", "")], NODES), ([pod("a", "u1", "n1")], NODES), ([pod("a", "u1", "n1")], NODES)],
                 [], id="binding-once-is-fine"),
    pytest.param([([pod("a", "u1", "n1")], NODES), ([pod("a", "u1", "n2")], NODES), ([pod("a", "u1", "n3")], NODES)],
                 [(1, "pod-bound-once")], id="a-pod-bound-twice-is-reported-once"),
    pytest.param([([pod("db-1", "u1", "n3", "StatefulSet")], NODES),
                  ([pod("db-1", "u2", "n1", "StatefulSet")], {"n1", "n2"})],
                 [(1, "one-pod-per-identity")], id="an-identity-made-again-while-its-node-is-lost"),
    pytest.param([([pod("db-1", "u1", "n3", "StatefulSet")], NODES),
                  ([pod("db-1", "u2", "n1", "StatefulSet")], NODES)],
                 [], id="an-identity-made-again-after-a-clean-delete"),
    pytest.param([([pod("r-1", "u1", "n3")], NODES), ([pod("r-1", "u2", "n1")], {"n1"})],
                 [], id="replicas-are-not-identities"),
])
def test_pod_invariants(snapshots: list, want: list) -> None:
    """Bound once, and at most one pod per StatefulSet identity while the node that ran it may still run it."""
    inv = Invariants()
    got = []
    for t, (pods, ready) in enumerate(snapshots):
        got += [(v.t, v.invariant) for v in inv.observe(t, pods, ready)]
    assert got == want


@pytest.mark.parametrize(("available", "rolling", "disrupted", "want"), [
    pytest.param(3, True, False, [], id="within-bounds"),
    pytest.param(5, True, False, ["rollout-surge"], id="above-replicas-plus-surge"),
    pytest.param(2, True, False, ["rollout-unavailable"], id="below-replicas-minus-unavailable"),
    pytest.param(2, True, True, [], id="below-while-a-fault-takes-pods-is-not-the-rollouts-doing"),
    pytest.param(5, False, False, [], id="no-rollout-no-bounds"),
])
def test_rollout_bounds(available: int, rolling: bool, disrupted: bool, want: list[str]) -> None:
    """During a rollout, available pods stay within [replicas-maxUnavailable, replicas+maxSurge]."""
    rollout = RolloutView("web", 3, 1, 0, available, rolling)
    got = Invariants().observe(1.0, [], NODES, rollout, disrupted=disrupted)
    assert [v.invariant for v in got] == want


@pytest.mark.parametrize(("value", "up", "want"), [
    pytest.param("25%", True, 1, id="surge-rounds-up"),
    pytest.param("25%", False, 0, id="unavailable-rounds-down"),
    pytest.param("2", False, 2, id="a-count"),
    pytest.param("", True, 0, id="empty"),
])
def test_int_or_percent(value: str, up: bool, want: int) -> None:
    """maxSurge and maxUnavailable of 3 replicas, as Kubernetes resolves them."""
    assert resolve_int_or_percent(value, 3, round_up=up) == want


def test_lost_writes_are_the_acknowledged_ones_not_stored() -> None:
    """A write that was acknowledged and is not stored is lost; unacknowledged ones do not count."""
    assert lost_writes(["w-1", "w-2", "w-3"], ["w-1", "w-3", "w-9"]) == ["w-2"]
