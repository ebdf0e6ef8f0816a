"""The taint manager: pods on nodes with NoExecute taints they do not tolerate are deleted, after any grace."""

from __future__ import annotations

from api import pods
from api.defaults import UNREACHABLE_TAINT
from api.errors import ConflictError, NotFoundError
from api.pb import core_pb2
from api.timestamps import now
from client.api import Client
from client.informer import key_of
from controllers.base import QueueController
from controllers.events import Recorder
from controllers.informers import NODE, SharedInformers
from controllers.nodelifecycle.eviction import TaintKey, observe_taints, plan_eviction


def _no_execute(node: core_pb2.Node) -> list[tuple[str, str, str]]:
    return [(t.key, t.value, t.effect) for t in node.spec.taints if t.effect == "NoExecute"]


class TaintManager(QueueController):
    """Keyed by pod. Each key is looked at when its node's NoExecute taints change and when its time is up."""

    name = "taint-eviction-controller"

    def __init__(self, client: Client, informers: SharedInformers, *, workers: int = 4) -> None:
        super().__init__()
        self.client = client
        self.workers = workers
        self.recorder = Recorder(client, self.name)
        self.nodes = informers.get("nodes")
        self.pods = informers.get("pods")
        # Per node, when each NoExecute taint was first seen: the clock for taints without timeAdded.
        self.first_seen: dict[str, dict[TaintKey, float]] = {}
        self.nodes.add_handlers(self._node_changed, self._node_updated, self._node_deleted)
        self.pods.add_handlers(self._pod_changed, self._pod_updated)

    async def ready(self) -> None:
        await self.nodes.synced.wait()
        await self.pods.synced.wait()

    # ------------------------------------------------------------ handlers (enqueue only)

    def _observe(self, node: core_pb2.Node) -> None:
        name = node.metadata.name
        seen = observe_taints(self.first_seen.get(name, {}), node.spec.taints, now())
        if seen:
            self.first_seen[name] = seen
        else:
            self.first_seen.pop(name, None)

    def _node_changed(self, node: core_pb2.Node) -> None:
        self._observe(node)
        if _no_execute(node):
            for pod in self.pods.by_index(NODE, node.metadata.name):
                self.enqueue(pod)

    def _node_updated(self, old: core_pb2.Node, new: core_pb2.Node) -> None:
        self._observe(new)
        if _no_execute(old) != _no_execute(new):
            for pod in self.pods.by_index(NODE, new.metadata.name):
                self.enqueue(pod)

    def _node_deleted(self, node: core_pb2.Node) -> None:
        self.first_seen.pop(node.metadata.name, None)

    def _on_tainted_node(self, pod: core_pb2.Pod) -> bool:
        node = self.nodes.get(pod.spec.node_name) if pod.spec.node_name else None
        return node is not None and bool(_no_execute(node))

    def _pod_changed(self, pod: core_pb2.Pod) -> None:
        if self._on_tainted_node(pod):
            self.enqueue(pod)

    def _pod_updated(self, old: core_pb2.Pod, new: core_pb2.Pod) -> None:
        if (old.spec.node_name != new.spec.node_name or old.spec.tolerations != new.spec.tolerations) and \
                self._on_tainted_node(new):
            self.enqueue(new)

    # ------------------------------------------------------------ reconcile

    async def reconcile(self, key: str) -> None:
        pod = self.pods.get(key)
        if pod is None or pods.is_terminating(pod) or not pod.spec.node_name:
            return
        node = self.nodes.get(pod.spec.node_name)
        if node is None:
            return
        at = now()
        when = plan_eviction(pod, node.spec.taints, at, self.first_seen.get(node.metadata.name))
        if when is None:
            return
        if when > at:
            self.enqueue_after(key, when - at + 0.01)
            return
        unreachable = any(t.key == UNREACHABLE_TAINT and t.effect == "NoExecute" for t in node.spec.taints)
        try:
            await self.client.delete("pods", pod.metadata.name, pod.metadata.namespace, uid=pod.metadata.uid)
        except (NotFoundError, ConflictError):
            return
        self.recorder.normal(pod, "TaintManagerEviction",
                             f"Marking for deletion Pod {key_of(pod)}")
        self.log.info("pod_evicted", pod=key, node=node.metadata.name, unreachable=unreachable)
