"""Health checks of externalTrafficPolicy Local Services, on their healthCheckNodePort: 200 or 503.

A load balancer in front of the nodes asks each node's healthCheckNodePort
whether it has an endpoint of the Service; only nodes that answer 200 get
traffic, so a Local Service never sends a connection to a node that would drop
it. The answer is kube-proxy's: a small JSON body naming the Service and the
count of ready endpoints on this node (terminating ones do not count, so a
draining node drops out first).

`compute_health_checks` is pure; `HealthCheckServer` listens on the ports, in
the node's network namespace even when the proxy writes its rules from outside
it (see netns.listening_socket).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import structlog

from api.pb import core_pb2, discovery_pb2
from proxy import netns

log = structlog.get_logger()


@dataclass(frozen=True)
class HealthCheck:
    namespace: str
    name: str
    local_endpoints: int


def local_ready_endpoints(slices: Iterable[discovery_pb2.EndpointSlice], node: str) -> int:
    """Distinct ready endpoint addresses on `node` (the count kube-proxy reports)."""
    found = set()
    for es in slices:
        for ep in es.endpoints:
            ready = ep.conditions.ready if ep.conditions.HasField("ready") else True
            if ready and ep.HasField("node_name") and ep.node_name == node and ep.addresses:
                found.add(ep.addresses[0])
    return len(found)


def compute_health_checks(services: Iterable[core_pb2.Service],
                          slices: Mapping[str, Sequence[discovery_pb2.EndpointSlice]],
                          node: str) -> dict[int, HealthCheck]:
    """healthCheckNodePort -> what it answers, for every Service that has one."""
    out: dict[int, HealthCheck] = {}
    for svc in services:
        port = svc.spec.health_check_node_port
        if not 0 < port < 65536 or svc.spec.external_traffic_policy != "Local":
            continue
        key = f"{svc.metadata.namespace}/{svc.metadata.name}"
        out[port] = HealthCheck(svc.metadata.namespace, svc.metadata.name,
                                local_ready_endpoints(slices.get(key, ()), node))
    return out


def render_response(check: HealthCheck | None) -> bytes:
    """The HTTP response a health check gets (503 with zero endpoints, or if the port is no longer served)."""
    count = check.local_endpoints if check is not None else 0
    body = json.dumps({"service": {"namespace": check.namespace if check else "", "name": check.name if check
                                   else ""}, "localEndpoints": count, "serviceProxyHealthy": True}).encode()
    status = "200 OK" if count > 0 else "503 Service Unavailable"
    head = (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nX-Content-Type-Options: nosniff\r\n"
            f"X-Load-Balancing-Endpoint-Weight: {count}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n")
    return head.encode() + body


class HealthCheckServer:
    """One listener per healthCheckNodePort, opened and closed as Services come and go."""

    def __init__(self, namespace: str = "") -> None:
        self.namespace = namespace  # where to listen: a /run/netns name or path; "" for the proxy's own
        self.checks: dict[int, HealthCheck] = {}
        self._servers: dict[int, asyncio.Server] = {}

    @property
    def ports(self) -> set[int]:
        return set(self._servers)

    async def sync(self, checks: Mapping[int, HealthCheck]) -> None:
        """Serve exactly these ports with these answers."""
        self.checks = dict(checks)
        for port in sorted(set(self._servers) - set(checks)):
            server = self._servers.pop(port)
            server.close()
            log.info("health_check_port_closed", port=port)
        for port in sorted(set(checks) - set(self._servers)):
            try:
                sock = await asyncio.to_thread(netns.listening_socket, self.namespace, port)
            except OSError as e:
                log.warning("health_check_port_failed", port=port, error=str(e))
                continue
            self._servers[port] = await asyncio.start_server(self._handle, sock=sock)
            log.info("health_check_port_opened", port=port, service=f"{checks[port].namespace}/{checks[port].name}")

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        port = writer.get_extra_info("sockname")[1]
        try:
            # The request line and headers; the answer does not depend on them.
            async with asyncio.timeout(5.0):
                await reader.readuntil(b"\r\n\r\n")
            writer.write(render_response(self.checks.get(port)))
            async with asyncio.timeout(5.0):
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await writer.wait_closed()

    def close(self) -> None:
        for server in self._servers.values():
            server.close()
        self._servers.clear()



