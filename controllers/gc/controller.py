"""The garbage collector: owners gone or being deleted in, dependents deleted or orphaned out.

Keys are `<resource>|<namespace>/<name>`. The graph is the informers' OWNER
index (owner uid -> dependents); an owner missing from the cache is looked up
live before anything is deleted, since a watch may simply not have shown it yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from google.protobuf.message import Message

from api import kinds
from api.errors import ConflictError, NotFoundError, UnsupportedError
from client.api import Client
from client.informer import Informer, key_of, split_key
from client.retry import cached_first, retry_on_conflict
from controllers import owners
from controllers.base import QueueController
from controllers.gc import plan
from controllers.informers import OWNER, SharedInformers

# Every kind that can own or be owned; Events are left to their TTL.
MONITORED = ("namespaces", "nodes", "pods", "services", "endpoints", "replicasets", "deployments", "leases", "jobs",
             "cronjobs", "daemonsets", "statefulsets", "controllerrevisions", "poddisruptionbudgets",
             "persistentvolumeclaims")
ABSENT_CACHE = 10000


def _copy(obj: Message) -> Any:
    new = type(obj)()
    new.CopyFrom(obj)
    return new


class GarbageCollector(QueueController):
    name = "garbage-collector"

    def __init__(self, client: Client, informers: SharedInformers, *, workers: int = 4) -> None:
        super().__init__()
        self.client = client
        self.workers = workers
        self.informers: dict[str, Informer[Any]] = {r: informers.get(r) for r in MONITORED}
        self._absent: OrderedDict[str, None] = OrderedDict()  # owner uids known to be gone
        for resource, informer in self.informers.items():
            informer.add_handlers(*self._handlers(resource))

    async def ready(self) -> None:
        for informer in self.informers.values():
            await informer.synced.wait()
        # Owners deleted while no collector ran leave dependents behind: look at everything owned once.
        for resource, informer in self.informers.items():
            for obj in informer.list():
                if obj.metadata.owner_references or self._pending_finalizers(obj):
                    self.queue.add(self._key(resource, obj))

    # ------------------------------------------------------------ keys and lookups

    @staticmethod
    def _key(resource: str, obj: Message) -> str:
        return f"{resource}|{key_of(obj)}"

    def _lookup(self, ref_kind: str, namespace: str, name: str) -> tuple[kinds.Kind | None, Message | None]:
        try:
            kind = kinds.lookup(ref_kind)
        except UnsupportedError:
            return None, None
        informer = self.informers.get(kind.resource)
        ns = namespace if kind.namespaced else ""
        return kind, informer.get_named(ns, name) if informer is not None else None

    def dependents_of(self, uid: str) -> list[tuple[str, Message]]:
        out = []
        for resource, informer in self.informers.items():
            out.extend((resource, obj) for obj in informer.by_index(OWNER, uid))
        return out

    @staticmethod
    def _pending_finalizers(obj: Message) -> bool:
        meta = obj.metadata  # type: ignore[attr-defined]
        return meta.HasField("deletion_timestamp") and (plan.ORPHAN in meta.finalizers or
                                                         plan.FOREGROUND in meta.finalizers)

    # ------------------------------------------------------------ handlers (enqueue only)

    def _handlers(self, resource: str) -> tuple[Any, Any, Any]:
        def added(obj: Message) -> None:
            self._look_at(resource, obj)

        def updated(old: Message, new: Message) -> None:
            self._look_at(resource, new)
            if self._pending_finalizers(new) and plan.FOREGROUND in new.metadata.finalizers:  # type: ignore[attr-defined]
                for dep_resource, dep in self.dependents_of(new.metadata.uid):  # type: ignore[attr-defined]
                    self.queue.add(self._key(dep_resource, dep))
            before = {r.uid for r in old.metadata.owner_references}  # type: ignore[attr-defined]
            after = {r.uid for r in new.metadata.owner_references}  # type: ignore[attr-defined]
            if before - after:
                self._wake_owners(old, before - after)

        def deleted(obj: Message) -> None:
            for dep_resource, dep in self.dependents_of(obj.metadata.uid):  # type: ignore[attr-defined]
                self.queue.add(self._key(dep_resource, dep))
            self._wake_owners(obj, {r.uid for r in obj.metadata.owner_references})  # type: ignore[attr-defined]

        return added, updated, deleted

    def _look_at(self, resource: str, obj: Message) -> None:
        meta = obj.metadata  # type: ignore[attr-defined]
        if self._pending_finalizers(obj):
            self.queue.add(self._key(resource, obj))
            return
        for ref in meta.owner_references:
            _, owner = self._lookup(ref.kind, meta.namespace, ref.name)
            if owner is None or owner.metadata.uid != ref.uid or \
                    plan.owner_state(owner, ref.uid) != plan.SOLID:  # type: ignore[attr-defined]
                self.queue.add(self._key(resource, obj))
                return

    def _wake_owners(self, obj: Message, uids: Iterable[str]) -> None:
        """Owners waiting in the foreground for `obj` may now be able to finish."""
        meta = obj.metadata  # type: ignore[attr-defined]
        for ref in meta.owner_references:
            if ref.uid not in uids:
                continue
            kind, owner = self._lookup(ref.kind, meta.namespace, ref.name)
            if kind is not None and owner is not None and owner.metadata.uid == ref.uid and \
                    self._pending_finalizers(owner):  # type: ignore[attr-defined]
                self.queue.add(self._key(kind.resource, owner))

    # ------------------------------------------------------------ reconcile

    async def reconcile(self, key: str) -> None:
        resource, _, rest = key.partition("|")
        obj = self.informers[resource].get(rest)
        if obj is None:
            return
        owner_states = [await self._owner_state(obj, ref) for ref in obj.metadata.owner_references]
        dependents = [plan.Dependent(dep, any(r.uid == obj.metadata.uid and r.block_owner_deletion
                                              for r in dep.metadata.owner_references))
                      for _, dep in self.dependents_of(obj.metadata.uid)]
        p = plan.plan_item(obj, owner_states, dependents)
        if p.empty:
            return
        await self._apply(resource, obj, p)

    async def _owner_state(self, obj: Message, ref: Any) -> plan.OwnerState:
        if ref.uid in self._absent:
            return plan.OwnerState(ref.uid, plan.DANGLING)
        meta = obj.metadata  # type: ignore[attr-defined]
        kind, owner = self._lookup(ref.kind, meta.namespace, ref.name)
        if kind is None:
            return plan.OwnerState(ref.uid, plan.SOLID)  # a kind we cannot check: never delete for it
        if kind.namespaced and not meta.namespace:
            return plan.OwnerState(ref.uid, plan.DANGLING)  # a cluster-scoped object cannot have a namespaced owner
        if owner is None or owner.metadata.uid != ref.uid:  # type: ignore[attr-defined]
            try:
                owner = await self.client.get(kind.resource, ref.name, meta.namespace if kind.namespaced else "")
            except NotFoundError:
                owner = None
        state = plan.owner_state(owner, ref.uid)
        if state == plan.DANGLING:
            self._absent[ref.uid] = None
            while len(self._absent) > ABSENT_CACHE:
                self._absent.popitem(last=False)
        return plan.OwnerState(ref.uid, state)

    async def _apply(self, resource: str, obj: Any, p: plan.Plan) -> None:
        key = self._key(resource, obj)
        ns, name = split_key(key_of(obj))
        if p.drop_owners:
            try:
                await self.client.update(owners.without_owners(obj, p.drop_owners))  # compare-and-swap
            except NotFoundError:
                return
            self.log.info("owner_references_removed", key=key, owners=list(p.drop_owners))
        if p.delete:
            try:
                await self.client.delete(resource, name, ns, propagation_policy=p.delete, uid=obj.metadata.uid)
            except (NotFoundError, ConflictError):
                return
            self.log.info("object_collected", key=key, propagation=p.delete)
        for dep in p.revisit:
            self.queue.add(self._key(kinds.of(dep).resource, dep))
        if p.orphan:
            await asyncio.gather(*(self._orphan(dep, obj.metadata.uid) for dep in p.orphan))
            self.log.info("dependents_orphaned", key=key, count=len(p.orphan))
        if p.remove_finalizer:
            new = _copy(obj)
            kept = [f for f in new.metadata.finalizers if f != p.remove_finalizer]
            del new.metadata.finalizers[:]
            new.metadata.finalizers.extend(kept)
            try:
                await self.client.update(new)  # compare-and-swap: a dependent's change re-queues us anyway
            except NotFoundError:
                return
            self.log.info("finalizer_removed", key=key, finalizer=p.remove_finalizer)

    async def _orphan(self, dep: Any, owner_uid: str) -> None:
        def release(current: Any) -> Any:
            if not any(r.uid == owner_uid for r in current.metadata.owner_references):
                return None  # let go meanwhile
            return owners.without_owners(current, [owner_uid])

        fetch = functools.partial(self.client.get, kinds.of(dep).resource, dep.metadata.name, dep.metadata.namespace)
        with contextlib.suppress(NotFoundError):
            await retry_on_conflict(cached_first(dep, fetch), release, self.client.update,
                                    what=f"orphaning {key_of(dep)}")
