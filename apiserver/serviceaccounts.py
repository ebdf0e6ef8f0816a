"""ServiceAccount tokens on the apiserver: the TokenRequest call issues them, authentication accepts them.

A token is issued for a ServiceAccount that exists (and, bound, for a pod that exists and runs as it); it
authenticates while it has not expired, is meant for this apiserver's audience, and its ServiceAccount (and
bound pod) still exist with the uids it names: deleting either revokes it, as Kubernetes' bound tokens.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Protocol

from google.protobuf.message import Message

from api import kinds
from api.errors import FieldError, InvalidError, NotFoundError, UnauthorizedError, UnavailableError
from api.pb import api_pb2, core_pb2
from apiserver import satoken
from apiserver.authn import AUTHENTICATED, UserInfo

SERVICE_ACCOUNTS = kinds.lookup("serviceaccounts")
PODS = kinds.lookup("pods")


@dataclass(frozen=True)
class TokenConfig:
    """--service-account-signing-key-file, --service-account-key-file, --service-account-issuer, --api-audiences."""

    signing_key_file: str = ""
    key_files: tuple[str, ...] = ()
    issuer: str = satoken.ISSUER
    audiences: tuple[str, ...] = field(default_factory=tuple)  # empty: the issuer

    @property
    def accepted_audiences(self) -> tuple[str, ...]:
        return self.audiences or (self.issuer,)


class Lookup(Protocol):
    """Reads a stored object (the registry's `current`), raising NotFoundError when it is not there."""

    async def __call__(self, kind: kinds.Kind, namespace: str, name: str) -> Message: ...


class ServiceAccountTokens:
    """Issues and checks ServiceAccount tokens with the control plane's service account key."""

    def __init__(self, config: TokenConfig, lookup: Lookup | None = None) -> None:
        self.config = config
        self.lookup = lookup
        self.signing_key = satoken.load_private(config.signing_key_file) if config.signing_key_file else None
        files = config.key_files or ((config.signing_key_file,) if config.signing_key_file else ())
        self.keys = [k for f in files for k in satoken.load_public(f)]

    @property
    def enabled(self) -> bool:
        return bool(self.keys)

    async def _get(self, kind: kinds.Kind, namespace: str, name: str) -> Message | None:
        assert self.lookup is not None
        try:
            return await self.lookup(kind, namespace, name)
        except NotFoundError:
            return None

    async def issue(self, req: api_pb2.TokenRequest, now: datetime.datetime) -> api_pb2.TokenResponse:
        """A signed token for the request (already authorized), or the error the TokenRequest API gives."""
        if self.signing_key is None:
            raise UnavailableError("this apiserver issues no service account tokens: it was started without "
                                   "--service-account-signing-key-file")
        seconds = req.expiration_seconds or satoken.DEFAULT_SECONDS
        if not satoken.MIN_SECONDS <= seconds <= satoken.MAX_SECONDS:
            raise InvalidError([FieldError("spec.expirationSeconds", "Invalid value",
                                           f"may not be less than {satoken.MIN_SECONDS} seconds or more than "
                                           f"{satoken.MAX_SECONDS // 3600} hours", str(seconds))])
        namespace = req.namespace or "default"
        sa = await self._get(SERVICE_ACCOUNTS, namespace, req.service_account)
        if sa is None:
            raise NotFoundError(f'serviceaccounts "{req.service_account}" not found')
        if req.pod_name:
            pod = await self._get(PODS, namespace, req.pod_name)
            if pod is None or (req.pod_uid and pod.metadata.uid != req.pod_uid):  # type: ignore[attr-defined]
                raise NotFoundError(f'pods "{req.pod_name}" not found')
            assert isinstance(pod, core_pb2.Pod)
            if (pod.spec.service_account_name or "default") != req.service_account:
                raise InvalidError([FieldError("spec.boundObjectRef.name", "Invalid value",
                                               f"pod {req.pod_name} runs as service account "
                                               f"{pod.spec.service_account_name}, not {req.service_account}",
                                               req.pod_name)])
            pod_uid = pod.metadata.uid
        else:
            pod_uid = ""
        token = satoken.sign(self.signing_key, namespace=namespace, name=req.service_account,
                             uid=sa.metadata.uid, audiences=list(req.audiences) or  # type: ignore[attr-defined]
                             list(self.config.accepted_audiences), now=now, seconds=seconds,
                             pod_name=req.pod_name, pod_uid=pod_uid, issuer=self.config.issuer)
        resp = api_pb2.TokenResponse(token=token)
        resp.expiration_timestamp.FromDatetime(now + datetime.timedelta(seconds=seconds))
        return resp

    async def authenticate(self, token: str, now: datetime.datetime | None = None) -> UserInfo:
        """The ServiceAccount a token names, if it is valid and what it names still exists; UnauthorizedError if
        not."""
        try:
            claims = satoken.verify(token, self.keys, audiences=self.config.accepted_audiences,
                                    now=now or datetime.datetime.now(datetime.UTC), issuer=self.config.issuer)
        except satoken.TokenError as e:
            raise UnauthorizedError(str(e)) from None
        sa = await self._get(SERVICE_ACCOUNTS, claims.namespace, claims.name)
        if sa is None or sa.metadata.uid != claims.uid:  # type: ignore[attr-defined]
            raise UnauthorizedError(f"service account token: serviceaccount {claims.namespace}/{claims.name} "
                                    f"(uid {claims.uid}) no longer exists")
        if claims.pod_name:
            pod = await self._get(PODS, claims.namespace, claims.pod_name)
            if pod is None or pod.metadata.uid != claims.pod_uid:  # type: ignore[attr-defined]
                raise UnauthorizedError(f"service account token: pod {claims.namespace}/{claims.pod_name} "
                                        f"(uid {claims.pod_uid}) no longer exists")
        return UserInfo(claims.username, claims.uid, (*claims.groups, AUTHENTICATED))

