"""The scheduling side of the CLI as a new user drives it: apply hollow nodes, cordon/taint/label, explain."""

from __future__ import annotations

import textwrap

from conftest import RunningApiserver
from unit.scheduler.objects import node, pod

from client.api import Client
from integration.scheduler.conftest import RunningScheduler, cli, pending_message, wait_bound

NODE_YAML = textwrap.dedent("""\
    apiVersion: v1
    kind: Node
    metadata:
      name: hollow-1
      labels:
        disk: ssd
    status:
      capacity: {cpu: "4", memory: 8Gi, pods: "110"}
      allocatable: {cpu: 3500m, memory: 7Gi, pods: "100"}
      conditions:
      - type: Ready
        status: "True"
        reason: KubeletReady
    """)


async def test_apply_registers_a_hollow_node_with_its_status(client: Client, apiserver: RunningApiserver,
                                                             scheduler: RunningScheduler) -> None:
    """`kubelite apply` of a Node carrying status creates it with that status, and pods are scheduled onto it."""
    res = await cli(apiserver.address, "apply", "-f", "-", stdin=NODE_YAML)
    assert res.code == 0, res.stderr
    n = await client.get("nodes", "hollow-1")
    assert dict(n.status.allocatable) == {"cpu": "3500m", "memory": "7Gi", "pods": "100"}
    assert dict(n.status.capacity) == {"cpu": "4", "memory": "8Gi", "pods": "110"}
    assert [(c.type, c.status) for c in n.status.conditions] == [("Ready", "True")]
    await client.create(pod("fits", cpu="3500m"))
    await client.create(pod("too-big", cpu="3600m"))
    assert await wait_bound(client, ["fits"]) == {"fits": "hollow-1"}
    await pending_message(client, "too-big", expect="0/1 nodes are available: 1 Insufficient cpu.")


async def test_cordon_taint_and_label_verbs_steer_the_scheduler(client: Client, apiserver: RunningApiserver,
                                                                scheduler: RunningScheduler) -> None:
    """cordon, taint and label change nodes so that new pods go only where they are allowed."""
    for name in ("n1", "n2", "n3"):
        await client.create(node(name))
    srv = apiserver.address
    assert (await cli(srv, "cordon", "n1")).stdout.strip() == "node/n1 cordoned"
    assert (await cli(srv, "cordon", "n1")).stdout.strip() == "node/n1 already cordoned"
    assert (await cli(srv, "taint", "node", "n2", "dedicated=db:NoSchedule")).stdout.strip() == "node/n2 tainted"
    assert (await cli(srv, "label", "node", "n3", "disk=ssd")).stdout.strip() == "node/n3 labeled"
    assert (await client.get("nodes", "n1")).spec.unschedulable
    assert [(t.key, t.value, t.effect) for t in (await client.get("nodes", "n2")).spec.taints] == \
        [("dedicated", "db", "NoSchedule")]
    for i in range(4):
        await client.create(pod(f"p{i}"))
    await client.create(pod("ssd", node_selector={"disk": "ssd"}))
    placed = await wait_bound(client, [f"p{i}" for i in range(4)] + ["ssd"])
    assert set(placed.values()) == {"n3"}
    bad = await cli(srv, "taint", "node", "n2", "dedicated=db")
    assert bad.code != 0 and "an effect is required" in bad.stderr
    assert (await cli(srv, "taint", "node", "n2", "dedicated:NoSchedule-")).stdout.strip() == "node/n2 untainted"
    assert (await cli(srv, "uncordon", "n1")).stdout.strip() == "node/n1 uncordoned"
    assert not (await client.get("nodes", "n2")).spec.taints


async def test_explain_shows_why_a_pod_is_pending(client: Client, apiserver: RunningApiserver,
                                                  scheduler: RunningScheduler) -> None:
    """explain prints every node's filter verdicts with reasons for a pending pod."""
    await client.create(node("small", cpu="1"))
    await client.create(node("fenced", cpu="8", taints=[("k", "v", "NoSchedule")]))
    await client.create(pod("big", cpu="2"))
    await pending_message(client, "big")
    res = await cli(apiserver.address, "explain", "pod", "big")
    assert res.code == 0, res.stderr
    out = res.stdout
    assert "Pod default/big: priority 0, requests cpu=2" in out
    assert "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint {k: v}." in out
    assert "node small: rejected" in out and "node fenced: rejected" in out
    small = out.split("node small:")[1].split("node fenced:")[0] if out.index("node small:") < \
        out.index("node fenced:") else out.split("node small:")[1]
    assert "NodeResourcesFit" in small and "Unschedulable: Insufficient cpu" in small
    assert "TaintToleration" in out and "UnschedulableAndUnresolvable: node(s) had untolerated taint {k: v}" in out


async def test_explain_a_bound_pod_excludes_itself(client: Client, apiserver: RunningApiserver,
                                                   scheduler: RunningScheduler) -> None:
    """For a bound pod, explain evaluates it as if not yet placed: its own requests do not count against it."""
    await client.create(node("only", cpu="1"))
    await client.create(pod("full", cpu="1"))
    await wait_bound(client, ["full"])
    res = await cli(apiserver.address, "explain", "pod", "full", "-n", "default")
    assert res.code == 0, res.stderr
    assert "Bound to only; evaluated as if it were not placed yet" in res.stdout
    assert "node only: feasible, score" in res.stdout
    assert "score  NodeResourcesFit" in res.stdout and "total" in res.stdout
    missing = await cli(apiserver.address, "explain", "pod", "nope")
    assert missing.code == 1 and missing.stderr.strip() == 'error: pod "nope" not found in namespace "default"'


async def test_taint_key_dash_removes_every_effect(client: Client, apiserver: RunningApiserver) -> None:
    """`taint node n1 dedicated-` removes the key with every effect and leaves other keys."""
    await client.create(node("n1", taints=[("dedicated", "x", "NoSchedule"), ("dedicated", "x", "NoExecute"),
                                           ("other", "y", "NoSchedule")]))
    res = await cli(apiserver.address, "taint", "node", "n1", "dedicated-")
    assert res.code == 0 and res.stdout.strip() == "node/n1 untainted", res.stderr
    assert [(t.key, t.effect) for t in (await client.get("nodes", "n1")).spec.taints] == [("other", "NoSchedule")]
    again = await cli(apiserver.address, "taint", "node", "n1", "dedicated-")
    assert again.code == 1 and again.stderr.strip() == "error: taint 'dedicated' not found", again.stderr
