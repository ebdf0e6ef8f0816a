"""Garbage collection decisions: dangling owners, foreground and orphan deletion."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controllers.gc import plan
from controllers.gc.namespace import Remaining, namespaced_resources, plan_deletions

from .builders import T0, pod


def _owned(*finalizers: str, deleting: bool = False) -> object:
    p = pod("child", owner="web-1", deleting=T0 if deleting else None)
    p.metadata.finalizers.extend(finalizers)
    return p


S, W, D = plan.SOLID, plan.WAITING, plan.DANGLING


@pytest.mark.parametrize(("states", "has_deps", "finalizers", "expect"), [
    pytest.param([], False, (), plan.Plan(), id="no-owners"),
    pytest.param([S], False, (), plan.Plan(), id="solid-owner"),
    pytest.param([S, D], False, (), plan.Plan(drop_owners=("o1",)), id="solid-and-dangling-drops-dangling"),
    pytest.param([S, W], False, (), plan.Plan(drop_owners=("o1",)), id="solid-and-waiting-drops-waiting"),
    pytest.param([D], False, (), plan.Plan(delete="Background"), id="dangling-deleted"),
    pytest.param([D, D], False, (), plan.Plan(delete="Background"), id="all-dangling"),
    pytest.param([W], True, (), plan.Plan(delete="Foreground"), id="waiting-owner-with-grandchildren"),
    pytest.param([W], False, (), plan.Plan(delete="Background"), id="waiting-owner-leaf"),
    pytest.param([D], False, ("orphan",), plan.Plan(delete="Orphan"), id="own-orphan-finalizer"),
])
def test_plan_owned(states: list[str], has_deps: bool, finalizers: tuple[str, ...], expect: plan.Plan) -> None:
    """An object stays while a solid owner holds it; otherwise it goes, as its own finalizers ask."""
    owners = [plan.OwnerState(f"o{i}", s) for i, s in enumerate(states)]
    assert plan.plan_owned(_owned(*finalizers), owners, has_dependents=has_deps) == expect


def test_owner_state() -> None:
    """Gone or replaced owners dangle; owners deleting in the foreground wait; others are solid."""
    owner = pod("web-1", uid="u1")
    assert plan.owner_state(None, "u1") == D
    assert plan.owner_state(owner, "other") == D
    assert plan.owner_state(owner, "u1") == S
    owner.metadata.deletion_timestamp.seconds = int(T0)
    assert plan.owner_state(owner, "u1") == S  # deleting without foreground: its dependents are not kept for it
    owner.metadata.finalizers.append(plan.FOREGROUND)
    assert plan.owner_state(owner, "u1") == W


def test_orphan_then_drop_finalizer() -> None:
    """An owner deleted with the orphan policy strips itself from every dependent, then drops the finalizer."""
    owner = _owned(plan.ORPHAN, deleting=True)
    deps = [plan.Dependent(pod("a"), True), plan.Dependent(pod("b"), False)]
    p = plan.plan_item(owner, [], deps)
    assert [d.metadata.name for d in p.orphan] == ["a", "b"] and p.remove_finalizer == plan.ORPHAN


def test_foreground_waits_for_blocking_dependents() -> None:
    """Foreground deletion deletes dependents and keeps its finalizer while a blocking dependent exists."""
    owner = _owned(plan.FOREGROUND, deleting=True)
    blocking, other, going = pod("a"), pod("b"), pod("c", deleting=T0)
    p = plan.plan_item(owner, [], [plan.Dependent(blocking, True), plan.Dependent(other, False),
                                   plan.Dependent(going, True)])
    assert [d.metadata.name for d in p.revisit] == ["a", "b"] and not p.remove_finalizer
    assert plan.plan_item(owner, [], [plan.Dependent(other, False)]) == plan.Plan(
        revisit=(), remove_finalizer=plan.FOREGROUND)
    assert plan.plan_item(owner, [], []).remove_finalizer == plan.FOREGROUND


def test_deleting_without_finalizers_is_left_alone() -> None:
    """An object already being deleted (no GC finalizer) needs nothing from the collector."""
    assert plan.plan_item(_owned(deleting=True), [plan.OwnerState("o", D)], []).empty


def test_namespace_content() -> None:
    """Namespace cleanup deletes what is not already going; Events never hold the namespace."""
    assert [p.metadata.name for p in plan_deletions([pod("a"), pod("b", deleting=T0)])] == ["a"]
    assert not Remaining({"events": 3, "pods": 0}).blocking
    r = Remaining({"pods": 2, "events": 1})
    assert r.blocking and r.message() == ("Some resources are remaining: pods has 2 resource instances, "
                                          "events has 1 resource instances")
    order = namespaced_resources()
    assert order.index("deployments") < order.index("replicasets") < order.index("pods")


@given(st.lists(st.sampled_from([S, W, D]), max_size=6), st.booleans(),
       st.lists(st.sampled_from(["orphan", "foregroundDeletion"]), max_size=2, unique=True))
def test_plan_owned_properties(states: list[str], has_deps: bool, finalizers: list[str]) -> None:
    """Random owner states: an object with a solid owner is never deleted and only loses references to owners
    that are not solid; an object whose owners are all gone or going is deleted."""
    owners = [plan.OwnerState(f"o{i}", s) for i, s in enumerate(states)]
    p = plan.plan_owned(_owned(*finalizers), owners, has_dependents=has_deps)
    solid = {o.uid for o in owners if o.state == S}
    if solid:
        assert not p.delete
        assert set(p.drop_owners) == {o.uid for o in owners if o.state != S}
    elif owners:
        assert p.delete in ("Background", "Foreground", "Orphan") and not p.drop_owners
        if not has_deps or W not in states:
            expected = "Orphan" if "orphan" in finalizers else \
                "Foreground" if "foregroundDeletion" in finalizers else "Background"
            assert p.delete == expected
    else:
        assert p.empty
