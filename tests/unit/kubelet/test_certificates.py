"""When the kubelet renews its certificates: the pure plan over what the files hold."""

from __future__ import annotations

import datetime

import pytest

from client import pki
from kubelet.certificates import CLIENT, LONGEST_SLEEP, PROXY, SERVING, csr_request, plan_renewals

CA = pki.CertificateAuthority.create("plan-ca")
T0 = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)


def cert(start: int, end: int) -> pki.x509.Certificate:
    key = pki.new_key()
    return (pki.x509.CertificateBuilder().subject_name(pki.Identity("x").name()).issuer_name(CA.cert.subject)
            .public_key(key.public_key()).serial_number(pki.x509.random_serial_number())
            .not_valid_before(T0 + datetime.timedelta(seconds=start))
            .not_valid_after(T0 + datetime.timedelta(seconds=end)).sign(CA.key, pki.hashes.SHA256()))


@pytest.mark.parametrize(("certs", "now", "due", "wait"), [
    pytest.param({CLIENT: cert(0, 100), SERVING: cert(0, 200)}, 10, [], 70.0, id="none-due-next-at-80s"),
    pytest.param({CLIENT: cert(0, 100), SERVING: cert(0, 200)}, 85, [CLIENT], 75.0, id="client-due"),
    pytest.param({CLIENT: cert(0, 100), SERVING: cert(0, 100)}, 99, [CLIENT, SERVING], LONGEST_SLEEP, id="both-due"),
    pytest.param({CLIENT: cert(0, 60), PROXY: None}, 0, [PROXY], 48.0, id="missing-file-is-due"),
    pytest.param({CLIENT: cert(0, 10**7)}, 0, [], LONGEST_SLEEP, id="far-away-looks-hourly"),
])
def test_plan_renewals(certs: dict[str, pki.x509.Certificate | None], now: int, due: list[str],
                       wait: float) -> None:
    """Due: missing or past 80% of the lifetime; the wait is until the next one is due, at most an hour."""
    got_due, got_wait = plan_renewals(certs, T0 + datetime.timedelta(seconds=now))
    assert got_due == due
    assert got_wait == pytest.approx(wait)


def test_requests_say_what_the_apiserver_signs() -> None:
    """The kubelet's client and serving requests name the node; the proxy's is system:kube-proxy."""
    assert csr_request(CLIENT, "n1", ["10.0.0.1"]) == pki.Request(pki.Identity("system:node:n1", ("system:nodes",)))
    serving = csr_request(SERVING, "n1", ["10.0.0.1"])
    assert (serving.usages, serving.dns, serving.ips) == ((pki.SERVER,), ("n1",), ("10.0.0.1",))
    assert csr_request(PROXY, "n1", ["10.0.0.1"]).identity == pki.Identity("system:kube-proxy")
