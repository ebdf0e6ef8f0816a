"""Builders for the Services, Endpoints and EndpointSlices the proxy tests feed in."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from api.pb import core_pb2, discovery_pb2


def svc(name: str, ns: str = "default", *, status: dict[str, Any] | None = None, **spec: Any) -> core_pb2.Service:
    s = core_pb2.Service(metadata={"namespace": ns, "name": name}, spec=spec)
    if status:
        s.status.CopyFrom(core_pb2.ServiceStatus(**status))
    return s


def eps(name: str, *subsets: dict[str, Any], ns: str = "default") -> core_pb2.Endpoints:
    return core_pb2.Endpoints(metadata={"namespace": ns, "name": name}, subsets=list(subsets))


def subset(ready: Iterable[str] = (), not_ready: Iterable[str] = (),
           ports: Iterable[tuple[str, int, str]] = (), hostnames: dict[str, str] | None = None) -> dict[str, Any]:
    hostnames = hostnames or {}
    return {
        "addresses": [{"ip": ip, "hostname": hostnames.get(ip, "")} for ip in ready],
        "not_ready_addresses": [{"ip": ip} for ip in not_ready],
        "ports": [{"name": n, "port": p, "protocol": proto} for n, p, proto in ports],
    }


def slice_of(name: str, subset: dict[str, Any], ns: str = "default", *, nodes: dict[str, str] | None = None,
             terminating: Iterable[str] = (), suffix: str = "abcde") -> discovery_pb2.EndpointSlice:
    """The EndpointSlice of Service `name` holding one subset: ready addresses ready, not-ready ones not serving;
    `terminating` addresses (among the not-ready ones) still serving while they terminate; `nodes` maps IPs to
    node names."""
    nodes = nodes or {}
    dying = set(terminating)
    es = discovery_pb2.EndpointSlice(
        metadata={"namespace": ns, "name": f"{name}-{suffix}", "labels": {"kubernetes.io/service-name": name}},
        address_type="IPv4")
    for a in subset["addresses"]:
        e = es.endpoints.add(addresses=[a["ip"]], conditions={"ready": True, "serving": True, "terminating": False})
        if a.get("hostname"):
            e.hostname = a["hostname"]
        if a["ip"] in nodes:
            e.node_name = nodes[a["ip"]]
    for a in subset["not_ready_addresses"]:
        gone = a["ip"] in dying
        e = es.endpoints.add(addresses=[a["ip"]], conditions={"ready": False, "serving": gone, "terminating": gone})
        if a["ip"] in nodes:
            e.node_name = nodes[a["ip"]]
    for p in subset["ports"]:
        es.ports.add(name=p["name"], port=p["port"], protocol=p["protocol"])
    return es
