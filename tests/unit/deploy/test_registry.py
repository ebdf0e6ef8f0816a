"""The lab registry: image names as containerd asks for them, and the manifests and blobs it serves."""

from __future__ import annotations

import datetime
import json
import socket
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import testpki

from deploy.node import images, registry


@pytest.mark.parametrize(("name", "want"), [
    pytest.param("nginx", ("docker.io", "library/nginx", "latest"), id="docker-hub-short"),
    pytest.param("redis:7", ("docker.io", "library/redis", "7"), id="tag"),
    pytest.param("registry.k8s.io/busybox", ("registry.k8s.io", "busybox", "latest"), id="other-registry"),
    pytest.param("localhost:5000/kubelite/pause:3.9", ("localhost:5000", "kubelite/pause", "3.9"), id="with-port"),
])
def test_names_split_as_containerd_resolves_them(name: str, want: tuple[str, str, str]) -> None:
    """A reference's registry, repository (library/ for Docker Hub) and tag."""
    assert registry.split_name(name) == want


def test_serves_the_stand_in_images_and_nothing_else(tmp_path: Path) -> None:
    """The manifest of `nginx` (as a docker.io mirror is asked for it) and its blobs are served with their
    digests; an image it does not have is MANIFEST_UNKNOWN."""
    images.build_stand_ins(tmp_path)
    server = registry.serve(tmp_path, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with urllib.request.urlopen(f"{base}/v2/library/nginx/manifests/latest?ns=docker.io") as r:
            manifest = json.loads(r.read())
            digest = r.headers["Docker-Content-Digest"]
        assert digest.startswith("sha256:") and manifest["schemaVersion"] == 2
        layer = manifest["layers"][0]["digest"]
        with urllib.request.urlopen(f"{base}/v2/library/nginx/blobs/{layer}?ns=docker.io") as r:
            assert len(r.read()) == manifest["layers"][0]["size"]
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"{base}/v2/library/postgres/manifests/latest?ns=docker.io")
        assert err.value.code == 404
    finally:
        server.shutdown()


def _tls_client(pki: testpki.TestPki, identity: str | None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=testpki.get().ca_file)
    if identity is not None:
        ctx.load_cert_chain(pki.path(identity), pki.path(identity, "key"))
    return ctx


@pytest.mark.parametrize(("pki", "identity", "served"), [
    pytest.param(testpki.get, "nodes/n1/kubelet", True, id="a-node-of-the-cluster"),
    pytest.param(testpki.get, None, False, id="no-certificate"),
    pytest.param(testpki.foreign, "admin", False, id="another-clusters-certificate"),
])
def test_over_mutual_tls_only_the_clusters_certificates_pull(tmp_path: Path, pki, identity: str | None,
                                                             served: bool) -> None:
    """With TLS the registry serves a client presenting a certificate from the cluster CA (a node's, as containerd
    pulls); without a certificate, or with another cluster's, the handshake fails and nothing is served."""
    ours = testpki.get()
    if identity is not None and identity.startswith("nodes/"):
        ours.node("n1")
    images.build_stand_ins(tmp_path)
    server = registry.serve(tmp_path, "127.0.0.1", 0, tls=registry.RegistryTLS(
        ours.path("registry"), ours.path("registry", "key"), ours.ca_file))
    url = f"https://127.0.0.1:{server.server_address[1]}/v2/library/nginx/manifests/latest?ns=docker.io"
    try:
        context = _tls_client(pki(), identity)
        if served:
            with urllib.request.urlopen(url, context=context, timeout=10) as r:
                assert json.loads(r.read())["schemaVersion"] == 2
        else:
            with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)), \
                    urllib.request.urlopen(url, context=context, timeout=10) as r:
                r.read()
    finally:
        server.shutdown()


def test_hosts_toml_names_the_nodes_certificate() -> None:
    """containerd's hosts.toml for the mirror over mutual TLS names the CA and the node's certificate and key."""
    text = registry.hosts_toml("https://10.250.0.2:5000", "docker.io",
                               registry.MirrorTLS("/pki/ca.crt", "/pki/kubelet.crt", "/pki/kubelet.key"))
    assert text == ('server = "https://docker.io"\n\n[host."https://10.250.0.2:5000"]\n'
                    '  capabilities = ["pull", "resolve"]\n  ca = "/pki/ca.crt"\n'
                    '  client = [["/pki/kubelet.crt", "/pki/kubelet.key"]]\n')


def test_a_renewed_certificate_is_served_without_a_restart(tmp_path: Path) -> None:
    """After its certificate file is replaced (as `kubelite certs renew` does), the next connection gets the new
    certificate from the same registry process."""
    from client import pki
    from deploy.node import certs

    ours = testpki.get()
    ours.node("n1")
    request = pki.Request(pki.Identity("kubelite-registry"), (pki.SERVER,), dns=("localhost",), ips=("127.0.0.1",))
    crt, key = ours.issue("registry-renewable", request)
    images.build_stand_ins(tmp_path)
    server = registry.serve(tmp_path, "127.0.0.1", 0, tls=registry.RegistryTLS(crt, key, ours.ca_file))

    def served() -> bytes:
        ctx = _tls_client(ours, "nodes/n1/kubelet")
        with socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=10) as raw, \
                ctx.wrap_socket(raw, server_hostname="127.0.0.1") as conn:
            der = conn.getpeercert(binary_form=True)
            assert der is not None
            return der

    try:
        first = served()
        certs.renew_file(ours.store.ca(), Path(crt), Path(key), lifetime=datetime.timedelta(days=30))
        second = served()
        assert first != second and ssl.DER_cert_to_PEM_cert(second).encode().strip() == Path(crt).read_bytes().strip()
    finally:
        server.shutdown()
