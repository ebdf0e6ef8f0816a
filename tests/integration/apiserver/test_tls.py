"""Mutual TLS on every link, as a client from elsewhere meets it: the apiserver, etcd and kubelets refuse a
certificate of another cluster (and no certificate at all) in words that name it; a kubelet serves the apiserver's
kubelet-client identity only; health is open, reflection is not; a renewed serving certificate is served without a
restart; a plaintext apiserver stays off the network."""

from __future__ import annotations

import asyncio
import datetime
from pathlib import Path

import grpc
import pytest
import testpki
from aetcd import rpc
from conftest import RunningApiserver, start_apiserver
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from api.errors import CertificateError, UnavailableError
from api.pb import api_pb2, api_pb2_grpc
from apiserver.storage.etcd import EtcdStorage, EtcdTLS, parse_endpoints
from client import pki
from client.api import Client
from client.config import ClientConfig
from kubelet.runtime import images
from kubelet.runtime.fake import FakeRuntime

from ..cli.conftest import clean_env, run_kubelite
from ..kubelet.kubelethelp import config, kubelet, pod, pod_where, running_ready


async def test_apiserver_refuses_another_clusters_certificate(apiserver: RunningApiserver) -> None:
    """A certificate of a second cluster's CA is refused in the handshake, and the client says which and why: with
    this cluster's CA it names its own certificate, with the other CA it names the apiserver's."""
    ours, theirs = testpki.get(), testpki.foreign()
    mixed = ClientConfig(server=apiserver.address, ca_file=ours.ca_file, cert_file=theirs.path("admin"),
                         key_file=theirs.path("admin", "key"))
    async with Client(mixed) as client:
        with pytest.raises(CertificateError, match=r"certificate signed by unknown authority: this client's "
                                                   r"certificate .* is not signed by the cluster CA"):
            await client.list("pods")
    async with Client(theirs.client(apiserver.address)) as client:
        with pytest.raises(CertificateError, match=r"certificate signed by unknown authority: the apiserver at .* "
                                                   r"this client's CA is not the cluster's"):
            await client.list("pods")
    async with apiserver.client() as client:  # the cluster's own admin still gets in
        assert (await client.list("namespaces")).items


async def test_cli_says_why_a_certificate_is_refused(apiserver: RunningApiserver, tmp_path: Path) -> None:
    """`kubelite get` with another cluster's certificate exits 1 with one line naming the certificate."""
    theirs = testpki.foreign()
    env = clean_env(tmp_path)
    result = await run_kubelite("get", "pods", "--server", apiserver.address, "--client-certificate",
                                theirs.path("admin"), "--client-key", theirs.path("admin", "key"), env=env)
    assert result.code == 1
    assert len(result.err_lines) == 1, result.err
    assert result.err_lines[0].startswith(f"error: cannot talk to the apiserver at {apiserver.address}: certificate "
                                          f"signed by unknown authority: this client's certificate")


async def test_expired_client_certificate_is_named(apiserver: RunningApiserver, tmp_path: Path) -> None:
    """An expired client certificate is refused, and the client says it expired and when."""
    ca = testpki.get().store.ca()
    key = pki.new_key()
    old = (pki.x509.CertificateBuilder().subject_name(pki.Identity("kubelite-admin", ("system:masters",)).name())
           .issuer_name(ca.cert.subject).public_key(key.public_key()).serial_number(pki.x509.random_serial_number())
           .not_valid_before(pki.now() - datetime.timedelta(days=2))
           .not_valid_after(pki.now() - datetime.timedelta(hours=1)).sign(ca.key, pki.hashes.SHA256()))
    crt, k = pki.write_pair(tmp_path, "old", old, key)
    async with Client(ClientConfig(server=apiserver.address, ca_file=testpki.get().ca_file, cert_file=str(crt),
                                   key_file=str(k))) as client:
        with pytest.raises(CertificateError, match=r"client certificate .*old.crt \(kubelite-admin\) expired at"):
            await client.list("pods")


async def test_etcd_takes_the_apiservers_etcd_certificate_only(etcd: str) -> None:
    """etcd (client-cert auth, its own CA) refuses a certificate of the cluster CA and one of another cluster's etcd
    CA, and the apiserver's storage says so; the apiserver's own etcd client certificate works."""
    ours, theirs = testpki.get(), testpki.foreign()
    endpoints = parse_endpoints(etcd)
    for tls_files, expect in (
            (EtcdTLS(ours.path("etcd/ca"), ours.path("admin"), ours.path("admin", "key")),
             r"this client's certificate .*admin.crt \(kubelite-admin, issued by 'kubelite-ca'\) is not signed by "
             r"the cluster CA in .*etcd/ca.crt"),
            (EtcdTLS(ours.path("etcd/ca"), theirs.path("apiserver-etcd-client"),
                     theirs.path("apiserver-etcd-client", "key")), "certificate signed by unknown authority"),
            (theirs.etcd_tls(), "certificate signed by unknown authority: etcd at .* presented a certificate")):
        storage = EtcdStorage(endpoints, tls_files=tls_files)
        with pytest.raises(UnavailableError, match=expect):
            await storage.connect(timeout=1)
        await storage.close()
    storage = EtcdStorage(endpoints, tls_files=ours.etcd_tls())
    await storage.connect(timeout=10)
    assert await storage.revision() > 0
    await storage.close()


async def _kubelet_exec(port: int, identity_pki: testpki.TestPki | None, identity: str = "admin"
                        ) -> tuple[str, str]:
    """Exec on the kubelet's port directly, as `identity` of `identity_pki` (None: no certificate)."""
    ours = testpki.get()
    key = cert = None
    if identity_pki is not None:
        key, cert = identity_pki.pem(identity, "key"), identity_pki.pem(identity)
    creds = grpc.ssl_channel_credentials(ours.pem("ca"), key, cert)
    async with grpc.aio.secure_channel(f"127.0.0.1:{port}", creds) as channel:
        try:
            await api_pb2_grpc.KubeletStub(channel).Exec(
                api_pb2.ExecRequest(namespace="default", name="target", command=["true"]), timeout=5)
        except grpc.aio.AioRpcError as e:
            return e.code().name, e.details() or ""
    return "OK", ""


async def test_kubelet_serves_the_apiserver_only(apiserver: RunningApiserver, tmp_path: Path) -> None:
    """On the kubelet's port, no certificate and another cluster's fail the handshake, another identity of this
    cluster is refused by name; the apiserver's kubelet-client identity (through `exec`) gets in."""
    busybox = "localhost:5000/kubelite/busybox:1.35"
    runtime = FakeRuntime(images=(images.PAUSE_IMAGE, busybox), pod_cidr="10.244.6.0/24")
    async with apiserver.client() as client, \
            kubelet(client, runtime, config("tls-node", tmp_path, node_ip="127.0.0.1")) as k:
        await client.create(pod("target", "tls-node"))
        await pod_where(client, "target", running_ready)
        assert k.server is not None
        port = k.server.port
        no_cert = await _kubelet_exec(port, None)
        assert no_cert[0] == "UNAVAILABLE", no_cert
        foreign = await _kubelet_exec(port, testpki.foreign(), "apiserver-kubelet-client")
        assert foreign[0] == "UNAVAILABLE", foreign
        for other in ("admin", "nodes/tls-node/kubelet"):
            code, details = await _kubelet_exec(port, testpki.get(), other)
            assert code == "PERMISSION_DENIED" and "serves kube-apiserver-kubelet-client only" in details
        assert (await _kubelet_exec(port, testpki.get(), "apiserver-kubelet-client"))[0] == "OK"
        resp = await client.exec("default", "target", ["true"])
        assert resp.exit_code == 0


async def test_health_is_open_reflection_is_not(etcd: str) -> None:
    """On the token port (no client certificate needed) health answers anyone; reflection wants a caller."""
    running = await start_apiserver(etcd, token_listen=["127.0.0.1:0"])
    try:
        creds = grpc.ssl_channel_credentials(testpki.get().pem("ca"))
        async with grpc.aio.secure_channel(running.token_address, creds) as channel:
            resp = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert resp.status == health_pb2.HealthCheckResponse.SERVING
            stub = reflection_pb2_grpc.ServerReflectionStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                async for _ in stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(
                        list_services="")]), timeout=5):
                    pass
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        await running.stop()


async def test_renewed_serving_certificate_is_served_without_a_restart(etcd: str, tmp_path: Path) -> None:
    """Replacing the apiserver's certificate file (as `kubelite certs renew` does) changes what new connections
    get; the server keeps running."""
    ours = testpki.get()
    import shutil

    for name in ("apiserver.crt", "apiserver.key"):
        shutil.copy(ours.dir / name, tmp_path / name)
    serving = ours.serving()
    serving.cert_file, serving.key_file = str(tmp_path / "apiserver.crt"), str(tmp_path / "apiserver.key")
    running = await start_apiserver(etcd, tls=serving)
    try:
        before = await asyncio.to_thread(_served_serial, running.address)
        from deploy.node import certs

        certs.renew_file(ours.store.ca(), tmp_path / "apiserver.crt", tmp_path / "apiserver.key")
        after = await asyncio.to_thread(_served_serial, running.address)
        assert after != before
        assert after == pki.read_cert(tmp_path / "apiserver.crt").serial_number
        async with running.client() as client:
            assert (await client.list("namespaces")).items
    finally:
        await running.stop()


def _served_serial(address: str) -> int:
    """The serial number of the certificate a new TLS connection to `address` is shown."""
    import socket
    import ssl

    host, port = address.rsplit(":", 1)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    ours = testpki.get()
    ctx.load_cert_chain(ours.path("admin"), ours.path("admin", "key"))
    ctx.set_alpn_protocols(["h2"])
    with socket.create_connection((host, int(port)), timeout=5) as sock, ctx.wrap_socket(sock) as conn:
        der = conn.getpeercert(binary_form=True)
    assert der is not None
    return pki.x509.load_der_x509_certificate(der).serial_number


@pytest.mark.parametrize(("args", "message"), [
    pytest.param(("--listen", "0.0.0.0:16999"), "no TLS files given", id="no-tls"),
    pytest.param(("--insecure-plaintext", "--etcd-servers", "http://127.0.0.1:1", "--listen", "0.0.0.0:16999"),
                 "--insecure-plaintext-on-the-network-for-anyone", id="plaintext-on-the-network"),
])
async def test_plaintext_apiserver_stays_off_the_network(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    """`kubelite apiserver` without TLS on a non-loopback address refuses to start, naming the loud flag."""
    result = await run_kubelite("apiserver", *args, env=clean_env(tmp_path), timeout=30)
    assert result.code == 1
    assert len(result.err_lines) == 1 and message in result.err_lines[0], result.err


async def test_raw_etcd_connection_needs_the_etcd_certificate(etcd: str) -> None:
    """A raw connection without a client certificate does not even finish the handshake."""
    ((host, port),) = parse_endpoints(etcd)
    creds = grpc.ssl_channel_credentials(testpki.get().pem("etcd/ca"))
    async with grpc.aio.secure_channel(f"{host}:{port}", creds) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await rpc.KVStub(channel).Range(rpc.RangeRequest(key=b"/", limit=1), timeout=5)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_every_api_method_needs_a_caller(etcd: str) -> None:
    """Each method of the API service, as the descriptor lists them (so a new one cannot be forgotten), refuses a
    call that presents neither a certificate nor a token: UNAUTHENTICATED, before anything runs."""
    running = await start_apiserver(etcd, token_listen=["127.0.0.1:0"])
    try:
        creds = grpc.ssl_channel_credentials(testpki.get().pem("ca"))
        async with grpc.aio.secure_channel(running.token_address, creds) as channel:
            for method in api_pb2.DESCRIPTOR.services_by_name["Api"].methods:
                path = f"/kubelite.v1.Api/{method.name}"
                try:
                    if method.client_streaming:
                        call = channel.stream_stream(path, request_serializer=None, response_deserializer=None)
                        async for _ in call(iter([b""]), timeout=5):
                            pass
                    elif method.server_streaming:
                        async for _ in channel.unary_stream(path, request_serializer=None,
                                                            response_deserializer=None)(b"", timeout=5):
                            pass
                    else:
                        await channel.unary_unary(path, request_serializer=None, response_deserializer=None)(
                            b"", timeout=5)
                except grpc.aio.AioRpcError as e:
                    assert e.code() == grpc.StatusCode.UNAUTHENTICATED, (method.name, e.code(), e.details())
                    continue
                raise AssertionError(f"{method.name} answered a caller without credentials")
    finally:
        await running.stop()
