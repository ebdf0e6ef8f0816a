"""Plain words for failed handshakes, client credentials that follow renewed files, and where credentials come from."""

from __future__ import annotations

import base64
import datetime
import os
import time
from pathlib import Path

import pytest
import yaml

from client import pki, tls
from client.config import ClientConfig, ConfigError, resolve


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A cluster CA with a valid and an expired client certificate, and another cluster's CA and certificate."""
    d = tmp_path_factory.mktemp("tls")
    ours, theirs = pki.CertificateAuthority.create("ours"), pki.CertificateAuthority.create("theirs")
    out = {}
    for name, ca in (("ours", ours), ("theirs", theirs)):
        pki.write_public(d / f"{name}-ca.crt", pki.cert_pem(ca.cert))
        out[f"{name}-ca"] = str(d / f"{name}-ca.crt")
        crt, key = pki.write_pair(d, name, *pki.issue_pair(ca, pki.Request(pki.Identity("alice"))))
        out[name], out[f"{name}-key"] = str(crt), str(key)
    key = pki.new_key()
    old = (pki.x509.CertificateBuilder().subject_name(pki.Identity("bob").name()).issuer_name(ours.cert.subject)
           .public_key(key.public_key()).serial_number(7)
           .not_valid_before(pki.now() - datetime.timedelta(days=2))
           .not_valid_after(pki.now() - datetime.timedelta(days=1)).sign(ours.key, pki.hashes.SHA256()))
    crt, k = pki.write_pair(d, "expired", old, key)
    out["expired"], out["expired-key"] = str(crt), str(k)
    return out


def _config(files: dict[str, str], ca: str, cert: str | None) -> ClientConfig:
    return ClientConfig(server="10.0.0.1:6443", ca_file=files[ca], cert_file=files[cert] if cert else "",
                        key_file=files[f"{cert}-key"] if cert else "")


REFUSED = "failed to connect to all addresses; last error: UNAVAILABLE: ipv4:10.0.0.1:6443: Socket closed"
UNTRUSTED = ("failed to connect to all addresses; last error: UNKNOWN: ipv4:10.0.0.1:6443: Tls handshake failed "
             "(TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: error:1000007d:SSL routines:OPENSSL_internal:"
             "CERTIFICATE_VERIFY_FAILED: unable to get local issuer certificate")


@pytest.mark.parametrize(("ca", "cert", "details", "expected"), [
    pytest.param("ours-ca", "theirs", REFUSED, "certificate signed by unknown authority: this client's certificate",
                 id="our-ca-their-certificate"),
    pytest.param("theirs-ca", "theirs", UNTRUSTED, "certificate signed by unknown authority: the apiserver at "
                 "10.0.0.1:6443 presented a certificate that the CA in", id="their-ca-and-certificate"),
    pytest.param("ours-ca", "expired", REFUSED, "client certificate", id="expired-certificate"),
    pytest.param("ours-ca", None, REFUSED, "this client presents none", id="no-certificate"),
    pytest.param("ours-ca", "ours", REFUSED, "did not accept this client's certificate", id="refused-by-the-server"),
    pytest.param("ours-ca", "ours", "failed to connect to all addresses; last error: UNAVAILABLE: "
                 "ipv4:10.0.0.1:6443: Connection refused", None, id="not-about-tls"),
])
def test_explain_names_the_certificate(files: dict[str, str], ca: str, cert: str | None, details: str,
                                       expected: str | None) -> None:
    """A failed handshake is put in words naming the certificate and its CA; other failures are left alone."""
    why = tls.explain(_config(files, ca, cert), details)
    if expected is None:
        assert why is None
    else:
        assert why is not None and expected in why, why
    if cert == "expired":
        assert "expired at" in (why or "")
    if cert == "theirs" and ca == "ours-ca":
        assert "this client's CA is not the cluster's" in (why or "")


def test_credentials_follow_renewed_files(files: dict[str, str], tmp_path: Path) -> None:
    """ClientCredentials notices a renewed pair (checked at most once a second), and skips a half-written one."""
    ca = pki.CertificateAuthority.create("renewing")
    pki.write_public(tmp_path / "ca.crt", pki.cert_pem(ca.cert))
    crt, key = pki.write_pair(tmp_path, "me", *pki.issue_pair(ca, pki.Request(pki.Identity("me"))))
    creds = tls.ClientCredentials(ClientConfig(server="x:1", ca_file=str(tmp_path / "ca.crt"), cert_file=str(crt),
                                               key_file=str(key)))
    first = creds.material
    assert not creds.changed()
    pki.write_private(key, pki.key_pem(pki.new_key()))  # a new key beside the old certificate: not a pair
    time.sleep(tls.CHECK_EVERY)
    assert not creds.changed() and creds.material == first
    cert, new_key = pki.issue_pair(ca, pki.Request(pki.Identity("me")))
    pki.write_pair(tmp_path, "me", cert, new_key)
    os.utime(crt)
    time.sleep(tls.CHECK_EVERY)
    assert creds.changed() and creds.material.cert == pki.cert_pem(cert)


def test_no_ca_no_connection() -> None:
    """Without a CA a client refuses to connect at all: plaintext is never a fallback."""
    with pytest.raises(ConfigError, match="no certificate authority configured for cluster 'lab'"):
        tls.ClientCredentials(ClientConfig(server="x:1", cluster="lab"))


def test_config_file_paths_and_inline_data(files: dict[str, str], tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """A cluster in the config file gives server, CA and certificate, as paths (relative to the file) or base64 data,
    and --server keeps the cluster's credentials, as kubectl's does."""
    config = tmp_path / "config.yaml"
    pem = Path(files["ours"]).read_bytes()
    config.write_text(yaml.safe_dump({"current": "a", "clusters": {
        "a": {"server": "unix:///run/a.sock", "certificate-authority": "a/ca.crt", "client-certificate": files["ours"],
              "client-key": files["ours-key"]},
        "b": {"server": "10.0.0.2:6443", "client-certificate-data": base64.b64encode(pem).decode()}}}))
    monkeypatch.setenv("KUBELITE_CONFIG", str(config))
    for var in ("KUBELITE_SERVER", "KUBELITE_CLUSTER", "KUBELITE_CA", "KUBELITE_TOKEN_FILE"):
        monkeypatch.delenv(var, raising=False)
    a = resolve()
    assert (a.server, a.ca_file, a.cert_file) == ("unix:///run/a.sock", str(tmp_path / "a/ca.crt"), files["ours"])
    assert resolve("10.0.0.9:6443").cert_file == files["ours"]
    assert resolve(cluster="b").cert_data == pem
    with pytest.raises(ConfigError, match=r"cluster 'c' is not in .* \(known: a, b\)"):
        resolve(cluster="c")
