"""The scheduler against a real apiserver: binding, constraints honoured, pending messages, events."""

from __future__ import annotations

import asyncio

from unit.scheduler.objects import node, pod

from client.api import Client
from integration.scheduler.conftest import RunningScheduler, eventually, pending_message, wait_bound


async def test_binds_pod_and_records_scheduled_event(client: Client, scheduler: RunningScheduler) -> None:
    """A pending pod is bound to the only node, gets PodScheduled=True and a Scheduled event."""
    await client.create(node("n1"))
    await client.create(pod("p", cpu="100m"))
    assert await wait_bound(client, ["p"]) == {"p": "n1"}
    p = await client.get("pods", "p", "default")
    assert any(c.type == "PodScheduled" and c.status == "True" for c in p.status.conditions)

    async def has_event() -> bool:
        evs = await client.list_all("events", "default")
        return any(e.reason == "Scheduled" and e.message == "Successfully assigned default/p to n1" for e in evs)

    await eventually(has_event)


async def test_node_selector_taints_and_cordon_are_honoured(client: Client, scheduler: RunningScheduler) -> None:
    """Each pod lands only on the node its selector, tolerations and the cordon allow."""
    await client.create(node("plain"))
    await client.create(node("ssd", labels={"disk": "ssd"}))
    await client.create(node("tainted", taints=[("dedicated", "db", "NoSchedule")]))
    await client.create(node("cordoned", unschedulable=True, labels={"disk": "ssd"}))
    await client.create(pod("wants-ssd", node_selector={"disk": "ssd"}))
    await client.create(pod("tolerates", node_selector={"kubernetes.io/hostname": "tainted"},
                            tolerations=[{"key": "dedicated", "operator": "Equal", "value": "db",
                                          "effect": "NoSchedule"}]))
    placed = await wait_bound(client, ["wants-ssd", "tolerates"])
    assert placed == {"wants-ssd": "ssd", "tolerates": "tainted"}


async def test_pending_message_counts_reasons(client: Client, scheduler: RunningScheduler) -> None:
    """A pod that fits nowhere gets Kubernetes' message counting each node's reason, and a FailedScheduling event."""
    for i in range(3):
        await client.create(node(f"small{i}", cpu="1", labels={"zone": "a"}))
    for i in range(2):
        await client.create(node(f"other{i}", cpu="8", labels={"zone": "b"}))
    await client.create(pod("big", cpu="2", node_selector={"zone": "a"}))
    expected = "0/5 nodes are available: 3 Insufficient cpu, 2 node(s) didn't match Pod's node affinity/selector."
    await pending_message(client, "big", expect=expected)

    async def has_event() -> bool:
        evs = await client.list_all("events", "default")
        return any(e.reason == "FailedScheduling" and e.message == expected and e.type == "Warning" for e in evs)

    await eventually(has_event)


async def test_pending_pod_is_scheduled_when_a_node_arrives(client: Client, scheduler: RunningScheduler) -> None:
    """An unschedulable pod is retried and bound once a node that fits is added, keeping the rest of its status."""
    await client.create(node("tiny", cpu="500m"))
    await client.create(pod("waits", cpu="1"))
    await pending_message(client, "waits", expect="0/1 nodes are available: 1 Insufficient cpu.")
    await client.create(node("roomy", cpu="2"))
    assert await wait_bound(client, ["waits"]) == {"waits": "roomy"}


async def test_host_ports_and_anti_affinity_keep_pods_apart(client: Client, scheduler: RunningScheduler) -> None:
    """Two pods wanting host port 80 land on different nodes; a third waits with the port reason."""
    default = await client.get("namespaces", "default")
    default.metadata.labels["pod-security.kubernetes.io/enforce"] = "privileged"  # host ports are beyond baseline
    await client.update(default)
    await client.create(node("a"))
    await client.create(node("b"))
    for i in range(3):
        await client.create(pod(f"web{i}", host_ports=[80]))
    await eventually(lambda: _count_bound(client, 2))
    pending = [n for n, where in (await _bound(client)).items() if not where]
    assert len(pending) == 1
    placed = {where for where in (await _bound(client)).values() if where}
    assert placed == {"a", "b"}
    await pending_message(client, pending[0], expect="0/2 nodes are available: 2 node(s) didn't have free ports "
                                                     "for the requested pod ports.")


async def test_required_anti_affinity_on_hostname(client: Client, scheduler: RunningScheduler) -> None:
    """Replicas refusing each other per hostname take one node each; the extra one is pending with the reason."""
    for n in ("a", "b"):
        await client.create(node(n))
    for i in range(3):
        p = pod(f"r{i}", labels={"app": "db"})
        t = p.spec.affinity.pod_anti_affinity.required_during_scheduling_ignored_during_execution.add(
            topology_key="kubernetes.io/hostname")
        t.label_selector.match_labels["app"] = "db"
        await client.create(p)
    await eventually(lambda: _count_bound(client, 2))
    bound = await _bound(client)
    assert sorted(w for w in bound.values() if w) == ["a", "b"]
    pending = next(n for n, w in bound.items() if not w)
    await pending_message(client, pending,
                          expect="0/2 nodes are available: 2 node(s) didn't match pod anti-affinity rules.")


async def test_init_containers_count_by_their_peak(client: Client, scheduler: RunningScheduler) -> None:
    """A pod whose init container needs more cpu than any node has stays pending, whatever its containers need."""
    await client.create(node("n", cpu="2"))
    await client.create(pod("init-heavy", cpu="100m", init=[("3", "")]))
    await pending_message(client, "init-heavy", expect="0/1 nodes are available: 1 Insufficient cpu.")


async def test_pending_status_keeps_the_rest_of_the_status(client: Client, scheduler: RunningScheduler) -> None:
    """Writing PodScheduled=False leaves other conditions and fields of the status as they were."""
    await client.create(pod("keeps", cpu="1"))
    await pending_message(client, "keeps", expect="0/0 nodes are available.")
    p = await client.get("pods", "keeps", "default")
    p.status.conditions.add(type="example.com/Checked", status="True", reason="Audit")
    await client.update_status(p)
    await client.create(node("tiny", cpu="100m"))
    await pending_message(client, "keeps", expect="0/1 nodes are available: 1 Insufficient cpu.")
    p = await client.get("pods", "keeps", "default")
    assert {c.type for c in p.status.conditions} == {"PodScheduled", "example.com/Checked"}
    assert p.status.phase == "Pending"


async def test_uncordon_and_taint_removal_release_pending_pods(client: Client, scheduler: RunningScheduler) -> None:
    """A pod blocked by a cordon, then by a taint, is bound once both are lifted (no restart, no hot loop)."""
    await client.create(node("only", unschedulable=True, taints=[("k", "v", "NoSchedule")]))
    await client.create(pod("blocked"))
    await pending_message(client, "blocked", expect="0/1 nodes are available: 1 node(s) were unschedulable.")
    n = await client.get("nodes", "only")
    n.spec.unschedulable = False
    await client.update(n)
    await pending_message(client, "blocked",
                          expect="0/1 nodes are available: 1 node(s) had untolerated taint {k: v}.")
    n = await client.get("nodes", "only")
    del n.spec.taints[:]
    await client.update(n)
    assert await wait_bound(client, ["blocked"]) == {"blocked": "only"}
    attempts = scheduler.term.counters.attempts
    assert attempts <= 6, f"{attempts} attempts: retried in a loop"


async def test_deleted_pod_frees_room_for_a_pending_one(client: Client, scheduler: RunningScheduler) -> None:
    """When a bound pod is deleted, a pod waiting for its resources is bound."""
    await client.create(node("n", cpu="1"))
    await client.create(pod("first", cpu="1"))
    await wait_bound(client, ["first"])
    await client.create(pod("second", cpu="1"))
    await pending_message(client, "second", expect="0/1 nodes are available: 1 Insufficient cpu.")
    await client.delete("pods", "first", "default", grace_period_seconds=0)
    assert await wait_bound(client, ["second"]) == {"second": "n"}


async def test_pods_of_other_schedulers_are_left_alone(client: Client, scheduler: RunningScheduler) -> None:
    """A pod naming another schedulerName is not bound by this one."""
    await client.create(node("n"))
    other = pod("other")
    other.spec.scheduler_name = "my-scheduler"
    await client.create(other)
    await client.create(pod("mine"))
    await wait_bound(client, ["mine"])
    await asyncio.sleep(0.3)
    assert (await client.get("pods", "other", "default")).spec.node_name == ""


async def _bound(client: Client) -> dict[str, str]:
    return {p.metadata.name: p.spec.node_name for p in await client.list_all("pods", "default")}


async def _count_bound(client: Client, n: int) -> bool:
    return sum(1 for w in (await _bound(client)).values() if w) >= n


async def test_affinity_term_that_cannot_compile_matches_no_node(client: Client, scheduler: RunningScheduler) -> None:
    """A required `NotIn ["invalid value: ___@#$%^"]` term is accepted by the API but matches no node, as in
    Kubernetes: the pod stays pending with the affinity reason, while a pod with a valid term is bound."""
    for i in range(2):
        await client.create(node(f"n{i}", labels={"zone": "a"}))
    bad, good = pod("bad"), pod("good")
    for p, values in ((bad, ["invalid value: ___@#$%^"]), (good, ["b"])):
        term = p.spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution \
            .node_selector_terms.add()
        term.match_expressions.add(key="zone", operator="NotIn", values=values)
        await client.create(p)
    assert (await wait_bound(client, ["good"]))["good"] in ("n0", "n1")
    await pending_message(client, "bad",
                          expect="0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector.")
    assert not (await client.get("pods", "bad", "default")).spec.node_name
