"""EndpointSlice planning: conditions from pods, mirrored Endpoints, packing into slices of at most N, few writes."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from api.pb import core_pb2, discovery_pb2, meta_pb2
from controllers.endpointslice.plan import (
    MANAGED_BY,
    SlicePlan,
    desired_from_endpoints,
    desired_from_pods,
    plan_slices,
    slice_labels,
)

from .builders import pod
from .test_endpoints_plan import WEB, service

OWNER = meta_pb2.OwnerReference(api_version="v1", kind="Service", name="web", uid="uid-web", controller=True,
                                block_owner_deletion=True)
LABELS = slice_labels("web", {}, headless=False, managed_by=MANAGED_BY)
KEY = (("http", 8080, "TCP", ""),)


def _conditions(es: dict) -> dict[str, tuple[bool, bool, bool]]:
    return {e.addresses[0]: (e.conditions.ready, e.conditions.serving, e.conditions.terminating)
            for eps in es.values() for e in eps}


@pytest.mark.parametrize(("pods", "publish", "want"), [
    pytest.param([pod("a", labels=WEB, ip="10.0.0.1", ready=True)], False, {"10.0.0.1": (True, True, False)},
                 id="ready"),
    pytest.param([pod("a", labels=WEB, ip="10.0.0.1", ready=False)], False, {"10.0.0.1": (False, False, False)},
                 id="not-ready"),
    pytest.param([pod("a", labels=WEB, ip="10.0.0.1", ready=True, deleting=1.0)], False,
                 {"10.0.0.1": (False, True, True)}, id="terminating-still-serving"),
    pytest.param([pod("a", labels=WEB, ip="10.0.0.1", ready=False, deleting=1.0)], True,
                 {"10.0.0.1": (True, False, True)}, id="publish-not-ready"),
    pytest.param([pod("a", labels=WEB, ip="", ready=True), pod("b", labels=WEB, ip="10.0.0.2", phase="Succeeded")],
                 False, {}, id="no-ip-or-finished"),
])
def test_conditions_from_pods(pods: list[core_pb2.Pod], publish: bool, want: dict) -> None:
    """ready = serving and not terminating (or publishNotReadyAddresses); terminating pods stay, serving or not."""
    svc = service(ports=[("http", 80, "8080")], publish=publish)
    assert _conditions(desired_from_pods(svc, pods)) == want


def test_named_ports_group_endpoints() -> None:
    """Pods resolving a named target port differently land in different port groups; pods lacking it are left out."""
    svc = service(ports=[("http", 80, "web")])
    pods = [pod("a", labels=WEB, ip="10.0.0.1", ready=True, ports=[("web", 8080, "TCP")]),
            pod("b", labels=WEB, ip="10.0.0.2", ready=True, ports=[("web", 9090, "TCP")]),
            pod("c", labels=WEB, ip="10.0.0.3", ready=True)]
    got = desired_from_pods(svc, pods)
    assert {k: [e.addresses[0] for e in v] for k, v in got.items()} == {
        (("http", 8080, "TCP", ""),): ["10.0.0.1"], (("http", 9090, "TCP", ""),): ["10.0.0.2"]}


def test_mirrored_endpoints() -> None:
    """A user's Endpoints become slice endpoints: addresses ready, not-ready addresses not."""
    ep = core_pb2.Endpoints(metadata={"name": "ext", "namespace": "default"}, subsets=[{
        "addresses": [{"ip": "10.1.0.1", "hostname": "one"}], "not_ready_addresses": [{"ip": "10.1.0.2"}],
        "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]}])
    got = desired_from_endpoints(ep)
    assert list(got) == [(("dns", 53, "UDP", ""),)]
    assert _conditions(got) == {"10.1.0.1": (True, True, False), "10.1.0.2": (False, False, False)}
    assert got[(("dns", 53, "UDP", ""),)][0].hostname == "one"


def _eps(n: int, start: int = 0) -> list[discovery_pb2.SliceEndpoint]:
    return [discovery_pb2.SliceEndpoint(addresses=[f"10.0.{(start + i) // 250}.{(start + i) % 250 + 1}"],
                                        conditions={"ready": True, "serving": True, "terminating": False})
            for i in range(n)]


_NAMES = itertools.count()


def _apply(plan: SlicePlan, existing: list[discovery_pb2.EndpointSlice]) -> list[discovery_pb2.EndpointSlice]:
    """What the slices are after the plan is written (creations get names)."""
    gone = {es.metadata.name for es in plan.delete}
    updated = {es.metadata.name: es for es in plan.update}
    out = [updated.get(es.metadata.name, es) for es in existing if es.metadata.name not in gone]
    for es in plan.create:
        new = discovery_pb2.EndpointSlice()
        new.CopyFrom(es)
        new.metadata.name = f"web-{next(_NAMES)}"  # unique, as the apiserver's generateName makes them
        out.append(new)
    return out


def test_slices_hold_at_most_the_limit() -> None:
    """250 endpoints become slices of 100, 100 and 50, each with the service-name and managed-by labels."""
    plan = plan_slices("default", "web", {KEY: _eps(250)}, [], labels=LABELS, owner=OWNER)
    assert [len(es.endpoints) for es in plan.create] == [100, 100, 50]
    assert all(es.metadata.labels["kubernetes.io/service-name"] == "web" for es in plan.create)
    assert all(es.metadata.generate_name == "web-" for es in plan.create)
    assert not plan.update and not plan.delete


def test_one_new_endpoint_touches_one_slice() -> None:
    """Adding one endpoint to full and half-full slices updates only the one with room; nothing else is written."""
    slices = _apply(plan_slices("default", "web", {KEY: _eps(150)}, [], labels=LABELS, owner=OWNER), [])
    plan = plan_slices("default", "web", {KEY: _eps(151)}, slices, labels=LABELS, owner=OWNER)
    assert not plan.create and not plan.delete
    assert [len(es.endpoints) for es in plan.update] == [51]


def test_an_unchanged_service_writes_nothing() -> None:
    """Planning again over the planned slices is a no-op."""
    slices = _apply(plan_slices("default", "web", {KEY: _eps(120)}, [], labels=LABELS, owner=OWNER), [])
    assert not plan_slices("default", "web", {KEY: _eps(120)}, slices, labels=LABELS, owner=OWNER)


def test_no_endpoints_keeps_one_placeholder() -> None:
    """A Service without endpoints has exactly one empty slice without ports."""
    plan = plan_slices("default", "web", {}, [], labels=LABELS, owner=OWNER)
    assert len(plan.create) == 1 and not plan.create[0].endpoints and not plan.create[0].ports
    slices = _apply(plan_slices("default", "web", {KEY: _eps(3)}, [], labels=LABELS, owner=OWNER), [])
    emptied = plan_slices("default", "web", {}, slices, labels=LABELS, owner=OWNER)
    assert len(emptied.delete) == 1 and len(emptied.create) == 1


@settings(max_examples=60)
@given(st.lists(st.integers(min_value=0, max_value=400), min_size=1, max_size=5),
       st.integers(min_value=1, max_value=120))
@example(sizes=[0, 1, 2, 1], limit=1)  # slices made in different rounds: names must not collide
def test_any_sequence_converges(sizes: list[int], limit: int) -> None:
    """Whatever the sequence of endpoint counts, the slices hold each endpoint exactly once, none over the limit,
    and planning again writes nothing."""
    slices: list[discovery_pb2.EndpointSlice] = []
    for n in sizes:
        desired = {KEY: _eps(n, start=n % 7)} if n else {}
        slices = _apply(plan_slices("default", "web", desired, slices, labels=LABELS, owner=OWNER,
                                    max_endpoints=limit), slices)
        held = [e.addresses[0] for es in slices for e in es.endpoints]
        assert sorted(held) == sorted(e.addresses[0] for e in desired.get(KEY, []))
        assert all(len(es.endpoints) <= limit for es in slices)
        assert len(slices) >= 1
        assert not plan_slices("default", "web", desired, slices, labels=LABELS, owner=OWNER, max_endpoints=limit)
