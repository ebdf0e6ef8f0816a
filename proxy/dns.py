"""Cluster DNS: answers `<svc>.<ns>.svc.cluster.local` over UDP and TCP from Services and Endpoints.

It runs as a plain process (in the lab: in the control plane's namespace, on the
lab address) and is reached by pods at the `kube-system/kube-dns` Service's
cluster IP (10.96.0.10). That Service has no selector, so no controller
manages its Endpoints: this daemon does, keeping its own address and port in
them (ports `dns`/UDP and `dns-tcp`/TCP) while it serves and removing them when
it stops. Several instances may publish into the same Endpoints.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from dataclasses import dataclass

import dns.exception
import dns.flags
import dns.rcode
import structlog

from api.errors import ApiError, NotFoundError
from api.pb import core_pb2
from client.api import Client
from client.informer import Informer, key_of
from client.retry import create_or_update, retry_on_conflict
from proxy import metrics
from proxy.metrics import DnsMetrics
from proxy.zone import Zone, error_response, parse_query, to_wire, udp_limit

log = structlog.get_logger()

PORT_UDP = "dns"
PORT_TCP = "dns-tcp"
MAX_TCP_MESSAGE = 65535


def split_host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"expected IP:PORT, got {value!r}")
    return host.strip("[]"), int(port)


@dataclass
class DnsConfig:
    listen: str = "0.0.0.0:53"  # IP:PORT for both UDP and TCP (port 0: any free port)
    domain: str = "cluster.local"
    ttl: int = 5
    publish: str = "kube-system/kube-dns"  # Endpoints kept pointing at this server; "" to publish nothing
    advertise_address: str = ""  # the address to publish (default: the listen address)
    metrics_port: int = 0
    metrics_address: str = "127.0.0.1"
    tcp_idle_timeout: float = 10.0
    api_timeout: float = 10.0


def _ports(port: int) -> list[core_pb2.EndpointPort]:
    return [core_pb2.EndpointPort(name=PORT_UDP, port=port, protocol="UDP"),
            core_pb2.EndpointPort(name=PORT_TCP, port=port, protocol="TCP")]


def _port_set(ports: list[core_pb2.EndpointPort]) -> set[tuple[str, int, str]]:
    return {(p.name, p.port, p.protocol or "TCP") for p in ports}


def plan_published(existing: core_pb2.Endpoints | None, namespace: str, name: str, ip: str,
                   port: int) -> core_pb2.Endpoints | None:
    """The Endpoints with `ip` ready on this server's ports; None if `existing` already says exactly that."""
    want = _port_set(_ports(port))
    if existing is not None:
        places = [(i, ready) for i, s in enumerate(existing.subsets)
                  for ready, field in ((True, s.addresses), (False, s.not_ready_addresses))
                  for a in field if a.ip == ip]
        if len(places) == 1 and places[0][1] and _port_set(list(existing.subsets[places[0][0]].ports)) == want:
            return None
    ep = core_pb2.Endpoints()
    if existing is not None:
        ep.CopyFrom(existing)
    else:
        ep.metadata.namespace, ep.metadata.name = namespace, name
    _remove(ep, ip)
    for subset in ep.subsets:
        if _port_set(list(subset.ports)) == want:
            subset.addresses.add(ip=ip)
            return ep
    ep.subsets.add(addresses=[core_pb2.EndpointAddress(ip=ip)], ports=_ports(port))
    return ep


def plan_withdrawn(existing: core_pb2.Endpoints | None, ip: str) -> core_pb2.Endpoints | None:
    """The Endpoints without `ip`; None if it is not there."""
    if existing is None:
        return None
    ep = core_pb2.Endpoints()
    ep.CopyFrom(existing)
    return ep if _remove(ep, ip) else None


def _remove(ep: core_pb2.Endpoints, ip: str) -> bool:
    found = False
    for subset in ep.subsets:
        for field in (subset.addresses, subset.not_ready_addresses):
            keep = [a for a in field if a.ip != ip]
            if len(keep) != len(field):
                found = True
                del field[:]
                field.extend(keep)
    empty = [s for s in ep.subsets if not s.addresses and not s.not_ready_addresses]
    for s in empty:
        ep.subsets.remove(s)
    return found


def check_config(config: DnsConfig) -> None:
    """Raise ValueError for a configuration the server cannot run with."""
    host, _ = split_host_port(config.listen)
    advertise = config.advertise_address or host
    if config.publish and advertise in ("0.0.0.0", "::", ""):
        raise ValueError(f"cannot publish {advertise!r} in Endpoints {config.publish}: "
                         "give --advertise-address or listen on a specific IP")


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = self.server.handle(data, udp=True)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)


class DnsServer:
    def __init__(self, client: Client, config: DnsConfig) -> None:
        self.client = client
        self.config = config
        self.host, self.port = split_host_port(config.listen)
        self.zone = Zone(config.domain, ttl=config.ttl)
        self.metrics = DnsMetrics()
        self.services: Informer[core_pb2.Service] = Informer(client, core_pb2.Service, name="services")
        self.endpoints: Informer[core_pb2.Endpoints] = Informer(client, core_pb2.Endpoints, name="endpoints")
        for informer in (self.services, self.endpoints):
            informer.add_handlers(self._touch, lambda _old, new: self._touch(new), self._touch)
        check_config(config)
        ns, _, name = config.publish.partition("/")
        self.publish_to = (ns, name) if config.publish else None
        self.advertise = config.advertise_address or self.host
        self.ready = asyncio.Event()
        self._republish = asyncio.Event()
        self._published = False
        self._tcp_writers: set[asyncio.StreamWriter] = set()

    # ------------------------------------------------------------ names

    def _touch(self, obj: core_pb2.Service | core_pb2.Endpoints) -> None:
        key = key_of(obj)
        if self.zone.set_service(key, self.services.get(key), self.endpoints.get(key)):
            self.metrics.records.set(len(self.zone))
        if self.publish_to and self._published and isinstance(obj, core_pb2.Endpoints) \
                and (obj.metadata.namespace, obj.metadata.name) == self.publish_to:
            current = self.endpoints.get(key)
            if plan_published(current, *self.publish_to, self.advertise, self.port) is not None:
                self._republish.set()  # someone else rewrote or deleted it

    # ------------------------------------------------------------ queries

    def handle(self, wire: bytes, *, udp: bool) -> bytes | None:
        """The reply to one query from the wire, None to stay silent."""
        t0 = time.perf_counter()
        transport = "udp" if udp else "tcp"
        try:
            query = parse_query(wire)
        except dns.exception.DNSException:
            self.metrics.queries.labels(transport, "FORMERR").inc()
            return error_response(wire, dns.rcode.FORMERR)
        if query.flags & dns.flags.QR:
            return None
        response = self.zone.answer(query)
        out = to_wire(response, max_size=udp_limit(query) if udp else MAX_TCP_MESSAGE)
        self.metrics.queries.labels(transport, dns.rcode.to_text(response.rcode())).inc()
        self.metrics.duration.labels(transport).observe(time.perf_counter() - t0)
        return out

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._tcp_writers.add(writer)
        idle = self.config.tcp_idle_timeout
        try:
            while True:
                async with asyncio.timeout(idle):
                    header = await reader.readexactly(2)
                async with asyncio.timeout(idle):
                    wire = await reader.readexactly(int.from_bytes(header, "big"))
                reply = self.handle(wire, udp=False)
                if reply is None:
                    break
                writer.write(len(reply).to_bytes(2, "big") + reply)
                async with asyncio.timeout(idle):
                    await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass
        finally:
            self._tcp_writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await writer.wait_closed()

    # ------------------------------------------------------------ run

    async def run(self) -> None:
        """Serve until cancelled; on the way out, take this server out of the published Endpoints."""
        loop = asyncio.get_running_loop()
        udp: asyncio.DatagramTransport | None = None
        tcp: asyncio.Server | None = None
        try:
            with metrics.serving(self.metrics.registry, self.config.metrics_port, self.config.metrics_address):
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self.services.run())
                    tg.create_task(self.endpoints.run())
                    await asyncio.gather(self.services.synced.wait(), self.endpoints.synced.wait())
                    udp, tcp = await self._bind(loop)
                    log.info("dns_started", listen=f"{self.host}:{self.port}", domain=self.config.domain,
                             names=len(self.zone))
                    self.ready.set()
                    if self.publish_to:
                        self._republish.set()
                        tg.create_task(self._keep_published())
        finally:
            if udp is not None:
                udp.close()
            if tcp is not None:
                tcp.close()
                for w in list(self._tcp_writers):
                    w.close()
            if self._published:
                try:
                    async with asyncio.timeout(self.config.api_timeout):
                        await self._withdraw()
                except (ApiError, TimeoutError) as e:
                    log.warning("dns_withdraw_failed", error=str(e))
            log.info("dns_stopped")

    async def _bind(self, loop: asyncio.AbstractEventLoop) -> tuple[asyncio.DatagramTransport, asyncio.Server]:
        """UDP and TCP on the same port; with port 0, retry until a free UDP port is free for TCP too."""
        attempts = 1 if self.port else 10
        for attempt in range(attempts):
            udp, _ = await loop.create_datagram_endpoint(lambda: _Udp(self), local_addr=(self.host, self.port))
            port = udp.get_extra_info("sockname")[1]
            try:
                tcp = await asyncio.start_server(self._serve_tcp, self.host, port, reuse_address=True)
            except OSError:
                udp.close()
                if attempt == attempts - 1:
                    raise
                continue
            self.port = port
            return udp, tcp
        raise AssertionError("unreachable")

    # ------------------------------------------------------------ Endpoints

    async def _keep_published(self) -> None:
        assert self.publish_to is not None
        while True:
            await self._republish.wait()
            self._republish.clear()
            try:
                async with asyncio.timeout(self.config.api_timeout):
                    await self._publish()
            except (ApiError, TimeoutError) as e:
                log.warning("dns_publish_failed", error=str(e))
                await asyncio.sleep(1.0)
                self._republish.set()

    async def _publish(self) -> None:
        assert self.publish_to is not None
        ns, name = self.publish_to

        async def read() -> core_pb2.Endpoints | None:
            try:
                return await self.client.get("endpoints", name, ns)
            except NotFoundError:
                return None

        written = await retry_on_conflict(read, lambda existing: plan_published(existing, ns, name, self.advertise,
                                                                                self.port),
                                          functools.partial(create_or_update, self.client),
                                          what=f"endpoints {ns}/{name}")
        self._published = True
        if written is not None:
            log.info("dns_endpoint_published", endpoints=self.config.publish, address=f"{self.advertise}:{self.port}")

    async def _withdraw(self) -> None:
        assert self.publish_to is not None
        ns, name = self.publish_to
        with contextlib.suppress(NotFoundError):
            written = await retry_on_conflict(lambda: self.client.get("endpoints", name, ns),
                                              lambda existing: plan_withdrawn(existing, self.advertise),
                                              self.client.update, what=f"endpoints {ns}/{name}")
            if written is not None:
                log.info("dns_endpoint_withdrawn", endpoints=self.config.publish, address=self.advertise)
