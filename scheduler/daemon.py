"""The scheduler daemon: informers feed the cache and the queue; one loop decides; binds run in the background.

While it leads (a Lease, when leader election is on), the scheduler:
1. lists and watches nodes and pods; bound pods go to the cache, pending pods
   of its schedulerName to the queue;
2. pops the most important pending pod and runs the framework over the
   cache's snapshot, synchronously (nothing else runs meanwhile, so the
   decision sees one consistent state);
3. assumes the pod on the chosen node and starts its Bind (with the pod's uid,
   so a pod is never bound twice) without waiting, up to `parallelism` at once
   (binds made while others are in flight go together: scheduler/binder.py);
4. for a pod that fits nowhere: tries preemption, records PodScheduled=False
   with Kubernetes' message and a FailedScheduling event, and parks it in the
   queue until the cluster changes.
Losing the lease cancels all of it; the next term starts from a fresh list.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

import structlog
from google.protobuf.message import Message

from api import conditions, volumes
from api.errors import ApiError, ConflictError, NotFoundError
from api.pb import core_pb2, storage_pb2
from api.pods import is_terminal
from client.api import Client
from client.events import EventRecorder
from client.informer import Informer
from client.leader import LeaderElector
from client.retry import cached_first, retry_on_conflict
from scheduler import cache as cache_events
from scheduler.binder import Binder
from scheduler.cache import Cache
from scheduler.framework.config import SchedulerConfig
from scheduler.framework.runner import Framework
from scheduler.framework.types import PodInfo, VolumeState
from scheduler.plugins import new_framework
from scheduler.plugins.volumebinding import unbound_delayed_claims
from scheduler.preemption import plan_preemption
from scheduler.queue import POD_ADDED, STORAGE_CHANGED, QueuedPod, SchedulingQueue

log = structlog.get_logger()

COMPONENT = "default-scheduler"
PROGRESS_INTERVAL = 5.0
STATUS_WRITERS = 8
# How long a pod waits, once placed, for the claims it needs bound on its node (PreBind).
PREBIND_TIMEOUT = 60.0


@dataclass
class Counters:
    attempts: int = 0
    bound: int = 0
    bind_conflicts: int = 0
    bind_errors: int = 0
    unschedulable: int = 0
    preemptions: int = 0


def pod_key(pod: core_pb2.Pod) -> str:
    return f"{pod.metadata.namespace}/{pod.metadata.name}"


def _spec_or_labels_changed(old: core_pb2.Pod, new: core_pb2.Pod) -> bool:
    return old.spec != new.spec or old.metadata.labels != new.metadata.labels or \
        old.metadata.HasField("deletion_timestamp") != new.metadata.HasField("deletion_timestamp")


def plan_unschedulable_status(pod: core_pb2.Pod, message: str, nominated: str) -> core_pb2.Pod | None:
    """The pod with PodScheduled=False/Unschedulable and `message` (rest of the status kept); None if unchanged."""
    new = core_pb2.Pod()
    new.CopyFrom(pod)
    status = new.status
    conditions.set_(status.conditions, "PodScheduled", "False", "Unschedulable", message)
    if nominated:
        status.nominated_node_name = nominated
    if status == pod.status:
        return None
    return new


class Scheduler:
    """`run()` campaigns for the lease (or not) and schedules while leading, until cancelled."""

    def __init__(self, client: Client, config: SchedulerConfig, *, identity: str) -> None:
        self.client = client
        self.config = config
        self.identity = identity
        self.term: Term | None = None
        self.leading = asyncio.Event()

    async def run(self) -> None:
        log.info("scheduler_started", identity=self.identity, leader_elect=self.config.leader_elect,
                 scheduler_name=self.config.scheduler_name)
        try:
            if self.config.leader_elect:
                elector = LeaderElector(self.client, name=self.config.lease_name, identity=self.identity,
                                        namespace=self.config.lease_namespace,
                                        lease_duration=self.config.lease_duration,
                                        renew_interval=self.config.renew_interval)
                await elector.run(self._lead)
            else:
                await self._lead()
        finally:
            log.info("scheduler_stopped", identity=self.identity)

    async def _lead(self) -> None:
        self.term = Term(self.client, self.config, identity=self.identity)
        self.leading.set()
        try:
            await self.term.run()
        finally:
            self.leading.clear()


class Term:
    """One leadership term: its own informers, cache and queue, all dropped when the term ends."""

    def __init__(self, client: Client, config: SchedulerConfig, *, identity: str = "") -> None:
        self.client = client
        self.config = config
        self.framework: Framework = new_framework(config)
        self.cache = Cache()
        self.queue = SchedulingQueue(backoff_initial=config.backoff_initial, backoff_max=config.backoff_max,
                                     unschedulable_timeout=config.unschedulable_timeout)
        self.nodes: Informer[core_pb2.Node] = Informer(client, core_pb2.Node, name="scheduler-nodes")
        self.pods: Informer[core_pb2.Pod] = Informer(client, core_pb2.Pod, name="scheduler-pods")
        self.recorder = EventRecorder(client, COMPONENT, host=identity)
        self.counters = Counters()
        self.ready = asyncio.Event()
        self._binds = asyncio.Semaphore(config.parallelism)
        self.binder = Binder(client)
        self._status_slots = asyncio.Semaphore(STATUS_WRITERS)
        self._tg: asyncio.TaskGroup | None = None
        self.nodes.add_handlers(self._node_added, self._node_updated, self._node_deleted)
        self.pods.add_handlers(self._pod_added, self._pod_updated, self._pod_deleted)
        # Claims, volumes and classes for VolumeBinding; each decision reads their stores.
        self.claims: Informer[core_pb2.PersistentVolumeClaim] = Informer(client, "persistentvolumeclaims",
                                                                         name="scheduler-claims")
        self.volumes: Informer[core_pb2.PersistentVolume] = Informer(client, "persistentvolumes",
                                                                     name="scheduler-volumes")
        self.classes: Informer[storage_pb2.StorageClass] = Informer(client, "storageclasses",
                                                                    name="scheduler-classes")
        self.cache.snapshot.storage = VolumeState(self.claims.store, self.volumes.store, self.classes.store)
        for informer in (self.claims, self.volumes, self.classes):
            informer.add_handlers(self._storage_changed, lambda old, new: self._storage_changed(new),
                                  self._storage_changed)

    # ------------------------------------------------------------ run

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            tg.create_task(self.nodes.run())
            tg.create_task(self.pods.run())
            tg.create_task(self.recorder.run())
            tg.create_task(self.binder.run())
            for informer in (self.claims, self.volumes, self.classes):
                tg.create_task(informer.run())
            await self.nodes.wait_synced()
            await self.pods.wait_synced()
            for informer in (self.claims, self.volumes, self.classes):
                await informer.wait_synced()
            log.info("scheduler_synced", **self.cache.stats(), **self.queue.counts())
            self.ready.set()
            tg.create_task(self._progress())
            await self._schedule_loop()

    async def _schedule_loop(self) -> None:
        while True:
            await self._binds.acquire()
            try:
                qp = await self.queue.pop()
            except BaseException:
                self._binds.release()
                raise
            bound = False
            try:
                bound = self.schedule_one(qp)
            except Exception:
                # A bug must not stop scheduling for every other pod: log it, retry this one after backoff.
                log.exception("schedule_crashed", pod=qp.info.key)
                self.queue.retry(qp)
            finally:
                if not bound:
                    self._binds.release()
            await asyncio.sleep(0)  # let informers, binds and status writes run between decisions

    async def _progress(self) -> None:
        last = 0
        while True:
            await asyncio.sleep(PROGRESS_INTERVAL)
            c = self.counters
            if c.attempts != last:
                log.info("scheduler_progress", bound=c.bound, attempts=c.attempts, failed_attempts=c.unschedulable,
                         bind_conflicts=c.bind_conflicts, bind_errors=c.bind_errors, preemptions=c.preemptions,
                         **self.queue.counts(), **self.cache.stats())
                last = c.attempts

    def _spawn(self, coro) -> None:  # type: ignore[no-untyped-def]
        assert self._tg is not None
        self._tg.create_task(coro)

    # ------------------------------------------------------------ one decision

    def schedule_one(self, qp: QueuedPod) -> bool:
        """Decide for one pod; returns True when a bind was started (it then owns a bind slot)."""
        info = qp.info
        key = info.key
        current = self.pods.get(key)
        if current is None or current.spec.node_name or current.metadata.HasField("deletion_timestamp") or \
                self.cache.has(key):
            self.queue.done(key)  # gone, bound, being deleted, or already assumed: nothing to do
            return False
        if current.metadata.uid != info.uid:
            self.queue.done(key)  # recreated under the same name: schedule the new incarnation
            self.queue.add(PodInfo(current))
            return False
        self.counters.attempts += 1
        start = time.perf_counter()
        storage = self.cache.snapshot.storage
        # The informers' current stores (a relist replaces them).
        storage.claims, storage.volumes, storage.classes = self.claims.store, self.volumes.store, self.classes.store
        result = self.framework.schedule(info, self.cache.snapshot)
        if result.node:
            self.cache.clear_nomination(key)
            self.cache.assume(info, result.node)
            self.queue.done(key)
            delayed = unbound_delayed_claims(info, self.cache.snapshot)
            if delayed:
                for pvc in delayed:
                    self.cache.snapshot.storage.assumed[volumes.claim_key(pvc)] = result.node
                self._spawn(self._prebind(qp, result.node, [volumes.claim_key(c) for c in delayed]))
            else:
                self._spawn(self._bind(qp, result.node))
            return True
        self.counters.unschedulable += 1
        message = result.message()
        nominated = ""
        if result.error is None and self._eligible_to_preempt(info):
            candidate = plan_preemption(self.framework, info, self.cache.snapshot, result)
            if candidate is not None:
                nominated = candidate.node
                self.counters.preemptions += 1
                info.nominated_node = candidate.node  # tried first next time, as kube-scheduler does
                self.cache.nominate(info, candidate.node)
                self._spawn(self._evict(info, candidate.node, candidate.victims))
        log.info("pod_unschedulable", pod=key, message=message, nominated=nominated or None,
                 duration_ms=round((time.perf_counter() - start) * 1000, 2))
        if result.error is not None:
            self.queue.retry(qp)
        else:
            self.queue.unschedulable(qp, result.rejecting_plugins())
        self.recorder.event(current, "Warning", "FailedScheduling", message)
        self._spawn(self._write_unschedulable(key, info.uid, message, nominated))
        return False

    def _eligible_to_preempt(self, info: PodInfo) -> bool:
        """Not while victims of an earlier preemption for this pod are still terminating (kube-scheduler's rule)."""
        if info.preemption_policy == "Never":
            return False
        nominated = self.cache.nominated_node(info.key) or info.nominated_node
        if nominated:
            for p in self.cache.pods_on(nominated):
                if p.terminating and p.priority < info.priority:
                    return False
        return True

    # ------------------------------------------------------------ side effects

    async def _bind(self, qp: QueuedPod, node: str) -> None:
        info = qp.info
        start = time.perf_counter()
        try:
            await self.binder.bind(info.namespace, info.name, node, uid=info.uid)
        except (ConflictError, NotFoundError) as e:
            # Bound by someone else, recreated, or deleted: the informer brings the truth.
            self.counters.bind_conflicts += 1
            self.cache.forget(info.key)
            log.info("bind_conflict", pod=info.key, node=node, error=e.message)
            self.queue.move(cache_events.POD_DELETED)
        except ApiError as e:
            self.counters.bind_errors += 1
            self.cache.forget(info.key)
            self.queue.retry(qp)
            self.queue.move(cache_events.POD_DELETED)
            log.warning("bind_failed", pod=info.key, node=node, error=e.message)
        else:
            self.counters.bound += 1
            log.debug("pod_bound", pod=info.key, node=node, duration_ms=round((time.perf_counter() - start) * 1000, 2))
            if self.config.record_scheduled_events:
                self.recorder.event(info.pod, "Normal", "Scheduled",
                                    f"Successfully assigned {info.namespace}/{info.name} to {node}")
        finally:
            self._binds.release()

    async def _prebind(self, qp: QueuedPod, node: str, claims: list[str]) -> None:
        """VolumeBinding's PreBind: write the chosen node on each unbound claim, wait until every one is bound
        (by the PV controller, after the provisioner made its volume there), then bind the pod."""
        info = qp.info
        try:
            for key in claims:
                ns, _, name = key.partition("/")

                def select(pvc: core_pb2.PersistentVolumeClaim) -> core_pb2.PersistentVolumeClaim | None:
                    current = pvc.metadata.annotations.get(volumes.SELECTED_NODE)
                    if pvc.spec.volume_name or current == node:
                        return None
                    if current:
                        raise ConflictError(f"claim {pvc.metadata.name} was given to node {current}")
                    new = core_pb2.PersistentVolumeClaim()
                    new.CopyFrom(pvc)
                    new.metadata.annotations[volumes.SELECTED_NODE] = node
                    return new

                await retry_on_conflict(lambda n=name, s=ns: self.client.get("persistentvolumeclaims", n, s),
                                        select, self.client.update, attempts=5, what=f"claim {key}")
            deadline = time.monotonic() + PREBIND_TIMEOUT
            while not all((c := self.claims.get(k)) is not None and c.spec.volume_name for k in claims):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"claims not bound within {PREBIND_TIMEOUT:.0f}s: {', '.join(claims)}")
                await asyncio.sleep(0.1)
        except (ApiError, TimeoutError) as e:
            message = e.message if isinstance(e, ApiError) else str(e)
            log.info("prebind_failed", pod=info.key, node=node, error=message)
            self.cache.forget(info.key)
            for key in claims:
                self.cache.snapshot.storage.assumed.pop(key, None)
            self.queue.retry(qp)
            self.recorder.event(info.pod, "Warning", "FailedScheduling", f"binding volumes: {message}")
            self._binds.release()
            return
        await self._bind(qp, node)

    def _storage_changed(self, obj: Message) -> None:
        if isinstance(obj, core_pb2.PersistentVolumeClaim) and obj.spec.volume_name:
            self.cache.snapshot.storage.assumed.pop(volumes.claim_key(obj), None)
        self.queue.move(STORAGE_CHANGED)

    async def _write_unschedulable(self, key: str, uid: str, message: str, nominated: str) -> None:
        ns, _, name = key.partition("/")

        def mark(pod: core_pb2.Pod | None) -> core_pb2.Pod | None:
            if pod is None or pod.metadata.uid != uid or pod.spec.node_name:
                return None  # gone, recreated or bound meanwhile
            return plan_unschedulable_status(pod, message, nominated)

        async with self._status_slots:
            try:
                await retry_on_conflict(cached_first(self.pods.get(key), lambda: self.client.get("pods", name, ns)),
                                        mark, self.client.update_status, attempts=3, what=f"pod {key}")
            except NotFoundError:
                return
            except ApiError as e:
                log.info("status_update_failed", pod=key, error=e.message)

    async def _evict(self, preemptor: PodInfo, node: str, victims: list[PodInfo]) -> None:
        async with self._status_slots:
            for v in victims:
                grace = v.pod.spec.termination_grace_period_seconds \
                    if v.pod.spec.HasField("termination_grace_period_seconds") else 30
                try:
                    await self.client.delete("pods", v.name, v.namespace, grace_period_seconds=grace, uid=v.uid)
                except (NotFoundError, ConflictError):
                    continue
                except ApiError as e:
                    log.warning("preemption_delete_failed", victim=v.key, error=e.message)
                    continue
                log.info("pod_preempted", victim=v.key, node=node, preemptor=preemptor.key)
                self.recorder.event(v.pod, "Normal", "Preempted",
                                    f"Preempted by pod {preemptor.uid} on node {node}")

    # ------------------------------------------------------------ informer handlers

    def _node_added(self, node: core_pb2.Node) -> None:
        for ev in self.cache.set_node(node):
            self.queue.move(ev)

    def _node_updated(self, old: core_pb2.Node, new: core_pb2.Node) -> None:
        self._node_added(new)

    def _node_deleted(self, node: core_pb2.Node) -> None:
        self.cache.remove_node(node.metadata.name)

    def _responsible(self, pod: core_pb2.Pod) -> bool:
        return pod.spec.scheduler_name == self.config.scheduler_name

    def _pod_added(self, pod: core_pb2.Pod) -> None:
        key = pod_key(pod)
        if pod.spec.node_name:
            self._assigned(pod, key)
            return
        if not self._responsible(pod) or is_terminal(pod) or pod.metadata.HasField("deletion_timestamp"):
            return
        if self.cache.is_assumed(key):
            return  # our bind is in flight; this event predates it
        info = PodInfo(pod)
        if info.nominated_node and not self.cache.nominated_node(key):
            self.cache.nominate(info, info.nominated_node)  # held for it by an earlier term or scheduler
        self.queue.add(info)

    def _pod_updated(self, old: core_pb2.Pod, new: core_pb2.Pod) -> None:
        key = pod_key(new)
        if new.spec.node_name:
            self._assigned(new, key)
            return
        if new.metadata.HasField("deletion_timestamp") or is_terminal(new):
            self.queue.delete(key)
            self.cache.clear_nomination(key)
            return
        if not self._responsible(new) or self.cache.is_assumed(key):
            return
        if key not in self.queue or _spec_or_labels_changed(old, new):
            self.queue.add(PodInfo(new))

    def _assigned(self, pod: core_pb2.Pod, key: str) -> None:
        self.queue.delete(key)
        self.cache.clear_nomination(key)
        ours = self.cache.is_assumed(key)
        freed = self.cache.set_pod(pod)
        if freed:
            self.queue.move(cache_events.POD_DELETED)
        elif not ours:
            self.queue.move(POD_ADDED)

    def _pod_deleted(self, pod: core_pb2.Pod) -> None:
        key = pod_key(pod)
        self.queue.delete(key)
        had_nomination = bool(self.cache.nominated_node(key))
        self.cache.clear_nomination(key)
        if self.cache.remove_pod(key) or had_nomination:
            self.queue.move(cache_events.POD_DELETED)


async def wait_leading(scheduler: Scheduler, timeout: float) -> Term:
    """The scheduler's current term once it leads and has synced (tests and benchmarks)."""
    async with asyncio.timeout(timeout):
        await scheduler.leading.wait()
    assert scheduler.term is not None
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            await scheduler.term.ready.wait()
    return scheduler.term
