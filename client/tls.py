"""TLS for every gRPC link: what a client presents, what a server serves, and plain words when a handshake fails.

Client material comes from files (re-read when they change, so a renewed
certificate is used without a restart) or inline config data. Servers use
gRPC's dynamic credentials: the certificate files are checked at every new
connection and re-read when they changed. A certificate is only ever taken
together with its own key: a pair caught half-written is skipped until the
other half arrives.
"""

from __future__ import annotations

import datetime
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import grpc
import structlog

from client import pki
from client.config import LOCAL_NAME, SHARED_NAME, ClientConfig, ConfigError, server_endpoints

log = structlog.get_logger(component="tls")

CHECK_EVERY = 1.0  # seconds between looks at a client's certificate files


@dataclass(frozen=True)
class Material:
    """PEM bytes: the CA that verifies the peer, and our own certificate and key (empty for none)."""

    ca: bytes
    cert: bytes = b""
    key: bytes = b""


def _read(path: str, what: str) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ConfigError(f"{what} {path}: {e.strerror}") from None
    if not data.strip():
        raise ConfigError(f"{what} {path} is empty")
    return data


def _stamp(paths: tuple[str, ...]) -> tuple[tuple[int, int, int], ...]:
    out = []
    for p in paths:
        try:
            st = os.stat(p)
            out.append((st.st_mtime_ns, st.st_size, st.st_ino))
        except OSError:
            out.append((0, 0, 0))
    return tuple(out)


def check_pair(cert_pem: bytes, key_pem: bytes, where: str) -> None:
    """Raise pki.CertificateError unless the key is the certificate's."""
    cert = pki.load_cert(cert_pem, where)
    key = pki.load_key(key_pem, where)
    if not pki.matches(cert, key):
        raise pki.CertificateError(f"{where}: the key is not the certificate's")


class ClientCredentials:
    """What a client trusts (the cluster CA) and presents (its certificate), re-read when the files change."""

    def __init__(self, config: ClientConfig) -> None:
        self.config = config
        if not config.ca_file and not config.ca_data:
            where = f"cluster {config.cluster!r}" if config.cluster else "this client"
            raise ConfigError(f"no certificate authority configured for {where}: the apiserver's certificate cannot be "
                              f"checked (the config file's certificate-authority, or --certificate-authority)")
        if bool(config.cert_file or config.cert_data) != bool(config.key_file or config.key_data):
            raise ConfigError("a client certificate needs its key and a key its certificate "
                              "(--client-certificate and --client-key)")
        self._paths = tuple(p for p in (config.ca_file, config.cert_file, config.key_file) if p)
        self._stamp = _stamp(self._paths)
        self._checked = time.monotonic()
        self.material = self.load()

    @property
    def has_certificate(self) -> bool:
        return bool(self.material.cert)

    def load(self) -> Material:
        c = self.config
        ca = c.ca_data or _read(c.ca_file, "certificate authority")
        cert = c.cert_data or (_read(c.cert_file, "client certificate") if c.cert_file else b"")
        key = c.key_data or (_read(c.key_file, "client key") if c.key_file else b"")
        pki.load_certs(ca, c.ca_file or "certificate-authority-data")
        if cert:
            try:
                check_pair(cert, key, c.cert_file or "client-certificate-data")
            except pki.CertificateError as e:
                raise ConfigError(str(e)) from None
        return Material(ca, cert, key)

    def changed(self) -> bool:
        """Whether the files hold a new, whole pair (looked at no more than once a second); if so, it is loaded."""
        if not self._paths or time.monotonic() - self._checked < CHECK_EVERY:
            return False
        self._checked = time.monotonic()
        stamp = _stamp(self._paths)
        if stamp == self._stamp:
            return False
        try:
            material = self.load()
        except (ConfigError, pki.CertificateError) as e:
            log.info("client_certificate_not_reloaded", reason=str(e))  # half-written: try again later
            return False
        self._stamp = stamp
        if material == self.material:
            return False
        self.material = material
        log.info("client_certificate_reloaded", file=self.config.cert_file)
        return True

    def channel_credentials(self) -> grpc.ChannelCredentials:
        m = self.material
        return grpc.ssl_channel_credentials(m.ca, m.key or None, m.cert or None)


def server_name_options(config: ClientConfig) -> list[tuple[str, str]]:
    """The name checked on the server's certificate when it is not the host in `server`: the config's, or, over a
    unix socket (whose path is no name), the one the apiserver's certificate carries for local clients, or, for a
    list of apiservers (no one host), the name every apiserver's certificate carries."""
    several = "," in config.server and len(server_endpoints(config.server)) > 1
    name = config.server_name or (LOCAL_NAME if config.server.startswith("unix:")
                                  else SHARED_NAME if several else "")
    return [("grpc.ssl_target_name_override", name)] if name else []


class ServerCredentials:
    """A server's certificate and key (re-read at the next connection after they change) and, for mutual TLS, the
    CA every client certificate must be signed by. `chain_ca` is sent after the server's certificate, so that a
    joining node can read the CA from the handshake and check it against its join token."""

    def __init__(self, cert_file: str, key_file: str, *, client_ca_file: str = "", chain_ca_file: str = "") -> None:
        self.cert_file, self.key_file = cert_file, key_file
        self.client_ca_file, self.chain_ca_file = client_ca_file, chain_ca_file
        self._paths = tuple(p for p in (cert_file, key_file, client_ca_file, chain_ca_file) if p)
        self._lock = threading.Lock()  # gRPC asks from its own threads
        self._stamp = _stamp(self._paths)
        self._config = self._load()

    def _load(self) -> grpc.ServerCertificateConfiguration:
        cert = _read(self.cert_file, "serving certificate")
        key = _read(self.key_file, "serving key")
        check_pair(cert, key, self.cert_file)
        if self.chain_ca_file:
            cert = cert.rstrip(b"\n") + b"\n" + _read(self.chain_ca_file, "certificate authority")
        roots = _read(self.client_ca_file, "client certificate authority") if self.client_ca_file else None
        return grpc.ssl_server_certificate_configuration([(key, cert)], root_certificates=roots)

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        with self._lock:
            stamp = _stamp(self._paths)
            if stamp == self._stamp:
                return None
            try:
                config = self._load()
            except (ConfigError, pki.CertificateError) as e:
                log.info("serving_certificate_not_reloaded", reason=str(e))
                return None
            self._stamp = stamp
            self._config = config
            log.info("serving_certificate_reloaded", file=self.cert_file)
            return config

    def grpc_credentials(self) -> grpc.ServerCredentials:
        return grpc.dynamic_ssl_server_credentials(self._config, self._fetch,
                                                   require_client_authentication=bool(self.client_ca_file))


# ---------------------------------------------------------------- plain words for failed handshakes


def _when(t: datetime.datetime) -> str:
    return t.strftime("%Y-%m-%d %H:%M:%S UTC")


def explain(config: ClientConfig, details: str, *, peer: str = "the apiserver") -> str | None:
    """What went wrong with TLS, in words that name the certificate; None when the failure is not about TLS."""
    if config.insecure_plaintext:
        return None
    try:
        ca = pki.load_cert(config.ca_data or Path(config.ca_file).read_bytes())
    except (OSError, pki.CertificateError):
        ca = None
    cert = None
    where = config.cert_file or "client-certificate-data"
    try:
        if config.cert_data or config.cert_file:
            cert = pki.load_cert(config.cert_data or Path(config.cert_file).read_bytes())
    except (OSError, pki.CertificateError):
        cert = None
    ca_where = config.ca_file or "certificate-authority-data"
    lower = details.lower()
    if cert is not None:
        info = pki.describe(cert)
        if info.not_after <= pki.now():
            return (f"client certificate {where} ({info.identity.user}) expired at {_when(info.not_after)}: "
                    f"renew it (`kubelite certs renew`) or get a new one from the cluster's admin")
        if ca is not None and not pki.signed_by(cert, ca):
            return (f"certificate signed by unknown authority: this client's certificate {where} "
                    f"({info.identity.user}, issued by {info.issuer!r}) is not signed by the cluster CA in "
                    f"{ca_where} ({pki.identity_of(ca.subject).user!r}): this client's CA is not the cluster's")
    if "certificate_verify_failed" in lower or "certificate verify failed" in lower:
        if "expired" in lower:
            return f"{peer}'s certificate at {config.server} has expired"
        ca_name = pki.identity_of(ca.subject).user if ca is not None else "?"
        return (f"certificate signed by unknown authority: {peer} at {config.server} presented a certificate "
                f"that the CA in {ca_where} ({ca_name!r}) did not sign: this client's CA is not the cluster's")
    if "peer name" in lower and "not in peer certificate" in lower:
        return f"{peer}'s certificate does not name {config.server} (--server must be a name or address it carries)"
    if "ssl" not in lower and any(m in lower for m in ("socket closed", "connection reset", "tsi_data_corrupted")):
        # The server hung up during the handshake: it did not take our certificate (gRPC says no more).
        if cert is None:
            return (f"{peer} at {config.server} closed the connection during the TLS handshake: it serves clients "
                    f"with a certificate of the cluster only, and this client presents none (a bearer token is "
                    f"accepted on the token port)")
        info = pki.describe(cert)
        return (f"{peer} at {config.server} closed the connection during the TLS handshake: it did not accept "
                f"this client's certificate {where} ({info.identity.user}, issued by {info.issuer!r})")
    return None
