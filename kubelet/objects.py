"""The API objects the kubelet's pods refer to: ConfigMaps, Secrets, claims and their volumes.

As the Kubernetes kubelet's watch-based manager: each object a pod names is
watched by itself (namespace plus `metadata.name=<name>`), never by listing a
whole kind, so a kubelet reads exactly the objects its pods reference (what a
node authorizer allows). A watch starts when the first pod refers to the
object and stops when the last one is gone. A change wakes the pods that
refer to it, which rewrite their volumes (live updates) or start containers
that were waiting for it.

A pod that mounts its ServiceAccount token (spec.automountServiceAccountToken, settled at admission) gets one
bound to it from the TokenRequest call, renewed once 80% of its lifetime has passed (pods are resynced every
few seconds, so the renewal comes well before it expires).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from api.errors import ApiError
from api.pb import api_pb2, core_pb2
from client.api import Client
from client.informer import Informer
from kubelet import volumes
from kubelet.envvars import PodObjects

log = structlog.get_logger(__name__)

# How long a pod's sync waits for a newly watched object's first list.
SYNC_TIMEOUT = 5.0

Ref = tuple[str, str, str]  # resource, namespace ("" for volumes), name
# A token is renewed once this much of its lifetime has passed, as Kubernetes' kubelet does.
TOKEN_RENEW_FRACTION = 0.8


@dataclass(frozen=True)
class _Token:
    token: str
    renew_at: datetime.datetime


def wants_token(pod: core_pb2.Pod) -> bool:
    """Whether the kubelet mounts the pod's ServiceAccount token."""
    return pod.spec.automount_service_account_token and bool(pod.spec.service_account_name)


@dataclass
class _Watch:
    informer: Informer[Any]
    task: asyncio.Task[None]
    pods: set[str] = field(default_factory=set)


class ObjectManager:
    """Watches, per referenced object, shared by the pods that refer to it. `wake(uid)` resyncs a pod."""

    def __init__(self, client: Client, tg: asyncio.TaskGroup, wake: Callable[[str], None]) -> None:
        self.client = client
        self.tg = tg
        self.wake = wake
        self._watches: dict[Ref, _Watch] = {}
        self._by_pod: dict[str, set[Ref]] = {}
        self._tokens: dict[str, _Token] = {}  # by pod uid
        # The cluster CA the kubelet trusts the apiserver by: what a pod's client needs to trust it too.
        config = client.config
        self._ca = config.ca_data or (Path(config.ca_file).read_bytes() if config.ca_file else b"")

    def _refs_of(self, pod: core_pb2.Pod) -> set[Ref]:
        ns = pod.metadata.namespace
        r = volumes.compute_refs(pod)
        out: set[Ref] = {("configmaps", ns, n) for n in r.config_maps}
        out |= {("secrets", ns, n) for n in r.secrets}
        out |= {("persistentvolumeclaims", ns, n) for n in r.claims}
        # The volumes the claims are bound to, as far as they are known.
        for name in r.claims:
            pvc = self._get(("persistentvolumeclaims", ns, name))
            if pvc is not None and pvc.spec.volume_name:
                out.add(("persistentvolumes", "", pvc.spec.volume_name))
        return out

    def track(self, pod: core_pb2.Pod) -> None:
        """Watch what the pod refers to now (and stop watching what it no longer does)."""
        uid = pod.metadata.uid
        wanted = self._refs_of(pod)
        had = self._by_pod.get(uid, set())
        for ref in wanted - had:
            w = self._watches.get(ref)
            if w is None:
                w = self._watches[ref] = self._start(ref)
            w.pods.add(uid)
        for ref in had - wanted:
            self._release(ref, uid)
        if wanted:
            self._by_pod[uid] = wanted
        else:
            self._by_pod.pop(uid, None)

    def forget(self, uid: str) -> None:
        self._tokens.pop(uid, None)
        for ref in self._by_pod.pop(uid, set()):
            self._release(ref, uid)

    def _release(self, ref: Ref, uid: str) -> None:
        w = self._watches.get(ref)
        if w is None:
            return
        w.pods.discard(uid)
        if not w.pods:
            w.task.cancel()
            del self._watches[ref]

    def _start(self, ref: Ref) -> _Watch:
        resource, ns, name = ref
        informer: Informer[Any] = Informer(self.client, resource, namespace=ns, field_selector=f"metadata.name={name}",
                                           name=f"{resource}/{ns}/{name}")
        watch = _Watch(informer, self.tg.create_task(self._run(informer)))
        changed = lambda *_: self._changed(ref)  # noqa: E731
        informer.add_handlers(changed, changed, changed)
        return watch

    async def _run(self, informer: Informer[Any]) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            await informer.run()

    def _changed(self, ref: Ref) -> None:
        w = self._watches.get(ref)
        if w is None:
            return
        for uid in list(w.pods):
            self.wake(uid)

    def _get(self, ref: Ref) -> Any:
        w = self._watches.get(ref)
        if w is None:
            return None
        items = w.informer.list()
        return items[0] if items else None

    async def resolve(self, pod: core_pb2.Pod) -> PodObjects:
        """What the pod refers to, as watched now (waiting briefly for watches that just started)."""
        self.track(pod)
        for _ in range(2):  # a claim's volume is watched once the claim is known
            pending = [w.informer for ref in self._by_pod.get(pod.metadata.uid, ()) if (w := self._watches.get(ref))
                       and not w.informer.synced.is_set()]
            for informer in pending:
                with contextlib.suppress(TimeoutError):
                    await informer.wait_synced(SYNC_TIMEOUT)
            self.track(pod)
        cms, secrets, claims, pvs = {}, {}, {}, {}
        for ref in self._by_pod.get(pod.metadata.uid, ()):
            obj = self._get(ref)
            if obj is None:
                continue
            resource, _, name = ref
            {"configmaps": cms, "secrets": secrets, "persistentvolumeclaims": claims,
             "persistentvolumes": pvs}[resource][name] = obj
        files, error = await self._service_account(pod)
        return PodObjects(config_maps=cms, secrets=secrets, claims=claims, volumes=pvs, service_account=files,
                          service_account_error=error)

    async def _service_account(self, pod: core_pb2.Pod) -> tuple[dict[str, bytes] | None, str]:
        """The pod's token files (a token asked for when there is none or it is due for renewal), or why not."""
        if not wants_token(pod):
            return None, ""
        uid = pod.metadata.uid
        now = datetime.datetime.now(datetime.UTC)
        held = self._tokens.get(uid)
        if held is None or now >= held.renew_at:
            try:
                resp = await self.client.create_token(api_pb2.TokenRequest(
                    namespace=pod.metadata.namespace, service_account=pod.spec.service_account_name,
                    pod_name=pod.metadata.name, pod_uid=uid))
            except ApiError as e:
                if held is None:
                    return None, f"service account token for {pod.spec.service_account_name}: {e.message}"
                log.warning("token_renewal_failed", pod=f"{pod.metadata.namespace}/{pod.metadata.name}",
                            error=e.message)
            else:
                expires = resp.expiration_timestamp.ToDatetime(tzinfo=datetime.UTC)
                held = self._tokens[uid] = _Token(resp.token, now + (expires - now) * TOKEN_RENEW_FRACTION)
        return {"token": held.token.encode(), "ca.crt": self._ca,
                "namespace": pod.metadata.namespace.encode()}, ""

    def watched(self) -> set[Ref]:
        return set(self._watches)
