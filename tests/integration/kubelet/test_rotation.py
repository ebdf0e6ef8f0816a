"""A kubelet renews its certificates before they expire, without a restart: with 30-second certificates (a test
setting of the signer) it keeps working across three renewals, and through an apiserver restart after its first
certificates expired, so every new connection it makes must present a renewed one."""

from __future__ import annotations

import asyncio
import datetime
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import testpki

from api.pb import api_pb2
from client import pki
from kubelet.certificates import CLIENT, PROXY, SERVING, csr_request

from .kubelethelp import Apiserver, eventually, pod, pod_where, running_ready

LIFETIME = datetime.timedelta(seconds=30)


async def _first_certificates(api: Apiserver, node: str, directory: Path) -> None:
    """The node's first 30-second certificates, asked for by the admin as a join would."""
    keys = {f: pki.new_key() for f in (CLIENT, SERVING, PROXY)}
    req = api_pb2.NodeCertificatesRequest(node_name=node)
    for field, key in keys.items():
        setattr(req, field, pki.make_csr(key, csr_request(field, node, ["127.0.0.1"])))
    async with api.client() as admin:
        resp = await admin.request_node_certificates(req)
    for field, name, pem in ((CLIENT, "kubelet", resp.client_certificate),
                             (SERVING, "kubelet-serving", resp.serving_certificate),
                             (PROXY, "kube-proxy", resp.proxy_certificate)):
        pki.write_pair(directory, name, pki.load_cert(pem), keys[field])
    pki.write_public(directory / "ca.crt", resp.ca_certificate)


async def test_three_renewals_without_a_restart(etcd: str, tmp_path: Path) -> None:
    """`kubelite kubelet` with 30-second certificates renews each three times (same process), its node stays Ready,
    exec reaches it over its renewed serving certificate, and after an apiserver restart (the first certificates long
    expired) it reconnects with its renewed client certificate."""
    api = Apiserver(etcd, signer=testpki.get().signer(lifetime=LIFETIME))
    await api.start()
    node, d = "rotating", tmp_path / "pki"
    await _first_certificates(api, node, d)
    first = {n: pki.read_cert(d / f"{n}.crt") for n in ("kubelet", "kubelet-serving", "kube-proxy")}
    assert first["kubelet"].not_valid_after_utc - pki.now() <= LIFETIME
    log = tmp_path / "kubelet.log"
    argv = [sys.executable, "-m", "cli.main", "kubelet", "--server", api.address, "--certificate-authority",
            str(d / "ca.crt"), "--client-certificate", str(d / "kubelet.crt"), "--client-key", str(d / "kubelet.key"),
            "--tls-cert-file", str(d / "kubelet-serving.crt"), "--tls-private-key-file", str(d / "kubelet-serving.key"),
            "--client-ca-file", str(d / "ca.crt"), "--proxy-client-certificate", str(d / "kube-proxy.crt"),
            "--proxy-client-key", str(d / "kube-proxy.key"), "--node-name", node, "--runtime", "fake",
            "--node-ip", "127.0.0.1", "--listen", "127.0.0.1:0", "--root-dir", str(tmp_path / "root"),
            "--lease-renew", "0.5"]
    proc = _spawn(argv, log, {**os.environ, "KUBELITE_CONFIG": str(tmp_path / "none.yaml")})
    client = api.client()
    try:
        await eventually(lambda: _ready(client, node), timeout=30, what="node Ready")
        await client.create(pod("rotated", node))
        await pod_where(client, "rotated", running_ready)

        def serials() -> dict[str, int]:
            return {n: pki.read_cert(d / f"{n}.crt").serial_number for n in first}

        seen = {n: [c.serial_number] for n, c in first.items()}
        deadline = time.monotonic() + 4 * LIFETIME.total_seconds()
        while min(len(v) for v in seen.values()) < 4:  # the first certificate and three renewals of each
            assert time.monotonic() < deadline, f"renewals seen: {seen}\n{log.read_text()[-3000:]}"
            for n, serial in (await asyncio.to_thread(serials)).items():
                if serial != seen[n][-1]:
                    seen[n].append(serial)
            assert proc.poll() is None, log.read_text()[-3000:]
            await asyncio.sleep(1)
        assert pki.now() > first["kubelet"].not_valid_after_utc  # the first certificates have expired by now
        resp = await client.exec("default", "rotated", ["true"])  # over the kubelet's renewed serving certificate
        assert resp.exit_code == 0

        await client.close()
        await api.stop()
        await asyncio.sleep(1)
        await api.start()  # every connection of the kubelet is made anew: only a renewed certificate gets in
        client = api.client()
        lease_before = (await client.get("leases", node, "kube-node-lease")).spec.renew_time.ToDatetime()
        await eventually(lambda: _renewed_after(client, node, lease_before), timeout=20, what="lease renewed")
        assert (await client.exec("default", "rotated", ["true"])).exit_code == 0
        assert proc.poll() is None
        renewed = [line for line in log.read_text().splitlines() if "certificate_renewed" in line]
        assert len(renewed) >= 9, renewed
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 15)
        await client.close()
        await api.stop()


def _spawn(argv: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)


async def _ready(client, node: str) -> bool:  # type: ignore[no-untyped-def]
    n = await client.get("nodes", node)
    return any(c.type == "Ready" and c.status == "True" for c in n.status.conditions)


async def _renewed_after(client, node: str, before: datetime.datetime) -> bool:  # type: ignore[no-untyped-def]
    lease = await client.get("leases", node, "kube-node-lease")
    return lease.spec.renew_time.ToDatetime() > before
