"""Preemption through the apiserver: victims deleted gracefully, the preemptor nominated, then bound; pods take their
priority from PriorityClasses, and a class with preemptionPolicy Never never preempts."""

from __future__ import annotations

import asyncio

from unit.scheduler.objects import node, pod

from api.pb import core_pb2, scheduling_pb2
from client.api import Client
from integration.scheduler.conftest import RunningScheduler, eventually, pending_message, wait_bound


async def priority_class(client: Client, name: str, value: int, policy: str = "PreemptLowerPriority") -> None:
    await client.create(scheduling_pb2.PriorityClass(metadata={"name": name}, value=value, preemption_policy=policy))


def classed(name: str, cls: str, *, cpu: str = "1") -> core_pb2.Pod:
    p = pod(name, cpu=cpu)
    p.spec.priority_class_name = cls
    return p


async def terminating(client: Client, name: str) -> bool:
    return (await client.get("pods", name, "default")).metadata.HasField("deletion_timestamp")


async def test_high_priority_pod_preempts_the_lowest(client: Client, scheduler: RunningScheduler) -> None:
    """A full node's lowest-priority pod is deleted with its grace period; the preemptor is nominated and bound."""
    for name, value in (("low", 1), ("mid", 5), ("vip", 100)):
        await priority_class(client, name, value)
    await client.create(node("n", cpu="2"))
    low = classed("low", "low")
    low.spec.termination_grace_period_seconds = 7
    await client.create(low)
    await client.create(classed("mid", "mid"))
    await wait_bound(client, ["low", "mid"])
    vip = await client.create(classed("vip", "vip"))
    assert vip.spec.priority == 100

    await eventually(lambda: terminating(client, "low"))
    victim = await client.get("pods", "low", "default")
    assert victim.metadata.deletion_grace_period_seconds == 7
    assert not await terminating(client, "mid")

    async def nominated() -> bool:
        return (await client.get("pods", "vip", "default")).status.nominated_node_name == "n"

    await eventually(nominated)
    # While the victim terminates, a newcomer of lower priority may not take the room held for the preemptor.
    await client.create(classed("sneaky", "low"))
    # Play the kubelet: the victim's containers stopped, remove it.
    await client.delete("pods", "low", "default", grace_period_seconds=0)
    assert (await wait_bound(client, ["vip"]))["vip"] == "n"
    sneaky = await client.get("pods", "sneaky", "default")
    assert sneaky.spec.node_name == ""
    events = await client.list_all("events", "default")
    assert any(e.reason == "Preempted" and e.involved_object.name == "low" for e in events)


async def test_never_class_does_not_preempt(client: Client, scheduler: RunningScheduler) -> None:
    """Against a full node, a pod of a preemptionPolicy Never class waits without evicting anyone or being
    nominated; a pod of a PreemptLowerPriority class of the same value then preempts the same victim."""
    await priority_class(client, "low", 1)
    await priority_class(client, "high-priority-nonpreempting", 1000000, "Never")
    await priority_class(client, "high-priority", 1000000)
    await client.create(node("n", cpu="1"))
    filler = classed("filler", "low")
    filler.spec.termination_grace_period_seconds = 5
    await client.create(filler)
    await wait_bound(client, ["filler"])

    never = await client.create(classed("never", "high-priority-nonpreempting"))
    assert (never.spec.priority, never.spec.preemption_policy) == (1000000, "Never")
    await pending_message(client, "never")
    # Give the scheduler time for several more attempts (its backoff tops out at 1 s here).
    await asyncio.sleep(3)
    assert not await terminating(client, "filler")
    never = await client.get("pods", "never", "default")
    assert never.spec.node_name == "" and never.status.nominated_node_name == ""
    assert not [e for e in await client.list_all("events", "default") if e.reason == "Preempted"]

    control = await client.create(classed("control", "high-priority"))
    assert (control.spec.priority, control.spec.preemption_policy) == (1000000, "PreemptLowerPriority")
    await eventually(lambda: terminating(client, "filler"))
    await client.delete("pods", "filler", "default", grace_period_seconds=0)
    assert (await wait_bound(client, ["control"]))["control"] == "n"
    never = await client.get("pods", "never", "default")
    assert never.spec.node_name == ""
    events = await client.list_all("events", "default")
    assert [e.involved_object.name for e in events if e.reason == "Preempted"] == ["filler"]


async def test_never_class_pod_can_be_preempted(client: Client, scheduler: RunningScheduler) -> None:
    """preemptionPolicy Never only stops a pod from preempting: it is still a victim for a higher-priority pod."""
    await priority_class(client, "high-priority-nonpreempting", 1000000, "Never")
    await priority_class(client, "critical", 1000000000)
    await client.create(node("n", cpu="1"))
    await client.create(classed("never", "high-priority-nonpreempting"))
    await wait_bound(client, ["never"])
    await client.create(classed("urgent", "critical"))
    await eventually(lambda: terminating(client, "never"))
    await client.delete("pods", "never", "default", grace_period_seconds=0)
    assert (await wait_bound(client, ["urgent"]))["urgent"] == "n"
