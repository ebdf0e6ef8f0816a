"""The ingress controller against a real apiserver, with a real nginx in a scratch node namespace.

    client ns (10.200.1.2) --veth-- node ns (10.200.1.1: nginx) --veth-- pods ns (10.244.7.2, 10.244.7.3)

No proxy and no DNS: nginx sends requests straight to the endpoints the EndpointSlices name.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import testpki
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from api import convert
from api.pb import core_pb2, discovery_pb2, networking_pb2
from client.api import Client
from ingress.controller import IngressConfig, IngressController
from integration.proxy.conftest import MakeNetns
from integration.proxy.proxyhelp import eventually, in_netns, kubelite
from integration.proxy.test_datapath import NODE_IP, POD_A, POD_B, Topology, build

# HTTP on 8080 of each address: `<ip> <Host header> <path>`; /slow sends one line a second for 3 seconds.
BACKEND = r"""
import http.server, socketserver, sys, threading, time
class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_GET(self):
        own = self.connection.getsockname()[0]
        if self.path == "/slow":
            self.send_response(200); self.send_header("Content-Length", str(3 * 6)); self.end_headers()
            for i in range(3):
                self.wfile.write(f"chunk{i}".encode()[:5] + b"\n"); self.wfile.flush(); time.sleep(1)
            return
        body = f"{own} {self.headers.get('Host', '')} {self.path}\n".encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
for ip in sys.argv[1:]:
    threading.Thread(target=Server((ip, 8080), Handler).serve_forever, daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"""

# GET each URL with a Host header (and optionally SNI over TLS); prints JSON [status or error, body].
FETCH = r"""
import http.client, json, socket, ssl, sys
host, port, tls, sni, paths = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "tls", sys.argv[4], sys.argv[5:]
out = []
for p in paths:
    try:
        c = http.client.HTTPConnection(host, port, timeout=5)
        if tls:  # the server name (SNI) is the Host, the address the node's
            ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
            c.sock = ctx.wrap_socket(socket.create_connection((host, port), timeout=5), server_hostname=sni)
        c.request("GET", p, headers={"Host": sni})
        r = c.getresponse()
        out.append([r.status, r.read().decode()])
        c.close()
    except Exception as e:
        out.append([type(e).__name__, str(e)])
print(json.dumps(out))
"""


@pytest.fixture
async def net(make_netns: MakeNetns) -> AsyncIterator[Topology]:
    t = await asyncio.to_thread(build, make_netns)
    server = await asyncio.create_subprocess_exec(
        "nsenter", f"--net=/run/netns/{t.pods}", "--", sys.executable, "-c", BACKEND, POD_A, POD_B,
        stdout=asyncio.subprocess.PIPE)
    try:
        assert server.stdout is not None
        assert await asyncio.wait_for(server.stdout.readline(), 10) == b"ready\n"
        yield t
    finally:
        server.kill()
        await server.wait()


def fetch(t: Topology, sni: str, *paths: str, tls: bool = False) -> list[list[Any]]:
    port = "443" if tls else "80"
    r = in_netns(t.client, sys.executable, "-c", FETCH, NODE_IP, port, "tls" if tls else "plain", sni, *paths,
                 timeout=60)
    return json.loads(r.stdout)


async def afetch(t: Topology, sni: str, *paths: str, tls: bool = False) -> list[list[Any]]:
    return await asyncio.to_thread(fetch, t, sni, *paths, tls=tls)


def obj(cls: type, data: dict[str, Any]) -> Any:
    return convert.from_dict(cls, data)


async def backends(client: Client) -> None:
    """Services bar (POD_A) and foo (POD_B), each with an EndpointSlice; the IngressClass the docs use."""
    for name, ip in (("bar", POD_A), ("foo", POD_B)):
        await client.create(obj(core_pb2.Service, {"metadata": {"name": name, "namespace": "default"}, "spec": {
            "clusterIP": "None", "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}}))
        await client.create(slice_for(name, [ip]))
    await client.create(obj(networking_pb2.IngressClass, {"metadata": {"name": "nginx-example"},
                                                          "spec": {"controller": "kubelite.dev/ingress-nginx"}}))


def slice_for(name: str, ready: list[str], terminating: list[str] = ()) -> discovery_pb2.EndpointSlice:
    es = discovery_pb2.EndpointSlice(
        metadata={"name": f"{name}-abcde", "namespace": "default", "labels": {"kubernetes.io/service-name": name}},
        address_type="IPv4", ports=[{"name": "http", "port": 8080, "protocol": "TCP"}])
    for ip in ready:
        es.endpoints.add(addresses=[ip], conditions={"ready": True, "serving": True, "terminating": False})
    for ip in terminating:
        es.endpoints.add(addresses=[ip], conditions={"ready": False, "serving": True, "terminating": True})
    return es


def path(p: str, kind: str, svc: str) -> networking_pb2.HTTPIngressPath:
    return obj(networking_pb2.HTTPIngressPath, {"path": p, "pathType": kind,
                                                 "backend": {"service": {"name": svc, "port": {"number": 80}}}})


def fanout(paths: list[tuple[str, str, str]], **spec: Any) -> networking_pb2.Ingress:
    return obj(networking_pb2.Ingress, {"metadata": {"name": "fanout", "namespace": "default"}, "spec": {
        "ingressClassName": "nginx-example", **spec, "rules": [{"host": "foo.example", "http": {"paths": [
            {"path": p, "pathType": kind, "backend": {"service": {"name": svc, "port": {"number": 80}}}}
            for p, kind, svc in paths]}}]}})


@contextlib.asynccontextmanager
async def running_controller(client: Client, t: Topology, state: Path, **overrides: Any
                             ) -> AsyncIterator[IngressController]:
    config = IngressConfig(node_name="n1", state_dir=state, publish_address=NODE_IP,
                           netns=f"/run/netns/{t.node}", **overrides)
    controller = IngressController(client, config)
    task = asyncio.create_task(controller.run())
    try:
        waiter = asyncio.create_task(controller.ready.wait())
        done, _ = await asyncio.wait({task, waiter}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            task.result()
        assert waiter in done, "the controller did not configure nginx"
        yield controller
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 20)


async def serving(t: Topology, sni: str, path: str, want: str, *, timeout: float = 10.0) -> float:
    """Wait until `path` on `sni` answers from `want`; returns how long it took."""
    t0 = time.monotonic()

    async def check() -> bool:
        (status, body), = await afetch(t, sni, path)
        return status == 200 and body.startswith(want + " ")

    await eventually(check, timeout=timeout, interval=0.05, what=f"{sni}{path} from {want}")
    return time.monotonic() - t0


async def test_host_and_path_routing(client: Client, net: Topology, tmp_path: Path) -> None:
    """Host foo.example routes /bar (Prefix, element-wise) to bar and /foo (Exact) to foo, straight to the pods;
    other paths and hosts get 404; the status lists the node's address."""
    await backends(client)
    await client.create(fanout([("/bar", "Prefix", "bar"), ("/foo", "Exact", "foo")]))
    async with running_controller(client, net, tmp_path):
        await serving(net, "foo.example", "/bar", POD_A)
        got = await afetch(net, "foo.example", "/bar", "/bar/x", "/barx", "/foo", "/foo/x", "/")
        assert [(s, b.split()[0] if s == 200 else "") for s, b in got] == [
            (200, POD_A), (200, POD_A), (404, ""), (200, POD_B), (404, ""), (404, "")]
        assert got[0][1] == f"{POD_A} foo.example /bar\n"
        assert (await afetch(net, "other.example", "/bar"))[0][0] == 404

        async def published() -> bool:
            ing = await client.get("ingresses", "fanout", "default")
            return [i.ip for i in ing.status.load_balancer.ingress] == [NODE_IP]

        await eventually(published, what="status.loadBalancer")

    ing = await client.get("ingresses", "fanout", "default")
    assert list(ing.status.load_balancer.ingress) == []  # taken out when the controller stops


async def test_changes_take_effect_within_two_seconds(client: Client, net: Topology, tmp_path: Path) -> None:
    """Pointing a path at another Service, and adding a path, are served within 2 s; a burst of changes costs a
    few reloads, not one each."""
    await backends(client)
    await client.create(fanout([("/bar", "Prefix", "bar")]))
    async with running_controller(client, net, tmp_path) as controller:
        await serving(net, "foo.example", "/bar", POD_A)
        ing = await client.get("ingresses", "fanout", "default")
        ing.spec.rules[0].http.paths[0].backend.service.name = "foo"
        await client.update(ing)
        assert await serving(net, "foo.example", "/bar", POD_B, timeout=5) < 2.0
        reloads = controller.stats.reloads
        for i in range(20):
            ing = await client.get("ingresses", "fanout", "default")
            ing.metadata.annotations["burst"] = str(i)
            ing.spec.rules[0].http.paths.add().CopyFrom(path(f"/p{i}", "Exact", "bar"))
            await client.update(ing)
        assert await serving(net, "foo.example", "/p19", POD_A, timeout=5) < 2.0
        await asyncio.sleep(1.5)
        assert controller.stats.reloads - reloads <= 4, controller.stats


async def test_reload_keeps_a_request_in_flight(client: Client, net: Topology, tmp_path: Path) -> None:
    """A slow response that is being sent while nginx reloads completes whole."""
    await backends(client)
    await client.create(fanout([("/slow", "Exact", "bar"), ("/bar", "Exact", "bar")]))
    async with running_controller(client, net, tmp_path) as controller:
        await serving(net, "foo.example", "/bar", POD_A)
        slow = asyncio.create_task(afetch(net, "foo.example", "/slow"))
        await asyncio.sleep(1.0)
        reloads = controller.nginx.reloads
        ing = await client.get("ingresses", "fanout", "default")
        ing.spec.rules[0].http.paths.add().CopyFrom(path("/new", "Exact", "foo"))
        await client.update(ing)
        await eventually(lambda: controller.nginx.reloads > reloads, what="a reload")
        (status, body), = await slow
        assert (status, body) == (200, "chunk\n" * 3)


async def test_no_request_fails_while_endpoints_roll(client: Client, net: Topology, tmp_path: Path) -> None:
    """Requests in a loop while the backend's endpoints roll over (new one added, old one terminating, then
    gone and its server stopped): every request succeeds."""
    await backends(client)
    await client.create(fanout([("/bar", "Prefix", "bar")]))
    async with running_controller(client, net, tmp_path):
        await serving(net, "foo.example", "/bar", POD_A)
        loop = asyncio.create_task(afetch(net, "foo.example", *(["/bar"] * 300)))
        for ready, dying in (([POD_A, POD_B], []), ([POD_B], [POD_A]), ([POD_B], [])):
            await asyncio.sleep(0.5)
            es = await client.get("endpointslices", "bar-abcde", "default")
            es.ClearField("endpoints")
            es.endpoints.extend(slice_for("bar", ready, dying).endpoints)
            await client.update(es)
        results = await loop
    assert {s for s, _ in results} == {200}, [r for r in results if r[0] != 200][:5]
    assert {b.split()[0] for _, b in results} == {POD_A, POD_B}


def self_signed(host: str) -> tuple[bytes, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))


PEER_CERT = r"""
import hashlib, socket, ssl, sys
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
try:
    with socket.create_connection((sys.argv[1], 443), timeout=5) as s:
        with ctx.wrap_socket(s, server_hostname=sys.argv[2]) as t:
            print(hashlib.sha256(t.getpeercert(binary_form=True)).hexdigest())
except (ssl.SSLError, OSError) as e:
    print("refused", type(e).__name__)
"""


async def test_tls_answers_with_the_secrets_certificate(client: Client, net: Topology, tmp_path: Path) -> None:
    """HTTPS to foo.example presents the certificate of the Ingress's kubernetes.io/tls Secret and routes like
    HTTP; a name with no certificate is refused at the handshake."""
    await backends(client)
    cert, key = self_signed("foo.example")
    await client.create(core_pb2.Secret(metadata={"name": "foo-tls", "namespace": "default"},
                                        type="kubernetes.io/tls", data={"tls.crt": cert, "tls.key": key}))
    await client.create(fanout([("/bar", "Prefix", "bar")], tls=[{"hosts": ["foo.example"],
                                                                   "secretName": "foo-tls"}]))
    async with running_controller(client, net, tmp_path):
        await serving(net, "foo.example", "/bar", POD_A)
        der = x509.load_pem_x509_certificate(cert).public_bytes(serialization.Encoding.DER)
        got = in_netns(net.client, sys.executable, "-c", PEER_CERT, NODE_IP, "foo.example").stdout.strip()
        assert got == hashlib.sha256(der).hexdigest()
        (status, body), = await afetch(net, "foo.example", "/bar", tls=True)
        assert (status, body.split()[0]) == (200, POD_A)
        refused = in_netns(net.client, sys.executable, "-c", PEER_CERT, NODE_IP, "other.example").stdout.strip()
        assert refused.startswith("refused")
        assert oct((tmp_path / "certs" / "default_foo-tls.pem").stat().st_mode & 0o777) == "0o600"


async def test_warnings_become_events(client: Client, net: Topology, tmp_path: Path) -> None:
    """An annotation kubelite does not implement, and a backend Service that does not exist, are reported as
    Warning events on the Ingress (and the missing backend answers 503)."""
    await backends(client)
    ing = fanout([("/bar", "Prefix", "bar"), ("/gone", "Prefix", "nothere")])
    ing.metadata.annotations["nginx.ingress.kubernetes.io/rewrite-target"] = "/"
    await client.create(ing)
    async with running_controller(client, net, tmp_path):
        await serving(net, "foo.example", "/bar", POD_A)
        assert (await afetch(net, "foo.example", "/gone"))[0][0] == 503

        async def reasons() -> set[str]:
            events = await client.list_all("events", "default")
            return {e.reason for e in events if e.involved_object.name == "fanout" and e.type == "Warning"}

        await eventually(lambda: reasons(), what="warning events")
        await eventually(lambda: _has(reasons, {"AnnotationUnsupported", "ServiceNotFound"}), what="both events")


async def _has(reasons: Any, want: set[str]) -> bool:
    return want <= await reasons()


async def start_daemon(api: Any, net: Topology, state: Path, *credentials: str) -> asyncio.subprocess.Process:
    """`kubelite ingress` as a node runs it, with only the credentials given (no config file to fall back on)."""
    env = {**os.environ, "KUBELITE_CONFIG": str(state.parent / "no-config.yaml")}
    return await asyncio.create_subprocess_exec(
        kubelite(), "ingress", "--server", api.address, *credentials, "--node-name", "n1", "--state-dir", str(state),
        "--netns", net.node, "--publish-address", NODE_IP, env=env, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE)


async def stop_daemon(proc: asyncio.subprocess.Process) -> str:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    return err.decode()


async def test_daemon_reaches_the_apiserver_as_its_node(apiserver: Any, client: Client, net: Topology,
                                                        tmp_path: Path) -> None:
    """`kubelite ingress` with its node's client certificate (system:node:n1, from the cluster CA) serves the
    Ingresses over mutual TLS, publishes the node's address, and takes it out on SIGTERM."""
    await backends(client)
    await client.create(fanout([("/bar", "Prefix", "bar")]))
    node = testpki.get().node("n1")
    proc = await start_daemon(apiserver, net, tmp_path / "state", "--certificate-authority", testpki.get().ca_file,
                              "--client-certificate", node["kubelet"], "--client-key", node["kubelet-key"])
    try:
        await serving(net, "foo.example", "/bar", POD_A, timeout=30)

        async def published() -> bool:
            ing = await client.get("ingresses", "fanout", "default")
            return [i.ip for i in ing.status.load_balancer.ingress] == [NODE_IP]

        await eventually(published, what="status.loadBalancer")
    finally:
        err = await stop_daemon(proc)
    assert proc.returncode == 0, err
    ing = await client.get("ingresses", "fanout", "default")
    assert list(ing.status.load_balancer.ingress) == []


async def test_nginx_stops_when_the_controller_is_killed(apiserver: Any, client: Client, net: Topology,
                                                        tmp_path: Path) -> None:
    """A controller killed outright takes its nginx with it (gracefully), so a new one can take the ports."""
    await backends(client)
    await client.create(fanout([("/bar", "Prefix", "bar")]))
    node = testpki.get().node("n1")
    state = tmp_path / "state"
    proc = await start_daemon(apiserver, net, state, "--certificate-authority", testpki.get().ca_file,
                              "--client-certificate", node["kubelet"], "--client-key", node["kubelet-key"])
    try:
        await serving(net, "foo.example", "/bar", POD_A, timeout=30)
        master = int((state / "nginx.pid").read_text().split()[0])
        assert b"nginx" in Path(f"/proc/{master}/cmdline").read_bytes()  # noqa: ASYNC240
        proc.kill()
        await eventually(lambda: not Path(f"/proc/{master}").exists(), timeout=15, what="nginx to stop")
    finally:
        await stop_daemon(proc)


@pytest.mark.parametrize(("credentials", "why"), [
    pytest.param(lambda: ["--certificate-authority", testpki.get().ca_file], b"this client presents none",
                 id="no-client-certificate"),
    pytest.param(lambda: ["--certificate-authority", testpki.get().ca_file,
                          "--client-certificate", testpki.foreign().path("admin"),
                          "--client-key", testpki.foreign().path("admin", "key")],
                 b"is not signed by the cluster CA", id="another-clusters-certificate"),
])
async def test_daemon_without_the_clusters_certificate_gets_nothing(apiserver: Any, client: Client, net: Topology,
                                                                    tmp_path: Path, credentials: Any,
                                                                    why: bytes) -> None:
    """Without a client certificate of the cluster CA the apiserver answers the ingress controller nothing: it
    says why in its log, configures no nginx and publishes no address; there is no plaintext to fall back on."""
    await backends(client)
    await client.create(fanout([("/bar", "Prefix", "bar")]))
    state = tmp_path / "state"
    proc = await start_daemon(apiserver, net, state, *credentials())
    assert proc.stderr is not None
    seen = b""

    async def refused() -> bool:
        nonlocal seen
        with contextlib.suppress(TimeoutError):
            seen += await asyncio.wait_for(proc.stderr.read(4096), 0.5)  # type: ignore[union-attr]
        return why in seen
    try:
        await eventually(refused, timeout=30, what="the refusal in the controller's log")
        assert not (state / "nginx.conf").exists()
        ing = await client.get("ingresses", "fanout", "default")
        assert list(ing.status.load_balancer.ingress) == []
    finally:
        await stop_daemon(proc)
