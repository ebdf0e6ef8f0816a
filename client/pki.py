"""The cluster's certificates: keys, certificate requests, a signing CA, and who a certificate names.

Identities follow Kubernetes: a certificate's common name is the user
(`system:node:n1`), its organizations are the user's groups (`system:nodes`).
Keys are ECDSA P-256 (small, fast to sign and to verify; gRPC, etcd and
Python's ssl all speak it). Private keys are written 0600 through a new file
opened with O_EXCL and renamed into place, so no key is ever readable by
others, not even for a moment, and a reader sees the old file or the new one.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PrivateKey = ec.EllipticCurvePrivateKey
YEAR = datetime.timedelta(days=365)
CA_LIFETIME = 10 * YEAR
# Issued certificates start a little in the past, for clocks that lag; never more than a tenth of the lifetime, so
# a short-lived certificate is not half used up when it arrives.
BACKDATE = datetime.timedelta(minutes=5)
RENEW_FRACTION = 0.8  # renew once this much of a certificate's lifetime has passed

CLIENT = "client"
SERVER = "server"
_USAGES = {CLIENT: ExtendedKeyUsageOID.CLIENT_AUTH, SERVER: ExtendedKeyUsageOID.SERVER_AUTH}


class CertificateError(ValueError):
    """A key, certificate or request that cannot be used; the message names it and why."""


@dataclass(frozen=True)
class Identity:
    """Who a certificate names: the user (common name) and the groups (organizations)."""

    user: str
    groups: tuple[str, ...] = ()

    def name(self) -> x509.Name:
        attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, g) for g in self.groups]
        return x509.Name([*attrs, x509.NameAttribute(NameOID.COMMON_NAME, self.user)])

    def __str__(self) -> str:
        return self.user + (f" (groups {', '.join(self.groups)})" if self.groups else "")


def identity_of(name: x509.Name) -> Identity:
    cn = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    orgs = name.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return Identity(str(cn[0].value) if cn else "", tuple(str(o.value) for o in orgs))


# ---------------------------------------------------------------- keys and certificates as bytes


def new_key() -> PrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def load_key(pem: bytes, where: str = "key") -> PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as e:
        raise CertificateError(f"{where}: not a PEM private key ({e})") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CertificateError(f"{where}: not an ECDSA key")
    return key


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def load_certs(pem: bytes, where: str = "certificate") -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError as e:
        raise CertificateError(f"{where}: not a PEM certificate ({e})") from None
    return certs


def load_cert(pem: bytes, where: str = "certificate") -> x509.Certificate:
    """The first certificate of a PEM file (a chain starts with its leaf)."""
    return load_certs(pem, where)[0]


def read_cert(path: str | Path) -> x509.Certificate:
    try:
        return load_cert(Path(path).read_bytes(), str(path))
    except OSError as e:
        raise CertificateError(f"{path}: {e.strerror}") from None


def ca_hash(cert: x509.Certificate) -> str:
    """`sha256:<hex>` of the certificate's DER bytes: what a join token pins."""
    return "sha256:" + hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def matches(cert: x509.Certificate, key: PrivateKey) -> bool:
    """Whether `key` is the private half of `cert`'s public key."""
    return cert.public_key().public_numbers() == key.public_key().public_numbers()  # type: ignore[union-attr]


def signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def not_after(cert: x509.Certificate) -> datetime.datetime:
    return cert.not_valid_after_utc


def renew_at(cert: x509.Certificate, fraction: float = RENEW_FRACTION) -> datetime.datetime:
    """When a holder should renew: once `fraction` of the validity period has passed."""
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    return start + (end - start) * fraction


def now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


# ---------------------------------------------------------------- requests


@dataclass(frozen=True)
class Request:
    """What a certificate should say: who, for which use, and (servers) under which names."""

    identity: Identity
    usages: tuple[str, ...] = (CLIENT,)
    dns: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()

    def sans(self) -> list[x509.GeneralName]:
        out: list[x509.GeneralName] = [x509.DNSName(d) for d in self.dns]
        out += [x509.IPAddress(ipaddress.ip_address(i)) for i in self.ips]
        return out


def make_csr(key: PrivateKey, request: Request) -> bytes:
    """A PEM certificate signing request for `request`, signed by `key` (which never leaves its holder)."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(request.identity.name())
    if request.dns or request.ips:
        builder = builder.add_extension(x509.SubjectAlternativeName(request.sans()), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class SigningRequest:
    """A decoded, signature-checked certificate signing request."""

    identity: Identity
    dns: tuple[str, ...]
    ips: tuple[str, ...]
    public_key: ec.EllipticCurvePublicKey


def read_csr(pem: bytes, where: str = "certificate request") -> SigningRequest:
    try:
        csr = x509.load_pem_x509_csr(pem)
    except ValueError as e:
        raise CertificateError(f"{where}: not a PEM certificate signing request ({e})") from None
    if not csr.is_signature_valid:
        raise CertificateError(f"{where}: its signature does not match its key")
    key = csr.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise CertificateError(f"{where}: the key must be ECDSA P-256")
    dns: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()
    try:
        sans = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = tuple(sans.get_values_for_type(x509.DNSName))
        ips = tuple(str(i) for i in sans.get_values_for_type(x509.IPAddress))
    except x509.ExtensionNotFound:
        pass
    return SigningRequest(identity_of(csr.subject), dns, ips, key)


# ---------------------------------------------------------------- the signer


@dataclass
class CertificateAuthority:
    """A CA certificate with its key: signs the cluster's certificates."""

    cert: x509.Certificate
    key: PrivateKey

    @classmethod
    def create(cls, common_name: str, *, lifetime: datetime.timedelta = CA_LIFETIME) -> CertificateAuthority:
        key = new_key()
        name = Identity(common_name).name()
        start = now()
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(start - BACKDATE).not_valid_after(start + lifetime)
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                             content_commitment=False, key_encipherment=False,
                                             data_encipherment=False, key_agreement=False, encipher_only=False,
                                             decipher_only=False), critical=True)
                .add_extension(ski, critical=False)
                .sign(key, hashes.SHA256()))
        return cls(cert, key)

    @classmethod
    def load(cls, cert_path: str | Path, key_path: str | Path) -> CertificateAuthority:
        cert = read_cert(cert_path)
        try:
            key = load_key(Path(key_path).read_bytes(), str(key_path))
        except OSError as e:
            raise CertificateError(f"{key_path}: {e.strerror}") from None
        if not matches(cert, key):
            raise CertificateError(f"{key_path} is not the key of {cert_path}")
        return cls(cert, key)

    def issue(self, public_key: ec.EllipticCurvePublicKey, request: Request, *,
              lifetime: datetime.timedelta = YEAR) -> x509.Certificate:
        """A certificate for `public_key` saying what `request` says, valid for `lifetime` from now."""
        start = now()
        backdate = min(BACKDATE, lifetime / 10)
        usages = [_USAGES[u] for u in request.usages]
        builder = (x509.CertificateBuilder().subject_name(request.identity.name()).issuer_name(self.cert.subject)
                   .public_key(public_key).serial_number(x509.random_serial_number())
                   .not_valid_before(start - backdate)
                   .not_valid_after(min(start + lifetime, self.cert.not_valid_after_utc))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False, key_cert_sign=False,
                                                crl_sign=False, content_commitment=False, data_encipherment=False,
                                                key_agreement=False, encipher_only=False, decipher_only=False),
                                  critical=True)
                   .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                                  critical=False))
        if request.dns or request.ips:
            builder = builder.add_extension(x509.SubjectAlternativeName(request.sans()), critical=False)
        return builder.sign(self.key, hashes.SHA256())


# ---------------------------------------------------------------- what a certificate says


@dataclass(frozen=True)
class CertInfo:
    """A certificate as `kubelite certs check-expiration` shows it."""

    identity: Identity
    issuer: str
    not_before: datetime.datetime
    not_after: datetime.datetime
    is_ca: bool
    dns: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()
    usages: tuple[str, ...] = field(default=())

    def residual(self, at: datetime.datetime | None = None) -> datetime.timedelta:
        return self.not_after - (at or now())


def describe(cert: x509.Certificate) -> CertInfo:
    exts = cert.extensions
    try:
        is_ca = exts.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    dns: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()
    try:
        sans = exts.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = tuple(sans.get_values_for_type(x509.DNSName))
        ips = tuple(str(i) for i in sans.get_values_for_type(x509.IPAddress))
    except x509.ExtensionNotFound:
        pass
    names = {v: k for k, v in _USAGES.items()}
    try:
        usages = tuple(names.get(u, u.dotted_string)
                       for u in exts.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        usages = ()
    return CertInfo(identity_of(cert.subject), identity_of(cert.issuer).user, cert.not_valid_before_utc,
                    cert.not_valid_after_utc, is_ca, dns, ips, usages)


def human_duration(delta: datetime.timedelta) -> str:
    """`364d`, `23h`, `59m`, `42s`, or `expired`, as kubeadm's RESIDUAL TIME."""
    seconds = int(delta.total_seconds())
    if seconds <= 0:
        return "expired"
    for unit, size in (("y", 365 * 86400), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * (2 if unit == "y" else 1):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


# ---------------------------------------------------------------- files


def _write(path: Path, data: bytes, mode: int) -> None:
    """Replace `path` with `data`: a new file created with O_EXCL at `mode`, then renamed over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)  # whatever the umask took away from a public file
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_private(path: str | Path, data: bytes) -> None:
    """A key or token file: 0600 from the moment it exists."""
    _write(Path(path), data, 0o600)


def write_public(path: str | Path, data: bytes) -> None:
    """A certificate: 0644."""
    _write(Path(path), data, 0o644)


def private_dir(path: str | Path) -> Path:
    """A directory only its owner reads (0700), made if missing."""
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True, mode=0o700)
    p.chmod(0o700)
    return p


def write_pair(directory: Path, name: str, cert: x509.Certificate, key: PrivateKey | None) -> tuple[Path, Path]:
    """`<name>.crt` and (when given) `<name>.key` in `directory`; the key first, so a new pair never shows a
    certificate whose key is not there yet."""
    crt, k = directory / f"{name}.crt", directory / f"{name}.key"
    if key is not None:
        write_private(k, key_pem(key))
    write_public(crt, cert_pem(cert))
    return crt, k


def issue_pair(ca: CertificateAuthority, request: Request, *, lifetime: datetime.timedelta = YEAR,
               key: PrivateKey | None = None) -> tuple[x509.Certificate, PrivateKey]:
    """A new key (or `key`) and its certificate, signed here: for holders whose keys the CA's host makes."""
    key = key or new_key()
    return ca.issue(key.public_key(), request, lifetime=lifetime), key


def parse_ips(values: Sequence[str]) -> tuple[str, ...]:
    """Addresses, checked and normalised (`CertificateError` names a bad one)."""
    out = []
    for v in values:
        try:
            out.append(str(ipaddress.ip_address(v)))
        except ValueError:
            raise CertificateError(f"{v!r} is not an IP address") from None
    return tuple(out)
