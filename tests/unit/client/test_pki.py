"""The cluster's certificates: what a CA issues, what a request may say, how files are written, when to renew."""

from __future__ import annotations

import datetime
import os
import stat
from pathlib import Path

import pytest

from client import pki


@pytest.fixture(scope="module")
def ca() -> pki.CertificateAuthority:
    return pki.CertificateAuthority.create("test-ca")


def test_issued_certificate_names_the_identity_and_its_uses(ca: pki.CertificateAuthority) -> None:
    """A server certificate carries the user as CN, the groups as O, its names, its use; the CA signed it."""
    request = pki.Request(pki.Identity("system:node:n1", ("system:nodes",)), (pki.SERVER,), dns=("n1",),
                          ips=("10.0.0.1",))
    cert, key = pki.issue_pair(ca, request, lifetime=datetime.timedelta(hours=1))
    info = pki.describe(cert)
    assert info.identity == pki.Identity("system:node:n1", ("system:nodes",))
    assert (info.dns, info.ips, info.usages, info.issuer, info.is_ca) == (("n1",), ("10.0.0.1",), ("server",),
                                                                          "test-ca", False)
    assert pki.signed_by(cert, ca.cert) and pki.matches(cert, key)
    assert datetime.timedelta(minutes=59) < info.residual() <= datetime.timedelta(hours=1)


def test_another_ca_did_not_sign_it(ca: pki.CertificateAuthority) -> None:
    """A certificate of another CA is told apart, and a key that is not the certificate's does not match."""
    other = pki.CertificateAuthority.create("other-ca")
    cert, _ = pki.issue_pair(other, pki.Request(pki.Identity("admin", ("system:masters",))))
    assert not pki.signed_by(cert, ca.cert) and pki.signed_by(cert, other.cert)
    assert not pki.matches(cert, pki.new_key())


def test_a_certificate_never_outlives_its_ca(ca: pki.CertificateAuthority) -> None:
    """Asked for more than the CA has left, the certificate ends with the CA."""
    cert, _ = pki.issue_pair(ca, pki.Request(pki.Identity("x")), lifetime=datetime.timedelta(days=365 * 50))
    assert cert.not_valid_after_utc == ca.cert.not_valid_after_utc


def test_csr_round_trip_and_a_tampered_one() -> None:
    """A CSR says who and which names; one whose signature does not match its key is refused."""
    key = pki.new_key()
    pem = pki.make_csr(key, pki.Request(pki.Identity("system:node:n2", ("system:nodes",)), dns=("n2",),
                                        ips=("10.0.0.2",)))
    read = pki.read_csr(pem)
    assert (read.identity.user, read.identity.groups, read.dns, read.ips) == ("system:node:n2", ("system:nodes",),
                                                                              ("n2",), ("10.0.0.2",))
    with pytest.raises(pki.CertificateError, match="not a PEM certificate signing request"):
        pki.read_csr(b"garbage")


@pytest.mark.parametrize(("start", "end", "now", "due"), [
    pytest.param(0, 100, 79, False, id="before-80-percent"),
    pytest.param(0, 100, 80, True, id="at-80-percent"),
    pytest.param(0, 60, 47, False, id="60s-cert-at-47s"),
    pytest.param(0, 60, 49, True, id="60s-cert-at-49s"),
])
def test_renew_at_80_percent_of_the_lifetime(ca: pki.CertificateAuthority, start: int, end: int, now: int,
                                             due: bool) -> None:
    """Renewal is due once 80% of the time from notBefore to notAfter has passed."""
    base = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
    key = pki.new_key()
    cert = (pki.x509.CertificateBuilder().subject_name(pki.Identity("x").name()).issuer_name(ca.cert.subject)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(base + datetime.timedelta(seconds=start))
            .not_valid_after(base + datetime.timedelta(seconds=end)).sign(ca.key, pki.hashes.SHA256()))
    assert (pki.renew_at(cert) <= base + datetime.timedelta(seconds=now)) is due


def test_short_certificates_are_backdated_a_tenth_at_most(ca: pki.CertificateAuthority) -> None:
    """A 60-second certificate starts at most 6 seconds in the past, so most of it is left when it arrives."""
    cert, _ = pki.issue_pair(ca, pki.Request(pki.Identity("x")), lifetime=datetime.timedelta(seconds=60))
    assert cert.not_valid_after_utc - cert.not_valid_before_utc <= datetime.timedelta(seconds=66)


def test_ca_hash_is_sha256_of_der(ca: pki.CertificateAuthority) -> None:
    """The hash a join token pins: sha256 over the CA certificate's DER bytes."""
    import hashlib

    from cryptography.hazmat.primitives import serialization

    der = ca.cert.public_bytes(serialization.Encoding.DER)
    assert pki.ca_hash(ca.cert) == "sha256:" + hashlib.sha256(der).hexdigest()


def test_private_files_are_0600_whatever_the_umask(tmp_path: Path) -> None:
    """A key file is created 0600 (O_EXCL, then renamed), replacing an old one in place; a certificate is 0644."""
    old = os.umask(0)
    try:
        path = tmp_path / "k.key"
        pki.write_private(path, b"one")
        pki.write_private(path, b"two")
        assert path.read_bytes() == b"two"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        pki.write_public(tmp_path / "c.crt", b"cert")
        assert stat.S_IMODE((tmp_path / "c.crt").stat().st_mode) == 0o644
        assert sorted(p.name for p in tmp_path.iterdir()) == ["c.crt", "k.key"]  # no temporary file left
    finally:
        os.umask(old)


@pytest.mark.parametrize(("seconds", "text"), [
    pytest.param(-5, "expired", id="expired"),
    pytest.param(42, "42s", id="seconds"),
    pytest.param(3 * 60, "3m", id="minutes"),
    pytest.param(5 * 3600, "5h", id="hours"),
    pytest.param(364 * 86400, "364d", id="days"),
    pytest.param(9 * 365 * 86400 + 100, "9y", id="years"),
])
def test_human_duration(seconds: int, text: str) -> None:
    """Time left, as kubeadm's RESIDUAL TIME column writes it."""
    assert pki.human_duration(datetime.timedelta(seconds=seconds)) == text
