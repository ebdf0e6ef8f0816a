"""A node joins the cluster with a join token, as k3s and kubeadm nodes do.

1. Read the cluster CA from the TLS handshake with the apiserver's token
   port (it sends the CA after its own certificate) and check it against the
   hash the join token carries: a control plane with another CA is refused,
   whoever it is.
2. Make the node's keys here (they never leave the node), and send
   certificate requests for the kubelet (client and serving) and the proxy,
   authenticated by the token's `<id>.<secret>`, over TLS checked with that CA.
3. Write the CA, the keys (0600) and the certificates into the node's pki
   directory. A node that already holds certificates of this CA joins no more.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
import structlog
import tenacity
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from api.pb import api_pb2, api_pb2_grpc
from client import pki, tokens
from kubelet.certificates import CLIENT, PROXY, SERVING, csr_request

TIMEOUT = 15.0  # seconds one attempt may take on a real machine
ATTEMPTS = 3
# A control plane that has just started may be too busy to answer in time, above all on an emulated VM
# whose workers provision beside it: signing is stateless, so asking again is safe.
RETRIED = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})

log = structlog.get_logger(component="join")


class JoinError(Exception):
    """The node cannot join; the message says why."""


@dataclass(frozen=True)
class NodePki:
    """A node's certificate files."""

    dir: Path

    @property
    def ca(self) -> Path:
        return self.dir / "ca.crt"

    def crt(self, name: str) -> Path:
        return self.dir / f"{name}.crt"

    def key(self, name: str) -> Path:
        return self.dir / f"{name}.key"


FILES = {CLIENT: "kubelet", SERVING: "kubelet-serving", PROXY: "kube-proxy"}


def _split(server: str) -> tuple[str, int]:
    host, _, port = server.rpartition(":")
    if not host or not port.isdigit():
        raise JoinError(f"--join-server {server!r}: expected host:port")
    return host.strip("[]"), int(port)


def handshake_chain(server: str, timeout: float = TIMEOUT) -> list[bytes]:
    """The DER certificates the server sends in its TLS handshake, unchecked (the caller checks them)."""
    host, port = _split(server)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # nothing is trusted yet: the join token's hash decides
    ctx.set_alpn_protocols(["h2"])
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock, ctx.wrap_socket(sock) as conn:
            # Public in Python 3.13 (SSLSocket.get_unverified_chain); on the SSL object itself before.
            chain = conn._sslobj.get_unverified_chain() or []  # type: ignore[union-attr]
            return [c.public_bytes(ssl._ssl.ENCODING_DER) for c in chain]  # type: ignore[attr-defined]
    except (OSError, ssl.SSLError) as e:
        raise JoinError(f"cannot reach the control plane's token port at {server}: {e}") from None


def pick_ca(chain: Sequence[bytes], want: str, server: str) -> x509.Certificate:
    """The certificate of `chain` whose hash the join token pins; JoinError naming what was found otherwise."""
    for der in chain:
        if "sha256:" + hashlib.sha256(der).hexdigest() == want:
            cert = x509.load_der_x509_certificate(der)
            if not pki.describe(cert).is_ca:
                raise JoinError(f"the certificate the join token pins ({want}) is not a CA")
            return cert
    found = ", ".join("sha256:" + hashlib.sha256(d).hexdigest() for d in chain[1:]) or "none"
    raise JoinError(f"refusing to join: the control plane at {server} does not present the CA the join token pins "
                    f"({want}); its CA is {found}. The token is for another cluster, or someone is in between.")


def already_joined(files: NodePki, ca_hash: str = "") -> bool:
    """Whether the node holds valid certificates and keys of its CA (of the CA `ca_hash` names, if given): joining
    again is not needed."""
    try:
        ca = pki.read_cert(files.ca)
        for name in FILES.values():
            cert = pki.read_cert(files.crt(name))
            key = pki.load_key(files.key(name).read_bytes())
            if not (pki.signed_by(cert, ca) and pki.matches(cert, key) and cert.not_valid_after_utc > pki.now()):
                return False
    except (pki.CertificateError, OSError):
        return False
    return not ca_hash or pki.ca_hash(ca) == ca_hash


def _transient(e: BaseException) -> bool:
    return isinstance(e, grpc.aio.AioRpcError) and e.code() in RETRIED


def _log_retry(state: tenacity.RetryCallState) -> None:
    err = state.outcome.exception() if state.outcome else None
    code = err.code().name if isinstance(err, grpc.aio.AioRpcError) else repr(err)
    log.warning("join_retry", attempt=state.attempt_number, of=ATTEMPTS, error=code,
                wait=round(state.next_action.sleep if state.next_action else 0, 2))


async def join(join_server: str, token: tokens.JoinToken, *, node: str, addresses: Sequence[str],
               directory: Path, timeout: float = TIMEOUT) -> NodePki:
    """Join at `join_server` (the apiserver's token port) with `token`; the node's certificate files. Each
    attempt may take `timeout` seconds; a control plane too busy to answer is asked again, ATTEMPTS times."""
    files = NodePki(directory)
    if await asyncio.to_thread(already_joined, files, token.ca_hash):
        return files
    chain = await asyncio.to_thread(handshake_chain, join_server, timeout)
    ca = pick_ca(chain, token.ca_hash, join_server)
    ca_pem = ca.public_bytes(serialization.Encoding.PEM)
    keys = {f: pki.new_key() for f in FILES}
    req = api_pb2.NodeCertificatesRequest(node_name=node)
    for field, key in keys.items():
        setattr(req, field, pki.make_csr(key, csr_request(field, node, addresses)))
    async with grpc.aio.secure_channel(join_server, grpc.ssl_channel_credentials(ca_pem)) as channel:
        stub = api_pb2_grpc.ApiStub(channel)

        async def ask() -> api_pb2.NodeCertificatesResponse:
            return await stub.RequestNodeCertificates(req, timeout=timeout,
                                                      metadata=(("authorization", f"Bearer {token.bearer}"),))

        retrying = tenacity.AsyncRetrying(stop=tenacity.stop_after_attempt(ATTEMPTS), reraise=True,
                                          wait=tenacity.wait_exponential(multiplier=1, max=timeout / 3),
                                          retry=tenacity.retry_if_exception(_transient),
                                          before_sleep=_log_retry)
        try:
            resp = await retrying(ask)
        except grpc.aio.AioRpcError as e:
            tried = f" ({ATTEMPTS} attempts of {timeout:g} s)" if _transient(e) else ""
            raise JoinError(f"the control plane at {join_server} refused to join node {node!r}: "
                            f"{e.details() or e.code().name}{tried}") from None
    issued = {CLIENT: resp.client_certificate, SERVING: resp.serving_certificate, PROXY: resp.proxy_certificate}

    def write() -> None:
        pki.private_dir(directory)
        pki.write_public(files.ca, ca_pem)
        for field, name in FILES.items():
            cert = pki.load_cert(issued[field], f"{name} certificate")
            if not pki.signed_by(cert, ca):
                raise JoinError(f"the {name} certificate the control plane sent is not signed by the pinned CA")
            pki.write_pair(directory, name, cert, keys[field])

    await asyncio.to_thread(write)
    return files
