"""The DaemonSet controller: node, pod and revision events in; daemon pods, revisions and status out."""

from __future__ import annotations

from itertools import chain

from api import labels
from api.errors import ConflictError, NotFoundError
from api.pb import apps_pb2, core_pb2
from api.timestamps import now
from client.api import Client
from controllers import history, owners, podcontrol
from controllers.daemonset.plan import BURST, daemon_pod, plan_daemonset
from controllers.events import Recorder
from controllers.informers import CONTROLLER, ORPHAN, SharedInformers
from controllers.ownedpods import OwnedPodsController


class ReconcileError(Exception):
    """A reconcile that must be retried (with backoff)."""


def _placement_changed(old: core_pb2.Node, new: core_pb2.Node) -> bool:
    return (old.metadata.labels != new.metadata.labels or list(old.spec.taints) != list(new.spec.taints)
            or old.metadata.HasField("deletion_timestamp") != new.metadata.HasField("deletion_timestamp"))


class DaemonSetController(OwnedPodsController):
    name = "daemonset-controller"
    owner_kind = "DaemonSet"

    def __init__(self, client: Client, informers: SharedInformers, *, workers: int = 2, burst: int = BURST) -> None:
        super().__init__()
        self.client = client
        self.workers = workers
        self.burst = burst
        self.recorder = Recorder(client, self.name)
        self.daemonsets = informers.get("daemonsets")
        self.nodes = informers.get("nodes")
        self.pods = informers.get("pods")
        self.revisions = informers.get("controllerrevisions")
        self.nodes.add_handlers(self._all, lambda old, new: self._all(new) if _placement_changed(old, new) else None,
                                self._all)
        self.watch_owned(self.daemonsets, self.pods, self.revisions)

    async def ready(self) -> None:
        for informer in (self.daemonsets, self.nodes, self.pods, self.revisions):
            await informer.synced.wait()

    # ------------------------------------------------------------ handlers (enqueue only)

    def _all(self, _: object) -> None:
        for ds in self.daemonsets.list():
            self.enqueue(ds)

    # ------------------------------------------------------------ reconcile

    async def reconcile(self, key: str) -> None:
        ds = self.daemonsets.get(key)
        if ds is None:
            self.expectations.forget(key)
            return
        needs_sync = self.expectations.satisfied(key)
        deleting = owners.is_deleting(ds)
        selector = labels.from_label_selector(ds.spec.selector)
        ns = ds.metadata.namespace
        candidates = list(chain(self.pods.by_index(CONTROLLER, ds.metadata.uid), self.pods.by_index(ORPHAN, ns)))
        claims = owners.plan_claims(ds.metadata.uid, selector, candidates, owner_deleting=deleting)
        owned = await owners.apply_claims(self.client, ds, claims, log=self.log)
        if deleting:
            return
        revisions = self.revisions.by_index(CONTROLLER, ds.metadata.uid)
        collisions = ds.status.collision_count if ds.status.HasField("collision_count") else None
        try:
            current, olds = await history.sync_current(self.client, ds, ds.spec.template, revisions, collisions)
        except history.CollisionError as e:
            status = apps_pb2.DaemonSetStatus()
            status.CopyFrom(ds.status)
            status.collision_count = (collisions or 0) + 1
            await self._write_status(ds, status)
            raise ReconcileError(f"controller revision {e} holds another template; collisionCount raised") from None
        revision_hash = current.metadata.labels[history.REVISION_HASH_LABEL]
        at = now()
        plan = plan_daemonset(ds, self.nodes.list(), owned, revision_hash, at, burst=self.burst)
        failure = None
        if needs_sync:
            if plan.delete:
                failure = await podcontrol.delete_pods(self.client, ds, plan.delete, key=key,
                                                       expectations=self.expectations, recorder=self.recorder,
                                                       log=self.log)
            if plan.create_on and failure is None:
                ref = owners.make_controller_ref(ds)
                failure = await podcontrol.create_pods(
                    self.client, ds, [daemon_pod(ds, node, revision_hash, ref) for node in plan.create_on], key=key,
                    expectations=self.expectations, recorder=self.recorder, log=self.log)
        live = {p.metadata.labels.get(history.REVISION_HASH_LABEL, "") for p in owned}
        limit = ds.spec.revision_history_limit if ds.spec.HasField("revision_history_limit") else 10
        for rev in history.plan_truncate(olds, live, limit):
            try:
                await self.client.delete("controllerrevisions", rev.metadata.name, ns, uid=rev.metadata.uid)
            except (NotFoundError, ConflictError):
                pass
        if plan.status is not None and plan.status != ds.status:
            await self._write_status(ds, plan.status)
        if plan.requeue_after is not None:
            self.enqueue_after(key, plan.requeue_after)
        if failure is not None:
            raise ReconcileError(failure[1])

    async def _write_status(self, ds: apps_pb2.DaemonSet, status: apps_pb2.DaemonSetStatus) -> None:
        update = apps_pb2.DaemonSet()
        update.CopyFrom(ds)
        update.status.CopyFrom(status)
        update.metadata.resource_version = ""
        try:
            await self.client.update_status(update)
        except NotFoundError:
            return
