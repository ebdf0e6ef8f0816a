"""The StatefulSet controller: pod and revision events in; ordinal pods, revisions and status out."""

from __future__ import annotations

from itertools import chain

from api import labels
from api.errors import AlreadyExistsError, ApiError, ConflictError, NotFoundError
from api.pb import apps_pb2, core_pb2, meta_pb2
from api.timestamps import now
from client.api import Client
from client.informer import key_of
from controllers import history, owners, podcontrol
from controllers.events import Recorder
from controllers.informers import CONTROLLER, NAMESPACE, ORPHAN, SharedInformers
from controllers.ownedpods import OwnedPodsController
from controllers.statefulset.plan import (
    Create,
    claim_ordinal,
    claims_for,
    ordinal_of,
    plan_claim_owners,
    plan_statefulset,
    pod_for,
    revision_of,
)


class ReconcileError(Exception):
    """A reconcile that must be retried (with backoff)."""


class StatefulSetController(OwnedPodsController):
    name = "statefulset-controller"
    owner_kind = "StatefulSet"

    def __init__(self, client: Client, informers: SharedInformers, *, workers: int = 2) -> None:
        super().__init__()
        self.client = client
        self.workers = workers
        self.recorder = Recorder(client, self.name)
        self.sets = informers.get("statefulsets")
        self.pods = informers.get("pods")
        self.revisions = informers.get("controllerrevisions")
        self.claims = informers.get("persistentvolumeclaims")
        self.watch_owned(self.sets, self.pods, self.revisions)

    async def ready(self) -> None:
        for informer in (self.sets, self.pods, self.revisions, self.claims):
            await informer.synced.wait()

    # ------------------------------------------------------------ reconcile

    async def reconcile(self, key: str) -> None:
        sts = self.sets.get(key)
        if sts is None:
            self.expectations.forget(key)
            return
        needs_sync = self.expectations.satisfied(key)
        deleting = owners.is_deleting(sts)
        ns = sts.metadata.namespace
        selector = labels.from_label_selector(sts.spec.selector)
        candidates = list(chain(self.pods.by_index(CONTROLLER, sts.metadata.uid), self.pods.by_index(ORPHAN, ns)))
        claims = owners.plan_claims(sts.metadata.uid, selector, candidates, owner_deleting=deleting)
        owned = await owners.apply_claims(self.client, sts, claims, log=self.log)
        if deleting:
            return
        revisions = self.revisions.by_index(CONTROLLER, sts.metadata.uid)
        collisions = sts.status.collision_count if sts.status.HasField("collision_count") else None
        try:
            update, olds = await history.sync_current(self.client, sts, sts.spec.template, revisions, collisions)
        except history.CollisionError as e:
            status = apps_pb2.StatefulSetStatus()
            status.CopyFrom(sts.status)
            status.collision_count = (collisions or 0) + 1
            await self._write_status(sts, status)
            raise ReconcileError(f"controller revision {e} holds another template; collisionCount raised") from None
        by_name = {r.metadata.name: r for r in [*olds, update]}
        current = by_name.get(sts.status.current_revision, update)
        plan = plan_statefulset(sts, owned, current.metadata.name, update.metadata.name, now())
        failure = None
        if sts.spec.volume_claim_templates:
            await self._claim_owners(sts, owned)
        if needs_sync:
            if plan.create:
                await self._make_claims(sts, plan.create)
            if plan.delete:
                failure = await podcontrol.delete_pods(self.client, sts, plan.delete, key=key,
                                                       expectations=self.expectations, recorder=self.recorder,
                                                       log=self.log)
            if plan.create and failure is None:
                ref = owners.make_controller_ref(sts)
                new_pods = [pod_for(sts, c.ordinal, by_name.get(c.revision, update), ref) for c in plan.create]
                failure = await podcontrol.create_pods(self.client, sts, new_pods, key=key,
                                                       expectations=self.expectations, recorder=self.recorder,
                                                       log=self.log)
        live = {revision_of(p) for p in owned} | {current.metadata.name, update.metadata.name}
        limit = sts.spec.revision_history_limit if sts.spec.HasField("revision_history_limit") else 10
        for rev in history.plan_truncate([r for r in olds if r.metadata.name != current.metadata.name], live, limit):
            try:
                await self.client.delete("controllerrevisions", rev.metadata.name, ns, uid=rev.metadata.uid)
            except (NotFoundError, ConflictError):
                pass
        if plan.status != sts.status:
            await self._write_status(sts, plan.status)
        if plan.requeue_after is not None:
            self.enqueue_after(key, plan.requeue_after)
        if failure is not None:
            raise ReconcileError(failure[1])

    async def _make_claims(self, sts: apps_pb2.StatefulSet, creates: tuple[Create, ...]) -> None:
        """Each new pod's claims, made before the pod (and kept when it goes: they are its identity's storage)."""
        for c in creates:
            for pvc in claims_for(sts, c.ordinal):
                if self.claims.get_named(pvc.metadata.namespace, pvc.metadata.name) is not None:
                    continue
                try:
                    await self.client.create(pvc)
                except AlreadyExistsError:
                    continue
                except ApiError as e:
                    message = (f"create Claim {pvc.metadata.name} for Pod {sts.metadata.name}-{c.ordinal} in "
                               f"StatefulSet {sts.metadata.name} failed error: {e.message}")
                    self.recorder.warning(sts, "FailedCreate", message)
                    raise ReconcileError(message) from None
                self.recorder.normal(sts, "SuccessfulCreate", f"create Claim {pvc.metadata.name} Pod "
                                                              f"{sts.metadata.name}-{c.ordinal} in StatefulSet "
                                                              f"{sts.metadata.name} success")

    async def _claim_owners(self, sts: apps_pb2.StatefulSet, owned: list[core_pb2.Pod]) -> None:
        """persistentVolumeClaimRetentionPolicy, as owner references the garbage collector follows."""
        claims = [c for c in self.claims.by_index(NAMESPACE, sts.metadata.namespace)
                  if claim_ordinal(sts, c) is not None]
        condemned = [p for p in owned if (ordinal_of(sts.metadata.name, p) or 0) >= sts.spec.replicas]
        pods_by_uid = {p.metadata.uid: p for p in condemned}
        updates, deletes = plan_claim_owners(sts, claims, condemned)
        for pvc in deletes:
            try:
                await self.client.delete("persistentvolumeclaims", pvc.metadata.name, pvc.metadata.namespace,
                                         uid=pvc.metadata.uid)
            except (NotFoundError, ConflictError):
                continue
            self.recorder.normal(sts, "SuccessfulDelete", f"delete Claim {pvc.metadata.name} in StatefulSet "
                                                          f"{sts.metadata.name} success")
        for pvc, uids in updates:
            new = core_pb2.PersistentVolumeClaim()
            new.CopyFrom(pvc)
            pod_name = f"{sts.metadata.name}-{claim_ordinal(sts, pvc)}"
            kept = [r for r in new.metadata.owner_references
                    if r.uid != sts.metadata.uid and not (r.kind == "Pod" and r.name == pod_name)]
            for uid in uids:
                if uid == sts.metadata.uid:
                    kept.append(meta_pb2.OwnerReference(api_version="apps/v1", kind="StatefulSet",
                                                        name=sts.metadata.name, uid=uid))
                else:
                    pod = pods_by_uid[uid]
                    kept.append(meta_pb2.OwnerReference(api_version="v1", kind="Pod", name=pod.metadata.name, uid=uid))
            del new.metadata.owner_references[:]
            new.metadata.owner_references.extend(kept)
            try:
                await self.client.update(new)
            except (NotFoundError, ConflictError):
                self.enqueue_after(key_of(sts), 0.1)

    async def _write_status(self, sts: apps_pb2.StatefulSet, status: apps_pb2.StatefulSetStatus) -> None:
        update = apps_pb2.StatefulSet()
        update.CopyFrom(sts)
        update.status.CopyFrom(status)
        update.metadata.resource_version = ""
        try:
            await self.client.update_status(update)
        except NotFoundError:
            return
