"""A control plane's certificates: what bootstrap makes, with which names, modes and signers; renewal keeps keys."""

from __future__ import annotations

import datetime
import stat
from pathlib import Path

from client import pki
from deploy.node import certs

NAMES = {"ca", "apiserver", "apiserver-kubelet-client", "scheduler", "controller-manager", "dns", "admin", "registry",
         "etcd/ca", "etcd/server", "etcd/peer", "apiserver-etcd-client"}


def test_control_plane_certificates(tmp_path: Path) -> None:
    """Every identity gets a certificate signed by the right CA; keys are 0600 in 0700 directories; running it again
    changes nothing."""
    store = certs.ensure_control_plane(tmp_path / "pki", addresses=["10.250.0.2"], service_ip="10.96.0.1",
                                       hostname="cp")
    found = {f.path.relative_to(store.dir).with_suffix("").as_posix(): f.info for f in certs.find(store.dir)}
    assert set(found) == NAMES
    for key in store.dir.rglob("*.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    for d in (store.dir, store.dir / "etcd"):
        assert stat.S_IMODE(d.stat().st_mode) == 0o700
    users = {n: (i.identity.user, i.identity.groups, i.issuer) for n, i in found.items() if i is not None}
    assert users["scheduler"] == ("system:kube-scheduler", (), "kubelite-ca")
    assert users["controller-manager"] == ("system:kube-controller-manager", (), "kubelite-ca")
    assert users["dns"] == ("system:kubelite-dns", (), "kubelite-ca")
    assert users["admin"] == ("kubelite-admin", ("system:masters",), "kubelite-ca")
    assert users["apiserver-kubelet-client"][0] == "kube-apiserver-kubelet-client"
    # etcd has a CA of its own: no cluster certificate opens it, only the apiserver's etcd client certificate.
    assert users["apiserver-etcd-client"] == ("kube-apiserver-etcd-client", (), "kubelite-etcd-ca")
    apiserver = found["apiserver"]
    assert apiserver is not None
    assert {"127.0.0.1", "10.250.0.2", "10.96.0.1"} <= set(apiserver.ips)
    assert {"localhost", "kubernetes.default.svc.cluster.local", "cp"} <= set(apiserver.dns)
    before = {p: p.read_bytes() for p in store.dir.rglob("*.*")}
    certs.ensure_control_plane(tmp_path / "pki", addresses=["10.250.0.2"], service_ip="10.96.0.1", hostname="cp")
    assert {p: p.read_bytes() for p in store.dir.rglob("*.*")} == before


def test_extra_names_for_the_apiserver() -> None:
    """--apiserver-cert-extra-sans adds names as DNS names and addresses as IPs, once each."""
    request = certs.apiserver_names(["192.168.56.10"], "10.96.0.1", "cp",
                                    ["api.example.org", "203.0.113.7", "cp", "192.168.56.10"])
    assert request.dns.count("cp") == 1 and "api.example.org" in request.dns
    assert request.ips == ("127.0.0.1", "192.168.56.10", "10.96.0.1", "203.0.113.7")


def test_renewal_keeps_key_subject_and_names(tmp_path: Path) -> None:
    """A renewed certificate has the same key, subject and names, a later expiry, and the same signer."""
    store = certs.ensure_control_plane(tmp_path / "pki", addresses=["10.250.0.2"], service_ip="10.96.0.1",
                                       hostname="cp")
    old = pki.describe(pki.read_cert(store.crt("apiserver")))
    key = store.key("apiserver").read_bytes()
    new = certs.renew_file(store.ca(), store.crt("apiserver"), store.key("apiserver"),
                           lifetime=datetime.timedelta(days=400))
    assert store.key("apiserver").read_bytes() == key
    assert (new.identity, new.dns, new.ips, new.usages) == (old.identity, old.dns, old.ips, old.usages)
    assert new.not_after > old.not_after
    assert certs.signer_of(store.dir, store.crt("etcd/server")) == certs.ETCD_CA
    assert certs.signer_of(store.dir, store.crt("apiserver-etcd-client")) == certs.ETCD_CA
    assert certs.signer_of(store.dir, store.crt("admin")) == certs.CA
