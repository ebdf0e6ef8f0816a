"""Builders for Node and Pod objects in scheduler tests (plain protobuf, as the apiserver stores them)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from api import defaults
from api.pb import core_pb2
from scheduler.framework.types import PodInfo, Snapshot


def node(name: str, *, cpu: str = "4", memory: str = "8Gi", pods: int = 110, ephemeral: str = "",
         labels: Mapping[str, str] | None = None, taints: Sequence[tuple[str, str, str]] = (),
         ready: bool = True, unschedulable: bool = False) -> core_pb2.Node:
    n = core_pb2.Node(metadata={"name": name, "labels": dict(labels or {})})
    n.metadata.labels.setdefault("kubernetes.io/hostname", name)
    for k, v, e in taints:
        n.spec.taints.add(key=k, value=v, effect=e)
    n.spec.unschedulable = unschedulable
    alloc = {"cpu": cpu, "memory": memory, "pods": str(pods)}
    if ephemeral:
        alloc["ephemeral-storage"] = ephemeral
    n.status.capacity.update(alloc)
    n.status.allocatable.update(alloc)
    n.status.conditions.add(type="Ready", status="True" if ready else "False")
    return n


def pod(name: str, *, namespace: str = "default", cpu: str = "", memory: str = "", ephemeral: str = "",
        labels: Mapping[str, str] | None = None, node_selector: Mapping[str, str] | None = None,
        tolerations: Sequence[Mapping[str, object]] = (), host_ports: Sequence[int] = (), priority: int | None = None,
        node_name: str = "", init: Sequence[tuple[str, str]] = (), containers: int = 1,
        owner: str = "", defaulted: bool = True) -> core_pb2.Pod:
    p = core_pb2.Pod(metadata={"name": name, "namespace": namespace, "labels": dict(labels or {}),
                               "uid": f"uid-{namespace}-{name}"})
    for i in range(containers):
        c = p.spec.containers.add(name=f"c{i}", image="busybox")
        if cpu:
            c.resources.requests["cpu"] = cpu
        if memory:
            c.resources.requests["memory"] = memory
        if ephemeral:
            c.resources.requests["ephemeral-storage"] = ephemeral
        if i == 0:
            for hp in host_ports:
                c.ports.add(container_port=hp, host_port=hp, protocol="TCP")
    for i, (icpu, imem) in enumerate(init):
        c = p.spec.init_containers.add(name=f"init{i}", image="busybox")
        if icpu:
            c.resources.requests["cpu"] = icpu
        if imem:
            c.resources.requests["memory"] = imem
    for k, v in (node_selector or {}).items():
        p.spec.node_selector[k] = v
    for t in tolerations:
        p.spec.tolerations.add(**t)  # type: ignore[arg-type]
    if priority is not None:
        p.spec.priority = priority
    if node_name:
        p.spec.node_name = node_name
    if owner:
        p.metadata.owner_references.add(api_version="apps/v1", kind="ReplicaSet", name=owner, uid=f"uid-{owner}",
                                         controller=True)
    if defaulted:
        defaults.pod(p, toleration_seconds=None)
    return p


def snapshot(nodes: Sequence[core_pb2.Node], pods: Sequence[core_pb2.Pod] = ()) -> Snapshot:
    snap = Snapshot()
    for n in nodes:
        snap.add_node(n)
    for p in pods:
        snap.place(PodInfo(p), p.spec.node_name)
    return snap
