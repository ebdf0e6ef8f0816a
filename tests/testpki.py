"""A real test CA and certificates for the test suite, made once per process with the project's own PKI code.

Tests run every link with mutual TLS, as the cluster does: etcd with client-cert auth, the apiserver with
client certificates, kubelets with serving certificates. `foreign()` is a second cluster's CA, for tests that a
certificate from elsewhere is refused.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import grpc
import yaml

from apiserver.kubelet_proxy import KubeletTLS
from apiserver.nodecerts import SignerConfig
from apiserver.server import ServingTLS
from apiserver.serviceaccounts import TokenConfig
from apiserver.storage.etcd import EtcdTLS
from client import pki, tls
from client.config import ClientConfig
from deploy.node import certs


@dataclass(frozen=True)
class TestPki:
    store: certs.Pki

    @property
    def dir(self) -> Path:
        return self.store.dir

    def path(self, name: str, ext: str = "crt") -> str:
        return str(self.dir / f"{name}.{ext}")

    def pem(self, name: str, ext: str = "crt") -> bytes:
        return (self.dir / f"{name}.{ext}").read_bytes()

    @property
    def ca_file(self) -> str:
        return self.path(certs.CA)

    def etcd_server_flags(self) -> list[str]:
        return ["--cert-file", self.path("etcd/server"), "--key-file", self.path("etcd/server", "key"),
                "--trusted-ca-file", self.path(certs.ETCD_CA), "--client-cert-auth"]

    def etcd_tls(self) -> EtcdTLS:
        return EtcdTLS(self.path(certs.ETCD_CA), self.path("apiserver-etcd-client"),
                       self.path("apiserver-etcd-client", "key"))

    def serving(self) -> ServingTLS:
        return ServingTLS(self.path("apiserver"), self.path("apiserver", "key"), self.ca_file)

    def kubelet_tls(self) -> KubeletTLS:
        return KubeletTLS(self.ca_file, self.path("apiserver-kubelet-client"),
                          self.path("apiserver-kubelet-client", "key"))

    def signer(self, **kw: object) -> SignerConfig:
        return SignerConfig(self.ca_file, self.path(certs.CA, "key"), **kw)  # type: ignore[arg-type]

    def service_accounts(self) -> TokenConfig:
        """The apiserver's service account key: signs and checks ServiceAccount tokens."""
        return TokenConfig(str(self.store.sa_key), (str(self.store.sa_pub),))

    def client(self, server: str, identity: str = "admin", **kw: object) -> ClientConfig:
        """A client config presenting `identity` (a certificate under the test PKI) to `server`."""
        return ClientConfig(server=server, ca_file=self.ca_file, cert_file=self.path(identity),
                            key_file=self.path(identity, "key"), **kw)  # type: ignore[arg-type]

    def issue(self, name: str, request: pki.Request, **kw: object) -> tuple[str, str]:
        """A new certificate and key `name` signed by the cluster CA (e.g. a node's); their paths."""
        cert, key = pki.issue_pair(self.store.ca(), request, **kw)  # type: ignore[arg-type]
        crt, k = pki.write_pair(self.dir, name, cert, key)
        return str(crt), str(k)

    def node(self, node: str, address: str = "127.0.0.1") -> dict[str, str]:
        """A kubelet's client and serving certificates (cached per node name): paths by role."""
        out = {}
        for role, request in (
                ("kubelet", pki.Request(pki.Identity(f"system:node:{node}", ("system:nodes",)))),
                ("kubelet-serving", pki.Request(pki.Identity(f"system:node:{node}", ("system:nodes",)), (pki.SERVER,),
                                                dns=(node,), ips=(address,)))):
            name = f"nodes/{node}/{role}"
            if not (self.dir / f"{name}.crt").exists():
                self.issue(name, request)
            out[role] = self.path(name)
            out[f"{role}-key"] = self.path(name, "key")
        return out

    def config_file(self, path: Path, server: str, *, identity: str = "admin", cluster: str = "test") -> Path:
        """A client config file naming `server` with this CA and `identity`'s certificate (for CLI subprocesses)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump({"current": cluster, "clusters": {cluster: {
            "server": server, "certificate-authority": self.ca_file,
            "client-certificate": self.path(identity), "client-key": self.path(identity, "key")}}}))
        return path

    def cli_config(self) -> str:
        """A shared config file with the admin's credentials and a server where nothing listens (give --server)."""
        return str(self.config_file(self.dir / "cli-config.yaml", "127.0.0.1:1"))

    def kubelet_flags(self, node: str, address: str = "127.0.0.1") -> list[str]:
        """`kubelite kubelet` credentials flags for node `node`."""
        files = self.node(node, address)
        return ["--certificate-authority", self.ca_file, "--client-certificate", files["kubelet"],
                "--client-key", files["kubelet-key"], "--tls-cert-file", files["kubelet-serving"],
                "--tls-private-key-file", files["kubelet-serving-key"], "--client-ca-file", self.ca_file]

    def apiserver_flags(self, etcd_url: str) -> list[str]:
        """`kubelite apiserver` flags for TLS everywhere under this PKI (etcd's TLS too, for an https:// URL)."""
        flags = ["--tls-cert-file", self.path("apiserver"), "--tls-private-key-file", self.path("apiserver", "key"),
                 "--client-ca-file", self.ca_file, "--kubelet-certificate-authority", self.ca_file,
                 "--kubelet-client-certificate", self.path("apiserver-kubelet-client"),
                 "--kubelet-client-key", self.path("apiserver-kubelet-client", "key"),
                 "--cluster-signing-cert-file", self.ca_file, "--cluster-signing-key-file", self.path(certs.CA, "key"),
                 "--service-account-key-file", str(self.store.sa_pub),
                 "--service-account-signing-key-file", str(self.store.sa_key)]
        if etcd_url.startswith("https"):
            flags += ["--etcd-cafile", self.path(certs.ETCD_CA), "--etcd-certfile", self.path("apiserver-etcd-client"),
                      "--etcd-keyfile", self.path("apiserver-etcd-client", "key")]
        return flags

    def channel(self, address: str, identity: str = "admin", *, options: list[tuple[str, object]] | None = None,
                sync: bool = False) -> grpc.aio.Channel:
        """A raw gRPC channel presenting `identity` (for health checks and hand-made calls)."""
        config = self.client(address, identity)
        creds = tls.ClientCredentials(config).channel_credentials()
        opts = [*(options or []), *tls.server_name_options(config)]
        if sync:
            return grpc.secure_channel(address, creds, options=opts)  # type: ignore[return-value]
        return grpc.aio.secure_channel(address, creds, options=opts)

    def component_flags(self, identity: str = "admin") -> list[str]:
        return ["--certificate-authority", self.ca_file, "--client-certificate", self.path(identity),
                "--client-key", self.path(identity, "key")]


def _make(prefix: str) -> TestPki:
    directory = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, directory, True)
    return TestPki(certs.ensure_control_plane(directory / "pki", addresses=["127.0.0.1"], service_ip="10.96.0.1",
                                              hostname=""))


@functools.cache
def get() -> TestPki:
    """The test cluster's PKI."""
    return _make("kubelite-test-pki-")


@functools.cache
def foreign() -> TestPki:
    """Another cluster's PKI: its certificates must be refused everywhere."""
    return _make("kubelite-foreign-pki-")
