"""The PV controller: binds claims to volumes, keeps their phases, reclaims volumes, lifts protection.

Keys are `claim:<ns>/<name>` and `volume:<name>` in one queue. Each
reconcile reads the informers, asks plan.py, and writes: a bind writes the
volume's claimRef first, then the claim's volumeName, then both statuses, so
a crash in between leaves a pre-bound volume that the next pass finishes.
"""

from __future__ import annotations

from typing import Any

from api import volumes
from api.errors import ConflictError, NotFoundError
from api.pb import core_pb2
from client.api import Client
from client.retry import cached_first, retry_on_conflict
from controllers.base import QueueController
from controllers.events import Recorder
from controllers.informers import NAMESPACE, SharedInformers
from controllers.volume import plan

CLAIM, VOLUME = "claim:", "volume:"


class PersistentVolumeController(QueueController):
    name = "persistentvolume-binder-controller"

    def __init__(self, client: Client, informers: SharedInformers, *, workers: int = 2) -> None:
        super().__init__()
        self.client = client
        self.workers = workers
        self.recorder = Recorder(client, self.name)
        self.claims = informers.get("persistentvolumeclaims")
        self.volumes = informers.get("persistentvolumes")
        self.classes = informers.get("storageclasses")
        self.pods = informers.get("pods")
        self.nodes = informers.get("nodes")
        self.claims.add_handlers(self._claim, lambda old, new: self._claim(new), self._claim)
        self.volumes.add_handlers(self._volume, lambda old, new: self._volume(new), self._volume)
        self.pods.add_handlers(self._pod, lambda old, new: self._pod(new), self._pod)
        self.classes.add_handlers(lambda sc: self._all_claims(), lambda old, new: self._all_claims())

    async def ready(self) -> None:
        for informer in (self.claims, self.volumes, self.classes, self.pods, self.nodes):
            await informer.synced.wait()

    # ------------------------------------------------------------ handlers (enqueue only)

    def _claim(self, pvc: core_pb2.PersistentVolumeClaim) -> None:
        self.enqueue_key(CLAIM + volumes.claim_key(pvc))
        if pvc.spec.volume_name:
            self.enqueue_key(VOLUME + pvc.spec.volume_name)
        for pv in self.volumes.list():
            if volumes.bound_to(pv) == volumes.claim_key(pvc):
                self.enqueue_key(VOLUME + pv.metadata.name)

    def _volume(self, pv: core_pb2.PersistentVolume) -> None:
        self.enqueue_key(VOLUME + pv.metadata.name)
        if pv.spec.claim_ref.name:
            self.enqueue_key(CLAIM + volumes.bound_to(pv))
        else:
            # A volume that became free may serve a pending claim.
            for pvc in self.claims.list():
                if not pvc.spec.volume_name:
                    self.enqueue_key(CLAIM + volumes.claim_key(pvc))

    def _pod(self, pod: core_pb2.Pod) -> None:
        for v in pod.spec.volumes:
            if v.HasField("persistent_volume_claim"):
                self.enqueue_key(f"{CLAIM}{pod.metadata.namespace}/{v.persistent_volume_claim.claim_name}")

    def _all_claims(self) -> None:
        for pvc in self.claims.list():
            self.enqueue(pvc)
            self._claim(pvc)

    # ------------------------------------------------------------ reconcile

    async def reconcile(self, key: str) -> None:
        if key.startswith(CLAIM):
            await self._sync_claim(key[len(CLAIM):])
        elif key.startswith(VOLUME):
            await self._sync_volume(key[len(VOLUME):])

    async def _sync_claim(self, key: str) -> None:
        pvc: core_pb2.PersistentVolumeClaim | None = self.claims.get(key)
        if pvc is None:
            return
        ns = pvc.metadata.namespace
        users = [p for p in self.pods.by_index(NAMESPACE, ns) if plan.pod_uses_claim(p, pvc.metadata.name)]
        classes = {sc.metadata.name: sc for sc in self.classes.list()}
        node_labels = {n.metadata.name: dict(n.metadata.labels) for n in self.nodes.list()}
        act = plan.plan_claim(pvc, self.volumes.list(), classes, users, node_labels)
        if act.event is not None and act.event[1] != "WaitForFirstConsumer":
            self.recorder.event(pvc, *act.event)
        if act.remove_finalizer:
            await self._drop_finalizer("persistentvolumeclaims", pvc, volumes.PVC_PROTECTION)
            return
        if act.bind_to:
            await self._bind(pvc, act.bind_to)
            return
        if act.provision:
            await self._update(pvc, lambda c: _annotate(c, volumes.STORAGE_PROVISIONER, plan.LOCAL_PATH))
        if act.phase:
            await self._set_phase(pvc, act.phase)

    async def _bind(self, pvc: core_pb2.PersistentVolumeClaim, volume: str) -> None:
        pv: core_pb2.PersistentVolume | None = self.volumes.get(volume)
        if pv is None:
            return
        # 1. the volume's claimRef (with the claim's uid), 2. its phase
        if pv.spec.claim_ref.uid != pvc.metadata.uid:
            pv = await self._update(pv, lambda v: plan.claimed_volume(v, pvc) if v.spec.claim_ref.uid !=
                                    pvc.metadata.uid else None)
            if pv is None:
                return
        if pv.status.phase != "Bound":
            await self._status(pv, lambda v: _phase(v, "Bound"))
        # 3. the claim's volumeName, 4. its phase, capacity and access modes
        if pvc.spec.volume_name != volume:
            written = await self._update(pvc, lambda c: plan.bound_claim(c, pv) if not c.spec.volume_name else None)
            if written is None:
                return
            pvc = written
        if pvc.status.phase != "Bound":
            await self._status(pvc, lambda c: plan.bound_claim_status(c, pv) if c.status.phase != "Bound" else None)
            self.recorder.normal(pvc, "Bound", f"Bound to volume {volume}")

    async def _sync_volume(self, name: str) -> None:
        pv: core_pb2.PersistentVolume | None = self.volumes.get(name)
        if pv is None:
            return
        ref = pv.spec.claim_ref
        claim = self.claims.get(f"{ref.namespace}/{ref.name}") if ref.name else None
        act = plan.plan_volume(pv, claim)
        for event in act.events:
            self.recorder.event(pv, *event)
        if act.remove_finalizer:
            await self._drop_finalizer("persistentvolumes", pv, volumes.PV_PROTECTION)
            return
        if act.phase:
            await self._status(pv, lambda v: _phase(v, act.phase, act.message))
        if act.delete:
            try:
                await self.client.delete("persistentvolumes", name, uid=pv.metadata.uid)
            except (NotFoundError, ConflictError):
                return
            self.log.info("volume_deleted", volume=name, claim=f"{ref.namespace}/{ref.name}")

    # ------------------------------------------------------------ writes

    async def _update(self, obj: Any, mutate: Any) -> Any:
        kind = "persistentvolumeclaims" if isinstance(obj, core_pb2.PersistentVolumeClaim) else "persistentvolumes"
        meta = obj.metadata
        try:
            return await retry_on_conflict(cached_first(obj, lambda: self.client.get(kind, meta.name, meta.namespace)),
                                           mutate, self.client.update, what=f"{kind} {meta.name}")
        except NotFoundError:
            return None

    async def _status(self, obj: Any, mutate: Any) -> Any:
        kind = "persistentvolumeclaims" if isinstance(obj, core_pb2.PersistentVolumeClaim) else "persistentvolumes"
        meta = obj.metadata
        try:
            return await retry_on_conflict(cached_first(obj, lambda: self.client.get(kind, meta.name, meta.namespace)),
                                           mutate, self.client.update_status, what=f"{kind} {meta.name}")
        except NotFoundError:
            return None

    async def _set_phase(self, pvc: core_pb2.PersistentVolumeClaim, phase: str) -> None:
        await self._status(pvc, lambda c: _phase(c, phase))

    async def _drop_finalizer(self, kind: str, obj: Any, finalizer: str) -> None:
        def drop(current: Any) -> Any:
            if finalizer not in current.metadata.finalizers:
                return None
            new = type(current)()
            new.CopyFrom(current)
            new.metadata.finalizers.remove(finalizer)
            return new

        await self._update(obj, drop)
        self.log.info("finalizer_removed", kind=kind, name=obj.metadata.name, finalizer=finalizer)


def _phase(obj: Any, phase: str, message: str = "") -> Any:
    """The object with its status phase (and, for a volume, message) set; None if already so."""
    has_message = "message" in obj.status.DESCRIPTOR.fields_by_name
    if obj.status.phase == phase and (not has_message or obj.status.message == message):
        return None
    new = type(obj)()
    new.CopyFrom(obj)
    new.status.phase = phase
    if has_message:
        new.status.message = message
    return new


def _annotate(obj: Any, key: str, value: str) -> Any:
    if obj.metadata.annotations.get(key) == value:
        return None
    new = type(obj)()
    new.CopyFrom(obj)
    new.metadata.annotations[key] = value
    return new
