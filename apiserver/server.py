"""The apiserver daemon: gRPC front end over the registry and the watch cache.

Servicer methods are thin: parse the request, call the registry, return its
bytes. Requests are parsed here rather than by grpc so that garbage input
becomes INVALID_ARGUMENT instead of an internal error.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import functools
import ipaddress
import os
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
import structlog
from aiohttp import web
from google.protobuf.message import DecodeError, Message
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import Counter, Gauge, Histogram

from api import kinds, text
from api.errors import (
    AlreadyExistsError,
    ApiError,
    ConflictError,
    FieldError,
    ForbiddenError,
    InvalidError,
    NotFoundError,
    TimeoutError_,
    TooLargeError,
    TooManyRequestsError,
    UnavailableError,
)
from api.limits import MAX_BIND_MANY_BINDINGS, MAX_CREATE_MANY_BYTES, MAX_CREATE_MANY_OBJECTS, MAX_TOKEN_MANY_REQUESTS
from api.pb import api_pb2, bootstrap_pb2, core_pb2, policy_pb2, rbac_pb2
from apiserver import audit, authn, authz, eviction, warning, wire
from apiserver.authz import bootstrap as rbac_bootstrap
from apiserver.cache import WatchCache, Watcher, watch_pause
from apiserver.kubelet_proxy import KubeletProxy, KubeletTLS
from apiserver.nodecerts import NodeSigner, SignerConfig
from apiserver.overload import REQUEST, STREAM, WATCH, Admission, OverloadLimits
from apiserver.registry import Config as RegistryConfig
from apiserver.registry import Registry
from apiserver.rest.server import RestApi
from apiserver.rules import namespace as namespace_rules
from apiserver.rules import pod as pod_rules
from apiserver.rules import priorityclass as priorityclass_rules
from apiserver.serviceaccounts import ServiceAccountTokens, TokenConfig
from apiserver.storage.etcd import EtcdStorage, EtcdTLS, check_scheme, parse_endpoints
from apiserver.storage.limits import Limits
from apiserver.storage.transformed import TransformedStorage
from client import tls

log = structlog.get_logger(component="apiserver")
T = TypeVar("T")
R = TypeVar("R")


class ConfigError(ValueError):
    """The apiserver must not start as configured; the message says why and what to give it."""

MAX_REQUEST = 3 * 1024 * 1024
MAX_STATUS_MESSAGE = 4096
WATCH_CHUNK = 1024 * 1024
# A watcher that still has this many frames pending right after a message sends again without waiting its pace
# (cache.watch_pause).
WATCH_BATCH_FRAMES = 64
# Messages of a WatchMany stream waiting for its reader, whichever watches they come from.
MUX_QUEUE = 256
SERVICE = "kubelite.v1.Api"
# Binding and the kubelets' status stream are pods' subresources.
PODS = kinds.lookup("pods")
BOOTSTRAP_TOKENS = kinds.lookup("BootstrapToken")
# CreateManyResponse.results and CreateResult.object, for answers joined from encoded bytes.
CREATE_RESULTS = api_pb2.CreateManyResponse.DESCRIPTOR.fields_by_name["results"].number
CREATE_RESULT_OBJECT = api_pb2.CreateResult.DESCRIPTOR.fields_by_name["object"].number
# WatchManyResponse.watches and WatchManyEvents.id, for answers joined from a watcher's encoded messages.
MUX_WATCHES = api_pb2.WatchManyResponse.DESCRIPTOR.fields_by_name["watches"].number
MUX_ID = api_pb2.WatchManyEvents.DESCRIPTOR.fields_by_name["id"].number

REQUESTS = Counter("apiserver_requests_total", "Requests by verb, resource and code", ["verb", "resource", "code"])
LATENCY = Histogram("apiserver_request_duration_seconds", "Request latency by verb and resource",
                    ["verb", "resource"], buckets=(.001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
WATCHERS = Gauge("apiserver_watchers", "Open watches by resource", ["resource"])


@dataclass
class ServingTLS:
    """The apiserver's certificate and key, and the CA its clients' certificates must be signed by."""

    cert_file: str
    key_file: str
    client_ca_file: str


@dataclass
class Config:
    etcd_servers: str = "https://127.0.0.1:2379"
    etcd_tls: EtcdTLS | None = None
    listen: list[str] = field(default_factory=lambda: ["127.0.0.1:6443"])  # mutual TLS
    token_listen: list[str] = field(default_factory=list)  # TLS without client certificates: bearer and join tokens
    # Kubernetes' REST API (kubectl): host:port or unix:///path; HTTPS with optional client certificates.
    rest_listen: list[str] = field(default_factory=list)
    registry: RegistryConfig = field(default_factory=RegistryConfig)
    tls: ServingTLS | None = None
    token_file: str = ""  # users' bearer tokens (static token file), accepted on token_listen
    kubelet_tls: KubeletTLS | None = None
    signer: SignerConfig = field(default_factory=SignerConfig)
    # Test-only: serve and reach etcd and kubelets without TLS; every caller is authn.PLAINTEXT_USER. Only on
    # loopback and unix sockets, unless insecure_plaintext_network says otherwise too.
    insecure_plaintext: bool = False
    insecure_plaintext_network: bool = False
    metrics_port: int = 0
    metrics_address: str = "127.0.0.1"
    compact_interval: float = 300.0
    compact_keep: int = 50000
    replay: int = 20000
    limits: Limits = field(default_factory=Limits)  # etcd's limits and the largest object stored
    overload: OverloadLimits = field(default_factory=OverloadLimits)
    # EncryptionConfiguration file; "" refuses to store Secrets (see apiserver/encryption.py).
    encryption_config: str = ""
    # "Node,RBAC" (the default); "AlwaysAllow" turns authorization off, for benchmarks' baselines only.
    authorization_mode: str = "Node,RBAC"
    # One JSON line per mutating, exec/log or denied request; "" keeps no audit log.
    audit: audit.AuditConfig = field(default_factory=audit.AuditConfig)
    # The service account key: signs ServiceAccount tokens (TokenRequest) and checks them (authentication).
    service_accounts: TokenConfig = field(default_factory=TokenConfig)
    # Test-only: off, the server answers CreateMany, BindMany, CreateTokenMany and WatchMany UNIMPLEMENTED, as
    # servers before them did (clients fall back to one call per object or watch).
    batch_calls: bool = True


async def _joined(out: asyncio.Queue[bytes | ApiError], context: grpc.aio.ServicerContext) -> ApiError | None:
    """Write what `out` holds (WatchManyEvents, encoded) in one WatchManyResponse, waiting for the first: one
    gRPC message for all the watches a change woke, where each Watch of its own costs one. The error that ends
    the stream, if it came."""
    item = await out.get()
    parts: list[bytes] = []
    size = 0
    while isinstance(item, bytes):
        parts.append(wire.field_bytes(MUX_WATCHES, item))
        size += len(parts[-1])
        if size >= WATCH_CHUNK or out.empty():
            item = None
            break
        item = out.get_nowait()
    if parts:
        await context.write(b"".join(parts))
    return item


class _WatchEnded(Exception):
    """A watch's end: the gRPC status and message its stream ends with."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _status_message(e: ApiError) -> str:
    """An error's message as a status detail: one line (control characters escaped), and short enough for any
    client to accept (gRPC clients refuse status details over 16 KiB; a message may quote a huge request)."""
    message = text.escape(e.message)
    if len(message) > MAX_STATUS_MESSAGE:
        message = f"{message[:MAX_STATUS_MESSAGE]}... ({len(message)} characters in all)"
    return message


def _ser(msg: Message | bytes) -> bytes:
    return msg if isinstance(msg, bytes) else msg.SerializeToString()


def _parse(cls: type[Message], raw: bytes, *, carries: str = "object") -> Message:
    """The request, decoded; its own fields (names, selectors, not the object or status it `carries`) free of
    control characters. What it carries is validated field by field later."""
    try:
        req = cls.FromString(raw)
    except (DecodeError, RecursionError, ValueError) as e:
        raise InvalidError(f"request: cannot decode {cls.DESCRIPTOR.name}: {e}") from None
    errs = text.control_errors(req, skip=frozenset({carries}))
    if errs:
        raise InvalidError(errs, prefix="request: ")
    return req


def _resource_of(req: Message) -> str:
    if isinstance(req, api_pb2.CreateRequest | api_pb2.UpdateRequest):
        field_name = req.object.WhichOneof("kind")
        return kinds.by_field(field_name).resource if field_name else ""
    if isinstance(req, api_pb2.BindRequest | policy_pb2.Eviction):
        return "pods"
    return getattr(req, "resource", "") or ""


def unary(verb: str, cls: type[Message], kind: str = REQUEST, *, carries: str = "object") -> Callable[
        ..., Callable[[Any, bytes, grpc.aio.ServicerContext], Awaitable[bytes | Message]]]:
    """Admit (overload limits), parse, time, count and map errors for one unary method."""

    def wrap(fn: Callable[[Any, Any], Awaitable[bytes | Message]]):  # type: ignore[no-untyped-def]
        method = f"/{SERVICE}/{fn.__name__}"

        @functools.wraps(fn)
        async def handler(self: Any, raw: bytes, context: grpc.aio.ServicerContext) -> bytes | Message:
            await self.authenticator.enter(context, method)
            start = time.perf_counter()
            resource = ""
            attrs: authz.Attributes | None = None
            warned: list[str] = []
            try:
                with self.admission.admit(kind, context.peer()), warning.collect() as warned:
                    req = _parse(cls, raw, carries=carries)
                    resource = _resource_of(req)
                    attrs = await self.authorize(context, fn.__name__, req)
                    result = await fn(self, req)
            except ApiError as e:
                message = _status_message(e)
                # Before the answer leaves: abort() sends the status at once, and a client that then
                # scrapes the metrics must see its own request counted.
                self.served(verb, resource, attrs, start, e)
                await context.abort(e.code, message, trailing_metadata=warning.metadata(warned))
            except Exception as e:
                if isinstance(e, asyncio.CancelledError | grpc.aio.AbortError):
                    self.served(verb, resource, attrs, start, "CANCELLED")
                    raise
                log.exception("request_crashed", verb=verb, resource=resource)
                self.served(verb, resource, attrs, start, "INTERNAL")
                await context.abort(grpc.StatusCode.INTERNAL, f"internal error: {type(e).__name__}: {e}")
            else:
                self.served(verb, resource, attrs, start, "OK")
                if warned:
                    context.set_trailing_metadata(warning.metadata(warned))
                return result
            raise AssertionError("unreachable")

        return handler

    return wrap


class ApiServicer:
    def __init__(self, registry: Registry, cache: WatchCache, proxy: KubeletProxy, authenticator: authn.Authenticator,
                 admission: Admission | None = None, signer: NodeSigner | None = None,
                 authorizer: authz.Authorizer | None = None, audit_log: audit.AuditLog | None = None,
                 sa_tokens: ServiceAccountTokens | None = None) -> None:
        self.authenticator = authenticator  # every handler calls it first
        self.sa_tokens = sa_tokens or ServiceAccountTokens(TokenConfig())
        self.authorizer = authorizer or authz.Authorizer(cache)  # then this, on the parsed request
        self.audit = audit_log or audit.AuditLog(audit.AuditConfig())
        self.registry = registry
        self.cache = cache
        self.proxy = proxy
        self.admission = admission or Admission()
        self.signer = signer or NodeSigner(SignerConfig())

    def served(self, verb: str, resource: str, attrs: authz.Attributes | None, start: float,
               outcome: ApiError | str) -> None:
        """Count, time and audit one request (or one object of a CreateMany) as it ends; log a failure."""
        if isinstance(outcome, ApiError):
            code = outcome.code.name
            # Refusals of a flood are counted (apiserver_overload_refused_total), not logged one by one.
            if outcome.code not in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.ALREADY_EXISTS,
                                    grpc.StatusCode.ABORTED) and not isinstance(outcome, TooManyRequestsError):
                log.info("request_failed", verb=verb, resource=resource, code=code,
                         error=_status_message(outcome))
        else:
            code = outcome
        LATENCY.labels(verb, resource).observe(time.perf_counter() - start)
        REQUESTS.labels(verb, resource, code).inc()
        if attrs is not None:
            self.audit.record(attrs, code, time.perf_counter() - start)

    async def authorize(self, context: grpc.aio.ServicerContext, method: str, req: Message) -> authz.Attributes | None:
        """The request's attributes, after impersonation, once the authorizer allowed them; PermissionDeniedError
        (audited) otherwise. Sets `current_user()` to the impersonated user."""
        return self.check(await self.impersonated(context), method, req)

    async def impersonated(self, context: grpc.aio.ServicerContext) -> authn.UserInfo:
        """The caller, or whom it impersonates once allowed to (PermissionDeniedError, audited, otherwise); also
        `current_user()` from now on."""
        user = authn.current_user()
        assert user is not None  # enter() ran
        try:
            user = authz.impersonate(self.authorizer, user, context.invocation_metadata() or ())
        except authz.DeniedError as e:
            self.audit.record(e.attrs, "PERMISSION_DENIED", 0.0)
            raise
        authn.set_user(user)
        return user

    def check(self, user: authn.UserInfo, method: str, req: Message) -> authz.Attributes | None:
        """The attributes of `method` on `req` for `user`, once the authorizer allowed them; PermissionDeniedError
        (audited) otherwise."""
        try:
            attrs = authz.of_request(user, method, req)
            if attrs is not None:
                self.authorizer.check(attrs)
        except authz.DeniedError as e:
            self.audit.record(e.attrs, "PERMISSION_DENIED", 0.0)
            raise
        return attrs

    @unary("access_review", api_pb2.AccessReviewRequest)
    async def AccessReview(self, req: api_pb2.AccessReviewRequest) -> api_pb2.AccessReviewResponse:
        user = authn.current_user()
        assert user is not None
        kind = kinds.lookup(req.resource) if req.resource else None
        if kind is None:
            raise InvalidError([FieldError("resource", "Required value", "")])
        namespace = req.namespace if kind.namespaced else ""
        decision = self.authorizer.authorize(authz.Attributes(
            user, req.verb, kind.resource, req.subresource, namespace, req.name, kind.group))
        return api_pb2.AccessReviewResponse(allowed=decision.allowed, reason=decision.reason)

    @unary("who_am_i", api_pb2.WhoAmIRequest)
    async def WhoAmI(self, req: api_pb2.WhoAmIRequest) -> api_pb2.WhoAmIResponse:
        del req
        user = authn.current_user()
        assert user is not None
        return api_pb2.WhoAmIResponse(username=user.name, uid=user.uid, groups=list(user.groups))

    @unary("create_token", api_pb2.TokenRequest)
    async def CreateToken(self, req: api_pb2.TokenRequest) -> api_pb2.TokenResponse:
        return await self.sa_tokens.issue(req, datetime.datetime.now(datetime.UTC))

    @unary("create_token_many", api_pb2.TokenManyRequest)
    async def CreateTokenMany(self, req: api_pb2.TokenManyRequest) -> api_pb2.TokenManyResponse:
        results = await self._each(req.requests, self._token_one, limit=MAX_TOKEN_MANY_REQUESTS,
                                   field="requests", what="token requests", call="CreateTokenMany")
        return api_pb2.TokenManyResponse(results=results)

    async def _token_one(self, user: authn.UserInfo, req: api_pb2.TokenRequest) -> api_pb2.TokenResult:
        """One request of a CreateTokenMany: its token, or the error its own CreateToken would have ended with."""
        token, error = await self._one_of_many(user, "CreateToken", "create_token", req)
        if error is not None:
            return api_pb2.TokenResult(code=error.code.value[0], message=_status_message(error))
        return api_pb2.TokenResult(token=token)

    async def _each(self, items: Sequence[T], one: Callable[[authn.UserInfo, T], Awaitable[R]], *, limit: int,
                    field: str, what: str, call: str) -> list[R]:
        """The items of one CreateMany, BindMany or CreateTokenMany (at most `limit`), each through `one` as the
        caller's user. Concurrently: the storage's group commit then writes many of them in one etcd
        transaction."""
        if len(items) > limit:
            raise TooLargeError(f"{field}: {len(items)} {what} in one {call}; at most {limit} are accepted")
        user = authn.current_user()
        assert user is not None
        return await asyncio.gather(*(one(user, item) for item in items))

    async def _one_of_many(self, user: authn.UserInfo, method: str, verb: str, req: Message,
                           ) -> tuple[Any, ApiError | None]:
        """One item of a CreateMany, BindMany or CreateTokenMany, exactly as `method` alone would take it:
        authorized, carried out, counted and audited on its own. Its answer, or the error that becomes it."""
        start = time.perf_counter()
        resource = ""
        attrs: authz.Attributes | None = None
        try:
            resource = _resource_of(req)
            attrs = self.check(user, method, req)
            answer = await getattr(self, method).__wrapped__(self, req)  # the method's body, without its framing
        except ApiError as e:
            self.served(verb, resource, attrs, start, e)
            return None, e
        self.served(verb, resource, attrs, start, "OK")
        return answer, None

    @unary("create", api_pb2.CreateRequest)
    async def Create(self, req: api_pb2.CreateRequest) -> bytes:
        return await self.registry.create(req.object, dry_run=req.dry_run)

    @unary("create_many", api_pb2.CreateManyRequest, carries="objects")
    async def CreateMany(self, req: api_pb2.CreateManyRequest) -> bytes:
        size = req.ByteSize()
        if size > MAX_CREATE_MANY_BYTES:
            raise TooLargeError(f"objects: a CreateMany request of {size} bytes; at most {MAX_CREATE_MANY_BYTES} "
                                f"are accepted")
        results = await self._each(req.objects, functools.partial(self._create_one, dry_run=req.dry_run),
                                   limit=MAX_CREATE_MANY_OBJECTS, field="objects", what="objects", call="CreateMany")
        return b"".join(wire.field_bytes(CREATE_RESULTS, r) for r in results)  # a CreateManyResponse

    async def _create_one(self, user: authn.UserInfo, envelope: api_pb2.Object, dry_run: bool) -> bytes:
        """One object of a CreateMany, exactly as Create would take it: authorized, created, counted and audited
        on its own; its failure becomes its answer. An encoded CreateResult: the created object's bytes go in
        as the registry encoded them, never decoded and encoded again."""
        req = api_pb2.CreateRequest(object=envelope, dry_run=dry_run)
        with warning.collect() as warned:
            created, error = await self._one_of_many(user, "Create", "create", req)
        if error is not None:
            return api_pb2.CreateResult(code=error.code.value[0], message=_status_message(error),
                                        warnings=warned).SerializeToString()
        return wire.field_bytes(CREATE_RESULT_OBJECT, created) + \
            api_pb2.CreateResult(warnings=warned).SerializeToString()

    @unary("get", api_pb2.GetRequest)
    async def Get(self, req: api_pb2.GetRequest) -> bytes:
        return await self.registry.get(req.resource, req.namespace, req.name)

    @unary("list", api_pb2.ListRequest)
    async def List(self, req: api_pb2.ListRequest) -> bytes:
        return (await self.registry.list(req)).encode()

    @unary("update", api_pb2.UpdateRequest)
    async def Update(self, req: api_pb2.UpdateRequest) -> bytes:
        return await self.registry.update(req.object, dry_run=req.dry_run)

    @unary("update_status", api_pb2.UpdateRequest)
    async def UpdateStatus(self, req: api_pb2.UpdateRequest) -> bytes:
        return await self.registry.update(req.object, status=True, dry_run=req.dry_run)

    @unary("delete", api_pb2.DeleteRequest)
    async def Delete(self, req: api_pb2.DeleteRequest) -> bytes:
        return await self.registry.delete(req)

    @unary("bind", api_pb2.BindRequest)
    async def Bind(self, req: api_pb2.BindRequest) -> bytes:
        return await self.registry.update_subresource(PODS, req.namespace or "default", req.name,
                                                      pod_rules.binding(req))

    @unary("bind_many", api_pb2.BindManyRequest)
    async def BindMany(self, req: api_pb2.BindManyRequest) -> api_pb2.BindManyResponse:
        results = await self._each(req.bindings, self._bind_one, limit=MAX_BIND_MANY_BINDINGS,
                                   field="bindings", what="bindings", call="BindMany")
        return api_pb2.BindManyResponse(results=results)

    async def _bind_one(self, user: authn.UserInfo, req: api_pb2.BindRequest) -> api_pb2.BindResult:
        """One binding of a BindMany, exactly as Bind would take it: authorized, applied, counted and audited on
        its own; its failure becomes its answer."""
        _, error = await self._one_of_many(user, "Bind", "bind", req)
        if error is not None:
            return api_pb2.BindResult(code=error.code.value[0], message=_status_message(error))
        return api_pb2.BindResult()

    @unary("scale", api_pb2.ScaleRequest)
    async def Scale(self, req: api_pb2.ScaleRequest) -> bytes:
        return await self.registry.scale(req)

    @unary("evict", policy_pb2.Eviction)
    async def Evict(self, req: policy_pb2.Eviction) -> bytes:
        return await eviction.evict(self.registry, req)

    @unary("exec", api_pb2.ExecRequest, STREAM)
    async def Exec(self, req: api_pb2.ExecRequest) -> api_pb2.ExecResponse:
        limit = self.admission.limits.max_exec_seconds
        if not 0 <= req.timeout_seconds <= limit:
            raise InvalidError([FieldError("timeoutSeconds", "Invalid value", f"must be between 0 and {limit}",
                                           req.timeout_seconds)])
        await self.registry.sync()
        return await self.proxy.exec(req)

    @unary("api_resources", api_pb2.APIResourcesRequest)
    async def APIResources(self, req: api_pb2.APIResourcesRequest) -> api_pb2.APIResourcesResponse:
        del req
        verbs = ["create", "delete", "get", "list", "update", "watch"]
        return api_pb2.APIResourcesResponse(resources=[
            api_pb2.APIResource(name=k.resource, short_names=k.short_names, kind=k.kind, namespaced=k.namespaced,
                                api_version=k.api_version, verbs=verbs)
            for k in kinds.KINDS
        ])

    @unary("request_node_certificates", api_pb2.NodeCertificatesRequest)
    async def RequestNodeCertificates(self, req: api_pb2.NodeCertificatesRequest) -> api_pb2.NodeCertificatesResponse:
        response = await asyncio.to_thread(self.signer.sign, authn.current_user(), req)
        log.info("node_certificates_issued", node=req.node_name, user=str(authn.current_user()),
                 client=bool(response.client_certificate), serving=bool(response.serving_certificate),
                 proxy=bool(response.proxy_certificate))
        return response

    async def Watch(self, raw: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        await self.authenticator.enter(context, f"/{SERVICE}/Watch")
        with contextlib.ExitStack() as admitted:
            try:
                admitted.enter_context(self.admission.admit(WATCH, context.peer()))
                req = _parse(api_pb2.WatchRequest, raw)
                await self.authorize(context, "Watch", req)
                watcher = await self.registry.watch(req)  # type: ignore[arg-type]
            except ApiError as e:
                REQUESTS.labels("watch", getattr(locals().get("req"), "resource", ""), e.code.name).inc()
                await context.abort(e.code, _status_message(e))
                return
            try:
                async for data in self._frames(watcher):
                    yield data
            except _WatchEnded as e:
                await context.abort(e.code, e.message)

    async def _frames(self, watcher: Watcher) -> AsyncIterator[bytes]:
        """A watcher's messages (encoded WatchEvents) as they come; _WatchEnded when the watch ends."""
        resource = watcher.store.kind.resource
        REQUESTS.labels("watch", resource, "OK").inc()
        WATCHERS.labels(resource).inc()
        try:
            while True:
                await watcher.ready.wait()
                if watcher.error is not None and not watcher.pending:
                    err = watcher.error
                    raise _WatchEnded(err.code if isinstance(err, ApiError) else grpc.StatusCode.INTERNAL, str(err))
                data = watcher.take(WATCH_CHUNK)
                if data:
                    yield data
                    # Paced: after a message, wait before looking again, so that the next one carries
                    # everything until then (each gRPC message costs both ends far more than its bytes).
                    # Waiting here rather than once woken costs the loop one wake-up per message, not two.
                    pause = watch_pause(self.cache.watchers)
                    if watcher.error is None and len(watcher.pending) < WATCH_BATCH_FRAMES:
                        await asyncio.sleep(pause)
        finally:
            self.cache.unwatch(watcher)
            WATCHERS.labels(resource).dec()

    async def WatchMany(self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> None:
        """Many watches over one stream: each started, authorized, admitted and served as its own Watch would
        be, its messages tagged with its id; its end (an error its Watch would end with) is an answer, not the
        stream's end. What is ready for any of them goes out together, in one message."""
        await self.authenticator.enter(context, f"/{SERVICE}/WatchMany")
        try:
            user = await self.impersonated(context)
        except ApiError as e:
            await context.abort(e.code, _status_message(e))
            return
        # Bounded: a reader that falls behind holds up the watches' pumps, and each watch then falls behind
        # and is cut off as it would be alone, rather than its messages piling up here.
        out: asyncio.Queue[bytes | ApiError] = asyncio.Queue(MUX_QUEUE)
        pumps: dict[int, asyncio.Task[None]] = {}
        peer = context.peer()

        async def pump(id_: int, req: api_pb2.WatchRequest) -> None:
            tag = wire.field_varint(MUX_ID, id_)
            try:
                with self.admission.admit(WATCH, peer):
                    self.check(user, "Watch", req)
                    watcher = await self.registry.watch(req)
                    async for data in self._frames(watcher):
                        await out.put(data + tag)
            except ApiError as e:
                REQUESTS.labels("watch", req.resource, e.code.name).inc()
                await out.put(tag + api_pb2.WatchManyEvents(code=e.code.value[0],
                                                            message=_status_message(e)).SerializeToString())
            except _WatchEnded as e:
                await out.put(tag + api_pb2.WatchManyEvents(code=e.code.value[0],
                                                            message=e.message).SerializeToString())
            finally:
                if pumps.get(id_) is asyncio.current_task():
                    del pumps[id_]

        async def read(tg: asyncio.TaskGroup) -> None:
            try:
                async for raw in requests:
                    req: api_pb2.WatchManyRequest = _parse(api_pb2.WatchManyRequest, raw)  # type: ignore[assignment]
                    if not req.HasField("start"):
                        if (task := pumps.pop(req.id, None)) is not None:
                            task.cancel()
                    elif req.id in pumps:
                        raise InvalidError(f"id: watch {req.id} is already going on this stream")
                    else:
                        pumps[req.id] = tg.create_task(pump(req.id, req.start))
            except ApiError as e:
                await out.put(e)

        try:
            with self.admission.admit(WATCH, peer):  # the stream itself counts as one watch, each on it as one more
                async with asyncio.TaskGroup() as tg:
                    reader = tg.create_task(read(tg))
                    while not isinstance(ended := await _joined(out, context), ApiError):
                        pass
                    for task in [reader, *pumps.values()]:  # a request the stream cannot go on after
                        task.cancel()
                raise ended
        except ApiError as e:
            await context.abort(e.code, _status_message(e))

    async def Logs(self, raw: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[api_pb2.LogChunk]:
        await self.authenticator.enter(context, f"/{SERVICE}/Logs")
        try:
            with self.admission.admit(STREAM, context.peer()):
                req: api_pb2.LogsRequest = _parse(api_pb2.LogsRequest, raw)  # type: ignore[assignment]
                attrs = await self.authorize(context, "Logs", req)
                if attrs is not None:
                    self.audit.record(attrs, "OK", 0.0)
                await self.registry.sync()
                async for chunk in self._logs(req):
                    yield chunk
        except ApiError as e:
            await context.abort(e.code, _status_message(e))

    async def _logs(self, req: api_pb2.LogsRequest) -> AsyncIterator[api_pb2.LogChunk]:
        """The kubelet's log stream; a follow ends with DEADLINE_EXCEEDED after the server's limit."""
        limit = self.admission.limits.max_follow_seconds
        deadline = time.monotonic() + limit
        chunks = self.proxy.logs(req).__aiter__()
        try:
            while True:
                try:
                    async with asyncio.timeout(deadline - time.monotonic() if req.follow else None):
                        chunk = await anext(chunks)
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    raise TimeoutError_(f"log follow ended at the server's limit of {limit:g} seconds; run the "
                                        f"command again to go on") from None
                yield chunk
        finally:
            await chunks.aclose()  # type: ignore[attr-defined]

    async def StreamPodStatus(self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> None:
        """Apply each pod's latest status; acknowledge by sequence. Coalesces bursts per pod."""
        await self.authenticator.enter(context, f"/{SERVICE}/StreamPodStatus")
        try:
            await self.authorize(context, "StreamPodStatus", api_pb2.PodStatusUpdate())
            with self.admission.admit(WATCH, context.peer()):
                await self._stream_pod_status(requests, context)
        except (TooManyRequestsError, ForbiddenError) as e:
            await context.abort(e.code, _status_message(e))

    async def _stream_pod_status(self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> None:
        user = authn.current_user()
        assert user is not None
        latest: dict[tuple[str, str], api_pb2.PodStatusUpdate] = {}
        more = asyncio.Event()
        done = asyncio.Event()
        write_lock = asyncio.Lock()

        async def read() -> None:
            async for raw in requests:
                try:
                    upd: api_pb2.PodStatusUpdate = _parse(  # type: ignore[assignment]
                        api_pb2.PodStatusUpdate, raw, carries="status")
                except InvalidError as e:
                    # Nothing to acknowledge: an update that does not decode names no pod.
                    log.warning("pod_status_update_refused", error=text.escape(e.message))
                    continue
                latest[(upd.namespace, upd.name)] = upd
                more.set()
            done.set()
            more.set()

        async def apply_one(upd: api_pb2.PodStatusUpdate) -> None:
            ack = api_pb2.PodStatusAck(namespace=upd.namespace, name=upd.name, sequence=upd.sequence)
            try:
                attrs = authz.attributes.pod_status(user, upd.namespace, upd.name, upd.uid)
                if not self.authorizer.authorize(attrs).allowed:
                    self.audit.record(attrs, "PERMISSION_DENIED", 0.0)
                    raise authz.forbidden(attrs)
                await self.registry.update_status(PODS, upd.namespace, upd.name,
                                                  pod_rules.kubelet_status(upd.name, upd.uid, upd.status))
            except NotFoundError as e:
                ack.error, ack.code = e.message, "NotFound"
            except ApiError as e:
                ack.error, ack.code = e.message, e.reason
            async with write_lock:  # grpc allows one write at a time (GRPC_CALL_ERROR_TOO_MANY_OPERATIONS)
                await context.write(ack)

        async def apply() -> None:
            while True:
                await more.wait()
                more.clear()
                batch = list(latest.values())
                latest.clear()
                if batch:
                    await asyncio.gather(*(apply_one(u) for u in batch))
                if done.is_set() and not latest:
                    return

        async with asyncio.TaskGroup() as tg:
            tg.create_task(read())
            tg.create_task(apply())


def _handlers(servicer: ApiServicer, *, batch_calls: bool = True) -> grpc.GenericRpcHandler:
    """The Api service's methods (without CreateMany, BindMany, CreateTokenMany and WatchMany, as servers before
    them, when `batch_calls` is off)."""
    uu = functools.partial(grpc.unary_unary_rpc_method_handler, request_deserializer=None, response_serializer=_ser)
    us = functools.partial(grpc.unary_stream_rpc_method_handler, request_deserializer=None, response_serializer=_ser)
    handlers = {
        "Create": uu(servicer.Create),
        "Get": uu(servicer.Get),
        "List": uu(servicer.List),
        "Update": uu(servicer.Update),
        "UpdateStatus": uu(servicer.UpdateStatus),
        "Delete": uu(servicer.Delete),
        "Bind": uu(servicer.Bind),
        "Scale": uu(servicer.Scale),
        "Exec": uu(servicer.Exec),
        "APIResources": uu(servicer.APIResources),
        "RequestNodeCertificates": uu(servicer.RequestNodeCertificates),
        "Evict": uu(servicer.Evict),
        "AccessReview": uu(servicer.AccessReview),
        "WhoAmI": uu(servicer.WhoAmI),
        "CreateToken": uu(servicer.CreateToken),
        "Watch": us(servicer.Watch),
        "Logs": us(servicer.Logs),
        "StreamPodStatus": grpc.stream_stream_rpc_method_handler(
            servicer.StreamPodStatus, request_deserializer=None, response_serializer=_ser),
    }
    if batch_calls:
        handlers["CreateMany"] = uu(servicer.CreateMany)
        handlers["BindMany"] = uu(servicer.BindMany)
        handlers["CreateTokenMany"] = uu(servicer.CreateTokenMany)
        handlers["WatchMany"] = grpc.stream_stream_rpc_method_handler(servicer.WatchMany, request_deserializer=None,
                                                                      response_serializer=_ser)
    return grpc.method_handlers_generic_handler(SERVICE, handlers)


def _prepare_socket(addr: str) -> None:
    if addr.startswith("unix://"):
        sock = Path(addr.removeprefix("unix://"))
        sock.parent.mkdir(parents=True, exist_ok=True)
        sock.unlink(missing_ok=True)  # left by a killed server


def is_local(address: str) -> bool:
    """A unix socket or a loopback host:port."""
    if address.startswith("unix:"):
        return True
    host = address.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


AUTHORIZATION_MODES = ("Node,RBAC", "RBAC,Node", "AlwaysAllow")


def check_config(config: Config) -> list[str]:
    """Why the apiserver must not start as configured (empty: it may)."""
    problems = []
    if config.insecure_plaintext:
        if config.tls is not None:
            problems.append("--insecure-plaintext and a serving certificate exclude each other")
        if config.token_listen:
            problems.append("--token-listen serves TLS, which --insecure-plaintext turns off")
        exposed = [a for a in (*config.listen, *config.rest_listen) if not is_local(a)]
        if exposed and not config.insecure_plaintext_network:
            problems.append(f"refusing to serve plaintext, unauthenticated, on {', '.join(exposed)}: anyone who "
                            f"reaches it is cluster admin. Serve TLS (--tls-cert-file, --tls-private-key-file, "
                            f"--client-ca-file), or listen on loopback, or add "
                            f"--insecure-plaintext-on-the-network-for-anyone")
    elif config.tls is None and config.etcd_tls is None and config.kubelet_tls is None:
        return ["no TLS files given: the apiserver serves mutual TLS and reaches etcd and kubelets over it "
                "(--tls-cert-file, --tls-private-key-file, --client-ca-file, --etcd-cafile, --etcd-certfile, "
                "--etcd-keyfile, --kubelet-certificate-authority, --kubelet-client-certificate, --kubelet-client-key; "
                "`kubelite bootstrap control-plane` makes and passes them all); tests and benchmarks may use "
                "--insecure-plaintext on loopback"]
    elif config.tls is None:
        problems.append("no serving certificate: --tls-cert-file, --tls-private-key-file and --client-ca-file are "
                        "required (`kubelite bootstrap control-plane` makes them); tests and benchmarks may use "
                        "--insecure-plaintext on loopback")
    if not config.insecure_plaintext and config.etcd_tls is None:
        problems.append("etcd is reached over mutual TLS: --etcd-cafile, --etcd-certfile and --etcd-keyfile are "
                        "required")
    try:
        check_scheme(config.etcd_servers, config.etcd_tls is not None)
    except ValueError as e:
        problems.append(str(e))
    if not config.insecure_plaintext and config.kubelet_tls is None:
        problems.append("kubelets are reached over mutual TLS: --kubelet-certificate-authority, "
                        "--kubelet-client-certificate and --kubelet-client-key are required")
    if config.authorization_mode not in AUTHORIZATION_MODES:
        problems.append(f"--authorization-mode {config.authorization_mode!r}: supported: "
                        f"{', '.join(AUTHORIZATION_MODES)}")
    if config.token_file and not config.token_listen:
        problems.append("--token-file: bearer tokens are accepted on --token-listen only, and none is given")
    return problems


class ApiServer:
    """etcd storage + watch cache + registry + gRPC server. `run()` serves until cancelled."""

    def __init__(self, config: Config) -> None:
        problems = check_config(config)
        if problems:
            raise ConfigError("; ".join(problems))
        self.config = config
        self.storage = TransformedStorage(EtcdStorage(parse_endpoints(config.etcd_servers), config.limits,
                                                      tls_files=config.etcd_tls),
                                          config.encryption_config)
        self.cache = WatchCache(self.storage, replay=config.replay)
        self.registry = Registry(self.storage, self.cache, config.registry)
        self.proxy = KubeletProxy(self.registry, config.kubelet_tls)
        self.signer = NodeSigner(config.signer)
        static = authn.StaticTokens.load(config.token_file) if config.token_file else None
        self.sa_tokens = ServiceAccountTokens(config.service_accounts, self._stored)
        self.authenticator = authn.Authenticator(static=static, join_tokens=self._join_token,
                                                 plaintext=config.insecure_plaintext,
                                                 service_accounts=self.sa_tokens.authenticate
                                                 if self.sa_tokens.enabled else None)
        self.authorizer = authz.Authorizer(self.cache, enabled=config.authorization_mode != "AlwaysAllow")
        self.audit = audit.AuditLog(config.audit)
        self.server: grpc.aio.Server | None = None
        self.ports: list[int] = []
        self.token_ports: list[int] = []
        self.rest_ports: list[int] = []
        self.rest: RestApi | None = None
        self.started = asyncio.Event()

    async def run(self) -> None:
        await self.storage.connect()
        health_servicer = health.aio.HealthServicer()
        server = grpc.aio.server(interceptors=[authn.AuthInterceptor(self.authenticator, SERVICE)], options=[
            ("grpc.max_receive_message_length", MAX_REQUEST),
            ("grpc.max_send_message_length", -1),
            ("grpc.so_reuseport", 0),
            ("grpc.keepalive_permit_without_calls", 1),
            # Clients ping every 2 s to find a silent apiserver (client/channel.py); more often is abuse.
            ("grpc.http2.min_ping_interval_without_data_ms", 1000),
            # gRPC cancels calls that wait too long for the application (CANCELLED, which a client cannot
            # tell from its own cancellation); the overload limits below refuse them instead.
            ("grpc.server.max_pending_requests", 1_000_000),
            ("grpc.server.max_pending_requests_hard_limit", 1_000_000),
        ])
        servicer = ApiServicer(self.registry, self.cache, self.proxy, self.authenticator,
                               Admission(self.config.overload), self.signer, self.authorizer, self.audit,
                               self.sa_tokens)
        server.add_generic_rpc_handlers((_handlers(servicer, batch_calls=self.config.batch_calls),))
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        reflection.enable_server_reflection(
            (SERVICE, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME), server)
        self._add_ports(server)
        self.server = server
        # The REST face shares the servicer's overload limits, authorizer and audit log.
        self.rest = RestApi(self.registry, self.cache, self.proxy, self.authenticator, servicer.admission,
                            self.authorizer, self.audit, self.sa_tokens)
        rest_runner = web.AppRunner(self.rest.app(), access_log=None, handler_cancellation=True,
                                    shutdown_timeout=1.0)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.storage.run_group_commit())
                tg.create_task(self.cache.run())
                tg.create_task(self.cache.run_bookmarks())
                await self._wait_ready()
                await self._ensure_system_objects()
                if self.config.metrics_port:
                    # Before serving: a metrics port that cannot be bound stops the server before it
                    # ever reports SERVING, not just after.
                    from prometheus_client import start_http_server

                    start_http_server(self.config.metrics_port, self.config.metrics_address)
                await server.start()
                await self._start_rest(rest_runner)
                for addr in self.config.listen:
                    if addr.startswith("unix://"):
                        os.chmod(addr.removeprefix("unix://"), 0o600)  # root only, as the CLI
                await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
                await health_servicer.set(SERVICE, health_pb2.HealthCheckResponse.SERVING)
                if self.config.compact_interval > 0:
                    tg.create_task(self._compact_loop())
                log.info("apiserver_started", listen=self.config.listen, ports=self.ports,
                         token_listen=self.config.token_listen, token_ports=self.token_ports,
                         tls=self.config.tls is not None, revision=self.cache.revision, objects=self.cache.stats())
                if self.config.insecure_plaintext:
                    log.warning("serving_plaintext", listen=self.config.listen,
                                detail="no TLS: every caller is cluster admin (test-only switch)")
                self.started.set()
                await asyncio.Event().wait()
        finally:
            with contextlib.suppress(Exception):
                await health_servicer.enter_graceful_shutdown()
            await server.stop(grace=1.0)
            await rest_runner.cleanup()
            self.audit.close()
            await self.proxy.close()
            await self.storage.close()
            log.info("apiserver_stopped")

    async def _start_rest(self, runner: web.AppRunner) -> None:
        """Serve the REST face on rest_listen: HTTPS under the serving certificate; a client certificate from the
        cluster CA names the caller, else a bearer token must."""
        if not self.config.rest_listen:
            return
        await runner.setup()
        context = None
        if self.config.tls is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(self.config.tls.cert_file, self.config.tls.key_file)
            context.load_verify_locations(self.config.tls.client_ca_file)
            context.verify_mode = ssl.CERT_OPTIONAL
        for addr in self.config.rest_listen:
            site: web.BaseSite
            if addr.startswith("unix://"):
                _prepare_socket(addr)
                site = web.UnixSite(runner, addr.removeprefix("unix://"), ssl_context=context)
            else:
                host, _, port = addr.rpartition(":")
                site = web.TCPSite(runner, host.strip("[]"), int(port), ssl_context=context, reuse_port=False)
            await site.start()
            if addr.startswith("unix://"):
                os.chmod(addr.removeprefix("unix://"), 0o600)
                self.rest_ports.append(0)
            else:
                server = site._server  # the bound port, when 0 was asked for
                self.rest_ports.append(server.sockets[0].getsockname()[1] if server is not None else 0)

    def _add_ports(self, server: grpc.aio.Server) -> None:
        tls_config = self.config.tls
        for addr in self.config.listen:
            _prepare_socket(addr)
            if tls_config is None:
                self.ports.append(server.add_insecure_port(addr))
                continue
            mutual = tls.ServerCredentials(tls_config.cert_file, tls_config.key_file,
                                           client_ca_file=tls_config.client_ca_file)
            self.ports.append(server.add_secure_port(addr, mutual.grpc_credentials()))
        for addr in self.config.token_listen:
            assert tls_config is not None  # check_config
            # The CA goes with the certificate: a joining node reads it from the handshake and checks its hash.
            server_only = tls.ServerCredentials(tls_config.cert_file, tls_config.key_file,
                                                chain_ca_file=tls_config.client_ca_file)
            self.token_ports.append(server.add_secure_port(addr, server_only.grpc_credentials()))

    async def _stored(self, kind: kinds.Kind, namespace: str, name: str) -> Message:
        return (await self.registry.current(kind, namespace, name)).obj

    async def _join_token(self, token_id: str) -> bootstrap_pb2.BootstrapToken | None:
        try:
            return (await self.registry.current(BOOTSTRAP_TOKENS, "", token_id)).obj  # type: ignore[return-value]
        except NotFoundError:
            return None

    async def _ensure_system_objects(self) -> None:
        """The namespaces and priority classes every cluster has; the default roles and bindings, put back as
        they should be."""
        for obj in (*namespace_rules.system_namespaces(), *priorityclass_rules.system_priority_classes()):
            with contextlib.suppress(AlreadyExistsError):
                await self.registry.create(kinds.wrap(obj))
        for wanted in (*rbac_bootstrap.cluster_roles(), *rbac_bootstrap.cluster_role_bindings()):
            await self._reconcile_default(wanted)
        await self._ensure_default_service_accounts()

    async def _ensure_default_service_accounts(self) -> None:
        """Every namespace's `default` ServiceAccount (namespaces made before there were any, or one deleted)."""
        await self.registry.sync()
        sa_kind = kinds.lookup("serviceaccounts")
        for entry in list(self.cache.store(kinds.lookup("namespaces")).objects.values()):
            ns = entry.obj.metadata  # type: ignore[attr-defined]
            if ns.HasField("deletion_timestamp") or self.cache.get(sa_kind, ns.name, "default") is not None:
                continue
            with contextlib.suppress(AlreadyExistsError, NotFoundError, ForbiddenError):
                await self.registry.create(kinds.wrap(core_pb2.ServiceAccount(
                    metadata={"name": "default", "namespace": ns.name})))

    async def _reconcile_default(self, wanted: Message) -> None:
        kind = kinds.of(wanted)
        for _ in range(3):
            try:
                stored = (await self.registry.current(kind, "", wanted.metadata.name)).obj  # type: ignore[attr-defined]
            except NotFoundError:
                with contextlib.suppress(AlreadyExistsError):
                    await self.registry.create(kinds.wrap(wanted))
                    log.info("default_role_created", kind=kind.kind, name=wanted.metadata.name)  # type: ignore[attr-defined]
                    return
                continue
            if rbac_bootstrap.reconciled(wanted, stored):  # type: ignore[arg-type]
                return
            new = type(wanted)()
            new.CopyFrom(wanted)
            new.metadata.CopyFrom(stored.metadata)  # type: ignore[attr-defined]
            if isinstance(new, rbac_pb2.ClusterRoleBinding):
                new.subjects.extend(s for s in stored.subjects if s not in new.subjects)  # type: ignore[attr-defined]
            if isinstance(new, rbac_pb2.ClusterRole) and new.HasField("aggregation_rule"):
                new.rules.extend(stored.rules)  # type: ignore[attr-defined]  # the aggregation controller's
            with contextlib.suppress(ConflictError):
                await self.registry.update(kinds.wrap(new))
                log.info("default_role_reconciled", kind=kind.kind, name=wanted.metadata.name)  # type: ignore[attr-defined]
                return

    async def _wait_ready(self) -> None:
        while not self.cache.ready.is_set():
            try:
                async with asyncio.timeout(30):
                    await self.cache.ready.wait()
            except TimeoutError:
                log.warning("watch_cache_still_loading", revision=self.cache.revision)

    async def _compact_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.compact_interval)
            try:
                target = await self.storage.revision() - self.config.compact_keep
            except UnavailableError:
                continue
            if target > 0:
                await self.storage.compact(target)
                log.info("etcd_compacted", revision=target)
