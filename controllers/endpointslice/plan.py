"""Pure planning of a Service's EndpointSlices, as Kubernetes' endpoint-slice controllers do it.

`desired_from_pods` turns the pods a Service selects into endpoints with their
conditions (terminating pods stay, not ready, so proxies can finish their
connections); `desired_from_endpoints` mirrors the Endpoints a user wrote for a
Service without a selector. `plan_slices` then packs the endpoints into slices
of at most 100, changing as few slices as it can: an endpoint stays in the
slice it is in, new ones fill slices that are written anyway, then slices with
room, then new slices; a slice left empty is deleted, except that a Service
with no endpoints keeps one empty slice (Kubernetes' placeholder).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from api.pb import core_pb2, discovery_pb2, meta_pb2
from controllers import podstate
from controllers.endpoints.plan import PortNotFoundError, find_port, should_include

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY = "endpointslice-controller.k8s.io"
MIRRORED_BY = "endpointslicemirroring-controller.k8s.io"
HEADLESS_LABEL = "service.kubernetes.io/headless"
MAX_ENDPOINTS = 100

# A slice's ports, as a sortable key: (name, port, protocol, appProtocol) each.
PortKey = tuple[tuple[str, int, str, str], ...]


@dataclass
class SlicePlan:
    create: list[discovery_pb2.EndpointSlice] = field(default_factory=list)
    update: list[discovery_pb2.EndpointSlice] = field(default_factory=list)
    delete: list[discovery_pb2.EndpointSlice] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.create or self.update or self.delete)


def _endpoint_key(ep: discovery_pb2.SliceEndpoint) -> tuple[str, str]:
    return (ep.addresses[0] if ep.addresses else "", ep.target_ref.uid)


def desired_from_pods(svc: core_pb2.Service,
                      pods: Iterable[core_pb2.Pod]) -> dict[PortKey, list[discovery_pb2.SliceEndpoint]]:
    """The endpoints of a selecting Service, grouped by the ports they offer (named ports may differ per pod)."""
    out: dict[PortKey, list[discovery_pb2.SliceEndpoint]] = {}
    for pod in pods:
        if not should_include(pod, include_terminating=True):
            continue
        ports: list[tuple[str, int, str, str]] = []
        for sp in svc.spec.ports:
            try:
                ports.append((sp.name, find_port(pod, sp), sp.protocol or "TCP", sp.app_protocol))
            except PortNotFoundError:
                continue
        if svc.spec.ports and not ports:
            continue
        serving = podstate.is_ready(pod)
        terminating = pod.metadata.HasField("deletion_timestamp")
        # A terminating endpoint is never "ready", unless the Service publishes not-ready addresses.
        ready = svc.spec.publish_not_ready_addresses or (serving and not terminating)
        ep = discovery_pb2.SliceEndpoint(
            addresses=[pod.status.pod_ip],
            conditions=discovery_pb2.EndpointConditions(ready=ready, serving=serving, terminating=terminating),
            target_ref=meta_pb2.ObjectReference(kind="Pod", namespace=pod.metadata.namespace, name=pod.metadata.name,
                                                uid=pod.metadata.uid))
        if pod.spec.node_name:
            ep.node_name = pod.spec.node_name
        if pod.spec.hostname and pod.spec.subdomain == svc.metadata.name:
            ep.hostname = pod.spec.hostname
        out.setdefault(tuple(sorted(ports)), []).append(ep)
    return out


def desired_from_endpoints(ep: core_pb2.Endpoints) -> dict[PortKey, list[discovery_pb2.SliceEndpoint]]:
    """The endpoints of a user's Endpoints object (a Service without a selector), one group per subset."""
    out: dict[PortKey, list[discovery_pb2.SliceEndpoint]] = {}
    for subset in ep.subsets:
        key: PortKey = tuple(sorted((p.name, p.port, p.protocol or "TCP", p.app_protocol) for p in subset.ports))
        for ready, addresses in ((True, subset.addresses), (False, subset.not_ready_addresses)):
            for a in addresses:
                e = discovery_pb2.SliceEndpoint(
                    addresses=[a.ip],
                    conditions=discovery_pb2.EndpointConditions(ready=ready, serving=ready, terminating=False))
                if a.hostname:
                    e.hostname = a.hostname
                if a.HasField("node_name"):
                    e.node_name = a.node_name
                if a.HasField("target_ref"):
                    e.target_ref.CopyFrom(a.target_ref)
                out.setdefault(key, []).append(e)
    return out


def port_key(es: discovery_pb2.EndpointSlice) -> PortKey:
    return tuple(sorted((p.name, p.port, p.protocol or "TCP", p.app_protocol) for p in es.ports))


def _ports(key: PortKey) -> list[discovery_pb2.SlicePort]:
    out = []
    for name, number, protocol, app_protocol in key:
        p = discovery_pb2.SlicePort(name=name, port=number, protocol=protocol)
        if app_protocol:
            p.app_protocol = app_protocol
        out.append(p)
    return out


def slice_labels(svc_name: str, svc_labels: Mapping[str, str], *, headless: bool, managed_by: str) -> dict[str, str]:
    out = dict(svc_labels) if managed_by == MANAGED_BY else {}
    out[SERVICE_NAME_LABEL] = svc_name
    out[MANAGED_BY_LABEL] = managed_by
    if headless:
        out[HEADLESS_LABEL] = ""
    else:
        out.pop(HEADLESS_LABEL, None)
    return out


def _sorted(endpoints: Iterable[discovery_pb2.SliceEndpoint]) -> list[discovery_pb2.SliceEndpoint]:
    return sorted(endpoints, key=_endpoint_key)


def plan_slices(namespace: str, svc_name: str, desired: Mapping[PortKey, Sequence[discovery_pb2.SliceEndpoint]],
                existing: Sequence[discovery_pb2.EndpointSlice], *, labels: Mapping[str, str],
                owner: meta_pb2.OwnerReference, max_endpoints: int = MAX_ENDPOINTS) -> SlicePlan:
    """What to create, update and delete so that `existing` (this controller's slices) hold `desired`."""
    plan = SlicePlan()
    existing = sorted(existing, key=lambda s: s.metadata.name)
    if not any(desired.values()):
        # No endpoints: one empty slice without ports stays (Kubernetes' placeholder), the rest go.
        placeholder = next((es for es in existing if not es.ports), None)
        for es in existing:
            if es is placeholder:
                _keep(plan, es, [], labels, owner)
            else:
                plan.delete.append(es)
        if placeholder is None:
            plan.create.append(_new(namespace, svc_name, (), [], labels, owner))
        return plan
    by_key: dict[PortKey, list[discovery_pb2.EndpointSlice]] = {}
    for es in existing:
        if desired.get(port_key(es)):
            by_key.setdefault(port_key(es), []).append(es)
        else:
            plan.delete.append(es)
    for key, endpoints in sorted(desired.items()):
        if not endpoints:
            continue
        want = {_endpoint_key(e): e for e in endpoints}
        placed: set[tuple[str, str]] = set()
        kept: list[tuple[discovery_pb2.EndpointSlice, list[discovery_pb2.SliceEndpoint]]] = []
        for es in by_key.get(key, []):
            stay = []
            for e in es.endpoints:
                k = _endpoint_key(e)
                if k in want and k not in placed:
                    stay.append(want[k])
                    placed.add(k)
            kept.append((es, stay))
        remaining = [want[k] for k in sorted(want) if k not in placed]
        # New endpoints go first into slices written anyway, then into those with room, then into new slices.
        kept.sort(key=lambda item: not _differs(item[0], item[1], labels, owner))
        for _es, members in kept:
            while remaining and len(members) < max_endpoints:
                members.append(remaining.pop(0))
        for es, members in kept:
            if members:
                _keep(plan, es, members, labels, owner)
            else:
                plan.delete.append(es)
        while remaining:
            chunk, remaining = remaining[:max_endpoints], remaining[max_endpoints:]
            plan.create.append(_new(namespace, svc_name, key, chunk, labels, owner))
    return plan


def _differs(es: discovery_pb2.EndpointSlice, members: Sequence[discovery_pb2.SliceEndpoint],
             labels: Mapping[str, str], owner: meta_pb2.OwnerReference) -> bool:
    return (list(es.endpoints) != _sorted(members) or dict(es.metadata.labels) != dict(labels)
            or list(es.metadata.owner_references) != [owner])


def _keep(plan: SlicePlan, es: discovery_pb2.EndpointSlice, members: Sequence[discovery_pb2.SliceEndpoint],
          labels: Mapping[str, str], owner: meta_pb2.OwnerReference) -> None:
    if not _differs(es, members, labels, owner):
        return
    new = discovery_pb2.EndpointSlice()
    new.CopyFrom(es)
    del new.endpoints[:]
    new.endpoints.extend(_sorted(members))
    new.metadata.labels.clear()
    new.metadata.labels.update(labels)
    del new.metadata.owner_references[:]
    new.metadata.owner_references.append(owner)
    plan.update.append(new)


def _new(namespace: str, svc_name: str, key: PortKey, members: Sequence[discovery_pb2.SliceEndpoint],
         labels: Mapping[str, str], owner: meta_pb2.OwnerReference) -> discovery_pb2.EndpointSlice:
    es = discovery_pb2.EndpointSlice(address_type="IPv4", ports=_ports(key), endpoints=_sorted(members))
    es.metadata.namespace = namespace
    # Kubernetes' naming: the Service's name (shortened to leave room) and a random suffix.
    es.metadata.generate_name = svc_name[:57] + "-"
    es.metadata.labels.update(labels)
    es.metadata.owner_references.append(owner)
    return es
