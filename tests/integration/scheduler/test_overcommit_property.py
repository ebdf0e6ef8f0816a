"""Property test through the real apiserver: random nodes and pods created concurrently never overcommit a node.

Nodes and pods of each example are created at once, in random order, so pods
often arrive before the nodes that will take them. Once the scheduler is idle,
the independent checker judges the final objects and every placement is
checked against the pod's selector, tolerations and the node's cordon.
"""

from __future__ import annotations

import asyncio
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from unit.scheduler.objects import node, pod

from api.pb import core_pb2
from client.api import Client
from integration.scheduler.conftest import RunningScheduler, eventually
from scheduler.overcommit import compute_overcommit

node_specs = st.lists(st.tuples(st.integers(0, 3000), st.integers(0, 2048), st.integers(0, 4), st.booleans(),
                                st.sampled_from(["a", "b"]), st.booleans()), min_size=1, max_size=5)
pod_specs = st.lists(st.tuples(st.sampled_from(["", "200m", "900m", "1500m"]), st.sampled_from(["", "256Mi", "1Gi"]),
                               st.sampled_from([{}, {"zone": "a"}, {"zone": "b"}]), st.booleans()),
                     min_size=1, max_size=20)


def build(node_list: list, pod_list: list) -> tuple[list[core_pb2.Node], list[core_pb2.Pod]]:
    nodes = [node(f"n{i}", cpu=f"{cpu}m", memory=f"{mem}Mi", pods=count, unschedulable=cordoned,
                  labels={"zone": zone}, taints=[("dedicated", "x", "NoSchedule")] if tainted else [])
             for i, (cpu, mem, count, cordoned, zone, tainted) in enumerate(node_list)]
    pods = [pod(f"p{i}", cpu=cpu, memory=mem, node_selector=sel, defaulted=False,
                tolerations=[{"key": "dedicated", "operator": "Exists"}] if tolerates else [])
            for i, (cpu, mem, sel, tolerates) in enumerate(pod_list)]
    for p in pods:
        p.metadata.uid = ""
    return nodes, pods


async def settled(client: Client, sched: RunningScheduler, n_pods: int) -> bool:
    pods = await client.list_all("pods", "default")
    if len(pods) != n_pods:
        return False
    for p in pods:
        if not p.spec.node_name and not any(c.type == "PodScheduled" and c.status == "False"
                                            for c in p.status.conditions):
            return False
    q = sched.term.queue.counts()
    return q["active"] == 0 and q["backoff"] == 0 and q["inflight"] == 0 and sched.term.cache.stats()["assumed"] == 0


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                HealthCheck.too_slow])
@given(node_specs, pod_specs, st.randoms(use_true_random=False))
async def test_concurrent_creation_never_overcommits(client: Client, scheduler: RunningScheduler, node_list: list,
                                                     pod_list: list, rnd: random.Random) -> None:
    """Whatever nodes and pods arrive in whatever order, bound pods fit their node and honour its constraints."""
    nodes, pods = build(node_list, pod_list)
    objs: list = [*nodes, *pods]
    rnd.shuffle(objs)
    try:
        await asyncio.gather(*(client.create(o) for o in objs))
        await eventually(lambda: settled(client, scheduler, len(pods)), timeout=30)
        final_nodes = await client.list_all("nodes")
        final_pods = await client.list_all("pods", "default")
        assert compute_overcommit(final_nodes, final_pods) == []
        by_name = {n.metadata.name: n for n in final_nodes}
        for p in final_pods:
            if not p.spec.node_name:
                continue
            n = by_name[p.spec.node_name]
            assert not n.spec.unschedulable
            assert all(n.metadata.labels.get(k) == v for k, v in p.spec.node_selector.items())
            assert not n.spec.taints or any(t.key == "dedicated" for t in p.spec.tolerations)
    finally:
        await asyncio.gather(*(client.delete("pods", p.metadata.name, "default", grace_period_seconds=0)
                               for p in pods), return_exceptions=True)
        await asyncio.gather(*(client.delete("nodes", n.metadata.name) for n in nodes), return_exceptions=True)
        await eventually(lambda: _empty(scheduler), timeout=10)


async def _empty(sched: RunningScheduler) -> bool:
    return sched.term.cache.stats() == {"nodes": 0, "pods": 0, "assumed": 0} and len(sched.term.queue) == 0
