"""Cluster DNS against a real apiserver, queried over UDP and TCP on a loopback port with dnspython."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path

import dns.asyncquery
import dns.exception
import dns.message
import dns.rcode
import pytest
import testpki
from unit.proxy.objects import eps, subset, svc

from api import convert, kinds
from api.errors import NotFoundError
from client.api import Client
from integration.proxy.proxyhelp import eventually, free_port, kubelite
from proxy.dns import DnsConfig, DnsServer

ADDON = Path(__file__).resolve().parents[3] / "deploy" / "addons" / "kube-dns.yaml"


@contextlib.asynccontextmanager
async def running_dns(client: Client, **overrides: object) -> AsyncIterator[DnsServer]:
    config = DnsConfig(**{"listen": "127.0.0.1:0", "publish": "", **overrides})  # type: ignore[arg-type]
    server = DnsServer(client, config)
    task = asyncio.create_task(server.run())
    try:
        ready = asyncio.create_task(server.ready.wait())
        done, _ = await asyncio.wait({task, ready}, timeout=20, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            task.result()
        assert ready in done, "dns server did not start"
        yield server
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def query(server: DnsServer, name: str, rdtype: str = "A", *, tcp: bool = False) -> dns.message.Message:
    q = dns.message.make_query(name, rdtype)
    send = dns.asyncquery.tcp if tcp else dns.asyncquery.udp
    return await send(q, "127.0.0.1", port=server.port, timeout=3)


def answers(r: dns.message.Message) -> list[str]:
    return sorted(rd.to_text() for rrset in r.answer for rd in rrset)


async def cluster(client: Client) -> None:
    await client.create(svc("web", cluster_ip="10.96.0.5", ports=[{"name": "http", "port": 80}]))
    await client.create(eps("web", subset(["10.244.1.5"], ports=[("http", 8080, "TCP")])))
    await client.create(svc("db", cluster_ip="None", ports=[{"name": "pg", "port": 5432}]))
    await client.create(eps("db", subset(["10.244.2.7", "10.244.1.6"], ["10.244.3.3"], [("pg", 5432, "TCP")])))


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
async def test_answers_cluster_names(client: Client, tcp: bool) -> None:
    """A, headless A and SRV answers; NXDOMAIN for unknown cluster names; REFUSED outside the cluster."""
    await cluster(client)
    async with running_dns(client) as server:
        r = await query(server, "web.default.svc.cluster.local", tcp=tcp)
        assert (r.rcode(), answers(r)) == (dns.rcode.NOERROR, ["10.96.0.5"])
        r = await query(server, "db.default.svc.cluster.local", tcp=tcp)
        assert answers(r) == ["10.244.1.6", "10.244.2.7"]
        r = await query(server, "_http._tcp.web.default.svc.cluster.local", "SRV", tcp=tcp)
        assert answers(r) == ["0 100 80 web.default.svc.cluster.local."]
        r = await query(server, "nope.default.svc.cluster.local", tcp=tcp)
        assert r.rcode() == dns.rcode.NXDOMAIN
        r = await query(server, "example.com", tcp=tcp)
        assert r.rcode() == dns.rcode.REFUSED
        assert not r.answer


async def test_names_follow_the_apiserver(client: Client) -> None:
    """A new Service resolves, a newly ready pod joins its headless name, a deleted Service stops resolving."""
    await cluster(client)
    async with running_dns(client) as server:
        await client.create(svc("late", cluster_ip="10.96.0.9", ports=[{"port": 80}]))

        async def late() -> bool:
            return answers(await query(server, "late.default.svc.cluster.local")) == ["10.96.0.9"]

        await eventually(late, timeout=5, what="late.default resolving")
        ep = await client.get("endpoints", "db", "default")
        ep.subsets[0].addresses.add(ip="10.244.3.3")
        del ep.subsets[0].not_ready_addresses[:]
        await client.update(ep)

        async def db() -> bool:
            got = answers(await query(server, "db.default.svc.cluster.local"))
            return got == ["10.244.1.6", "10.244.2.7", "10.244.3.3"]

        await eventually(db, timeout=5, what="the third pod in db")
        await client.delete("services", "web", "default")

        async def gone() -> bool:
            return (await query(server, "web.default.svc.cluster.local")).rcode() == dns.rcode.NXDOMAIN

        await eventually(gone, timeout=5, what="web gone")


async def test_publishes_its_address_in_the_kube_dns_endpoints(client: Client) -> None:
    """With the add-on's Service applied, the server keeps itself in kube-dns's Endpoints and leaves them on exit."""
    for doc in convert.load_documents(ADDON.read_text(), str(ADDON)):
        await client.create(kinds.unwrap(convert.manifest_to_object(doc.data, where=doc.where)))
    kube_dns = await client.get("services", "kube-dns", "kube-system")
    assert kube_dns.spec.cluster_ip == "10.96.0.10"
    assert not kube_dns.spec.selector
    async with running_dns(client, publish="kube-system/kube-dns") as server:

        async def published() -> object:
            try:
                ep = await client.get("endpoints", "kube-dns", "kube-system")
            except NotFoundError:
                return None
            return ep if ep.subsets else None

        ep = await eventually(published, timeout=5, what="kube-dns endpoints")
        assert [a.ip for a in ep.subsets[0].addresses] == ["127.0.0.1"]
        assert sorted((p.name, p.port, p.protocol) for p in ep.subsets[0].ports) == [
            ("dns", server.port, "UDP"), ("dns-tcp", server.port, "TCP")]
        # Someone overwrites the Endpoints: the server puts itself back.
        ep.ClearField("subsets")
        await client.update(ep)
        await eventually(published, timeout=5, what="kube-dns endpoints restored")
        r = await query(server, "kube-dns.kube-system.svc.cluster.local")
        assert answers(r) == ["10.96.0.10"]
        r = await query(server, "_dns._udp.kube-dns.kube-system.svc.cluster.local", "SRV")
        assert answers(r) == ["0 100 53 kube-dns.kube-system.svc.cluster.local."]
    ep = await client.get("endpoints", "kube-dns", "kube-system")
    assert list(ep.subsets) == []


async def test_daemon_command(apiserver, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`kubelite dns --listen 127.0.0.1:PORT` answers cluster names and stops cleanly on SIGTERM."""
    async with apiserver.client() as client:
        await cluster(client)
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        kubelite(), "dns", "--server", apiserver.address, *testpki.get().component_flags("dns"),
        "--listen", f"127.0.0.1:{port}", "--publish", "",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    try:
        q = dns.message.make_query("web.default.svc.cluster.local", "A")

        async def answered() -> dns.message.Message | None:
            try:
                return await dns.asyncquery.udp(q, "127.0.0.1", port=port, timeout=0.5)
            except (TimeoutError, dns.exception.Timeout, OSError):
                return None

        r = await eventually(answered, timeout=20, interval=0.2, what="the dns daemon answering")
        assert answers(r) == ["10.96.0.5"]
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err.decode()
    assert b"dns_started" in err and b"dns_stopped" in err


async def test_metrics_count_queries_by_rcode(client: Client) -> None:
    """The DNS metrics endpoint counts answers by transport and response code."""
    await cluster(client)
    port = free_port()
    async with running_dns(client, metrics_port=port, metrics_address="127.0.0.1") as server:
        await query(server, "web.default.svc.cluster.local")
        await query(server, "nope.default.svc.cluster.local", tcp=True)
        await query(server, "example.com")
        body = await asyncio.to_thread(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode())
    assert 'kubelite_dns_queries_total{rcode="NOERROR",transport="udp"} 1.0' in body
    assert 'kubelite_dns_queries_total{rcode="NXDOMAIN",transport="tcp"} 1.0' in body
    assert 'kubelite_dns_queries_total{rcode="REFUSED",transport="udp"} 1.0' in body
    assert "kubelite_dns_names 6.0" in body  # web, its SRV, db, its two pods, its SRV
