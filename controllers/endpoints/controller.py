"""The Endpoints controller: Services and pods in, one Endpoints object per selecting Service out."""

from __future__ import annotations

from api import labels, pods
from api.errors import AlreadyExistsError, ApiError, ConflictError, NotFoundError
from api.pb import core_pb2
from client.api import Client
from client.informer import key_of
from controllers import podstate
from controllers.base import QueueController
from controllers.endpoints.plan import needs_update, render_endpoints
from controllers.events import Recorder
from controllers.informers import NAMESPACE, SharedInformers


def _serving_state(pod: core_pb2.Pod) -> tuple:
    return (pod.status.pod_ip, podstate.is_ready(pod), pods.is_terminating(pod), pod.status.phase,
            pod.spec.node_name, pod.spec.hostname, pod.spec.subdomain)


class EndpointsController(QueueController):
    name = "endpoint-controller"

    def __init__(self, client: Client, informers: SharedInformers, *, workers: int = 4) -> None:
        super().__init__()
        self.client = client
        self.workers = workers
        self.recorder = Recorder(client, self.name)
        self.services = informers.get("services")
        self.pods = informers.get("pods")
        self.endpoints = informers.get("endpoints")
        self.services.add_handlers(self.enqueue, lambda old, new: self.enqueue(new), self.enqueue)
        self.pods.add_handlers(self._pod_changed, self._pod_updated, self._pod_changed)
        self.endpoints.add_handlers(on_delete=self.enqueue)

    async def ready(self) -> None:
        for informer in (self.services, self.pods, self.endpoints):
            await informer.synced.wait()
        # Endpoints left behind by Services deleted while no controller ran.
        for ep in self.endpoints.list():
            if self.services.get(key_of(ep)) is None:
                self.enqueue(ep)

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

    # ------------------------------------------------------------ reconcile

    async def reconcile(self, key: str) -> None:
        svc = self.services.get(key)
        ns, _, name = key.rpartition("/")
        if svc is None:
            if self.endpoints.get(key) is None:
                return
            try:
                await self.client.delete("endpoints", name, ns)
                self.log.info("endpoints_deleted", key=key)
            except NotFoundError:
                pass
            return
        if not svc.spec.selector:
            return  # a Service without a selector: its Endpoints are the user's
        wanted = render_endpoints(svc, self.pods.by_index(NAMESPACE, ns))
        current = self.endpoints.get(key)
        try:
            if current is None:
                try:
                    await self.client.create(wanted)
                    self.log.info("endpoints_created", key=key, subsets=len(wanted.subsets))
                    return
                except AlreadyExistsError:
                    current = await self.client.get("endpoints", name, ns)
            if not needs_update(current, wanted):
                return
            update = core_pb2.Endpoints()
            update.CopyFrom(current)
            del update.subsets[:]
            update.subsets.extend(wanted.subsets)
            update.metadata.labels.clear()
            update.metadata.labels.update(wanted.metadata.labels)
            await self.client.update(update)  # compare-and-swap on the version read
            self.log.info("endpoints_updated", key=key, ready=sum(len(s.addresses) for s in wanted.subsets),
                          not_ready=sum(len(s.not_ready_addresses) for s in wanted.subsets))
        except ConflictError:
            raise
        except ApiError as e:
            self.recorder.warning(svc, "FailedToUpdateEndpoint", f"Failed to update endpoint {key}: {e.message}")
            raise
