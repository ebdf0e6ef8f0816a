"""Pod garbage collection: pods bound to a Node that no longer exists are force-deleted (Kubernetes' PodGC).

No kubelet will ever finish them (a pod on a node is deleted gracefully and
waits for its kubelet), so once the Node object is gone they are removed
with grace period 0. Keys are node names. A node seen missing only because
a pod names it is checked after a quarantine, since a node may register a
moment after pods were bound to it; a live lookup confirms absence first.
"""

from __future__ import annotations

from api.errors import ConflictError, NotFoundError
from api.pb import core_pb2
from client.api import Client
from controllers.base import QueueController, gather_limited
from controllers.informers import NODE, SharedInformers

QUARANTINE_SECONDS = 20.0


class PodGarbageCollector(QueueController):
    name = "pod-garbage-collector"

    def __init__(self, client: Client, informers: SharedInformers, *, quarantine: float = QUARANTINE_SECONDS) -> None:
        super().__init__()
        self.client = client
        self.quarantine = quarantine
        self.nodes = informers.get("nodes")
        self.pods = informers.get("pods")
        self.nodes.add_handlers(on_delete=lambda n: self.enqueue_key(n.metadata.name))
        self.pods.add_handlers(self._pod_seen, lambda old, new: self._pod_seen(new) if
                               old.spec.node_name != new.spec.node_name else None)

    async def ready(self) -> None:
        await self.nodes.synced.wait()
        await self.pods.synced.wait()

    def _pod_seen(self, pod: core_pb2.Pod) -> None:
        node = pod.spec.node_name
        if node and self.nodes.synced.is_set() and self.nodes.get(node) is None:
            self.enqueue_after(node, self.quarantine)

    async def reconcile(self, key: str) -> None:
        if self.nodes.get(key) is not None:
            return
        try:
            await self.client.get("nodes", key)
            return  # the cache is behind: the node exists
        except NotFoundError:
            pass
        pods = self.pods.by_index(NODE, key)
        if not pods:
            return
        results = await gather_limited([
            self.client.delete("pods", p.metadata.name, p.metadata.namespace, grace_period_seconds=0,
                               uid=p.metadata.uid) for p in pods])
        failed = [r for r in results if isinstance(r, BaseException) and
                  not isinstance(r, (NotFoundError, ConflictError))]
        self.log.info("orphaned_pods_deleted", node=key, pods=len(pods) - len(failed))
        if failed:
            raise failed[0]
