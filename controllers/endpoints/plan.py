"""Pure rendering of a Service's Endpoints from its pods, as Kubernetes' endpoints controller does."""

from __future__ import annotations

from collections.abc import Sequence

from api import intstr, labels, pods
from api.pb import core_pb2, meta_pb2
from controllers import podstate

HEADLESS_LABEL = "service.kubernetes.io/headless"


class PortNotFoundError(Exception):
    pass


def find_port(pod: core_pb2.Pod, port: core_pb2.ServicePort) -> int:
    """The pod's port for a service port: the number itself, or the container port with that name and protocol."""
    target = intstr.port_value(port.target_port or str(port.port))
    if isinstance(target, int):
        return target
    protocol = port.protocol or "TCP"
    for c in pod.spec.containers:
        for p in c.ports:
            if p.name == target and (p.protocol or "TCP") == protocol:
                return p.container_port
    raise PortNotFoundError(f"no container port named {target!r} ({protocol}) in pod {pod.metadata.name}")


def should_include(pod: core_pb2.Pod, *, include_terminating: bool) -> bool:
    """Kubernetes' ShouldPodBeInEndpoints: not finished, has an IP, not terminating (unless asked)."""
    if pods.is_terminal(pod) or not pod.status.pod_ip:
        return False
    return include_terminating or not pods.is_terminating(pod)


def _address(pod: core_pb2.Pod, svc: core_pb2.Service) -> core_pb2.EndpointAddress:
    addr = core_pb2.EndpointAddress(
        ip=pod.status.pod_ip,
        target_ref=meta_pb2.ObjectReference(kind="Pod", namespace=pod.metadata.namespace, name=pod.metadata.name,
                                            uid=pod.metadata.uid),
    )
    if pod.spec.node_name:
        addr.node_name = pod.spec.node_name
    if pod.spec.hostname and pod.spec.subdomain == svc.metadata.name:
        addr.hostname = pod.spec.hostname
    return addr


def _address_key(a: core_pb2.EndpointAddress) -> tuple[str, str, str]:
    return (a.ip, a.target_ref.uid, a.hostname)


Port = tuple[str, int, str, str]  # name, number, protocol, appProtocol
_NO_PORT: Port = ("", -1, "", "")


def render_subsets(svc: core_pb2.Service, pods: Sequence[core_pb2.Pod]) -> list[core_pb2.EndpointSubset]:
    """The subsets for `svc`: ready and not-ready addresses per port, repacked and sorted.

    A pod whose containers lack a named target port is left out for that port
    only. Headless services without ports list their addresses with no ports.
    """
    publish_not_ready = svc.spec.publish_not_ready_addresses
    headless_no_ports = not svc.spec.ports and svc.spec.cluster_ip == "None"
    entries: list[tuple[core_pb2.EndpointAddress, bool, list[Port]]] = []
    for pod in pods:
        if not should_include(pod, include_terminating=publish_not_ready):
            continue
        ready = publish_not_ready or podstate.is_ready(pod)
        ports: list[Port] = []
        for sp in svc.spec.ports:
            try:
                number = find_port(pod, sp)
            except PortNotFoundError:
                continue
            ports.append((sp.name, number, sp.protocol or "TCP", sp.app_protocol))
        if headless_no_ports:
            ports = [_NO_PORT]
        if ports:
            entries.append((_address(pod, svc), ready, ports))
    return repack(entries)


def repack(entries: Sequence[tuple[core_pb2.EndpointAddress, bool, Sequence[Port]]]) -> list[core_pb2.EndpointSubset]:
    """Kubernetes' RepackSubsets: ports offered by the same set of addresses share one subset."""
    addresses: dict[tuple[str, str, str], core_pb2.EndpointAddress] = {}
    by_port: dict[Port, set[tuple[tuple[str, str, str], bool]]] = {}
    for addr, ready, ports in entries:
        key = _address_key(addr)
        addresses[key] = addr
        for port in ports:
            by_port.setdefault(port, set()).add((key, ready))
    groups: dict[frozenset[tuple[tuple[str, str, str], bool]], list[Port]] = {}
    for port, members in by_port.items():
        ports = groups.setdefault(frozenset(members), [])
        if port != _NO_PORT:
            ports.append(port)
    subsets = []
    for members, ports in groups.items():
        subset = core_pb2.EndpointSubset()
        subset.addresses.extend(addresses[k] for k in sorted(k for k, ready in members if ready))
        subset.not_ready_addresses.extend(addresses[k] for k in sorted(k for k, ready in members if not ready))
        for name, number, protocol, app_protocol in sorted(ports):
            p = subset.ports.add(name=name, port=number, protocol=protocol)
            if app_protocol:
                p.app_protocol = app_protocol
        subsets.append(subset)
    subsets.sort(key=lambda s: ([(p.name, p.port, p.protocol) for p in s.ports], [_address_key(a) for a in s.addresses],
                                [_address_key(a) for a in s.not_ready_addresses]))
    return subsets


def selected_pods(svc: core_pb2.Service, pods: Sequence[core_pb2.Pod]) -> list[core_pb2.Pod]:
    selector = labels.from_map(svc.spec.selector)
    return [p for p in pods if selector.matches(p.metadata.labels)]


def render_labels(svc: core_pb2.Service) -> dict[str, str]:
    out = dict(svc.metadata.labels)
    if svc.spec.cluster_ip == "None":
        out[HEADLESS_LABEL] = ""
    else:
        out.pop(HEADLESS_LABEL, None)
    return out


def render_endpoints(svc: core_pb2.Service, pods: Sequence[core_pb2.Pod]) -> core_pb2.Endpoints:
    """The Endpoints object the Service should have (no resourceVersion)."""
    ep = core_pb2.Endpoints(metadata={"name": svc.metadata.name, "namespace": svc.metadata.namespace})
    ep.metadata.labels.update(render_labels(svc))
    ep.subsets.extend(render_subsets(svc, selected_pods(svc, pods)))
    return ep


def needs_update(current: core_pb2.Endpoints, wanted: core_pb2.Endpoints) -> bool:
    return list(current.subsets) != list(wanted.subsets) or dict(current.metadata.labels) != \
        dict(wanted.metadata.labels)
