"""The ReplicaSet controller against a real apiserver: counts, names, ownership, deletion order, status, events."""

from __future__ import annotations

import asyncio
import re

from conftest import start_apiserver

from api.pb import apps_pb2, core_pb2
from apiserver.server import REQUESTS
from client.api import Client
from controllers.manager import ControllerManager

from .conftest import PodCensus, Running, create, eventually, is_ready, owned_by, start_manager, watch_census


def rs_yaml(name: str = "web", replicas: int = 3, labels: str = "{app: web}", extra_spec: str = "") -> str:
    return f"""
apiVersion: apps/v1
kind: ReplicaSet
metadata: {{name: {name}, namespace: default}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {labels}}}
  template:
    metadata: {{labels: {labels}}}
    spec:
      containers: [{{name: c, image: busybox}}]
{extra_spec}"""


async def pods_of(client: Client, rs: apps_pb2.ReplicaSet) -> list[core_pb2.Pod]:
    return [p for p in await client.list_all("pods", "default")
            if owned_by(p, rs.metadata.uid) and not p.metadata.HasField("deletion_timestamp")]


async def test_creates_named_owned_pods_and_status(client: Client, manager: ControllerManager) -> None:
    """A ReplicaSet gets `replicas` pods named <rs>-<5 chars>, controlled by it, and a status that counts them."""
    rs = await create(client, rs_yaml(replicas=4))
    pods = await eventually(lambda: _exactly(client, rs, 4), what="4 pods")
    for p in pods:
        assert re.fullmatch(r"web-[bcdfghjklmnpqrstvwxz2456789]{5}", p.metadata.name)
        ref = p.metadata.owner_references[0]
        assert (ref.kind, ref.name, ref.uid, ref.controller, ref.block_owner_deletion) == \
            ("ReplicaSet", "web", rs.metadata.uid, True, True)

    async def status_ok() -> bool:
        cur = await client.get("replicasets", "web", "default")
        s = cur.status
        return (s.replicas, s.fully_labeled_replicas, s.ready_replicas, s.available_replicas,
                s.observed_generation) == (4, 4, 0, 0, cur.metadata.generation)

    await eventually(status_ok, what="status")
    events = await client.list_all("events", "default",
                                   field_selector="involvedObject.name=web,reason=SuccessfulCreate")
    assert events and events[0].message.startswith("Created pod: web-")


async def _exactly(client: Client, rs: apps_pb2.ReplicaSet, n: int) -> list[core_pb2.Pod] | None:
    pods = await pods_of(client, rs)
    return pods if len(pods) == n else None


async def test_replaces_deleted_pods_without_overshoot(client: Client, manager: ControllerManager) -> None:
    """Deleting pods gets them replaced; a watcher never sees more than `replicas` live pods."""
    census = PodCensus(selector="app=web")
    watcher = asyncio.create_task(watch_census(client, census))
    try:
        rs = await create(client, rs_yaml(replicas=5))
        pods = await eventually(lambda: _exactly(client, rs, 5))
        await asyncio.gather(*(client.delete("pods", p.metadata.name, "default") for p in pods[:3]))
        after = await eventually(lambda: _exactly(client, rs, 5))
        assert len({p.metadata.name for p in after} & {p.metadata.name for p in pods[:3]}) == 0
        await asyncio.sleep(0.5)
        assert len(await pods_of(client, rs)) == 5
        assert census.max_active <= 5
    finally:
        watcher.cancel()


async def test_scale_down_removes_least_valuable(client: Client, manager: ControllerManager) -> None:
    """Scaling down deletes unscheduled pods before a scheduled, ready one."""
    rs = await create(client, rs_yaml(replicas=3))
    pods = await eventually(lambda: _exactly(client, rs, 3))
    keeper = pods[1]
    await client.bind("default", keeper.metadata.name, "node-a")
    bound = await client.get("pods", keeper.metadata.name, "default")
    bound.status.phase = "Running"
    bound.status.conditions.add(type="Ready", status="True")
    await client.update_status(bound)  # stands in for a kubelet's status report
    await client.scale("replicasets", "web", 1, "default")
    left = await eventually(lambda: _exactly(client, rs, 1))
    assert left[0].metadata.name == keeper.metadata.name and is_ready(left[0])
    events = await client.list_all("events", "default",
                                   field_selector="involvedObject.name=web,reason=SuccessfulDelete")
    assert events


async def test_adopts_orphans_and_releases_mismatches(client: Client, manager: ControllerManager) -> None:
    """A matching orphan is adopted instead of creating a pod; a pod relabelled away is released and replaced."""
    orphan = core_pb2.Pod(metadata={"name": "stray", "namespace": "default", "labels": {"app": "web"}})
    orphan.spec.containers.add(name="c", image="busybox")
    await client.create(orphan)
    rs = await create(client, rs_yaml(replicas=2))
    pods = await eventually(lambda: _exactly(client, rs, 2))
    assert "stray" in {p.metadata.name for p in pods}
    stray = await client.get("pods", "stray", "default")
    assert stray.metadata.owner_references[0].block_owner_deletion
    stray.metadata.labels["app"] = "other"
    await client.update(stray)
    await eventually(lambda: _exactly(client, rs, 2))

    async def released() -> bool:
        return not (await client.get("pods", "stray", "default")).metadata.owner_references

    await eventually(released, what="release")
    assert "stray" not in {p.metadata.name for p in await pods_of(client, rs)}


async def test_bad_template_fails_fast(client: Client, manager: ControllerManager) -> None:
    """When the apiserver refuses the pods, a single request fails (not a burst) and the status says FailedCreate."""
    name = "bad"
    # A template may name any priority class; a pod naming an unknown one is refused by the apiserver.
    rs = await create(client, rs_yaml(name=name, replicas=50, extra_spec="      priorityClassName: no-such-class\n"))

    async def failed() -> bool:
        cur = await client.get("replicasets", name, "default")
        return any(c.type == "ReplicaFailure" and c.reason == "FailedCreate" for c in cur.status.conditions)

    await eventually(failed, what="ReplicaFailure")
    assert not await pods_of(client, rs)
    rs_controller = manager.controllers["replicaset"]
    # Only one create per attempt: slow start stops at the first failing batch of 1.
    assert rs_controller.queue.failures(f"default/{name}") >= 1
    # No expectation leaks from the failed batches (a retry may have one create in flight).

    async def settled() -> bool:
        return rs_controller.expectations.pending(f"default/{name}") == (0, 0)

    await eventually(settled, what="no pending creations")


async def test_a_large_scale_up_goes_in_create_many_calls(client: Client, manager: ControllerManager) -> None:
    """40 replicas are created in slow-start batches 1, 2, 4, 8, 16 and 9: each batch of two or more goes in one
    CreateMany call (Client.create_all; the events may go together too: client/coalesce.py), and every pod is
    still created, owned and announced."""
    calls = REQUESTS.labels("create_many", "", "OK")
    before = calls._value.get()
    rs = await create(client, rs_yaml(name="big", replicas=40, labels="{app: big}"))
    pods = await eventually(lambda: _exactly(client, rs, 40), what="40 pods")
    assert all(owned_by(p, rs.metadata.uid) for p in pods)
    assert calls._value.get() - before >= 5

    events = await client.list_all("events", "default",
                                   field_selector="involvedObject.name=big,reason=SuccessfulCreate")
    assert events and events[0].message.startswith("Created pod: big-")
    assert manager.controllers["replicaset"].expectations.pending("default/big") == (0, 0)


async def test_a_server_without_create_many_gets_one_create_per_pod(
        client: Client, etcd: str, running: Running) -> None:
    """Against an apiserver before CreateMany, a large scale-up falls back to one Create per pod."""
    old = await start_apiserver(etcd, batch_calls=False)
    try:
        await start_manager(running, old.address)
        calls = REQUESTS.labels("create_many", "", "OK")
        before = calls._value.get()
        rs = await create(client, rs_yaml(name="old", replicas=30, labels="{app: old}"))
        await eventually(lambda: _exactly(client, rs, 30), what="30 pods")
        assert calls._value.get() == before
    finally:
        await running.stop()
        await old.stop()


async def test_min_ready_seconds_availability(client: Client, manager: ControllerManager) -> None:
    """availableReplicas counts a ready pod only after minReadySeconds, and the status catches up by itself."""
    text = rs_yaml(replicas=1).replace("  replicas: 1\n", "  replicas: 1\n  minReadySeconds: 1\n")
    rs = await create(client, text)
    pod = (await eventually(lambda: _exactly(client, rs, 1)))[0]
    pod.status.conditions.add(type="Ready", status="True")
    pod.status.conditions[-1].last_transition_time.GetCurrentTime()
    await client.update_status(pod)  # stands in for a kubelet's status report

    async def counts() -> tuple[int, int]:
        s = (await client.get("replicasets", "web", "default")).status
        return s.ready_replicas, s.available_replicas

    await eventually(lambda: _eq(counts, (1, 0)), what="ready but not yet available")
    await eventually(lambda: _eq(counts, (1, 1)), timeout=5, what="available after minReadySeconds")


async def _eq(fn, want):  # type: ignore[no-untyped-def]
    return await fn() == want
