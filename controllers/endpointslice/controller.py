"""The EndpointSlice controller: a Service's endpoints in slices of at most 100, beside its Endpoints.

For a Service with a selector the slices come from its pods (Kubernetes'
endpoint-slice controller); for one without, from the Endpoints a user or a
daemon wrote (Kubernetes' endpoint-slice mirroring controller), so the proxy,
which reads only slices, serves both. Slices another party manages (no
managed-by label of ours) are left alone.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from api import labels
from api.errors import ApiError, ConflictError, NotFoundError
from api.pb import core_pb2, discovery_pb2
from client.api import Client
from client.informer import key_of
from controllers.base import QueueController
from controllers.endpointslice.plan import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    MIRRORED_BY,
    SERVICE_NAME_LABEL,
    desired_from_endpoints,
    desired_from_pods,
    plan_slices,
    slice_labels,
)
from controllers.events import Recorder
from controllers.informers import NAMESPACE, SharedInformers
from controllers.owners import make_controller_ref

SERVICE = "service"  # slices by "namespace/service"
# How long to wait for the informer to show this controller's own writes before acting on what it shows.
CATCH_UP_TTL = 10.0


def _service_of(es: discovery_pb2.EndpointSlice) -> Iterable[str]:
    name = es.metadata.labels.get(SERVICE_NAME_LABEL)
    return (f"{es.metadata.namespace}/{name}",) if name else ()


def _serving_state(pod: core_pb2.Pod) -> tuple:
    return (pod.status.pod_ip, pod.status.phase, pod.metadata.HasField("deletion_timestamp"), pod.spec.node_name,
            pod.spec.hostname, pod.spec.subdomain, tuple((c.type, c.status) for c in pod.status.conditions))


class EndpointSliceController(QueueController):
    name = "endpointslice-controller"

    def __init__(self, client: Client, informers: SharedInformers, *, workers: int = 4,
                 max_endpoints: int = 100) -> None:
        super().__init__()
        self.client = client
        self.workers = workers
        self.max_endpoints = max_endpoints
        self.recorder = Recorder(client, self.name)
        self.services = informers.get("services")
        self.pods = informers.get("pods")
        self.endpoints = informers.get("endpoints")
        self.slices = informers.get("endpointslices")
        self.slices.add_index(SERVICE, _service_of)
        self.services.add_handlers(self.enqueue, lambda old, new: self.enqueue(new), self.enqueue)
        self.pods.add_handlers(self._pod_changed, self._pod_updated, self._pod_changed)
        self.endpoints.add_handlers(self.enqueue, lambda old, new: self.enqueue(new), self.enqueue)
        self.slices.add_handlers(self._slice_changed, lambda old, new: self._slice_changed(new), self._slice_changed)
        # Service key -> {slice name: resourceVersion written, or "" if deleted}: writes the cache must show first.
        self._written: dict[str, tuple[float, dict[str, str]]] = {}

    async def ready(self) -> None:
        for informer in (self.services, self.pods, self.endpoints, self.slices):
            await informer.synced.wait()

    # ------------------------------------------------------------ handlers (enqueue only)

    def _services_for(self, pod: core_pb2.Pod) -> list[core_pb2.Service]:
        return [s for s in self.services.by_index(NAMESPACE, pod.metadata.namespace)
                if s.spec.selector and labels.from_map(s.spec.selector).matches(pod.metadata.labels)]

    def _pod_changed(self, pod: core_pb2.Pod) -> None:
        for svc in self._services_for(pod):
            self.enqueue(svc)

    def _pod_updated(self, old: core_pb2.Pod, new: core_pb2.Pod) -> None:
        if old.metadata.labels != new.metadata.labels:
            for svc in {key_of(s): s for s in [*self._services_for(old), *self._services_for(new)]}.values():
                self.enqueue(svc)
        elif _serving_state(old) != _serving_state(new) or old.spec.containers != new.spec.containers:
            self._pod_changed(new)

    def _slice_changed(self, es: discovery_pb2.EndpointSlice) -> None:
        if es.metadata.labels.get(MANAGED_BY_LABEL) in (MANAGED_BY, MIRRORED_BY):
            for key in _service_of(es):
                self.enqueue_key(key)

    # ------------------------------------------------------------ reconcile

    def _caught_up(self, key: str) -> bool:
        """Whether the slice cache shows this controller's last writes for `key` (or waited long enough)."""
        entry = self._written.get(key)
        if entry is None:
            return True
        since, written = entry
        ns = key.rpartition("/")[0]
        for name, rv in written.items():
            current = self.slices.get_named(ns, name)
            seen = current is None if not rv else current is not None and \
                int(current.metadata.resource_version or 0) >= int(rv)
            if not seen and time.monotonic() - since < CATCH_UP_TTL:
                return False
        del self._written[key]
        return True

    async def reconcile(self, key: str) -> None:
        if not self._caught_up(key):
            self.enqueue_after(key, 0.05)
            return
        ns, _, name = key.rpartition("/")
        svc: core_pb2.Service | None = self.services.get(key)
        mine = [es for es in self.slices.by_index(SERVICE, key)
                if es.metadata.labels.get(MANAGED_BY_LABEL) in (MANAGED_BY, MIRRORED_BY)]
        if svc is None or svc.spec.type == "ExternalName":
            await self._apply(key, [], [], mine)
            return
        if svc.spec.selector:
            selector = labels.from_map(svc.spec.selector)
            pods = [p for p in self.pods.by_index(NAMESPACE, ns) if selector.matches(p.metadata.labels)]
            desired, managed_by, owner_obj = desired_from_pods(svc, pods), MANAGED_BY, svc
        else:
            ep = self.endpoints.get(key)
            if ep is None:
                await self._apply(key, [], [], mine)
                return
            desired, managed_by, owner_obj = desired_from_endpoints(ep), MIRRORED_BY, ep
        # Slices of the other manager (a Service that gained or lost its selector) go.
        stale = [es for es in mine if es.metadata.labels.get(MANAGED_BY_LABEL) != managed_by]
        current = [es for es in mine if es.metadata.labels.get(MANAGED_BY_LABEL) == managed_by]
        wanted_labels = slice_labels(name, svc.metadata.labels, headless=svc.spec.cluster_ip == "None",
                                     managed_by=managed_by)
        plan = plan_slices(ns, name, desired, current, labels=wanted_labels, owner=make_controller_ref(owner_obj),
                           max_endpoints=self.max_endpoints)
        try:
            await self._apply(key, plan.create, plan.update, [*plan.delete, *stale])
        except ConflictError:
            raise
        except ApiError as e:
            self.recorder.warning(svc, "FailedToUpdateEndpointSlices",
                                  f"Error updating Endpoint Slices for Service {key}: {e.message}")
            raise

    async def _apply(self, key: str, create: list[discovery_pb2.EndpointSlice],
                     update: list[discovery_pb2.EndpointSlice], delete: list[discovery_pb2.EndpointSlice]) -> None:
        if not (create or update or delete):
            return
        written: dict[str, str] = {}
        try:
            for es in delete:
                try:
                    await self.client.delete("endpointslices", es.metadata.name, es.metadata.namespace)
                except NotFoundError:
                    pass
                written[es.metadata.name] = ""
            for es in update:
                done = await self.client.update(es)  # compare-and-swap on the version read
                written[done.metadata.name] = done.metadata.resource_version
            for es in create:
                done = await self.client.create(es)
                written[done.metadata.name] = done.metadata.resource_version
        finally:
            if written:
                self._written[key] = (time.monotonic(), written)
        self.log.info("endpointslices_synced", key=key, created=len(create), updated=len(update),
                      deleted=len(delete))
