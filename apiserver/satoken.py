"""ServiceAccount tokens: ES256 JWTs with the claims of Kubernetes' bound tokens, signed and checked here.

The apiserver signs with `--service-account-signing-key-file` (an EC P-256 key, the control plane's `sa.key`)
and accepts tokens whose signature verifies with one of `--service-account-key-file`'s public keys. Claims:
iss, sub `system:serviceaccount:<ns>:<name>`, aud, exp, iat, nbf, and `kubernetes.io` {namespace,
serviceaccount {name, uid}, pod {name, uid}}. Whether the ServiceAccount and the pod still exist is the
caller's check (authn.py), after `verify`.
"""

from __future__ import annotations

import base64
import datetime
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

ISSUER = "https://kubernetes.default.svc.cluster.local"
DEFAULT_SECONDS = 3600
MIN_SECONDS = 600
MAX_SECONDS = 48 * 3600
PREFIX = "system:serviceaccount:"
GROUP = "system:serviceaccounts"
_HEADER = {"alg": "ES256", "typ": "JWT"}
_PEM = re.compile(rb"-----BEGIN ([A-Z ]+)-----.*?-----END \1-----", re.S)


class TokenError(ValueError):
    """A token that does not authenticate; the message says why."""


@dataclass(frozen=True)
class Claims:
    """What a valid token names."""

    namespace: str
    name: str
    uid: str
    pod_name: str = ""
    pod_uid: str = ""
    audiences: tuple[str, ...] = ()
    expires: datetime.datetime | None = None

    @property
    def username(self) -> str:
        return f"{PREFIX}{self.namespace}:{self.name}"

    @property
    def groups(self) -> tuple[str, ...]:
        return (GROUP, f"{GROUP}:{self.namespace}")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def load_private(path: str | Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(Path(path).read_bytes(), None)
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError(f"{path}: a service account signing key must be an EC P-256 key")
    return key


def load_public(path: str | Path) -> list[ec.EllipticCurvePublicKey]:
    """The public keys in a PEM file (public keys, or private keys whose public half is used)."""
    out: list[ec.EllipticCurvePublicKey] = []
    for m in _PEM.finditer(Path(path).read_bytes()):
        key: Any = (serialization.load_pem_public_key(m.group(0)) if m.group(1) == b"PUBLIC KEY"
                    else serialization.load_pem_private_key(m.group(0), None).public_key())
        if not isinstance(key, ec.EllipticCurvePublicKey):
            raise ValueError(f"{path}: service account keys must be EC P-256 keys")
        out.append(key)
    if not out:
        raise ValueError(f"{path}: no key found")
    return out


def sign(key: ec.EllipticCurvePrivateKey, *, namespace: str, name: str, uid: str, audiences: Sequence[str],
         now: datetime.datetime, seconds: int, pod_name: str = "", pod_uid: str = "",
         issuer: str = ISSUER) -> str:
    """A token for ServiceAccount namespace/name (uid), valid from `now` for `seconds`."""
    iat = int(now.timestamp())
    private: dict[str, Any] = {"namespace": namespace, "serviceaccount": {"name": name, "uid": uid}}
    if pod_name:
        private["pod"] = {"name": pod_name, "uid": pod_uid}
    claims = {"aud": list(audiences), "exp": iat + seconds, "iat": iat, "iss": issuer, "kubernetes.io": private,
              "nbf": iat, "sub": f"{PREFIX}{namespace}:{name}"}
    signing_input = (_b64(json.dumps(_HEADER, separators=(",", ":")).encode()) + "." +
                     _b64(json.dumps(claims, separators=(",", ":")).encode()))
    r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    return signing_input + "." + _b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def looks_like(token: str) -> bool:
    """A JWT (three dot-separated parts, a JSON header): other bearer tokens are not tried as one."""
    parts = token.split(".")
    return len(parts) == 3 and parts[0].startswith("eyJ")


def verify(token: str, keys: Sequence[ec.EllipticCurvePublicKey], *, audiences: Sequence[str],
           now: datetime.datetime, issuer: str = ISSUER) -> Claims:
    """The claims of a token signed by one of `keys`, for one of `audiences`, valid at `now`; TokenError if not."""
    try:
        head, body, sig = token.split(".")
        header = json.loads(_unb64(head))
        claims = json.loads(_unb64(body))
        raw = _unb64(sig)
    except ValueError:
        raise TokenError("malformed service account token") from None
    if not isinstance(header, dict) or header.get("alg") != "ES256" or not isinstance(claims, dict) \
            or len(raw) != 64:
        raise TokenError("service account token: unsupported signature algorithm (ES256 only)")
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    for key in keys:
        try:
            key.verify(der, f"{head}.{body}".encode(), ec.ECDSA(hashes.SHA256()))
            break
        except InvalidSignature:
            continue
    else:
        raise TokenError("service account token: invalid signature")
    if claims.get("iss") != issuer:
        raise TokenError(f"service account token: issuer {claims.get('iss')!r} is not {issuer!r}")
    t = now.timestamp()
    exp, nbf = claims.get("exp"), claims.get("nbf", 0)
    if not isinstance(exp, int) or not isinstance(nbf, int):
        raise TokenError("service account token: exp and nbf must be numbers")
    if exp <= t:
        raise TokenError("service account token has expired")
    if nbf > t + 60:  # a minute of clock skew, as Kubernetes allows
        raise TokenError("service account token is not valid yet")
    aud = claims.get("aud")
    token_auds = [aud] if isinstance(aud, str) else list(aud) if isinstance(aud, list) else []
    if not set(token_auds) & set(audiences):
        raise TokenError("service account token: audience not accepted by this apiserver")
    k8s = claims.get("kubernetes.io")
    if not isinstance(k8s, dict) or not isinstance(k8s.get("serviceaccount"), dict):
        raise TokenError("service account token: no kubernetes.io claims")
    sa, pod = k8s["serviceaccount"], k8s.get("pod") or {}
    namespace, name = str(k8s.get("namespace", "")), str(sa.get("name", ""))
    if claims.get("sub") != f"{PREFIX}{namespace}:{name}" or not namespace or not name:
        raise TokenError("service account token: subject does not match its service account")
    return Claims(namespace, name, str(sa.get("uid", "")), str(pod.get("name", "")), str(pod.get("uid", "")),
                  tuple(token_auds), datetime.datetime.fromtimestamp(exp, datetime.UTC))
