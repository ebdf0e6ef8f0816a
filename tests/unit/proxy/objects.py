"""Builders for the Services and Endpoints the proxy tests feed in."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from api.pb import core_pb2


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
