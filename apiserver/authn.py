"""Authentication: who is calling, decided before anything else about a call runs.

A caller is named by its client certificate (common name = user,
organizations = groups: `system:node:n1` in `system:nodes`), or, on the
token port where clients present no certificate, by a bearer token: a user
from the static token file (`--token-file`, Kubernetes' format
`token,user,uid,"group1,group2"`) or a join token (`<id>.<secret>`, user
`system:bootstrap:<id>` in `system:bootstrappers`, which may only ask for a
node's certificates), or a ServiceAccount's signed token (a JWT: user
`system:serviceaccount:<ns>:<name>`, see serviceaccounts.py). Tokens are compared in constant time. A server started
with the test-only plaintext switch names every caller `PLAINTEXT_USER`.

`Authenticator.enter` names the caller and puts its `UserInfo` in a context
variable for the rest of the call: authorization, admission
(`admission.Attributes.user`) and audit read it with `current_user()`. The
API service's handlers call it first thing (no extra layer between a watch
and its events); the interceptor calls it for every other service, so
reflection needs a caller too. Health checking is open.
"""

from __future__ import annotations

import contextvars
import csv
import datetime
import hashlib
import hmac
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import grpc
import structlog
from cryptography import x509

from api.errors import ApiError, ForbiddenError, UnauthorizedError
from api.pb import bootstrap_pb2
from apiserver import satoken
from client import pki, tokens

log = structlog.get_logger(component="apiserver")

AUTHENTICATED = "system:authenticated"
HEALTH = "/grpc.health.v1.Health/"
# What a join token's holder may call: the node certificates it joins with, nothing else.
JOIN_METHODS = frozenset({"/kubelite.v1.Api/RequestNodeCertificates"})


@dataclass(frozen=True)
class UserInfo:
    """The authenticated caller of one request."""

    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()

    def __str__(self) -> str:
        return self.name


PLAINTEXT_USER = UserInfo("kubelite:insecure-plaintext", groups=("system:masters", AUTHENTICATED))

_current: contextvars.ContextVar[UserInfo | None] = contextvars.ContextVar("kubelite_user", default=None)


def current_user() -> UserInfo | None:
    """The caller of the request being served (None outside a request, as for the server's own writes)."""
    return _current.get()


def set_user(user: UserInfo | None) -> contextvars.Token[UserInfo | None]:
    return _current.set(user)


class TokenFileError(ValueError):
    """A static token file that cannot be used; the message names the file and the line."""


@dataclass(frozen=True)
class _Entry:
    digest: bytes
    user: UserInfo


class StaticTokens:
    """Bearer tokens of users, from a file (`token,user,uid,"group1,group2"` per line)."""

    def __init__(self, entries: list[_Entry]) -> None:
        self._entries = entries

    @classmethod
    def load(cls, path: str | Path) -> StaticTokens:
        try:
            text = Path(path).read_text()
        except OSError as e:
            raise TokenFileError(f"token file {path}: {e.strerror}") from None
        entries: list[_Entry] = []
        for number, row in enumerate(csv.reader(text.splitlines()), 1):
            if not row or not "".join(row).strip() or row[0].lstrip().startswith("#"):
                continue
            if len(row) < 2 or not row[0].strip() or not row[1].strip():
                raise TokenFileError(f"token file {path}, line {number}: expected token,user[,uid[,\"groups\"]]")
            token, user = row[0].strip(), row[1].strip()
            uid = row[2].strip() if len(row) > 2 else ""
            groups = tuple(g.strip() for g in row[3].split(",") if g.strip()) if len(row) > 3 else ()
            if tokens.split_bearer(token):
                raise TokenFileError(f"token file {path}, line {number}: a user's token must not look like a join "
                                     f"token (<6>.<16> characters)")
            entries.append(_Entry(hashlib.sha256(token.encode()).digest(),
                                  UserInfo(user, uid, (*groups, AUTHENTICATED))))
        if not entries:
            raise TokenFileError(f"token file {path} holds no token: refusing to start with nobody able to use it")
        return cls(entries)

    def authenticate(self, token: str) -> UserInfo | None:
        digest = hashlib.sha256(token.encode()).digest()
        found = None
        for entry in self._entries:  # every entry is compared, in constant time, whichever matches
            if hmac.compare_digest(entry.digest, digest):
                found = entry.user
        return found


TokenLookup = Callable[[str], Awaitable[bootstrap_pb2.BootstrapToken | None]]
# A ServiceAccount token's user (apiserver/serviceaccounts.py), or UnauthorizedError.
ServiceAccountLookup = Callable[[str], Awaitable[UserInfo]]


def check_join_token(obj: bootstrap_pb2.BootstrapToken | None, token_id: str, secret: str,
                     now: datetime.datetime) -> UserInfo:
    """The join token's user, or UnauthorizedError saying why not (unknown, expired, wrong secret)."""
    if obj is None:
        raise UnauthorizedError(f"join token {token_id} does not exist (deleted, or never created): ask for a new one "
                                f"(`kubelite token create`)")
    if obj.spec.HasField("expiration"):
        expires = obj.spec.expiration.ToDatetime(tzinfo=datetime.UTC)
        if expires <= now:
            raise UnauthorizedError(f"join token {token_id} expired at {expires:%Y-%m-%d %H:%M:%S} UTC: ask for a new "
                                    f"one (`kubelite token create`)")
    if not hmac.compare_digest(obj.spec.secret_hash.encode(), tokens.secret_hash(secret).encode()):
        raise UnauthorizedError(f"join token {token_id}: the secret is wrong")
    return UserInfo(f"system:bootstrap:{token_id}", groups=(tokens.BOOTSTRAPPERS, AUTHENTICATED))


@lru_cache(maxsize=4096)
def _from_subject(subject: bytes) -> UserInfo:
    identity = pki.identity_of(x509.Name.from_rfc4514_string(subject.decode()))
    return UserInfo(identity.user, groups=(*identity.groups, AUTHENTICATED))


class Authenticator:
    """Certificate first, then bearer tokens; the plaintext switch names everyone on a plaintext link."""

    def __init__(self, *, static: StaticTokens | None = None, join_tokens: TokenLookup | None = None,
                 plaintext: bool = False, service_accounts: ServiceAccountLookup | None = None) -> None:
        self.static = static
        self.join_tokens = join_tokens
        self.service_accounts = service_accounts
        self.plaintext = plaintext

    async def authenticate(self, context: grpc.aio.ServicerContext) -> UserInfo:
        auth = context.auth_context()
        subject = auth.get("x509_subject")
        authorization = ""
        for key, value in context.invocation_metadata() or ():
            if key == "authorization" and isinstance(value, str):
                authorization = value
        return await self.authenticate_credentials(subject[0] if subject else None, authorization,
                                                   plaintext_link=auth.get("transport_security_type") == [b"insecure"])

    async def authenticate_credentials(self, subject: bytes | None, authorization: str, *,
                                       plaintext_link: bool) -> UserInfo:
        """The caller named by a verified client certificate's subject (RFC 4514), else by the Authorization
        header's bearer token; both API faces (gRPC and REST) decide here."""
        if subject:
            return _from_subject(subject)
        bearer = authorization.removeprefix("Bearer ").strip()
        if bearer:
            return await self._token(bearer)
        if self.plaintext and plaintext_link:
            return PLAINTEXT_USER
        raise UnauthorizedError("no client certificate and no bearer token: the apiserver serves authenticated "
                                "callers only")

    async def enter(self, context: grpc.aio.ServicerContext, method: str) -> UserInfo:
        """Authenticate the call and set `current_user()` for it; abort it (UNAUTHENTICATED, or Forbidden for a join
        token outside the join) otherwise."""
        try:
            user = await self.authenticate(context)
            if not permitted(user, method):
                raise ForbiddenError(f"{user.name} (a join token) may only ask for node certificates")
        except (UnauthorizedError, ForbiddenError) as e:
            log.info("request_unauthenticated" if isinstance(e, UnauthorizedError) else "request_forbidden",
                     method=method, peer=context.peer(), error=e.message)
            await context.abort(e.code, e.message)
            raise  # abort raises; this only tells type checkers
        except ApiError as e:  # the token store could not be read
            await context.abort(e.code, e.message)
            raise
        set_user(user)
        return user

    async def _token(self, bearer: str) -> UserInfo:
        join = tokens.split_bearer(bearer)
        if join is not None and self.join_tokens is not None:
            return check_join_token(await self.join_tokens(join[0]), join[0], join[1],
                                    datetime.datetime.now(datetime.UTC))
        if self.service_accounts is not None and satoken.looks_like(bearer):
            return await self.service_accounts(bearer)
        user = self.static.authenticate(bearer) if self.static is not None else None
        if user is None:
            raise UnauthorizedError("invalid bearer token")
        return user


def permitted(user: UserInfo, method: str) -> bool:
    """What authentication alone settles: a join token's holder asks for node certificates and nothing else."""
    return tokens.BOOTSTRAPPERS not in user.groups or method in JOIN_METHODS


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Authenticates every call of the services other than health and `own` (which authenticates in its handlers),
    and sets `current_user()` for its handler."""

    def __init__(self, authenticator: Authenticator, own: str) -> None:
        self.authenticator = authenticator
        self.own = f"/{own}/"

    async def intercept_service(self, continuation, details):  # type: ignore[no-untyped-def]
        handler = await continuation(details)
        if handler is None or details.method.startswith((HEALTH, self.own)):
            return handler
        method = details.method
        for arity in ("unary_unary", "unary_stream", "stream_unary", "stream_stream"):
            behavior = getattr(handler, arity)
            if behavior is not None:
                return handler._replace(**{arity: self._wrap(behavior, method)})
        return handler

    def _wrap(self, behavior: Callable[..., Any], method: str) -> Callable[..., Any]:
        enter = self.authenticator.enter
        if inspect.isasyncgenfunction(behavior):
            async def stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
                await enter(context, method)
                async for item in behavior(request, context):
                    yield item

            return stream

        async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await enter(context, method)
            return await behavior(request, context)

        return call
