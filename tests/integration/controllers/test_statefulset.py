"""The StatefulSet controller against a real apiserver, scheduler and hollow kubelets: ordinal names and
hostnames, ordered start and stop, Parallel, rolling updates with a partition, and no second pod of one ordinal
while the first is on a lost node."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from api.pb import apps_pb2, core_pb2
from client.api import Client
from kubelet.hollow import HollowCluster

from .conftest import (
    Running,
    change,
    create,
    eventually,
    is_ready,
    owned_by,
    start_hollow,
    start_manager,
    start_scheduler,
)


@pytest.fixture
async def nodes(apiserver: Any, running: Running) -> HollowCluster:
    await start_manager(running, apiserver.address)
    await start_scheduler(running, apiserver.address)
    return await start_hollow(running, apiserver.address, 3)


def sts_yaml(replicas: int = 3, *, policy: str = "OrderedReady", image: str = "nginx:1", extra: str = "") -> str:
    return f"""
apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: web, namespace: default}}
spec:
  serviceName: nginx
  replicas: {replicas}
  podManagementPolicy: {policy}
  selector: {{matchLabels: {{app: nginx}}}}{extra}
  template:
    metadata: {{labels: {{app: nginx}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers: [{{name: nginx, image: "{image}"}}]
"""


async def set_pods(client: Client, sts: apps_pb2.StatefulSet) -> dict[str, core_pb2.Pod]:
    return {p.metadata.name: p for p in await client.list_all("pods", "default") if owned_by(p, sts.metadata.uid)}


async def ready_names(client: Client, sts: apps_pb2.StatefulSet) -> list[str]:
    return sorted(n for n, p in (await set_pods(client, sts)).items()
                  if is_ready(p) and not p.metadata.HasField("deletion_timestamp"))


async def _is(coro: Any, want: Any) -> bool:
    return await coro == want


def _ready_at(pod: core_pb2.Pod) -> float:
    c = next(c for c in pod.status.conditions if c.type == "Ready")
    return c.last_transition_time.ToNanoseconds() / 1e9


async def test_ordered_start_names_and_status(client: Client, nodes: HollowCluster) -> None:
    """web-0, web-1, web-2 start in order, each only after the one before is Ready; each pod's hostname is its name
    in the nginx subdomain, labelled with its name and index; the status counts them."""
    sts = await create(client, sts_yaml())
    await eventually(lambda: _is(ready_names(client, sts), ["web-0", "web-1", "web-2"]), timeout=30,
                     what="3 ready pods")
    pods = await set_pods(client, sts)
    for i in range(3):
        p = pods[f"web-{i}"]
        assert (p.spec.hostname, p.spec.subdomain) == (f"web-{i}", "nginx")
        assert p.metadata.labels["statefulset.kubernetes.io/pod-name"] == f"web-{i}"
        assert p.metadata.labels["apps.kubernetes.io/pod-index"] == str(i)
    for lower, higher in ((0, 1), (1, 2)):
        created = pods[f"web-{higher}"].metadata.creation_timestamp.ToNanoseconds() / 1e9
        assert created >= _ready_at(pods[f"web-{lower}"]) - 0.01

    async def status_ok() -> bool:
        s = (await client.get("statefulsets", "web", "default")).status
        return (s.replicas, s.ready_replicas, s.current_replicas, s.updated_replicas) == (3, 3, 3, 3) and \
            s.current_revision == s.update_revision != ""

    await eventually(status_ok, what="status")


async def test_scale_down_from_the_highest_ordinal(client: Client, nodes: HollowCluster) -> None:
    """Scaled from 3 to 1, web-2 goes before web-1, and web-0 stays."""
    sts = await create(client, sts_yaml())
    await eventually(lambda: _is(ready_names(client, sts), ["web-0", "web-1", "web-2"]), timeout=30, what="3 pods")
    listed = await client.list("pods", "default")
    seen: list[str] = []

    async def watch() -> None:  # a watch sees every transition; polling can miss a pod that goes quickly
        async for ev in client.watch("pods", "default", resource_version=listed.resource_version):
            p = ev.object
            if ev.type == "BOOKMARK" or not owned_by(p, sts.metadata.uid):
                continue
            leaving = ev.type == "DELETED" or p.metadata.HasField("deletion_timestamp")
            if leaving and p.metadata.name not in seen:
                seen.append(p.metadata.name)

    watcher = asyncio.create_task(watch())
    await client.scale("statefulsets", "web", 1, "default")
    await eventually(lambda: _is(_names(client, sts), ["web-0"]), timeout=30, what="only web-0")

    async def both_seen() -> bool:
        return len(seen) >= 2

    await eventually(both_seen, timeout=5, what="both deletions seen")
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher
    assert seen == ["web-2", "web-1"]


async def _names(client: Client, sts: apps_pb2.StatefulSet) -> list[str]:
    return sorted(await set_pods(client, sts))


async def test_parallel_creates_at_once(client: Client, nodes: HollowCluster) -> None:
    """Pods that can never become Ready (no node fits them): Parallel creates all four at once, OrderedReady stops at
    web-0."""
    never = "\n      nodeSelector: {nowhere: 'true'}"
    text = sts_yaml(4, policy="Parallel").replace("terminationGracePeriodSeconds: 1",
                                                  "terminationGracePeriodSeconds: 1" + never)
    sts = await create(client, text)
    await eventually(lambda: _is(_names(client, sts), ["web-0", "web-1", "web-2", "web-3"]), timeout=30,
                     what="4 pending pods")
    await client.delete("statefulsets", "web", "default")
    await eventually(lambda: _gone(client), timeout=30, what="set and pods gone")
    sts = await create(client, text.replace("Parallel", "OrderedReady"))
    await eventually(lambda: _is(_names(client, sts), ["web-0"]), timeout=30, what="web-0")
    await asyncio.sleep(1.0)
    assert await _names(client, sts) == ["web-0"]


async def _gone(client: Client) -> bool:
    return not await client.list_all("statefulsets", "default") and not await client.list_all("pods", "default")


async def test_rolling_update_with_partition(client: Client, nodes: HollowCluster) -> None:
    """partition 1: a new image reaches web-2 then web-1 (highest first) and never web-0; lowering the partition
    to 0 updates web-0 too and the rollout completes (currentRevision becomes the update revision)."""
    sts = await create(client, sts_yaml(extra="\n  updateStrategy: {type: RollingUpdate, rollingUpdate: "
                                                "{partition: 1}}"))
    await eventually(lambda: _is(ready_names(client, sts), ["web-0", "web-1", "web-2"]), timeout=30, what="3 pods")
    await change(client, "statefulsets", "web", lambda s: setattr(s.spec.template.spec.containers[0], "image",
                                                                  "nginx:2"))

    async def images() -> dict[str, str]:
        return {n: p.spec.containers[0].image for n, p in (await set_pods(client, sts)).items()
                if is_ready(p) and not p.metadata.HasField("deletion_timestamp")}

    await eventually(lambda: _is(images(), {"web-0": "nginx:1", "web-1": "nginx:2", "web-2": "nginx:2"}),
                     timeout=30, what="web-1 and web-2 updated")
    pods = await set_pods(client, sts)
    assert pods["web-2"].metadata.creation_timestamp.ToNanoseconds() < \
        pods["web-1"].metadata.creation_timestamp.ToNanoseconds()

    async def partly_updated() -> bool:
        # The status is written after the pods change: read it until the controller has caught up.
        st = (await client.get("statefulsets", "web", "default")).status
        return st.current_revision != st.update_revision and st.updated_replicas == 2

    await eventually(partly_updated, timeout=30, what="status: 2 updated, currentRevision kept")
    await change(client, "statefulsets", "web", lambda s: setattr(s.spec.update_strategy.rolling_update,
                                                                  "partition", 0))
    await eventually(lambda: _is(images(), {"web-0": "nginx:2", "web-1": "nginx:2", "web-2": "nginx:2"}),
                     timeout=30, what="all updated")

    async def complete() -> bool:
        st = (await client.get("statefulsets", "web", "default")).status
        return st.current_revision == st.update_revision and st.current_replicas == 3

    await eventually(complete, what="currentRevision updated")


async def test_pod_on_a_lost_node_is_not_replaced_until_the_node_is_deleted(client: Client,
                                                                             nodes: HollowCluster) -> None:
    """The node of web-1 stops: web-1 is marked for deletion but no second web-1 appears while the node may still
    run it; deleting the Node confirms it gone, and web-1 is made again elsewhere."""
    sts = await create(client, sts_yaml())
    await eventually(lambda: _is(ready_names(client, sts), ["web-0", "web-1", "web-2"]), timeout=30, what="3 pods")
    first = (await set_pods(client, sts))["web-1"]
    node = first.spec.node_name
    nodes.stop_node(node)

    async def marked() -> bool:
        p = (await set_pods(client, sts)).get("web-1")
        return p is not None and p.metadata.HasField("deletion_timestamp")

    await eventually(marked, timeout=30, what="web-1 evicted from the lost node")
    for _ in range(30):
        p = (await set_pods(client, sts)).get("web-1")
        assert p is not None and p.metadata.uid == first.metadata.uid, "a second web-1 while the first may run"
        await asyncio.sleep(0.1)
    await client.delete("nodes", node)

    async def replaced() -> bool:
        p = (await set_pods(client, sts)).get("web-1")
        return p is not None and p.metadata.uid != first.metadata.uid and is_ready(p) and p.spec.node_name != node

    await eventually(replaced, timeout=60, what="web-1 made again on another node")


async def static_volumes(client: Client, count: int = 6) -> None:
    """hostPath volumes with no class for the claims to bind to (hollow nodes provision nothing)."""
    for i in range(count):
        await create(client, f"""
apiVersion: v1
kind: PersistentVolume
metadata: {{name: pv-{i}}}
spec:
  capacity: {{storage: 1Gi}}
  accessModes: [ReadWriteOnce]
  hostPath: {{path: /tmp/kubelite-test-pv-{i}}}
""")

CLAIMS = """
  volumeClaimTemplates:
  - metadata: {name: www}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 1Gi}}"""


async def claims(client: Client) -> dict[str, Any]:
    return {c.metadata.name: c for c in await client.list_all("persistentvolumeclaims", "default")}


async def test_claims_per_ordinal_survive_pod_deletion_and_scale_down(client: Client, nodes: HollowCluster) -> None:
    """volumeClaimTemplates: one claim www-web-<ordinal> per pod, mounted as `www`; a deleted pod comes back with
    the same claim, and a scale down and up again keeps and reuses the claims (retention policy Retain)."""
    await static_volumes(client)
    sts = await create(client, sts_yaml(extra=CLAIMS).replace(
        "      containers: [{name: nginx, image: \"nginx:1\"}]",
        "      containers: [{name: nginx, image: \"nginx:1\", volumeMounts: [{name: www, "
        "mountPath: /usr/share/nginx/html}]}]"))
    await eventually(lambda: _is(ready_names(client, sts), ["web-0", "web-1", "web-2"]), timeout=60, what="3 pods")
    first = await claims(client)
    assert sorted(first) == ["www-web-0", "www-web-1", "www-web-2"]
    assert all(c.metadata.labels["app"] == "nginx" and not c.metadata.owner_references for c in first.values())
    pod = (await set_pods(client, sts))["web-1"]
    vol = next(v for v in pod.spec.volumes if v.name == "www")
    assert vol.persistent_volume_claim.claim_name == "www-web-1"
    await client.delete("pods", "web-1", "default")
    await eventually(lambda: _new_ready(client, sts, "web-1", pod.metadata.uid), timeout=60, what="web-1 again")
    await client.scale("statefulsets", "web", 1, "default")
    await eventually(lambda: _is(_names(client, sts), ["web-0"]), timeout=60, what="scaled to 1")
    assert {n: c.metadata.uid for n, c in (await claims(client)).items()} == \
        {n: c.metadata.uid for n, c in first.items()}
    await client.scale("statefulsets", "web", 3, "default")
    await eventually(lambda: _is(ready_names(client, sts), ["web-0", "web-1", "web-2"]), timeout=60, what="3 again")
    assert {n: c.metadata.uid for n, c in (await claims(client)).items()} == \
        {n: c.metadata.uid for n, c in first.items()}


async def _new_ready(client: Client, sts: apps_pb2.StatefulSet, name: str, old_uid: str) -> bool:
    p = (await set_pods(client, sts)).get(name)
    return p is not None and p.metadata.uid != old_uid and is_ready(p)


async def test_retention_policy_delete(client: Client, nodes: HollowCluster) -> None:
    """whenScaled: Delete removes the claims of pods scaled away; whenDeleted: Delete removes the rest with the set."""
    await static_volumes(client)
    policy = "\n  persistentVolumeClaimRetentionPolicy: {whenDeleted: Delete, whenScaled: Delete}"
    sts = await create(client, sts_yaml(extra=CLAIMS + policy))
    await eventually(lambda: _is(ready_names(client, sts), ["web-0", "web-1", "web-2"]), timeout=60, what="3 pods")
    await eventually(lambda: _owned_claims(client, sts.metadata.uid, 3), timeout=30, what="claims owned by the set")
    await client.scale("statefulsets", "web", 1, "default")
    await eventually(lambda: _claim_names(client, ["www-web-0"]), timeout=60, what="scaled-away claims deleted")
    await client.delete("statefulsets", "web", "default")
    await eventually(lambda: _claim_names(client, []), timeout=60, what="claims deleted with the set")


async def _owned_claims(client: Client, uid: str, n: int) -> bool:
    owned = [c for c in (await claims(client)).values() if any(r.uid == uid for r in c.metadata.owner_references)]
    return len(owned) == n


async def _claim_names(client: Client, want: list[str]) -> bool:
    return sorted(await claims(client)) == want
