"""Property tests: whatever the nodes and pods, decisions never overcommit and honour every constraint.

Pods are scheduled one after another through the real framework and cache
(each assumed on its node, as the daemon does). A simple reference written
here, independent of the plugins, then checks every placement and every
refusal against the final state.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api import quantity
from api.pb import core_pb2
from scheduler.cache import Cache
from scheduler.framework.types import PodInfo
from scheduler.overcommit import compute_overcommit
from scheduler.plugins import new_framework
from unit.scheduler.objects import node, pod

ZONES = ["a", "b"]
TAINT_KEYS = ["dedicated", "gpu"]


@st.composite
def nodes(draw: st.DrawFn) -> list[core_pb2.Node]:
    out = []
    for i in range(draw(st.integers(1, 6))):
        taints = draw(st.lists(st.tuples(st.sampled_from(TAINT_KEYS), st.sampled_from(["x", "y"]),
                                         st.sampled_from(["NoSchedule", "NoExecute", "PreferNoSchedule"])),
                               max_size=2, unique_by=lambda t: (t[0], t[2])))
        out.append(node(f"n{i}", cpu=f"{draw(st.integers(0, 4000))}m", memory=f"{draw(st.integers(0, 4096))}Mi",
                        pods=draw(st.integers(0, 5)), labels={"zone": draw(st.sampled_from(ZONES))},
                        taints=taints, ready=draw(st.booleans()) or draw(st.booleans()),
                        unschedulable=draw(st.integers(0, 4)) == 0))
    return out


@st.composite
def pods(draw: st.DrawFn) -> list[core_pb2.Pod]:
    out = []
    for i in range(draw(st.integers(1, 25))):
        tolerations = draw(st.lists(st.fixed_dictionaries({
            "key": st.sampled_from(TAINT_KEYS), "operator": st.sampled_from(["Equal", "Exists"]),
            "effect": st.sampled_from(["", "NoSchedule", "NoExecute"])}), max_size=2))
        for t in tolerations:
            if t["operator"] == "Equal":
                t["value"] = draw(st.sampled_from(["x", "y"]))
        selector = draw(st.sampled_from([{}, {}, {"zone": "a"}, {"zone": "b"}]))
        init = draw(st.lists(st.tuples(st.sampled_from(["", "500m", "2"]), st.sampled_from(["", "1Gi"])),
                             max_size=1))
        out.append(pod(f"p{i}", cpu=draw(st.sampled_from(["", "100m", "700m", "1500m"])),
                       memory=draw(st.sampled_from(["", "256Mi", "1Gi"])), node_selector=selector,
                       tolerations=tolerations, host_ports=draw(st.sampled_from([(), (), (80,)])),
                       init=init, containers=draw(st.integers(1, 2))))
    return out


# ---------------------------------------------------------------- the reference


def _req(p: core_pb2.Pod, resource: str, parse) -> int:  # type: ignore[no-untyped-def]
    def one(c: core_pb2.Container) -> int:
        return parse(c.resources.requests[resource]) if resource in c.resources.requests else 0
    return max(sum(one(c) for c in p.spec.containers), max((one(c) for c in p.spec.init_containers), default=0))


def _tolerated(p: core_pb2.Pod, key: str, value: str, effect: str) -> bool:
    for t in p.spec.tolerations:
        if (not t.effect or t.effect == effect) and (not t.key or t.key == key) and \
                (t.operator == "Exists" or t.value == value):
            return True
    return False


def reference_fits(p: core_pb2.Pod, n: core_pb2.Node, on_node: list[core_pb2.Pod]) -> bool:
    alloc = n.status.allocatable
    if n.spec.unschedulable or not any(c.type == "Ready" and c.status == "True" for c in n.status.conditions):
        return False
    if any(not _tolerated(p, t.key, t.value, t.effect) for t in n.spec.taints if t.effect != "PreferNoSchedule"):
        return False
    if any(n.metadata.labels.get(k) != v for k, v in p.spec.node_selector.items()):
        return False
    if len(on_node) + 1 > int(alloc["pods"]):
        return False
    for res, parse in (("cpu", quantity.milli), ("memory", quantity.value)):
        want = _req(p, res, parse)
        if want and want + sum(_req(o, res, parse) for o in on_node) > parse(alloc[res]):
            return False
    ports = {hp.host_port for c in p.spec.containers for hp in c.ports if hp.host_port}
    used = {hp.host_port for o in on_node for c in o.spec.containers for hp in c.ports if hp.host_port}
    return not (ports & used)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nodes(), pods())
def test_decisions_are_sound_and_complete(node_list: list[core_pb2.Node], pod_list: list[core_pb2.Pod]) -> None:
    """No placement breaks a constraint or overcommits; no refused pod would have fit anywhere."""
    cache = Cache()
    for n in node_list:
        cache.set_node(n)
    fw = new_framework()
    placed: dict[str, list[core_pb2.Pod]] = {n.metadata.name: [] for n in node_list}
    refused = []
    for p in pod_list:
        by_name = {n.metadata.name: n for n in node_list}
        result = fw.schedule(PodInfo(p), cache.snapshot)
        if result.node:
            assert reference_fits(p, by_name[result.node], placed[result.node]), result.node
            cache.assume(PodInfo(p), result.node)
            placed[result.node].append(p)
        else:
            refused.append(p)
            assert result.message().startswith(f"0/{len(node_list)} nodes are available")
    bound = []
    for name, ps in placed.items():
        for p in ps:
            b = core_pb2.Pod()
            b.CopyFrom(p)
            b.spec.node_name = name
            bound.append(b)
    assert compute_overcommit(node_list, bound) == []
    for p in refused:
        assert not any(reference_fits(p, n, placed[n.metadata.name]) for n in node_list)
