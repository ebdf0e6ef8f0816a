"""Preemption through the apiserver: victims deleted gracefully, the preemptor nominated, then bound."""

from __future__ import annotations

from unit.scheduler.objects import node, pod

from client.api import Client
from integration.scheduler.conftest import RunningScheduler, eventually, wait_bound


async def test_high_priority_pod_preempts_the_lowest(client: Client, scheduler: RunningScheduler) -> None:
    """A full node's lowest-priority pod is deleted with its grace period; the preemptor is nominated and bound."""
    await client.create(node("n", cpu="2"))
    low = pod("low", cpu="1", priority=1)
    low.spec.termination_grace_period_seconds = 7
    await client.create(low)
    await client.create(pod("mid", cpu="1", priority=5))
    await wait_bound(client, ["low", "mid"])
    await client.create(pod("vip", cpu="1", priority=100))

    async def victim_terminating() -> bool:
        p = await client.get("pods", "low", "default")
        return p.metadata.HasField("deletion_timestamp")

    await eventually(victim_terminating)
    victim = await client.get("pods", "low", "default")
    assert victim.metadata.deletion_grace_period_seconds == 7
    assert not (await client.get("pods", "mid", "default")).metadata.HasField("deletion_timestamp")

    async def nominated() -> bool:
        return (await client.get("pods", "vip", "default")).status.nominated_node_name == "n"

    await eventually(nominated)
    # While the victim terminates, a newcomer of lower priority may not take the room held for the preemptor.
    await client.create(pod("sneaky", cpu="1", priority=1))
    # Play the kubelet: the victim's containers stopped, remove it.
    await client.delete("pods", "low", "default", grace_period_seconds=0)
    assert (await wait_bound(client, ["vip"]))["vip"] == "n"
    sneaky = await client.get("pods", "sneaky", "default")
    assert sneaky.spec.node_name == ""
    events = await client.list_all("events", "default")
    assert any(e.reason == "Preempted" and e.involved_object.name == "low" for e in events)
