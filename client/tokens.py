"""Join tokens, written as k3s writes them: `K10<sha256 of the cluster CA>::<id>.<secret>`.

One string carries both what a node needs to trust the cluster (the CA's
hash: the node refuses a control plane whose CA does not match) and what the
cluster needs to trust the node (the secret). The id names a BootstrapToken
object; the apiserver keeps only the secret's sha256, with the expiry.
"""

from __future__ import annotations

import datetime
import hashlib
import re
import secrets
from dataclasses import dataclass

from api.pb import bootstrap_pb2

PREFIX = "K10"
ID_LENGTH, SECRET_LENGTH = 6, 16
_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789"
_BEARER = re.compile(rf"([a-z0-9]{{{ID_LENGTH}}})\.([a-z0-9]{{{SECRET_LENGTH}}})")
_TOKEN = re.compile(rf"{PREFIX}([0-9a-f]{{64}})::(.*)")
# The groups a join token's holder is in, as Kubernetes' bootstrap tokens; it may only ask for node certificates.
BOOTSTRAPPERS = "system:bootstrappers"


class TokenFormatError(ValueError):
    """A join token that is not K10<64 hex digits>::<6 characters>.<16 characters>."""


@dataclass(frozen=True)
class JoinToken:
    ca_hash: str  # sha256:<hex> of the cluster CA's DER bytes
    id: str
    secret: str

    @property
    def bearer(self) -> str:
        """What the node presents: `<id>.<secret>`."""
        return f"{self.id}.{self.secret}"

    def __str__(self) -> str:
        return f"{PREFIX}{self.ca_hash.removeprefix('sha256:')}::{self.bearer}"


def generate(ca_hash: str) -> JoinToken:
    pick = lambda n: "".join(secrets.choice(_CHARS) for _ in range(n))  # noqa: E731
    return JoinToken(ca_hash, pick(ID_LENGTH), pick(SECRET_LENGTH))


def parse(text: str) -> JoinToken:
    match = _TOKEN.fullmatch(text.strip())
    bearer = _BEARER.fullmatch(match[2]) if match else None
    if match is None or bearer is None:
        raise TokenFormatError("a join token reads K10<sha256 of the cluster CA, 64 hex digits>::<id>.<secret> "
                               "(`kubelite token create` prints one)")
    return JoinToken(f"sha256:{match[1]}", bearer[1], bearer[2])


def split_bearer(value: str) -> tuple[str, str] | None:
    """(id, secret) of a bearer value shaped as a join token's, else None."""
    match = _BEARER.fullmatch(value)
    return (match[1], match[2]) if match else None


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def token_object(token: JoinToken, *, ttl: datetime.timedelta | None, description: str = "",
                 now: datetime.datetime | None = None) -> bootstrap_pb2.BootstrapToken:
    """The BootstrapToken stored for `token`: its id, its secret's hash, its expiry (none for `ttl` None)."""
    obj = bootstrap_pb2.BootstrapToken()
    obj.metadata.name = token.id
    obj.spec.secret_hash = secret_hash(token.secret)
    obj.spec.description = description
    if ttl is not None:
        obj.spec.expiration.FromDatetime((now or datetime.datetime.now(datetime.UTC)) + ttl)
    return obj
