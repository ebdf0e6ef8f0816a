"""The disruption controller: pods, budgets and their controllers' scales in; budget statuses out, each written
as a compare-and-swap so an eviction that consumed a disruption meanwhile is never overwritten."""

from __future__ import annotations

from typing import Any

from api import labels
from api.errors import ConflictError, NotFoundError
from api.pb import core_pb2, policy_pb2
from api.timestamps import now
from client.api import Client
from client.informer import key_of
from controllers import owners
from controllers.base import QueueController
from controllers.disruption.plan import plan_budget
from controllers.informers import NAMESPACE, SharedInformers


def _selector(pdb: policy_pb2.PodDisruptionBudget) -> labels.Selector:
    return labels.from_label_selector(pdb.spec.selector if pdb.spec.HasField("selector") else None)


class DisruptionController(QueueController):
    name = "disruption-controller"

    def __init__(self, client: Client, informers: SharedInformers, *, workers: int = 2) -> None:
        super().__init__()
        self.client = client
        self.workers = workers
        self.budgets = informers.get("poddisruptionbudgets")
        self.pods = informers.get("pods")
        self.replicasets = informers.get("replicasets")
        self.deployments = informers.get("deployments")
        self.statefulsets = informers.get("statefulsets")
        self._written: dict[str, int] = {}
        self.budgets.add_handlers(self.enqueue, lambda old, new: self.enqueue(new),
                                  lambda pdb: self._written.pop(key_of(pdb), None))
        self.pods.add_handlers(self._pod, lambda old, new: self._pod(new), self._pod)
        for informer in (self.replicasets, self.deployments, self.statefulsets):
            informer.add_handlers(self._namespace, lambda old, new: self._namespace(new), self._namespace)

    async def ready(self) -> None:
        for informer in (self.budgets, self.pods, self.replicasets, self.deployments, self.statefulsets):
            await informer.synced.wait()

    def _pod(self, pod: core_pb2.Pod) -> None:
        for pdb in self.budgets.by_index(NAMESPACE, pod.metadata.namespace):
            if _selector(pdb).matches(pod.metadata.labels):
                self.enqueue(pdb)

    def _namespace(self, obj: Any) -> None:
        for pdb in self.budgets.by_index(NAMESPACE, obj.metadata.namespace):
            self.enqueue(pdb)

    def scale_of(self, pod: core_pb2.Pod) -> tuple[str, int] | None:
        """The replicas the pod's controller wants: its Deployment's (through its ReplicaSet), ReplicaSet's or
        StatefulSet's."""
        ns = pod.metadata.namespace
        ref = owners.controller_ref(pod)
        rs = owners.resolve(self.replicasets, ns, ref, "ReplicaSet")
        if rs is not None:
            d = owners.resolve(self.deployments, ns, owners.controller_ref(rs), "Deployment")
            if d is not None:
                return d.metadata.uid, d.spec.replicas
            return rs.metadata.uid, rs.spec.replicas
        sts = owners.resolve(self.statefulsets, ns, ref, "StatefulSet")
        if sts is not None:
            return sts.metadata.uid, sts.spec.replicas
        return None

    async def reconcile(self, key: str) -> None:
        pdb = self.budgets.get(key)
        if pdb is None:
            return
        want = self._written.get(key)
        if want is not None:
            if int(pdb.metadata.resource_version or 0) < want:
                return  # our write is on its way back through the watch
            del self._written[key]
        selector = _selector(pdb)
        matching = [p for p in self.pods.by_index(NAMESPACE, pdb.metadata.namespace)
                    if selector.matches(p.metadata.labels)]
        plan = plan_budget(pdb, matching, self.scale_of, now())
        if plan.status != pdb.status:
            update = policy_pb2.PodDisruptionBudget()
            update.CopyFrom(pdb)
            update.status.CopyFrom(plan.status)
            try:
                written = await self.client.update_status(update)  # on the cached resourceVersion
            except NotFoundError:
                return
            except ConflictError:
                self.enqueue_after(key, 0.05)  # an eviction (or our last write) came first: look again
                return
            self._written[key] = int(written.metadata.resource_version or 0)
        if plan.requeue_after is not None:
            self.enqueue_after(key, plan.requeue_after)
