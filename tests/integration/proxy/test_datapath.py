"""Real traffic through the proxy's rules: a client pod, a node, two server pods, each in a scratch namespace.

    client ns (10.200.1.2) --veth-- node ns (10.200.1.1 | 10.244.7.1) --veth-- pods ns (10.244.7.2, 10.244.7.3)

The client routes everything via the node, the pods too; the proxier writes into the
node namespace, so the client's connections to service IPs take nat PREROUTING there,
as a pod's do on a real node. The node routes the service CIDR, as lab nodes do.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from unit.proxy.objects import slice_of, subset, svc

from client.api import Client
from integration.proxy.conftest import MakeNetns
from integration.proxy.proxyhelp import eventually, in_netns, proxier_config, running_proxier, synced_to

CLIENT_IP, NODE_IP, POD_GW, POD_A, POD_B = "10.200.1.2", "10.200.1.1", "10.244.7.1", "10.244.7.2", "10.244.7.3"

# TCP: greet with "<own ip> <peer ip>", then echo. UDP: answer "<own ip> <peer ip>".
SERVER = r"""
import selectors, socket, sys
sel = selectors.DefaultSelector()
for ip in sys.argv[1:]:
    t = socket.socket()
    t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    t.bind((ip, 8080)); t.listen(256)
    sel.register(t, selectors.EVENT_READ, ("listen", ip))
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind((ip, 8080))
    sel.register(u, selectors.EVENT_READ, ("udp", ip))
print("ready", flush=True)
while True:
    for key, _ in sel.select():
        kind, ip = key.data
        if kind == "listen":
            conn, peer = key.fileobj.accept()
            conn.sendall(f"{ip} {peer[0]}\n".encode())
            sel.register(conn, selectors.EVENT_READ, ("conn", ip))
        elif kind == "udp":
            data, peer = key.fileobj.recvfrom(512)
            key.fileobj.sendto(f"{ip} {peer[0]}\n".encode(), peer)
        else:
            data = key.fileobj.recv(512)
            if data:
                key.fileobj.sendall(data)
            else:
                sel.unregister(key.fileobj); key.fileobj.close()
"""

# N short TCP connections; which server answered, who it saw as the peer, errors, the slowest attempt.
CLIENT = r"""
import collections, json, socket, sys, time
target, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
hits, errors, peers, worst = collections.Counter(), collections.Counter(), set(), 0.0
for _ in range(n):
    t0 = time.monotonic()
    try:
        with socket.create_connection((target, port), timeout=3) as s:
            server, peer = s.makefile().readline().split()
            hits[server] += 1
            peers.add(peer)
    except OSError as e:
        errors[type(e).__name__] += 1
    worst = max(worst, time.monotonic() - t0)
print(json.dumps({"hits": hits, "errors": errors, "peers": sorted(peers), "worst": worst}))
"""

# UDP from one fixed source port: send a datagram per line of stdin, print the answer.
UDP_CLIENT = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.bind(("0.0.0.0", 40000))
for line in sys.stdin:
    s.sendto(b"hi", (sys.argv[1], int(sys.argv[2])))
    try:
        print(s.recv(512).decode().split()[0], flush=True)
    except OSError as e:
        print(type(e).__name__, flush=True)
"""

# One long TCP connection, made on the first stdin line: greeting, then echo each further line.
LONG_CLIENT = r"""
import socket, sys
sys.stdin.readline()
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
f = s.makefile()
print(f.readline().split()[0], flush=True)
for line in sys.stdin:
    s.sendall(line.encode())
    print(f.readline().strip(), flush=True)
"""


@dataclass
class Topology:
    client: str
    node: str
    pods: str


def build(make_netns: MakeNetns) -> Topology:
    t = Topology(make_netns("client"), make_netns("node"), make_netns("pods"))
    in_netns(t.node, "ip", "link", "add", "to-client", "type", "veth", "peer", "name", "eth0", "netns", t.client)
    in_netns(t.node, "ip", "link", "add", "to-pods", "type", "veth", "peer", "name", "eth0", "netns", t.pods)
    in_netns(t.node, "ip", "addr", "add", f"{NODE_IP}/24", "dev", "to-client")
    in_netns(t.node, "ip", "addr", "add", f"{POD_GW}/24", "dev", "to-pods")
    in_netns(t.client, "ip", "addr", "add", f"{CLIENT_IP}/24", "dev", "eth0")
    in_netns(t.pods, "ip", "addr", "add", f"{POD_A}/24", "dev", "eth0")
    in_netns(t.pods, "ip", "addr", "add", f"{POD_B}/24", "dev", "eth0")
    for ns, link in ((t.node, "to-client"), (t.node, "to-pods"), (t.client, "eth0"), (t.pods, "eth0")):
        in_netns(ns, "ip", "link", "set", link, "up")
    in_netns(t.client, "ip", "route", "add", "default", "via", NODE_IP)
    in_netns(t.pods, "ip", "route", "add", "default", "via", POD_GW)
    # Like the lab's nodes: the service CIDR is routed (via the pod bridge), so a packet for a
    # service IP that was not DNATed reaches the filter table's REJECT instead of "no route".
    in_netns(t.node, "ip", "route", "add", "10.96.0.0/16", "dev", "to-pods")
    in_netns(t.node, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    return t


@pytest.fixture
async def net(make_netns: MakeNetns) -> AsyncIterator[Topology]:
    t = await asyncio.to_thread(build, make_netns)
    server = await asyncio.create_subprocess_exec(
        "nsenter", f"--net=/run/netns/{t.pods}", "--", sys.executable, "-c", SERVER, POD_A, POD_B,
        stdout=asyncio.subprocess.PIPE)
    try:
        assert server.stdout is not None
        assert await asyncio.wait_for(server.stdout.readline(), 10) == b"ready\n"
        yield t
    finally:
        server.kill()
        await server.wait()


async def connect_many(t: Topology, target: str, port: int, n: int) -> dict[str, Any]:
    r = await asyncio.to_thread(in_netns, t.client, sys.executable, "-c", CLIENT, target, str(port), str(n),
                                timeout=120)
    return json.loads(r.stdout)


@contextlib.asynccontextmanager
async def talking(t: Topology, script: str, target: str, port: int) -> AsyncIterator[Any]:
    """A client process kept running; `say(line)` writes a line and returns its answer line."""
    proc = await asyncio.create_subprocess_exec(
        "nsenter", f"--net=/run/netns/{t.client}", "--", sys.executable, "-c", script, target, str(port),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None

    async def say(line: str = "x") -> str:
        proc.stdin.write(f"{line}\n".encode())  # type: ignore[union-attr]
        await proc.stdin.drain()  # type: ignore[union-attr]
        return (await asyncio.wait_for(proc.stdout.readline(), 10)).decode().strip()  # type: ignore[union-attr]

    try:
        yield say
    finally:
        proc.kill()
        await proc.wait()


async def services(client: Client) -> None:
    both = subset([POD_A, POD_B], ports=[("http", 8080, "TCP")])
    await client.create(svc("web", cluster_ip="10.96.0.50", type="NodePort",
                            ports=[{"name": "http", "port": 80, "node_port": 30080}]))
    await client.create(slice_of("web", both))
    await client.create(svc("sticky", cluster_ip="10.96.0.52", session_affinity="ClientIP",
                            ports=[{"name": "http", "port": 80}]))
    await client.create(slice_of("sticky", both))
    await client.create(svc("empty", cluster_ip="10.96.0.51", type="NodePort",
                            ports=[{"name": "http", "port": 80, "node_port": 30081}]))
    await client.create(slice_of("empty", subset([], [POD_A], [("http", 8080, "TCP")])))


async def set_endpoints(client: Client, name: str, ips: list[str], proto: str = "TCP", *,
                        terminating: list[str] = (), nodes: dict[str, str] | None = None) -> None:
    """Replace the endpoints in Service `name`'s slice (terminating ones still serving)."""
    current = await client.get("endpointslices", f"{name}-abcde", "default")
    wanted = slice_of(name, subset(ips, list(terminating), [("http", 8080, proto)]), terminating=terminating,
                      nodes=nodes)
    del current.endpoints[:]
    current.endpoints.extend(wanted.endpoints)
    await client.update(current)


async def test_cluster_ip_spreads_over_ready_endpoints(client: Client, net: Topology, mode: str) -> None:
    """200 connections from a pod to the cluster IP land on both endpoints, unmasqueraded (they see the pod)."""
    await services(client)
    async with running_proxier(client, proxier_config(net.node, mode)) as proxier:
        await synced_to(proxier, "default/empty")
        got = await connect_many(net, "10.96.0.50", 80, 200)
    assert got["errors"] == {}
    assert set(got["hits"]) == {POD_A, POD_B}
    assert all(50 <= n <= 150 for n in got["hits"].values()), got["hits"]
    assert got["peers"] == [CLIENT_IP]


async def test_node_port_on_the_node_address_is_masqueraded(client: Client, net: Topology, mode: str) -> None:
    """The node's own address on the node port reaches both endpoints, which see the node as the peer."""
    await services(client)
    async with running_proxier(client, proxier_config(net.node, mode)) as proxier:
        await synced_to(proxier, "default/empty")
        got = await connect_many(net, NODE_IP, 30080, 60)
    assert got["errors"] == {}
    assert set(got["hits"]) == {POD_A, POD_B}
    assert got["peers"] == [POD_GW]


@pytest.mark.parametrize("target,port", [("10.96.0.51", 80), (NODE_IP, 30081)], ids=["cluster-ip", "node-port"])
async def test_service_without_endpoints_is_refused_at_once(client: Client, net: Topology, mode: str, target: str,
                                                            port: int) -> None:
    """Connecting to a service with no ready endpoint fails with 'connection refused' immediately."""
    await services(client)
    async with running_proxier(client, proxier_config(net.node, mode)) as proxier:
        await synced_to(proxier, "default/empty")
        got = await connect_many(net, target, port, 20)
    assert got["errors"] == {"ConnectionRefusedError": 20}
    assert got["worst"] < 0.25  # a reset, not a retransmitted SYN a second later


async def test_client_ip_affinity_pins_a_client_to_one_endpoint(client: Client, net: Topology, mode: str) -> None:
    """With ClientIP affinity all of one client's connections land on the same endpoint."""
    await services(client)
    async with running_proxier(client, proxier_config(net.node, mode)) as proxier:
        await synced_to(proxier, "default/empty")
        got = await connect_many(net, "10.96.0.52", 80, 40)
    assert got["errors"] == {}
    assert len(got["hits"]) == 1 and sum(got["hits"].values()) == 40


async def test_removed_endpoint_gets_no_new_connections_after_the_next_sync(client: Client, net: Topology,
                                                                            mode: str) -> None:
    """After an endpoint leaves, the next sync (well under a second) sends every new connection elsewhere."""
    await services(client)
    async with running_proxier(client, proxier_config(net.node, mode, min_sync_period=0.1)) as proxier:
        await synced_to(proxier, "default/empty")
        partials = proxier.partial_syncs
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await set_endpoints(client, "web", [POD_A])
        await eventually(lambda: proxier.partial_syncs > partials and not proxier._dirty, what="sync")
        assert loop.time() - t0 < 1.0
        got = await connect_many(net, "10.96.0.50", 80, 40)
    assert got["hits"] == {POD_A: 40}


async def test_udp_flows_follow_an_endpoint_change(client: Client, net: Topology, mode: str) -> None:
    """A UDP client that keeps its source port moves to the new endpoint: the stale conntrack entry is deleted."""
    await client.create(svc("dns", cluster_ip="10.96.0.53", ports=[{"name": "http", "port": 53, "protocol": "UDP"}]))
    await client.create(slice_of("dns", subset([POD_A], ports=[("http", 8080, "UDP")])))
    async with running_proxier(client, proxier_config(net.node, mode)) as proxier:
        await synced_to(proxier, "default/dns")
        async with talking(net, UDP_CLIENT, "10.96.0.53", 53) as say:
            assert await say() == POD_A
            assert await say() == POD_A
            partials = proxier.partial_syncs
            await set_endpoints(client, "dns", [POD_B], "UDP")
            await eventually(lambda: proxier.partial_syncs > partials and not proxier._dirty, what="sync")
            assert await say() == POD_B


async def test_established_connection_survives_a_proxy_restart(client: Client, net: Topology,
                                                               mode: str) -> None:
    """A connection made through the service keeps working while the proxy is down and after a new one resyncs."""
    await services(client)
    async with talking(net, LONG_CLIENT, "10.96.0.50", 80) as say:
        async with running_proxier(client, proxier_config(net.node, mode)) as proxier:
            await synced_to(proxier, "default/empty")
            assert await say("connect") in (POD_A, POD_B)
            assert await say("one") == "one"
        assert await say("two") == "two"  # no proxy running; the rules and the conntrack entry stay
        async with running_proxier(client, proxier_config(net.node, mode)) as second:
            assert second.full_syncs == 1
            assert await say("three") == "three"


# POD_A runs on this node (n1), POD_B stands for a pod on another node.
NODES = {POD_A: "n1", POD_B: "n2"}
LB_IP = "10.250.0.130"


async def policy_service(client: Client, endpoints: list[str], **spec: Any) -> None:
    status = spec.pop("status", None)
    await client.create(svc("local", cluster_ip="10.96.0.60", status=status, **spec))
    await client.create(slice_of("local", subset(endpoints, ports=[("http", 8080, "TCP")]), nodes=NODES))


def health(t: Topology, port: int) -> tuple[int, dict[str, Any]]:
    """GET the node's health-check port from the client: (status, JSON body)."""
    script = ("import json, sys, urllib.error, urllib.request\n"
              "try:\n r = urllib.request.urlopen(sys.argv[1], timeout=5); code, body = r.status, r.read()\n"
              "except urllib.error.HTTPError as e:\n code, body = e.code, e.read()\n"
              "print(json.dumps([code, json.loads(body)]))")
    r = in_netns(t.client, sys.executable, "-c", script, f"http://{NODE_IP}:{port}/healthz")
    code, body = json.loads(r.stdout)
    return code, body


@pytest.mark.parametrize("endpoints", [[POD_A, POD_B], [POD_B]], ids=["local-endpoint", "no-local-endpoint"])
async def test_external_traffic_policy_local(client: Client, net: Topology, mode: str, endpoints: list[str]) -> None:
    """externalTrafficPolicy Local: the node port reaches only this node's endpoint and the endpoint sees the
    client's own address; with no endpoint here the connection is dropped, and the health-check port says 503
    (200 with the count of local endpoints otherwise)."""
    await policy_service(client, endpoints, type="LoadBalancer", external_traffic_policy="Local",
                         health_check_node_port=32100, ports=[{"name": "http", "port": 80, "node_port": 30090}],
                         status={"load_balancer": {"ingress": [{"ip": LB_IP}]}})
    async with running_proxier(client, proxier_config(net.node, mode)) as proxier:
        await synced_to(proxier, "default/local")
        await eventually(lambda: 32100 in proxier.health.ports, what="health-check port open")
        code, body = await asyncio.to_thread(health, net, 32100)
        got = await connect_many(net, NODE_IP, 30090, 20 if POD_A in endpoints else 2)
    assert body["service"] == {"namespace": "default", "name": "local"}
    if POD_A in endpoints:
        assert (code, body["localEndpoints"]) == (200, 1)
        assert got["errors"] == {} and got["hits"] == {POD_A: 20}
        assert got["peers"] == [CLIENT_IP]
    else:
        assert (code, body["localEndpoints"]) == (503, 0)
        assert got["hits"] == {} and set(got["errors"]) == {"TimeoutError"}


async def test_internal_traffic_policy_local(client: Client, net: Topology, mode: str) -> None:
    """internalTrafficPolicy Local: the cluster IP reaches only this node's endpoint."""
    await policy_service(client, [POD_A, POD_B], internal_traffic_policy="Local",
                         ports=[{"name": "http", "port": 80}])
    async with running_proxier(client, proxier_config(net.node, mode)) as proxier:
        await synced_to(proxier, "default/local")
        got = await connect_many(net, "10.96.0.60", 80, 30)
    assert got["errors"] == {} and got["hits"] == {POD_A: 30}


@pytest.mark.parametrize(("ranges", "allowed"), [(["10.200.1.0/24"], True), (["192.0.2.0/24"], False)],
                         ids=["client-in-range", "client-outside"])
async def test_load_balancer_source_ranges(client: Client, net: Topology, mode: str, ranges: list[str],
                                           allowed: bool) -> None:
    """loadBalancerSourceRanges: the load-balancer IP answers clients inside the ranges and drops the others; the
    node port stays open to both."""
    # The node routes the load-balancer IP, as it routes the service CIDR: what is not DNATed reaches filter.
    in_netns(net.node, "ip", "route", "add", f"{LB_IP}/32", "dev", "to-pods")
    await policy_service(client, [POD_A, POD_B], type="LoadBalancer", load_balancer_source_ranges=ranges,
                         ports=[{"name": "http", "port": 80, "node_port": 30091}],
                         status={"load_balancer": {"ingress": [{"ip": LB_IP}]}})
    async with running_proxier(client, proxier_config(net.node, mode)) as proxier:
        await synced_to(proxier, "default/local")
        via_lb = await connect_many(net, LB_IP, 80, 10 if allowed else 2)
        via_node_port = await connect_many(net, NODE_IP, 30091, 10)
    if allowed:
        assert via_lb["errors"] == {} and sum(via_lb["hits"].values()) == 10
    else:
        assert via_lb["hits"] == {} and set(via_lb["errors"]) == {"TimeoutError"}
    assert via_node_port["errors"] == {}


async def test_terminating_endpoint_keeps_its_connections(client: Client, net: Topology, mode: str) -> None:
    """Graceful termination: an established connection to an endpoint that turns terminating, and then leaves
    the slice, keeps working; new connections go to the ready endpoint; with no ready one left, they go to the
    terminating endpoint that still serves."""
    await client.create(svc("web", cluster_ip="10.96.0.50", ports=[{"name": "http", "port": 80}]))
    await client.create(slice_of("web", subset([POD_A], ports=[("http", 8080, "TCP")])))
    async with running_proxier(client, proxier_config(net.node, mode)) as proxier:
        await synced_to(proxier, "default/web")
        async with talking(net, LONG_CLIENT, "10.96.0.50", 80) as say:
            assert await say("connect") == POD_A
            partials = proxier.partial_syncs
            await set_endpoints(client, "web", [POD_B], terminating=[POD_A])
            await eventually(lambda: proxier.partial_syncs > partials and not proxier._dirty, what="sync")
            assert await say("still") == "still"
            assert (await connect_many(net, "10.96.0.50", 80, 20))["hits"] == {POD_B: 20}
            partials = proxier.partial_syncs
            await set_endpoints(client, "web", [], terminating=[POD_A])
            await eventually(lambda: proxier.partial_syncs > partials and not proxier._dirty, what="sync")
            assert (await connect_many(net, "10.96.0.50", 80, 10))["hits"] == {POD_A: 10}
            partials = proxier.partial_syncs
            await set_endpoints(client, "web", [POD_B])
            await eventually(lambda: proxier.partial_syncs > partials and not proxier._dirty, what="sync")
            assert await say("after") == "after"


# Raw TCP segments from the client to POD_A:9999, each carrying a marker, and a listener in the pods'
# namespace that reports which markers arrived.
SEND_SEGMENTS = r"""
import socket, struct, sys
src, dst = sys.argv[1], sys.argv[2]
def checksum(data):
    if len(data) % 2: data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16: s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
for flags, marker in ((0x03, b"INVALID"), (0x10, b"CONTROL")):  # SYN+FIN (no valid state) and a plain ACK
    header = struct.pack("!HHIIBBHHH", 40000, 9999, 1000, 0, 5 << 4, flags, 65535, 0, 0)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(header) + len(marker))
    header = header[:16] + struct.pack("!H", checksum(pseudo + header + marker)) + header[18:]
    s.sendto(header + marker, (dst, 0))
"""
LISTEN_SEGMENTS = r"""
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
s.settimeout(0.2)
print("ready", flush=True)
seen, end = set(), time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    try:
        data = s.recv(2048)
    except OSError:
        continue
    for marker in (b"INVALID", b"CONTROL"):
        if data.endswith(marker):
            seen.add(marker.decode())
print(",".join(sorted(seen)), flush=True)
"""


async def markers_through(t: Topology) -> set[str]:
    """Which of the two segments the client sends reach the pods' namespace through the node."""
    listener = await asyncio.create_subprocess_exec(
        "nsenter", f"--net=/run/netns/{t.pods}", "--", sys.executable, "-c", LISTEN_SEGMENTS, "2",
        stdout=asyncio.subprocess.PIPE)
    assert listener.stdout is not None
    assert await asyncio.wait_for(listener.stdout.readline(), 10) == b"ready\n"
    await asyncio.to_thread(in_netns, t.client, sys.executable, "-c", SEND_SEGMENTS, CLIENT_IP, POD_A)
    line = (await asyncio.wait_for(listener.stdout.readline(), 10)).decode().strip()
    await listener.wait()
    return set(line.split(",")) - {""}


async def test_conntrack_invalid_packets_are_dropped(client: Client, net: Topology, mode: str) -> None:
    """A segment conntrack calls INVALID (SYN+FIN) is forwarded to the pod without the proxy and dropped with it;
    a segment conntrack can track goes through either way."""
    assert await markers_through(net) == {"INVALID", "CONTROL"}
    await services(client)
    async with running_proxier(client, proxier_config(net.node, mode)) as proxier:
        await synced_to(proxier, "default/empty")
        assert await markers_through(net) == {"CONTROL"}
