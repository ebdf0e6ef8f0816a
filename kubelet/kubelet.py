"""The kubelet: runs the pods bound to its node through a container runtime.

Wiring, as the Kubernetes kubelet's: an informer on the node's pods
(spec.nodeName=<node>) feeds the pod workers; each worker syncs its pod
(`sync.Syncer`) and hands the status it computes (`podstatus`) to the status
manager, which streams it to the apiserver. A relist of the runtime every
`pleg_period` (the PLEG) wakes the workers of pods whose containers changed;
the probe manager wakes them when a probe result changes. Housekeeping
removes whatever the runtime runs for pods the API no longer has (after a
restart, or a partition that healed while their controllers replaced them).
A pod's life here:

- running: `sync_pod` until its phase is Succeeded or Failed;
- finished: stopped, its status final, kept until deleted;
- deleted (deletionTimestamp): stopped with its grace period, final status
  acknowledged, then removed from the API (grace 0, uid precondition) and
  from the runtime;
- gone from the API: stopped and removed from the runtime.

A restarted kubelet adopts what runs: containers are found by their CRI
labels, so nothing restarts and restart counts continue.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Awaitable, Callable, Iterable

import structlog

from api.errors import ApiError, ConflictError, NotFoundError
from api.pb import core_pb2
from api.pods import phase_is_terminal
from client import tls
from client.api import Client
from client.events import EventRecorder
from client.informer import Informer
from kubelet import identity, podstatus
from kubelet.certificates import CertificateManager
from kubelet.config import KubeletConfig
from kubelet.localpath import LocalPathVolumes
from kubelet.node import MachineInfo, NodeAgent, machine_info
from kubelet.objects import ObjectManager
from kubelet.observed import ObservedPod, observe_pod
from kubelet.podworkers import DONE, WAIT, PodWork, PodWorkers
from kubelet.probes import Dialer, Kind, ProbeManager, Prober
from kubelet.runtime.interface import ContainerRuntimeError, Runtime, RuntimeVersion
from kubelet.server import KubeletServer, KubeletServicer
from kubelet.status import StatusManager
from kubelet.sync import Syncer

log = structlog.get_logger(__name__)

FINAL_STATUS_TIMEOUT = 10.0
SERVICES_SYNC_TIMEOUT = 5.0


class Kubelet:
    """One node's kubelet. `run()` runs until cancelled.

    services: an informer on Services to share (hollow nodes share one);
    by default the kubelet runs its own.
    """

    def __init__(self, config: KubeletConfig, client: Client, runtime: Runtime, *,
                 services: Informer[core_pb2.Service] | None = None, machine: MachineInfo | None = None) -> None:
        self.config = config
        self.client = client
        self.runtime = runtime
        self.machine = machine or machine_info()
        self.pods: Informer[core_pb2.Pod] = Informer(client, "pods", field_selector=f"spec.nodeName={config.node_name}",
                                                     name=f"pods@{config.node_name}")
        self._own_services = services is None
        self.services: Informer[core_pb2.Service] = services or Informer(client, "services", name="services")
        self.status = StatusManager(client, node=config.node_name)
        self.recorder = EventRecorder(client, "kubelet", host=config.node_name) if config.events else None
        self.syncer = Syncer(runtime, config, services=self._services, record=self._record)
        self.version = RuntimeVersion("unknown", "", "")
        self.runtime_name = "unknown"
        self.node: NodeAgent | None = None
        self.workers: PodWorkers | None = None
        self.objects: ObjectManager | None = None
        self.probes: ProbeManager | None = None
        self.server: KubeletServer | None = None
        self.started = asyncio.Event()
        self.relists = 0
        self._runtime_pods: dict[str, tuple[str, str, int]] = {}  # uid -> (namespace, name, grace)
        self._cleaning: set[str] = set()
        self._log = log.bind(node=config.node_name)

    # ------------------------------------------------------------ running

    async def run(self) -> None:
        self.version = await self._runtime_version()
        self.runtime_name = self.version.runtime_name or "runtime"
        dialer = Dialer(self.config.probe_netns)
        try:
            if self.config.listen:
                self.server = self._server()
                port = await self.server.start()
                host = self.config.listen.rsplit(":", 1)[0]
                self.config = dataclasses.replace(self.config, listen=f"{host}:{port}")
            self.node = NodeAgent(self.client, self.config, self.runtime, self.machine, self.version)
            async with asyncio.TaskGroup() as tg:
                self.workers = PodWorkers(tg, self._sync_work)
                self.objects = ObjectManager(self.client, tg, self.workers.wake)
                self.probes = ProbeManager(Prober(self.runtime, dialer), tg, on_change=self.workers.wake,
                                           on_failure=self._probe_failed, host_ip=self.config.node_ip)
                self.pods.add_handlers(self._on_add, self._on_update, self._on_delete)
                loops = {"node": self.node.run, "status": self.status.run, "pods": self.pods.run,
                         "pleg": self._pleg, "housekeeping": lambda: self._housekeeping(tg)}
                if self._own_services:
                    loops["services"] = self.services.run
                if not self.config.hollow:
                    loops["local-path"] = LocalPathVolumes(self.client, self.config.node_name,
                                                           self.config.local_path_root).run
                if self.recorder is not None:
                    loops["events"] = self.recorder.run
                if self.config.rotate:
                    loops["certificates"] = CertificateManager(self.client, self.config.node_name,
                                                               [self.config.node_ip], self.config.rotate).run
                for name, loop in loops.items():
                    tg.create_task(self._supervised(name, loop))
                if self.server is not None:
                    tg.create_task(self.server.run())
                self._log.info("kubelet_started", runtime=f"{self.version.runtime_name}/{self.version.runtime_version}",
                               listen=self.config.listen)
                self.started.set()
        finally:
            dialer.close()
            if self.server is not None:
                await self.server.stop()

    def _server(self) -> KubeletServer:
        c = self.config
        if c.insecure_plaintext:
            return KubeletServer(KubeletServicer(self.runtime, self.pods.get_named, authorized=None), c.listen)
        credentials = tls.ServerCredentials(c.serving_cert_file, c.serving_key_file, client_ca_file=c.client_ca_file)
        return KubeletServer(KubeletServicer(self.runtime, self.pods.get_named), c.listen, credentials)

    async def _supervised(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        """Run one of the kubelet's loops; a bug that escapes it is logged and the loop restarted,
        so one failing part does not take the node's pods down with it."""
        delay = 1.0
        while True:
            try:
                await loop()
                return
            except Exception as exc:
                self._log.error("loop_failed", loop=name, error=repr(exc), exc_info=True, retry_in=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)

    async def _runtime_version(self) -> RuntimeVersion:
        """The runtime's version, waiting for the runtime to answer."""
        delay = 0.2
        while True:
            try:
                async with asyncio.timeout(10):
                    return await self.runtime.version()
            except (ContainerRuntimeError, TimeoutError) as exc:
                self._log.info("runtime_unavailable", error=str(exc) or type(exc).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    # ------------------------------------------------------------ informer handlers

    def _on_add(self, pod: core_pb2.Pod) -> None:
        assert self.workers is not None
        created = pod.metadata.creation_timestamp.ToNanoseconds()
        self._log.debug("pod_added", pod=f"{pod.metadata.namespace}/{pod.metadata.name}",
                        age_ms=round((time.time_ns() - created) / 1e6, 1) if created else None)
        if self.objects is not None:
            self.objects.track(pod)
        self.workers.update(pod)

    def _on_update(self, old: core_pb2.Pod, new: core_pb2.Pod) -> None:
        assert self.workers is not None
        if self.objects is not None:
            if old.metadata.uid != new.metadata.uid:
                self.objects.forget(old.metadata.uid)
            self.objects.track(new)
        if old.metadata.uid != new.metadata.uid:
            self.workers.gone(old)
            self.workers.update(new)
            return
        # A status-only change (usually this kubelet's own write) needs no sync, as in Kubernetes'
        # pod config; the status manager resends if someone else changed what the kubelet owns.
        self.workers.update(new, wake=needs_sync(old, new))
        self.status.api_changed(new)

    def _on_delete(self, pod: core_pb2.Pod) -> None:
        assert self.workers is not None
        if self.objects is not None:
            self.objects.forget(pod.metadata.uid)
        self.workers.gone(pod)

    def _services(self) -> Iterable[core_pb2.Service]:
        return self.services.list()

    def _record(self, pod: core_pb2.Pod, type_: str, reason: str, message: str) -> None:
        if self.recorder is not None:
            self.recorder.event(pod, type_, reason, message)

    def _probe_failed(self, pod: core_pb2.Pod, kind: Kind, message: str) -> None:
        self._record(pod, "Warning", "Unhealthy", message)

    # ------------------------------------------------------------ one pod

    async def _sync_work(self, work: PodWork) -> float | None:
        pod = work.pod
        if work.gone:
            await self._remove_gone(work)
            return DONE
        if pod.metadata.HasField("deletion_timestamp"):
            return await self._terminate(work)
        observed = await observe_pod(self.runtime, work.uid)
        if self._finished(pod):
            return await self._sync_finished(pod, observed)
        return await self._sync_running(pod, observed)

    def _finished(self, pod: core_pb2.Pod) -> bool:
        own = self.status.latest(pod.metadata.uid)
        return phase_is_terminal(pod.status) or (own is not None and phase_is_terminal(own))

    def _compute_status(self, pod: core_pb2.Pod, observed: ObservedPod, *, terminal: bool = False
                        ) -> core_pb2.PodStatus:
        assert self.probes is not None
        uid = pod.metadata.uid
        results = self.probes.results(uid)
        return podstatus.compute_pod_status(
            pod, observed, runtime=self.runtime_name, host_ip=self.config.node_ip, now=time.time(),
            waiting=self.syncer.waiting(uid), probed=podstatus.Probed(results.ready, results.started),
            terminal=terminal, own=self.status.latest(uid),
        )

    async def _sync_running(self, pod: core_pb2.Pod, observed: ObservedPod) -> float | None:
        assert self.probes is not None
        uid = pod.metadata.uid
        if not self.services.synced.is_set():
            await self.services.wait_synced(SERVICES_SYNC_TIMEOUT)
        objects = await self.objects.resolve(pod) if self.objects is not None else None
        result = await self.syncer.sync_pod(pod, observed, unhealthy=self.probes.results(uid).unhealthy,
                                            objects=objects)
        if result.changed:
            observed = await observe_pod(self.runtime, uid)
        self.probes.sync(pod, observed)
        status = self._compute_status(pod, observed)
        self.status.set(pod, status)
        if phase_is_terminal(status):
            # Finished: the next pass stops what is left and keeps the status final.
            return 0.0
        delay = self.config.resync_period
        if result.requeue_after is not None:
            delay = min(delay, max(result.requeue_after, 0.05))
        return delay

    async def _sync_finished(self, pod: core_pb2.Pod, observed: ObservedPod) -> float | None:
        """A pod that ran to completion: nothing may run; its status stays final."""
        assert self.probes is not None
        if observed.active:
            await self.syncer.kill_pod(observed, identity.grace_period(pod), pod=pod)
            observed = await observe_pod(self.runtime, pod.metadata.uid)
        self.probes.remove_pod(pod.metadata.uid)
        self.status.set(pod, self._compute_status(pod, observed, terminal=True))
        return WAIT

    async def _terminate(self, work: PodWork) -> float | None:
        """A deleted pod: stop it with its grace period, report its final status, remove it."""
        assert self.probes is not None
        pod, uid = work.pod, work.uid
        grace = identity.kill_grace(pod, time.time())
        self.probes.remove_pod(uid)
        observed = await observe_pod(self.runtime, uid)
        if observed.active:
            self._log.info("pod_stopping", pod=work.key, grace=grace)
            await self.syncer.kill_pod(observed, grace, pod=pod)
            observed = await observe_pod(self.runtime, uid)
        self.status.set(pod, self._compute_status(pod, observed, terminal=True))
        if not await self.status.wait_acked(uid, FINAL_STATUS_TIMEOUT) and self.status.latest(uid) is not None:
            self._log.info("final_status_unacknowledged", pod=work.key)
        try:
            async with asyncio.timeout(30):
                await self.client.delete("pods", pod.metadata.name, pod.metadata.namespace, grace_period_seconds=0,
                                         uid=uid)
            self._log.info("pod_deleted", pod=work.key, uid=uid)
        except (NotFoundError, ConflictError):
            pass  # already gone, or the name now belongs to another pod
        except (ApiError, TimeoutError) as exc:
            self._log.info("pod_delete_failed", pod=work.key, error=str(exc) or type(exc).__name__)
            return 1.0
        await self.syncer.remove_pod(uid, pod.metadata.namespace, pod.metadata.name, observed)
        self.status.forget(uid)
        return DONE

    async def _remove_gone(self, work: PodWork) -> None:
        """The API no longer has the pod: stop and remove it here."""
        assert self.probes is not None
        pod, uid = work.pod, work.uid
        self.probes.remove_pod(uid)
        observed = await observe_pod(self.runtime, uid)
        if observed.active:
            self._log.info("pod_stopping", pod=work.key, reason="removed from the API")
            await self.syncer.kill_pod(observed, identity.kill_grace(pod, time.time()), pod=None)
            observed = await observe_pod(self.runtime, uid)
        await self.syncer.remove_pod(uid, pod.metadata.namespace, pod.metadata.name, observed)
        self.status.forget(uid)
        self._log.info("pod_removed", pod=work.key, uid=uid)

    # ------------------------------------------------------------ PLEG and housekeeping

    async def _pleg(self) -> None:
        """Relist the runtime; wake the workers of pods whose sandboxes or containers changed."""
        assert self.workers is not None
        last: dict[str, frozenset[tuple[str, str]]] = {}
        failing = False
        while True:
            await asyncio.sleep(self.config.pleg_period)
            try:
                async with asyncio.timeout(10):
                    sandboxes, containers = await asyncio.gather(self.runtime.list_pod_sandboxes(),
                                                                 self.runtime.list_containers())
            except (ContainerRuntimeError, TimeoutError) as exc:
                if not failing:
                    self._log.warning("relist_failed", error=str(exc) or type(exc).__name__)
                failing = True
                continue
            if failing:
                self._log.info("relist_recovered")
                failing = False
            self.relists += 1
            current: dict[str, set[tuple[str, str]]] = {}
            owners: dict[str, tuple[str, str, int]] = {}
            for s in sandboxes:
                uid = s.labels.get(identity.POD_UID)
                if not uid or s.labels.get(identity.NODE, self.config.node_name) != self.config.node_name:
                    continue
                current.setdefault(uid, set()).add((s.id, s.state.value))
                grace = s.annotations.get(identity.GRACE_PERIOD, "")
                owners[uid] = (s.namespace, s.name, int(grace) if grace.isdigit() else identity.DEFAULT_GRACE)
            for c in containers:
                uid = c.labels.get(identity.POD_UID)
                if uid and uid in current:
                    current[uid].add((c.id, c.state.value))
            frozen = {uid: frozenset(v) for uid, v in current.items()}
            for uid in frozen.keys() | last.keys():
                if frozen.get(uid) != last.get(uid):
                    self.workers.wake(uid)
            last = frozen
            self._runtime_pods = owners

    async def _housekeeping(self, tg: asyncio.TaskGroup) -> None:
        """Remove what runs for pods the API does not have; drop state of pods long gone."""
        assert self.workers is not None
        await self.pods.synced.wait()
        while True:
            await asyncio.sleep(self.config.housekeeping_period)
            if self.relists == 0:
                continue
            active = self.workers.uids()
            for uid, (namespace, name, grace) in list(self._runtime_pods.items()):
                if uid in active or uid in self._cleaning:
                    continue
                self._cleaning.add(uid)
                tg.create_task(self._remove_orphan(uid, namespace, name, grace))
            for uid in self.status.uids() - active:
                self.status.forget(uid)
            self.syncer.backoff.gc(time.time())
            self.syncer.pull_backoff.gc(time.time())

    async def _remove_orphan(self, uid: str, namespace: str, name: str, grace: int) -> None:
        try:
            observed = await observe_pod(self.runtime, uid)
            if not observed.sandboxes and not observed.containers:
                return
            self._log.info("orphan_pod_removing", pod=f"{namespace}/{name}", uid=uid)
            await self.syncer.kill_pod(observed, grace)
            observed = await observe_pod(self.runtime, uid)
            await self.syncer.remove_pod(uid, namespace, name, observed)
        except (ContainerRuntimeError, OSError) as exc:
            self._log.warning("orphan_pod_remove_failed", pod=f"{namespace}/{name}", uid=uid, error=str(exc))
        finally:
            self._runtime_pods.pop(uid, None)
            self._cleaning.discard(uid)


def needs_sync(old: core_pb2.Pod, new: core_pb2.Pod) -> bool:
    """Whether an update changed what the kubelet acts on: spec, labels, annotations, deletion."""
    a, b = old.metadata, new.metadata
    return (old.spec != new.spec or a.labels != b.labels or a.annotations != b.annotations
            or a.deletion_timestamp != b.deletion_timestamp
            or a.deletion_grace_period_seconds != b.deletion_grace_period_seconds)


@contextlib.asynccontextmanager
async def running(kubelet: Kubelet, *, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    """Run a kubelet in a task for the duration of a block (tests, hollow nodes, benchmarks)."""
    task = asyncio.ensure_future(kubelet.run())
    try:
        async with asyncio.timeout(timeout):
            waiter = asyncio.ensure_future(kubelet.started.wait())
            done, _ = await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
            if task in done:
                waiter.cancel()
                task.result()
        yield kubelet
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
