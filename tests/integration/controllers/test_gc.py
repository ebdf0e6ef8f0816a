"""Garbage collection and namespace deletion against a real apiserver."""

from __future__ import annotations

import asyncio

from api.pb import core_pb2, meta_pb2, rbac_pb2
from client.api import Client
from controllers.manager import ControllerManager

from .conftest import create, eventually, owned_by

RS = """
apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: web, namespace: NS}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: c, image: busybox}]
"""


async def pods(client: Client, ns: str = "default") -> list[core_pb2.Pod]:
    return await client.list_all("pods", ns, label_selector="app=web")


async def count(client: Client, n: int, ns: str = "default") -> bool:
    return len(await pods(client, ns)) == n


async def test_background_deletion(client: Client, manager: ControllerManager) -> None:
    """Deleting an owner (the default, background) removes it at once and then its dependents."""
    await create(client, RS.replace("NS", "default"))
    await eventually(lambda: count(client, 3))
    await client.delete("replicasets", "web", "default")
    await eventually(lambda: count(client, 0), what="dependents collected")


async def test_orphan_deletion(client: Client, manager: ControllerManager) -> None:
    """--cascade=orphan strips the owner reference from dependents, then the owner goes; the pods stay."""
    rs = await create(client, RS.replace("NS", "default"))
    await eventually(lambda: count(client, 3))
    await client.delete("replicasets", "web", "default", propagation_policy="Orphan")

    async def rs_gone() -> bool:
        return not await client.list_all("replicasets", "default")

    await eventually(rs_gone, what="owner removed after orphaning")
    left = await pods(client)
    assert len(left) == 3 and not any(owned_by(p, rs.metadata.uid) for p in left)
    await asyncio.sleep(0.3)
    assert await count(client, 3)


async def test_foreground_deletion(client: Client, manager: ControllerManager) -> None:
    """--cascade=foreground deletes blocking dependents first; the owner waits with its finalizer until then."""
    await create(client, RS.replace("NS", "default"))
    await eventually(lambda: count(client, 3))
    owner = await client.delete("replicasets", "web", "default", propagation_policy="Foreground")
    assert "foregroundDeletion" in owner.metadata.finalizers
    seen_waiting = False

    async def owner_gone() -> bool:
        nonlocal seen_waiting
        try:
            rs = await client.get("replicasets", "web", "default")
        except Exception:
            return True
        seen_waiting = seen_waiting or rs.metadata.HasField("deletion_timestamp")
        return False

    await eventually(owner_gone, what="owner removed")
    assert await count(client, 0)
    assert seen_waiting


async def test_dangling_owner_collected(client: Client, manager: ControllerManager) -> None:
    """An object whose owner no longer exists (or was replaced: uid mismatch) is deleted."""
    cm_owner = core_pb2.Service(metadata={"name": "owner", "namespace": "default"})
    cm_owner.spec.ports.add(port=80)
    owner = await client.create(cm_owner)
    good = core_pb2.Pod(metadata={"name": "kept", "namespace": "default"})
    good.metadata.owner_references.add(api_version="v1", kind="Service", name="owner", uid=owner.metadata.uid)
    bad = core_pb2.Pod(metadata={"name": "stale", "namespace": "default"})
    bad.metadata.owner_references.add(api_version="v1", kind="Service", name="owner", uid="not-the-same-uid")
    gone = core_pb2.Pod(metadata={"name": "lost", "namespace": "default"})
    gone.metadata.owner_references.add(api_version="v1", kind="Service", name="nobody", uid="u-nobody")
    for p in (good, bad, gone):
        p.spec.containers.add(name="c", image="busybox")
        await client.create(p)

    async def collected() -> bool:
        names = {p.metadata.name for p in await client.list_all("pods", "default")}
        return names == {"kept"}

    await eventually(collected, what="dangling dependents collected")


async def test_mixed_owners_keep_object(client: Client, manager: ControllerManager) -> None:
    """An object with one live owner stays; only the reference to the gone owner is dropped."""
    svc = core_pb2.Service(metadata={"name": "owner", "namespace": "default"})
    svc.spec.ports.add(port=80)
    owner = await client.create(svc)
    pod = core_pb2.Pod(metadata={"name": "shared", "namespace": "default"})
    pod.metadata.owner_references.extend([
        meta_pb2.OwnerReference(api_version="v1", kind="Service", name="owner", uid=owner.metadata.uid),
        meta_pb2.OwnerReference(api_version="v1", kind="Service", name="gone", uid="u-gone"),
    ])
    pod.spec.containers.add(name="c", image="busybox")
    await client.create(pod)

    async def trimmed() -> bool:
        p = await client.get("pods", "shared", "default")
        return [r.uid for r in p.metadata.owner_references] == [owner.metadata.uid]

    await eventually(trimmed, what="dangling reference dropped")


async def test_namespace_deletion(client: Client, manager: ControllerManager) -> None:
    """Deleting a namespace deletes everything in it (its RoleBindings too), then the namespace itself goes."""
    await client.create(core_pb2.Namespace(metadata={"name": "team"}))
    await create(client, RS.replace("NS", "team"))
    svc = core_pb2.Service(metadata={"name": "web", "namespace": "team"})
    svc.spec.ports.add(port=80)
    svc.spec.selector["app"] = "web"
    await client.create(svc)
    await client.create(rbac_pb2.RoleBinding(
        metadata={"name": "team-view", "namespace": "team"},
        role_ref=rbac_pb2.RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole", name="view")))
    await eventually(lambda: count(client, 3, "team"))
    ns = await client.delete("namespaces", "team")
    assert ns.status.phase == "Terminating"

    async def ns_gone() -> bool:
        try:
            await client.get("namespaces", "team")
        except Exception:
            return True
        return False

    await eventually(ns_gone, timeout=20, what="namespace removed")
    for resource in ("pods", "replicasets", "services", "endpoints", "rolebindings"):
        assert not await client.list_all(resource, "team"), resource
