"""The Deployment controller: one ReplicaSet per pod template, sized step by step by the rollout plan."""

from __future__ import annotations

from itertools import chain

from api import labels, pods
from api.errors import AlreadyExistsError, ApiError, ConflictError, ForbiddenError, NotFoundError
from api.pb import apps_pb2, core_pb2, meta_pb2
from api.timestamps import now
from client.api import Client
from client.informer import key_of
from controllers import owners, podstate
from controllers.base import QueueController
from controllers.deployment import status as st
from controllers.deployment import util
from controllers.deployment.plan import (
    PodFacts,
    RSView,
    is_scaling_event,
    new_rs_replicas,
    next_available,
    old_pods_running,
    plan_cleanup,
    plan_new_rs,
    plan_old_rs,
    plan_scale,
    pod_facts,
    view_of,
)
from controllers.events import Recorder
from controllers.informers import CONTROLLER, NAMESPACE, ORPHAN, SharedInformers


class ReconcileError(Exception):
    """A reconcile that must be retried (with backoff)."""


def _copy(msg: apps_pb2.Deployment) -> apps_pb2.Deployment:
    out = apps_pb2.Deployment()
    out.CopyFrom(msg)
    return out


class DeploymentController(QueueController):
    name = "deployment-controller"

    def __init__(self, client: Client, informers: SharedInformers, *, workers: int = 2) -> None:
        super().__init__()
        self.client = client
        self.workers = workers
        self.recorder = Recorder(client, self.name)
        self.deployments = informers.get("deployments")
        self.rs = informers.get("replicasets")
        self.pods = informers.get("pods")
        # ReplicaSet writes whose watch events the cache has not shown yet: key -> resourceVersion.
        self._written: dict[str, int] = {}
        # Per ReplicaSet uid, the facts about each of its pods (by pod key), kept current by the pod handlers so a
        # plan never walks protobuf pods.
        self._facts: dict[str, dict[str, PodFacts]] = {}
        self.deployments.add_handlers(self.enqueue, lambda old, new: self.enqueue(new), self.enqueue)
        self.rs.add_handlers(self._rs_changed, self._rs_updated, self._rs_deleted)
        self.pods.add_handlers(self._pod_added, self._pod_updated, self._pod_deleted)

    async def ready(self) -> None:
        for informer in (self.deployments, self.rs, self.pods):
            await informer.synced.wait()

    # ------------------------------------------------------------ handlers (enqueue only)

    def _owner_of(self, namespace: str, ref: meta_pb2.OwnerReference | None) -> apps_pb2.Deployment | None:
        return owners.resolve(self.deployments, namespace, ref, "Deployment")

    def _rs_changed(self, rs: apps_pb2.ReplicaSet) -> None:
        d = self._owner_of(rs.metadata.namespace, owners.controller_ref(rs))
        if d is not None:
            self.enqueue(d)
            return
        if owners.controller_ref(rs) is None:
            for d in self.deployments.by_index(NAMESPACE, rs.metadata.namespace):
                if labels.from_label_selector(d.spec.selector).matches(rs.metadata.labels):
                    self.enqueue(d)

    def _rs_deleted(self, rs: apps_pb2.ReplicaSet) -> None:
        self._written.pop(key_of(rs), None)
        self._rs_changed(rs)

    def _rs_updated(self, old: apps_pb2.ReplicaSet, new: apps_pb2.ReplicaSet) -> None:
        if owners.controller_ref(old) != owners.controller_ref(new):
            self._rs_changed(old)
        self._rs_changed(new)

    def _deployment_of_pod(self, pod: core_pb2.Pod) -> apps_pb2.Deployment | None:
        ref = owners.controller_ref(pod)
        if ref is None or ref.kind != "ReplicaSet":
            return None
        rs = self.rs.get_named(pod.metadata.namespace, ref.name)
        if rs is None or rs.metadata.uid != ref.uid:
            return None
        return self._owner_of(rs.metadata.namespace, owners.controller_ref(rs))

    def _forget_facts(self, pod: core_pb2.Pod) -> None:
        uid = owners.controller_uid(pod)
        facts = self._facts.get(uid)
        if facts is not None:
            facts.pop(key_of(pod), None)
            if not facts:
                del self._facts[uid]

    def _keep_facts(self, pod: core_pb2.Pod) -> None:
        uid = owners.controller_uid(pod)
        if uid:
            self._facts.setdefault(uid, {})[key_of(pod)] = pod_facts(pod)

    def _pod_added(self, pod: core_pb2.Pod) -> None:
        self._keep_facts(pod)
        self._pod_changed(pod)

    def _pod_deleted(self, pod: core_pb2.Pod) -> None:
        self._forget_facts(pod)
        self._pod_changed(pod)

    def _pod_changed(self, pod: core_pb2.Pod) -> None:
        d = self._deployment_of_pod(pod)
        if d is not None:
            self.enqueue(d)

    def _pod_updated(self, old: core_pb2.Pod, new: core_pb2.Pod) -> None:
        if owners.controller_uid(old) != owners.controller_uid(new):
            self._forget_facts(old)
        self._keep_facts(new)
        if (podstate.is_ready(old) != podstate.is_ready(new)
                or pods.is_terminating(old) != pods.is_terminating(new)
                or old.status.phase != new.status.phase
                or owners.controller_uid(old) != owners.controller_uid(new)):
            self._pod_changed(new)

    # ------------------------------------------------------------ reconcile

    async def reconcile(self, key: str) -> None:
        cached = self.deployments.get(key)
        if cached is None:
            return
        d = _copy(cached)
        rss = await self._claim(d)
        if not self._caught_up(rss):
            return  # the watch event of our last ReplicaSet write brings this key back
        if owners.is_deleting(d):
            new = util.find_new(d, rss)
            await self._sync_status(d, rss, new)
            return
        if await self._paused_conditions(d):
            return
        if d.spec.paused or is_scaling_event(d, rss):
            await self._sync(d, rss)
        elif d.spec.strategy.type == "Recreate":
            await self._recreate(d, rss)
        else:
            await self._rolling(d, rss)

    def _caught_up(self, rss: list[apps_pb2.ReplicaSet]) -> bool:
        for rs in rss:
            k = key_of(rs)
            want = self._written.get(k)
            if want is None:
                continue
            if int(rs.metadata.resource_version or 0) < want:
                return False
            del self._written[k]
        return True

    def _note_write(self, rs: apps_pb2.ReplicaSet) -> None:
        self._written[key_of(rs)] = int(rs.metadata.resource_version or 0)

    async def _claim(self, d: apps_pb2.Deployment) -> list[apps_pb2.ReplicaSet]:
        selector = labels.from_label_selector(d.spec.selector)
        candidates = list(chain(self.rs.by_index(CONTROLLER, d.metadata.uid),
                                self.rs.by_index(ORPHAN, d.metadata.namespace)))
        claims = owners.plan_claims(d.metadata.uid, selector, candidates, owner_deleting=owners.is_deleting(d))
        return await owners.apply_claims(self.client, d, claims, log=self.log, written=self._note_write)  # type: ignore[arg-type]

    # ------------------------------------------------------------ views and writes

    def _views(self, d: apps_pb2.Deployment, rss: list[apps_pb2.ReplicaSet], at: float) -> dict[str, RSView]:
        views: dict[str, RSView] = {}
        soonest: float | None = None
        for rs in rss:
            view, deadline = self._view(rs, d.spec.min_ready_seconds, at)
            views[rs.metadata.uid] = view
            if deadline is not None and (soonest is None or deadline < soonest):
                soonest = deadline
        if soonest is not None:
            # Counts change with time alone: a terminating pod's grace ends, a ready pod becomes available.
            self.enqueue_after(key_of(d), soonest - at + 0.05)
        return views

    def _view(self, rs: apps_pb2.ReplicaSet, min_ready: int, at: float) -> tuple[RSView, float | None]:
        """The RSView of `rs`, and when its counts next change with time alone (if they will)."""
        facts = self._facts.get(rs.metadata.uid, {}).values()
        view, deadline = view_of(rs, facts, min_ready_seconds=min_ready, now=at)
        available = next_available(facts, min_ready, at)
        times = [t for t in (deadline, available) if t is not None]
        return view, min(times) if times else None

    async def _scale(self, d: apps_pb2.Deployment, rs: apps_pb2.ReplicaSet, size: int) -> apps_pb2.ReplicaSet:
        new = apps_pb2.ReplicaSet()
        new.CopyFrom(rs)
        size_changed = new.spec.replicas != size
        new.spec.replicas = size
        ann_changed = util.replicas_annotations_changed(new, d.spec.replicas, d.spec.replicas + util.max_surge(d))
        if not size_changed and not ann_changed:
            return rs
        try:
            updated: apps_pb2.ReplicaSet = await self.client.update(new)  # compare-and-swap on the cached version
        except ConflictError:
            # Usually only the ReplicaSet's status moved on. If its spec (generation) is the one planned from,
            # the plan still holds: apply it to the fresh copy; otherwise retry the whole reconcile.
            fresh: apps_pb2.ReplicaSet = await self.client.get("replicasets", rs.metadata.name, rs.metadata.namespace)
            if fresh.metadata.uid != rs.metadata.uid or fresh.metadata.generation != rs.metadata.generation:
                raise
            fresh.spec.replicas = size
            util.replicas_annotations_changed(fresh, d.spec.replicas, d.spec.replicas + util.max_surge(d))
            updated = await self.client.update(fresh)
        self._note_write(updated)
        if size_changed:
            verb = "up" if size > rs.spec.replicas else "down"
            self.recorder.normal(d, "ScalingReplicaSet",
                                 f"Scaled {verb} replica set {rs.metadata.name} from {rs.spec.replicas} to {size}")
            self.log.info("replicaset_scaled", key=key_of(d), replicaset=rs.metadata.name, replicas=size,
                          previous=rs.spec.replicas)
        return updated

    async def _write_status(self, d: apps_pb2.Deployment, status: apps_pb2.DeploymentStatus) -> None:
        update = _copy(d)
        update.status.CopyFrom(status)
        update.metadata.resource_version = ""
        try:
            written = await self.client.update_status(update)
        except NotFoundError:
            return
        d.status.CopyFrom(written.status)

    async def _set_revision(self, d: apps_pb2.Deployment, revision: str) -> None:
        if d.metadata.annotations.get(util.REVISION) == revision:
            return
        update = _copy(d)
        update.metadata.annotations[util.REVISION] = revision
        written: apps_pb2.Deployment = await self.client.update(update)  # compare-and-swap: never clobbers a user edit
        d.metadata.CopyFrom(written.metadata)

    # ------------------------------------------------------------ the new ReplicaSet

    async def _new_and_old(self, d: apps_pb2.Deployment, rss: list[apps_pb2.ReplicaSet], *,
                           create: bool) -> tuple[apps_pb2.ReplicaSet | None, list[apps_pb2.ReplicaSet]]:
        existing = util.find_new(d, rss)
        olds = [rs for rs in rss if existing is None or rs.metadata.uid != existing.metadata.uid]
        new_revision = util.max_revision(olds) + 1
        at = now()
        if existing is not None:
            rs = apps_pb2.ReplicaSet()
            rs.CopyFrom(existing)
            changed = util.set_new_rs_annotations(d, rs, new_revision, exists=True)
            if changed or rs.spec.min_ready_seconds != d.spec.min_ready_seconds:
                rs.spec.min_ready_seconds = d.spec.min_ready_seconds
                rs = await self.client.update(rs)
                self._note_write(rs)
                return rs, olds
            await self._set_revision(d, rs.metadata.annotations.get(util.REVISION, ""))
            if util.has_progress_deadline(d) and st.get_condition(d.status, st.PROGRESSING) is None:
                await self._write_status(d, st.plan_progressing(d, "True", st.FOUND_NEW_RS,
                                                                f'Found new replica set "{rs.metadata.name}"', at))
            return rs, olds
        if not create:
            return None, olds

        ref = owners.make_controller_ref(d)
        candidate = util.new_replicaset(d, replicas=0, new_revision=new_revision, controller=ref)
        views = self._views(d, olds, at)
        candidate.spec.replicas = new_rs_replicas(d, [*views.values(), RSView(candidate)], RSView(candidate))
        already = False
        try:
            created: apps_pb2.ReplicaSet = await self.client.create(candidate)
        except AlreadyExistsError:
            found: apps_pb2.ReplicaSet = await self.client.get("replicasets", candidate.metadata.name,
                                                               d.metadata.namespace)
            if owners.controller_uid(found) == d.metadata.uid and \
                    util.equal_ignore_hash(found.spec.template, d.spec.template):
                created, already = found, True
            else:
                status = apps_pb2.DeploymentStatus()
                status.CopyFrom(d.status)
                status.collision_count = (d.status.collision_count if d.status.HasField("collision_count") else 0) + 1
                await self._write_status(d, status)
                self.log.info("hash_collided", key=key_of(d), replicaset=candidate.metadata.name,
                              collision_count=status.collision_count)
                raise ReconcileError(f"replicaset {candidate.metadata.name} exists with another template") from None
        except ForbiddenError:
            raise  # the namespace is being deleted: nothing to roll out
        except ApiError as e:
            message = f'Failed to create new replica set "{candidate.metadata.name}": {e.message}'
            if util.has_progress_deadline(d):
                await self._write_status(d, st.plan_progressing(d, "False", st.FAILED_RS_CREATE, message, at))
            self.recorder.warning(d, st.FAILED_RS_CREATE, message)
            raise
        self._note_write(created)
        if not already:
            self.log.info("replicaset_created", key=key_of(d), replicaset=created.metadata.name,
                          replicas=created.spec.replicas, revision=new_revision)
            if created.spec.replicas > 0:
                self.recorder.normal(d, "ScalingReplicaSet", f"Scaled up replica set {created.metadata.name} from 0 "
                                                             f"to {created.spec.replicas}")
        await self._set_revision(d, str(new_revision) if not already else
                                 created.metadata.annotations.get(util.REVISION, str(new_revision)))
        if not already and util.has_progress_deadline(d):
            await self._write_status(d, st.plan_progressing(d, "True", st.NEW_RS_CREATED,
                                                            f'Created new replica set "{created.metadata.name}"', at))
        return created, olds

    # ------------------------------------------------------------ strategies

    async def _rolling(self, d: apps_pb2.Deployment, rss: list[apps_pb2.ReplicaSet]) -> None:
        new, olds = await self._new_and_old(d, rss, create=True)
        assert new is not None
        at = now()
        views = self._views(d, [*olds, new], at)
        size = plan_new_rs(d, list(views.values()), views[new.metadata.uid])
        if size is not None:
            new = await self._scale(d, new, size)
            await self._rollout_status(d, [*olds, new], new)
            return
        sizes = plan_old_rs(d, views[new.metadata.uid], [views[o.metadata.uid] for o in olds])
        if sizes:
            scaled = []
            for rs in util.creation_order(olds):
                scaled.append(await self._scale(d, rs, sizes[rs.metadata.name]) if rs.metadata.name in sizes
                              else rs)
            await self._rollout_status(d, [*scaled, new], new)
            return
        if st.is_complete(d, d.status):
            await self._cleanup(d, olds)
        await self._rollout_status(d, [*olds, new], new)

    async def _recreate(self, d: apps_pb2.Deployment, rss: list[apps_pb2.ReplicaSet]) -> None:
        new, olds = await self._new_and_old(d, rss, create=False)
        active = [rs for rs in olds if rs.spec.replicas > 0]
        if active:
            scaled = [await self._scale(d, rs, 0) if rs.spec.replicas > 0 else rs for rs in olds]
            await self._rollout_status(d, [*scaled, *([new] if new else [])], new)
            return
        at = now()
        views = self._views(d, olds, at)
        old_pods = [p for rs in olds for p in self.pods.by_index(CONTROLLER, rs.metadata.uid)]
        if old_pods_running(list(views.values()), old_pods):
            await self._rollout_status(d, [*olds, *([new] if new else [])], new)
            return
        if new is None:
            new, olds = await self._new_and_old(d, rss, create=True)
            assert new is not None
        if new.spec.replicas != d.spec.replicas:
            new = await self._scale(d, new, d.spec.replicas)
        if st.is_complete(d, d.status):
            await self._cleanup(d, olds)
        await self._rollout_status(d, [*olds, new], new)

    async def _sync(self, d: apps_pb2.Deployment, rss: list[apps_pb2.ReplicaSet]) -> None:
        """Scaling (proportionally, during a rollout) and paused deployments: sizes only, no rollout."""
        new, olds = await self._new_and_old(d, rss, create=False)
        sizes = plan_scale(d, new, olds)
        updated: dict[str, apps_pb2.ReplicaSet] = {}
        for rs in [*olds, *([new] if new else [])]:
            if rs.metadata.name in sizes:
                updated[rs.metadata.name] = await self._scale(d, rs, sizes[rs.metadata.name])
        olds = [updated.get(rs.metadata.name, rs) for rs in olds]
        if new is not None:
            new = updated.get(new.metadata.name, new)
        if d.spec.paused:
            await self._cleanup(d, olds)
        await self._sync_status(d, [*olds, *([new] if new else [])], new)

    async def _cleanup(self, d: apps_pb2.Deployment, olds: list[apps_pb2.ReplicaSet]) -> None:
        for rs in plan_cleanup(d, olds):
            try:
                await self.client.delete("replicasets", rs.metadata.name, rs.metadata.namespace, uid=rs.metadata.uid)
            except (NotFoundError, ConflictError):
                continue
            self.log.info("replicaset_cleaned_up", key=key_of(d), replicaset=rs.metadata.name,
                          revision=util.revision(rs))

    # ------------------------------------------------------------ status

    async def _paused_conditions(self, d: apps_pb2.Deployment) -> bool:
        """Record pausing and resuming in Progressing (Unknown), so a resume never counts as a timeout."""
        status = st.plan_paused_condition(d, now())
        if status is None:
            return False
        await self._write_status(d, status)
        return True

    async def _sync_status(self, d: apps_pb2.Deployment, all_rs: list[apps_pb2.ReplicaSet],
                           new: apps_pb2.ReplicaSet | None) -> None:
        status = st.compute_status(d, all_rs, new, now())
        if status != d.status:
            await self._write_status(d, status)

    async def _rollout_status(self, d: apps_pb2.Deployment, all_rs: list[apps_pb2.ReplicaSet],
                              new: apps_pb2.ReplicaSet | None) -> None:
        at = now()
        status = st.plan_rollout_status(d, all_rs, new, at)
        if status != d.status:
            before = st.get_condition(d.status, st.PROGRESSING)
            await self._write_status(d, status)
            after = st.get_condition(status, st.PROGRESSING)
            if after is not None and after.reason == st.TIMED_OUT and (before is None or before.reason != st.TIMED_OUT):
                self.recorder.warning(d, st.TIMED_OUT, after.message)
                self.log.info("rollout_timed_out", key=key_of(d))
            return
        delay = st.requeue_after(d, status, at)
        if delay is not None:
            self.enqueue_after(key_of(d), delay)
