"""Certificate rotation: the node's certificates are renewed before they expire, without a restart.

Once 80% of a certificate's lifetime has passed (client.pki.RENEW_FRACTION),
the kubelet makes a new key, asks the apiserver to sign a request for it
(RequestNodeCertificates, as the node itself), and replaces the key and
certificate files. Whatever reads them takes the new pair at its next look:
the kubelet's own API client (a new channel for later calls), its serving
port (the next handshake) and the node's proxy (its client, likewise). The
old certificate stays valid meanwhile, so nothing is ever without one.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Sequence
from dataclasses import dataclass

import structlog
from cryptography import x509

from api.errors import ApiError
from api.pb import api_pb2
from client import pki
from client.api import Client
from client.config import ConfigError

log = structlog.get_logger(__name__)

RETRY_MIN, RETRY_MAX = 1.0, 60.0
LONGEST_SLEEP = 3600.0  # look again at least hourly (a file may have been replaced by hand)

# The request fields of the three certificates a node holds.
CLIENT, SERVING, PROXY = "client_csr", "serving_csr", "proxy_csr"


@dataclass(frozen=True)
class Rotated:
    """One certificate the kubelet keeps fresh."""

    field: str  # CLIENT, SERVING or PROXY
    cert_file: str
    key_file: str


def plan_renewals(certs: dict[str, x509.Certificate | None], now: datetime.datetime
                  ) -> tuple[list[str], float]:
    """The fields due for renewal now (missing or past their renewal time), and seconds until the next one is."""
    due = [f for f, c in certs.items() if c is None or pki.renew_at(c) <= now]
    later = [(pki.renew_at(c) - now).total_seconds() for f, c in certs.items() if c is not None and f not in due]
    return due, min([LONGEST_SLEEP, *later])


def csr_request(field: str, node: str, addresses: Sequence[str]) -> pki.Request:
    identity = pki.Identity("system:kube-proxy") if field == PROXY else \
        pki.Identity(f"system:node:{node}", ("system:nodes",))
    if field == SERVING:
        return pki.Request(identity, (pki.SERVER,), dns=(node,), ips=tuple(addresses))
    return pki.Request(identity)


class CertificateManager:
    """Keeps `items` renewed for node `node` (serving certificate for `addresses`). `run()` until cancelled."""

    def __init__(self, client: Client, node: str, addresses: Sequence[str], items: Sequence[Rotated]) -> None:
        self.client = client
        self.node = node
        self.addresses = tuple(addresses)
        self.items = list(items)
        self.renewals = 0
        self._log = log.bind(node=node)

    def _read(self) -> dict[str, x509.Certificate | None]:
        out: dict[str, x509.Certificate | None] = {}
        for item in self.items:
            try:
                out[item.field] = pki.read_cert(item.cert_file)
            except pki.CertificateError:
                out[item.field] = None
        return out

    async def renew(self, fields: Sequence[str]) -> None:
        """New keys and certificates for `fields`, signed by the apiserver, written in place."""
        keys = {f: pki.new_key() for f in fields}
        req = api_pb2.NodeCertificatesRequest(node_name=self.node)
        for f, key in keys.items():
            setattr(req, f, pki.make_csr(key, csr_request(f, self.node, self.addresses)))
        resp = await self.client.request_node_certificates(req)
        answer = {CLIENT: resp.client_certificate, SERVING: resp.serving_certificate, PROXY: resp.proxy_certificate}
        for item in self.items:
            if item.field in keys:
                cert = pki.load_cert(answer[item.field], item.field)
                # The key first: a reader that finds the new key beside the old certificate skips the pair.
                await asyncio.to_thread(pki.write_private, item.key_file, pki.key_pem(keys[item.field]))
                await asyncio.to_thread(pki.write_public, item.cert_file, pki.cert_pem(cert))
                self._log.info("certificate_renewed", certificate=item.field.removesuffix("_csr"),
                               expires=cert.not_valid_after_utc.isoformat())
        self.renewals += 1

    async def run(self) -> None:
        delay = RETRY_MIN
        while True:
            due, wait = plan_renewals(await asyncio.to_thread(self._read), pki.now())
            if due:
                try:
                    await self.renew(due)
                    delay = RETRY_MIN
                    continue
                except (ApiError, pki.CertificateError, ConfigError, OSError) as e:
                    self._log.warning("certificate_renewal_failed", certificates=due, error=str(e), retry_in=delay)
                    wait, delay = delay, min(delay * 2, RETRY_MAX)
            await asyncio.sleep(max(wait, 0.5))
