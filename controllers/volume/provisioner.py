"""The local-path provisioner: a PersistentVolume on the node the scheduler chose for a claim's first pod.

A claim of a `kubelite.io/local-path` class, handed over by the PV controller
(the `storage-provisioner` annotation) and placed by the scheduler (the
`selected-node` annotation), gets a hostPath volume in a directory under that
node's local-path root (the node's `kubelite.io/local-path-dir` annotation),
pinned to the node by node affinity and pre-bound to the claim; the PV
controller then binds them. The directory itself is made and removed by the
node's kubelet, the only one that may touch its disk (kubelet/localpath.py);
the volume keeps the `kubelite.io/local-path` finalizer until its directory
is gone. A node without room for the claim (its `kubelite.io/local-path`
capacity less what its volumes hold) gets the claim back: the selected-node
annotation is removed so that the scheduler chooses again.
"""

from __future__ import annotations

from api import quantity, volumes
from api.errors import AlreadyExistsError, NotFoundError
from api.pb import core_pb2
from client.api import Client
from client.retry import cached_first, retry_on_conflict
from controllers.base import QueueController
from controllers.events import Recorder
from controllers.informers import SharedInformers
from controllers.volume import plan


class LocalPathProvisioner(QueueController):
    name = "local-path-provisioner"

    def __init__(self, client: Client, informers: SharedInformers) -> None:
        super().__init__()
        self.client = client
        self.recorder = Recorder(client, self.name)
        self.claims = informers.get("persistentvolumeclaims")
        self.volumes = informers.get("persistentvolumes")
        self.classes = informers.get("storageclasses")
        self.nodes = informers.get("nodes")
        self.claims.add_handlers(self.enqueue, lambda old, new: self.enqueue(new))

    async def ready(self) -> None:
        for informer in (self.claims, self.volumes, self.classes, self.nodes):
            await informer.synced.wait()

    async def reconcile(self, key: str) -> None:
        pvc: core_pb2.PersistentVolumeClaim | None = self.claims.get(key)
        if pvc is None or pvc.spec.volume_name or pvc.metadata.HasField("deletion_timestamp"):
            return
        ann = pvc.metadata.annotations
        node_name = ann.get(volumes.SELECTED_NODE, "")
        if ann.get(volumes.STORAGE_PROVISIONER) != plan.LOCAL_PATH or not node_name:
            return
        sc = self.classes.get(volumes.claim_class(pvc))
        if sc is None or sc.provisioner != plan.LOCAL_PATH:
            return
        name = f"pvc-{pvc.metadata.uid}"
        if self.volumes.get(name) is not None:
            return  # made already; the PV controller binds it
        node: core_pb2.Node | None = self.nodes.get(node_name)
        root = node.metadata.annotations.get(volumes.LOCAL_PATH_DIR, "") if node is not None else ""
        if not root:
            self.recorder.warning(pvc, "ProvisioningFailed", f"node {node_name!r} does not report a local-path "
                                  f"directory (annotation {volumes.LOCAL_PATH_DIR})")
            await self._reschedule(pvc)
            return
        capacity = node.status.allocatable.get(volumes.LOCAL_PATH_CAPACITY, "")  # type: ignore[union-attr]
        if capacity and quantity.is_valid(capacity):
            free = quantity.value(capacity) - plan.local_path_used(self.volumes.list(), node_name)
            if volumes.claim_request(pvc) > free:
                self.recorder.warning(pvc, "ProvisioningFailed", f"node {node_name!r} has "
                                      f"{quantity.format_bytes(max(free, 0))} of local-path storage left; the claim "
                                      f"asks for {pvc.spec.resources.requests.get('storage')}")
                await self._reschedule(pvc)
                return
        pv = plan.plan_provisioned_volume(pvc, sc, node_name, root)
        try:
            await self.client.create(pv)
        except AlreadyExistsError:
            return
        self.log.info("volume_provisioned", claim=key, volume=name, node=node_name, path=pv.spec.host_path.path)
        self.recorder.normal(pvc, "ProvisioningSucceeded", f"Successfully provisioned volume {name} on node "
                             f"{node_name}")

    async def _reschedule(self, pvc: core_pb2.PersistentVolumeClaim) -> None:
        """Give the node choice back to the scheduler (Kubernetes' provisioner does the same on a final failure)."""

        def drop(c: core_pb2.PersistentVolumeClaim) -> core_pb2.PersistentVolumeClaim | None:
            if volumes.SELECTED_NODE not in c.metadata.annotations:
                return None
            new = core_pb2.PersistentVolumeClaim()
            new.CopyFrom(c)
            del new.metadata.annotations[volumes.SELECTED_NODE]
            return new

        meta = pvc.metadata
        try:
            await retry_on_conflict(cached_first(pvc, lambda: self.client.get("persistentvolumeclaims", meta.name,
                                                                              meta.namespace)),
                                    drop, self.client.update, what=f"claim {meta.name}")
        except NotFoundError:
            return
