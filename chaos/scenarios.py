"""Chaos scenarios: a fault, the recovery the design promises, and a report of how long it took.

Each scenario is bounded in time, undoes its fault (also on failure), and
returns a JSON-able report with a verdict.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from api import labels
from api.errors import ApiError
from chaos.faults import Target
from client.api import Client


@dataclass
class Report:
    scenario: str
    node: str = ""
    ok: bool = False
    seconds_to_replaced: float | None = None
    seconds_to_endpoints_dropped: float | None = None
    seconds_to_ready_again: float | None = None
    duplicate_pods: int = 0
    # StatefulSet pods on the lost node: never replaced while it may still run them (at most one pod per identity),
    # back once the node is.
    identities_held: list[str] = field(default_factory=list)
    duplicate_identities: int = 0
    seconds_to_identities_back: float | None = None
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)


async def _owned_pods(client: Client, namespace: str) -> list[Any]:
    pods = (await client.list("pods", namespace)).items
    return [p for p in pods if any(r.controller for r in p.metadata.owner_references)]


def _controller(pod: Any) -> Any:
    return next(r for r in pod.metadata.owner_references if r.controller)


@dataclass
class Expectations:
    """What losing a node should do to the controller-owned pods that ran before it was lost."""

    victims: dict[str, str]  # uid -> pod IP of each pod on the node: these must leave every Service
    held: dict[str, str]  # name -> uid of each StatefulSet pod on the node: never made again while it is lost
    desired: Counter[str]  # controller uid -> pods it runs: more than this afterwards is a duplicate
    replaced: Counter[str]  # controller uid -> Ready pods that must be Ready off the node while it is lost
    replaceable: set[str]  # uids of victims a controller makes again elsewhere (the returning node stops them)


# A DaemonSet pod belongs to its node and a StatefulSet pod is an identity: neither is made again elsewhere.
_NOT_REPLACED = {"DaemonSet", "StatefulSet"}


def expectations(before: list[Any], node: str) -> Expectations:
    """Only pods that are not already terminating count, and only Ready ones must be Ready again: a pod that was
    crash-looping or finished, or whose owner is being deleted, is no replica the controller must restore."""
    live = [p for p in before if not p.metadata.HasField("deletion_timestamp")]
    out = Expectations({}, {}, Counter(), Counter(), set())
    for p in live:
        ref = _controller(p)
        out.desired[ref.uid] += 1
        on_node = p.spec.node_name == node
        if on_node:
            out.victims[p.metadata.uid] = p.status.pod_ip
        if ref.kind == "StatefulSet" and on_node:
            out.held[p.metadata.name] = p.metadata.uid
        if ref.kind not in _NOT_REPLACED:
            if on_node:
                out.replaceable.add(p.metadata.uid)
            if _ready(p):
                out.replaced[ref.uid] += 1
    # Wait only for the controllers that lost a pod with the node.
    lost = {_controller(p).uid for p in live if p.metadata.uid in out.replaceable}
    out.replaced = Counter({uid: n for uid, n in out.replaced.items() if uid in lost})
    return out


async def _endpoint_ips(client: Client, namespace: str) -> set[str]:
    out = set()
    for ep in (await client.list("endpoints", namespace)).items:
        for s in ep.subsets:
            out.update(a.ip for a in s.addresses)
    return out


async def node_loss(target: Target, client: Client, node: str, *, namespace: str = "default",
                    timeout: float = 60.0, lost: str = "stop") -> Report:
    """Stop (or cut off) `node`; measure until its pods run elsewhere and leave every Service;
    then bring it back and check it is Ready with no duplicate pods.

    A StatefulSet pod on the node is an identity, not a replica: it must not be made again elsewhere while the node
    may still run it (no second pod of that name, ever), and must be running again once the node is back.
    """
    report = Report(f"node-{lost}", node)
    expect = expectations(await _owned_pods(client, namespace), node)
    victims, held, desired, replaced = expect.victims, dict(expect.held), expect.desired, expect.replaced
    report.identities_held = sorted(held)
    if not victims:
        report.notes.append(f"no controller-owned pods on {node}: nothing to replace")
    start = time.monotonic()
    await (target.stop_node(node) if lost == "stop" else target.cut_off(node))
    try:
        deadline = start + timeout
        while time.monotonic() < deadline:
            try:
                pods = await _owned_pods(client, namespace)
                eps = await _endpoint_ips(client, namespace)
            except ApiError:
                await asyncio.sleep(0.2)
                continue
            now = time.monotonic() - start
            victim_ips = {ip for ip in victims.values() if ip}
            if report.seconds_to_endpoints_dropped is None and not (victim_ips & eps):
                report.seconds_to_endpoints_dropped = round(now, 2)
            ready_elsewhere: Counter[str] = Counter()
            for p in pods:
                if p.metadata.name in held and p.metadata.uid != held[p.metadata.name]:
                    report.duplicate_identities += 1
                    report.notes.append(f"{p.metadata.name} made again (uid {p.metadata.uid}) while {node} was lost")
                    held[p.metadata.name] = p.metadata.uid
                if p.spec.node_name != node and _ready(p) and not p.metadata.HasField("deletion_timestamp"):
                    ready_elsewhere[_controller(p).uid] += 1
            if all(ready_elsewhere[uid] >= n for uid, n in replaced.items()):
                report.seconds_to_replaced = round(now, 2)
                if report.seconds_to_endpoints_dropped is not None:
                    break
            await asyncio.sleep(0.1)
    finally:
        await (target.start_node(node) if lost == "stop" else target.heal(node))
    back = time.monotonic()
    while time.monotonic() - back < timeout:
        try:
            n = await client.get("nodes", node)
            if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions):
                report.seconds_to_ready_again = round(time.monotonic() - back, 2)
                break
        except ApiError:
            pass
        await asyncio.sleep(0.2)
    # Let the returning kubelet finish off what was replaced, then count.
    settle = time.monotonic()
    while time.monotonic() - settle < timeout:
        all_pods = await _owned_pods(client, namespace)
        pods = [p for p in all_pods if not p.metadata.HasField("deletion_timestamp")]
        counts: Counter[str] = Counter(_controller(p).uid for p in pods)
        report.duplicate_pods = sum(max(0, counts[u] - n) for u, n in desired.items())
        stale = [p for p in pods if p.metadata.uid in expect.replaceable]
        back_up = all(any(p.metadata.name == name and _ready(p) for p in pods) for name in held)
        if back_up and report.seconds_to_identities_back is None:
            report.seconds_to_identities_back = round(time.monotonic() - back, 2)
        if report.duplicate_pods == 0 and not stale and back_up:
            break
        await asyncio.sleep(0.5)
    report.ok = (report.seconds_to_replaced is not None and report.seconds_to_endpoints_dropped is not None
                 and report.seconds_to_ready_again is not None and report.duplicate_pods == 0
                 and report.duplicate_identities == 0
                 and (not held or report.seconds_to_identities_back is not None))
    return report


async def component_restart(target: Target, client: Client, component: str, *, writes: int = 200,
                            timeout: float = 60.0) -> Report:
    """SIGKILL a control-plane component while objects are being written; every acknowledged write
    must be there afterwards, and the cluster must answer again."""
    report = Report(f"restart-{component}")
    acked: list[str] = []
    selector = labels.parse("chaos=restart")

    async def writer() -> None:
        from api.pb import core_pb2

        for i in range(writes):
            ns = core_pb2.Namespace(metadata={"name": f"chaos-{i}", "labels": {"chaos": "restart"}})
            try:
                await client.create(ns)
                acked.append(ns.metadata.name)
            except ApiError:
                await asyncio.sleep(0.05)

    task = asyncio.create_task(writer())
    await asyncio.sleep(0.3)
    start = time.monotonic()
    await target.restart(component)
    await task
    while time.monotonic() - start < timeout:
        try:
            have = {n.metadata.name for n in (await client.list("namespaces")).items
                    if selector.matches(n.metadata.labels)}
            report.seconds_to_ready_again = round(time.monotonic() - start, 2)
            missing = [n for n in acked if n not in have]
            if missing:
                report.notes.append(f"lost acknowledged writes: {missing[:5]}")
            report.ok = not missing
            break
        except ApiError:
            await asyncio.sleep(0.2)
    for name in acked:
        try:
            await client.delete("namespaces", name)
        except ApiError:
            pass
    return report
