"""Namespace deletion: delete everything in a Terminating namespace, then release it to the apiserver.

The apiserver marks a deleted namespace Terminating and keeps it while its
spec.finalizers list "kubernetes". This controller deletes every object in
it (listing live, not from a cache, so nothing created a moment ago is
missed), reports what remains in the NamespaceContentRemaining condition,
and once only Events are left empties spec.finalizers, so the namespace goes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from google.protobuf.message import Message

from api import kinds
from api.errors import ConflictError, NotFoundError
from api.pb import core_pb2
from api.timestamps import now, timestamp
from client.api import Client
from controllers.base import QueueController, gather_limited
from controllers.informers import SharedInformers

FINALIZER = "kubernetes"
CONTENT_REMAINING = "NamespaceContentRemaining"
# Workloads first, so their controllers stop replacing what is being deleted.
ORDER = ("deployments", "replicasets", "pods", "services", "endpoints", "leases", "events")
RECHECK_SECONDS = 0.5


@dataclass(frozen=True)
class Remaining:
    counts: dict[str, int]

    @property
    def blocking(self) -> bool:
        # Events may still be written about objects being deleted; they do not hold the namespace.
        return any(n for resource, n in self.counts.items() if resource != "events")

    def message(self) -> str:
        parts = [f"{resource} has {n} resource instances" for resource, n in self.counts.items() if n]
        return "Some resources are remaining: " + ", ".join(parts) if parts else "All content removed"


def namespaced_resources() -> list[str]:
    known = [k.resource for k in kinds.KINDS if k.namespaced]
    return [r for r in ORDER if r in known] + [r for r in known if r not in ORDER]


def plan_deletions(objects: Sequence[Message]) -> list[Message]:
    """The objects still to delete (those not already being deleted)."""
    return [o for o in objects if not o.metadata.HasField("deletion_timestamp")]  # type: ignore[attr-defined]


def needs_cleanup(ns: core_pb2.Namespace) -> bool:
    return ns.metadata.HasField("deletion_timestamp") and FINALIZER in ns.spec.finalizers


class NamespaceController(QueueController):
    name = "namespace-controller"

    def __init__(self, client: Client, informers: SharedInformers, *, workers: int = 2) -> None:
        super().__init__()
        self.client = client
        self.workers = workers
        self.namespaces = informers.get("namespaces")
        self.namespaces.add_handlers(self._changed, lambda old, new: self._changed(new))

    async def ready(self) -> None:
        await self.namespaces.synced.wait()

    def _changed(self, ns: core_pb2.Namespace) -> None:
        if needs_cleanup(ns):
            self.enqueue(ns)

    async def reconcile(self, key: str) -> None:
        ns = self.namespaces.get(key)
        if ns is None or not needs_cleanup(ns):
            return
        counts: dict[str, int] = {}
        for resource in namespaced_resources():
            items = await self.client.list_all(resource, key)
            counts[resource] = len(items)
            doomed = plan_deletions(items)
            if doomed:
                results = await gather_limited([self.client.delete(resource, o.metadata.name, key,
                                                                   uid=o.metadata.uid) for o in doomed])
                for r in results:
                    if isinstance(r, BaseException) and not isinstance(r, (NotFoundError, ConflictError)):
                        raise r
                self.log.info("namespace_content_deleted", namespace=key, resource=resource, count=len(doomed))
        remaining = Remaining(counts)
        if remaining.blocking:
            await self._report(ns, remaining)
            self.enqueue_after(key, RECHECK_SECONDS)
            return
        update = core_pb2.Namespace()
        update.CopyFrom(ns)
        kept = [f for f in update.spec.finalizers if f != FINALIZER]
        del update.spec.finalizers[:]
        update.spec.finalizers.extend(kept)
        try:
            await self.client.update(update)
        except NotFoundError:
            return
        self.log.info("namespace_finalized", namespace=key)

    async def _report(self, ns: core_pb2.Namespace, remaining: Remaining) -> None:
        status, reason, message = "True", "SomeResourcesRemain", remaining.message()
        current = next((c for c in ns.status.conditions if c.type == CONTENT_REMAINING), None)
        if current is not None and (current.status, current.reason, current.message) == (status, reason, message):
            return
        update = core_pb2.Namespace()
        update.CopyFrom(ns)
        kept = [c for c in update.status.conditions if c.type != CONTENT_REMAINING]
        del update.status.conditions[:]
        update.status.conditions.extend(kept)
        update.status.conditions.add(type=CONTENT_REMAINING, status=status, reason=reason, message=message,
                                     last_transition_time=timestamp(now()))
        update.metadata.resource_version = ""
        try:
            await self.client.update_status(update)
        except NotFoundError:
            return
