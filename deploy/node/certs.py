"""The certificates a control plane runs with: made at bootstrap, listed and renewed by `kubelite certs`.

One directory (kubeadm's /etc/kubernetes/pki, here `<data dir>/pki`) holds:

    ca.crt ca.key                      the cluster CA: signs every identity below and the nodes'
    apiserver.crt                      the apiserver's serving certificate (every control-plane address,
                                       the first Service IP, localhost, kubernetes.default.svc...)
    apiserver-kubelet-client.crt       what the apiserver shows kubelets (the only identity they serve)
    registry.crt                       the image registry's serving certificate (nodes' containerd pulls with
                                       their kubelet's certificate)
    scheduler.crt controller-manager.crt dns.crt admin.crt
                                       system:kube-scheduler, system:kube-controller-manager,
                                       system:kubelite-dns, kubelite-admin in system:masters
    etcd/ca.crt etcd/ca.key            etcd's own CA, as kubeadm's: a cluster certificate (a node's, say)
                                       is no key to etcd; only the apiserver's etcd client certificate is
    etcd/server.crt etcd/peer.crt      etcd's serving and peer certificates
    apiserver-etcd-client.crt          what the apiserver shows etcd
    sa.key sa.pub                      the service account key (EC P-256): the apiserver signs ServiceAccount
                                       tokens with sa.key and checks them with sa.pub

each with its `.key` (0600, in a 0700 directory). A node's certificates
(`<node dir>/pki`: kubelet.crt, kubelet-serving.crt, kube-proxy.crt) come from
its join (deploy/node/join.py) and are renewed by its kubelet.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from client import pki

CA, ETCD_CA = "ca", "etcd/ca"
SA_KEY, SA_PUB = "sa.key", "sa.pub"
MASTERS = "system:masters"


@dataclass(frozen=True)
class Leaf:
    name: str  # file stem under the pki directory
    signer: str  # CA or ETCD_CA
    request: pki.Request


def apiserver_names(addresses: Iterable[str], service_ip: str, hostname: str = "",
                    extra_sans: Iterable[str] = ()) -> pki.Request:
    """The apiserver's names: localhost, the kubernetes Service's, the host's, every control-plane address, the
    first Service IP, and `extra_sans` (names or addresses, as kubeadm's --apiserver-cert-extra-sans)."""
    extra = list(extra_sans)
    extra_ips = [e for e in extra if _is_ip(e)]
    dns = ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
           "kubernetes.default.svc.cluster.local", *([hostname] if hostname else []),
           *(e for e in extra if not _is_ip(e))]
    dns = list(dict.fromkeys(dns))
    ips = list(dict.fromkeys(["127.0.0.1", *addresses, *([service_ip] if service_ip else []),
                              *(str(ipaddress.ip_address(e)) for e in extra_ips)]))
    return pki.Request(pki.Identity("kube-apiserver"), (pki.SERVER,), dns=tuple(dns), ips=tuple(ips))


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def first_service_ip(service_cidr: str) -> str:
    """The `kubernetes` Service's address: the first of the service CIDR."""
    return str(ipaddress.ip_network(service_cidr, strict=False).network_address + 1)


def control_plane_leaves(addresses: Iterable[str], service_ip: str, hostname: str = "",
                         extra_sans: Iterable[str] = ()) -> list[Leaf]:
    """Every certificate of a control plane, what it says and who signs it."""
    addresses = list(addresses)
    host_names = dict(dns=tuple(dict.fromkeys(["localhost", *([hostname] if hostname else [])])),
                      ips=tuple(dict.fromkeys(["127.0.0.1", *addresses])))
    client = lambda user, *groups: pki.Request(pki.Identity(user, groups))  # noqa: E731
    return [
        Leaf("apiserver", CA, apiserver_names(addresses, service_ip, hostname, extra_sans)),
        Leaf("apiserver-kubelet-client", CA, client("kube-apiserver-kubelet-client", MASTERS)),
        Leaf("scheduler", CA, client("system:kube-scheduler")),
        Leaf("controller-manager", CA, client("system:kube-controller-manager")),
        Leaf("dns", CA, client("system:kubelite-dns")),
        Leaf("admin", CA, client("kubelite-admin", MASTERS)),
        Leaf("registry", CA, pki.Request(pki.Identity("kubelite-registry"), (pki.SERVER,), **host_names)),
        Leaf("etcd/server", ETCD_CA, pki.Request(pki.Identity("kube-etcd"), (pki.SERVER, pki.CLIENT), **host_names)),
        Leaf("etcd/peer", ETCD_CA, pki.Request(pki.Identity("kube-etcd-peer"), (pki.SERVER, pki.CLIENT),
                                               **host_names)),
        Leaf("apiserver-etcd-client", ETCD_CA, client("kube-apiserver-etcd-client")),
    ]


@dataclass(frozen=True)
class Pki:
    """A control plane's certificate directory."""

    dir: Path

    def crt(self, name: str) -> Path:
        return self.dir / f"{name}.crt"

    def key(self, name: str) -> Path:
        return self.dir / f"{name}.key"

    @property
    def sa_key(self) -> Path:
        return self.dir / SA_KEY

    @property
    def sa_pub(self) -> Path:
        return self.dir / SA_PUB

    def ca(self, name: str = CA) -> pki.CertificateAuthority:
        return pki.CertificateAuthority.load(self.crt(name), self.key(name))


def ensure_control_plane(directory: Path, *, addresses: Iterable[str], service_ip: str,
                         lifetime: datetime.timedelta = pki.YEAR, hostname: str | None = None,
                         extra_sans: Iterable[str] = ()) -> Pki:
    """Make whatever of the control plane's CAs and certificates is missing (what exists is kept)."""
    store = Pki(directory)
    pki.private_dir(directory)
    pki.private_dir(directory / "etcd")
    for name, common_name in ((CA, "kubelite-ca"), (ETCD_CA, "kubelite-etcd-ca")):
        if not store.crt(name).exists():
            ca = pki.CertificateAuthority.create(common_name)
            pki.write_pair(directory, name, ca.cert, ca.key)
    cas = {CA: store.ca(CA), ETCD_CA: store.ca(ETCD_CA)}
    host = socket.gethostname() if hostname is None else hostname
    for leaf in control_plane_leaves(addresses, service_ip, host, extra_sans):
        if not store.crt(leaf.name).exists() or not store.key(leaf.name).exists():
            cert, key = pki.issue_pair(cas[leaf.signer], leaf.request, lifetime=lifetime)
            pki.write_pair(directory, leaf.name, cert, key)
    ensure_service_account_key(store)
    return store


def ensure_service_account_key(store: Pki) -> None:
    """The service account key pair (sa.key 0600, sa.pub), made once and kept: tokens outlive restarts."""
    if store.sa_key.exists() and store.sa_pub.exists():
        return
    key = pki.new_key()
    pki.write_private(store.sa_key, pki.key_pem(key))
    pki.write_public(store.sa_pub, key.public_key().public_bytes(serialization.Encoding.PEM,
                                                                 serialization.PublicFormat.SubjectPublicKeyInfo))


@dataclass(frozen=True)
class Found:
    """One certificate file, as `kubelite certs check-expiration` lists it."""

    path: Path
    info: pki.CertInfo | None
    error: str = ""


def find(directory: Path) -> list[Found]:
    """Every certificate under `directory` (sorted by path), read."""
    out = []
    for path in sorted(directory.rglob("*.crt")):
        try:
            out.append(Found(path, pki.describe(pki.read_cert(path))))
        except pki.CertificateError as e:
            out.append(Found(path, None, str(e)))
    return out


def renew_file(ca: pki.CertificateAuthority, cert_path: Path, key_path: Path, *,
               lifetime: datetime.timedelta = pki.YEAR) -> pki.CertInfo:
    """Issue `cert_path` again with its own key, subject, names and uses, valid for `lifetime` from now."""
    info = pki.describe(pki.read_cert(cert_path))
    key = pki.load_key(key_path.read_bytes(), str(key_path))
    request = pki.Request(info.identity, info.usages or (pki.CLIENT,), dns=info.dns, ips=info.ips)
    cert = ca.issue(key.public_key(), request, lifetime=lifetime)
    pki.write_public(cert_path, pki.cert_pem(cert))
    return pki.describe(cert)


def signer_of(directory: Path, cert_path: Path) -> str:
    """Which of a control plane's CAs signs a certificate under it: etcd's for etcd/ and the etcd client."""
    rel = cert_path.relative_to(directory).with_suffix("").as_posix()
    return ETCD_CA if rel.startswith("etcd/") or rel == "apiserver-etcd-client" else CA
