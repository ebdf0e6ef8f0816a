"""The typed client: Python objects in, Python objects out, kubelite errors raised.

Every component and the CLI talk to the apiserver through this class only.
gRPC statuses come back as the classes in api.errors, so callers catch
`ConflictError`, never a status code.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
import structlog
from google.protobuf.message import Message

from api import kinds
from api.errors import ApiError, CertificateError, UnavailableError, from_grpc, from_status
from api.limits import MAX_CREATE_MANY_BYTES
from api.pb import api_pb2, api_pb2_grpc, core_pb2, policy_pb2
from client import tls
from client.channel import open_channel
from client.coalesce import Coalescer
from client.config import ClientConfig, resolve
from client.watches import Unsupported, WatchMux

T = TypeVar("T", bound=Message)
log = structlog.get_logger(component="client")

DEADLINE = 30.0


@dataclass(frozen=True)
class WatchEvent:
    type: str  # ADDED, MODIFIED, DELETED, BOOKMARK
    object: Message
    resource_version: str


@dataclass(frozen=True)
class ListResult:
    items: list[Message]
    resource_version: str
    continue_token: str
    remaining: int


def _log_warning(text: str) -> None:
    log.warning("api_warning", warning=text)


# What the apiserver's warnings (trailing metadata "warning") are handed to; the CLI prints them (client-go's
# SetDefaultWarningHandler).
warning_handler: Callable[[str], None] = _log_warning
WARNING_KEY = "warning"


def _warn(metadata: Any) -> None:
    """Hand a call's warnings to the warning handler."""
    for key, value in metadata or ():
        if key == WARNING_KEY:
            warning_handler(value if isinstance(value, str) else value.decode("ascii", "replace"))


class Client:
    """The apiserver's verbs over one channel. With TLS, a renewed client certificate (its files rewritten) is
    picked up without a restart: later calls go over a new channel, calls in flight finish on the old one."""

    def __init__(self, config: ClientConfig | None = None, *, channel: grpc.aio.Channel | None = None,
                 multiplex_watches: bool = False) -> None:
        self.config = config or resolve()
        self.creds = tls.ClientCredentials(self.config) if channel is None and self.config.tls else None
        self.channel = channel or open_channel(self.config, self.creds)
        self.stub = api_pb2_grpc.ApiStub(self.channel)
        self._retired: list[grpc.aio.Channel] = []  # the channel before a swap: its calls finish there
        self._closing: list[grpc.aio.Channel] = []  # channels retired two swaps ago, closed at the next call
        # Creates made concurrently on this client go in CreateMany calls (client/coalesce.py).
        self._creates: Coalescer[api_pb2.Object, api_pb2.Object] = Coalescer(
            self._create_one, lambda envelopes: self.create_many(envelopes, timeout=DEADLINE),
            max_bytes=MAX_CREATE_MANY_BYTES // 2, size=lambda envelope: envelope.ByteSize())
        # Token requests made concurrently (a kubelet's pods bound together) go in CreateTokenMany calls.
        self._tokens: Coalescer[api_pb2.TokenRequest, api_pb2.TokenResponse] = Coalescer(
            self._create_token_one, self.create_token_many)
        # multiplex_watches: every watch of this client over one WatchMany stream (client/watches.py).
        self._watches = WatchMux(self._open_watch_many, self._err) if multiplex_watches else None
        token = self.config.token()
        self._meta: tuple[tuple[str, str], ...] = (("authorization", f"Bearer {token}"),) if token else ()
        if self.config.impersonate_user:
            self._meta += (("impersonate-user", self.config.impersonate_user),
                           *(("impersonate-group", g) for g in self.config.impersonate_groups))

    async def close(self) -> None:
        if self._watches is not None:
            await self._watches.close()
        await self._creates.close()
        await self._tokens.close()
        for channel in [*self._closing, *self._retired, self.channel]:
            await channel.close()
        self._closing.clear()
        self._retired.clear()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _stub(self) -> api_pb2_grpc.ApiStub:
        """The stub for the next call: on a new channel if the certificate files changed since the last look."""
        if self.creds is not None and self.creds.changed():
            # The channel before the previous one has had a whole renewal period to finish its calls; streams
            # still on it are cut and their owners (informers, the status stream) open them again.
            self._closing += self._retired
            self._retired = [self.channel]
            self.channel = open_channel(self.config, self.creds)
            self.stub = api_pb2_grpc.ApiStub(self.channel)
        return self.stub

    async def _fresh_stub(self) -> api_pb2_grpc.ApiStub:
        stub = self._stub()
        while self._closing:
            await self._closing.pop().close()
        return stub

    def _err(self, e: grpc.aio.AioRpcError) -> ApiError:
        err = from_grpc(e.code(), e.details() or "")
        if isinstance(err, UnavailableError):
            why = tls.explain(self.config, e.details() or "")
            if why:
                return CertificateError(why)
        return err

    async def _unary(self, name: str, request: Message, timeout: float | None = DEADLINE) -> Any:
        call = getattr(await self._fresh_stub(), name)(request, timeout=timeout, metadata=self._meta)
        try:
            result = await call
        except grpc.aio.AioRpcError as e:
            _warn(e.trailing_metadata())
            raise self._err(e) from None
        _warn(await call.trailing_metadata())
        return result

    # ------------------------------------------------------------ verbs

    async def create(self, obj: T, *, dry_run: bool = False) -> T:
        return kinds.unwrap(await self.create_object(kinds.wrap(obj), dry_run=dry_run))  # type: ignore[return-value]

    async def create_object(self, envelope: api_pb2.Object, *, dry_run: bool = False) -> api_pb2.Object:
        if dry_run:
            return await self._unary("Create", api_pb2.CreateRequest(object=envelope, dry_run=True))
        return await self._creates(envelope)

    async def create_all(self, objs: Sequence[T]) -> list[T | BaseException]:
        """Create objects made together at once, in as few CreateMany calls as the bounds allow (one Create each
        against a server without it); per object, in order, the created object or the error its Create would
        have raised."""
        answers = await self._creates.send_all([kinds.wrap(o) for o in objs])
        return [a if isinstance(a, BaseException) else kinds.unwrap(a) for a in answers]  # type: ignore[misc]

    async def _create_one(self, envelope: api_pb2.Object) -> api_pb2.Object:
        return await self._unary("Create", api_pb2.CreateRequest(object=envelope))

    async def create_many(self, envelopes: Sequence[api_pb2.Object], *, dry_run: bool = False,
                          timeout: float = 120) -> list[api_pb2.Object | ApiError]:
        """Create every object in one call: per object, in order, the created object or the error a Create of it
        alone would have raised. Raises UnimplementedError from a server without CreateMany, and the error that
        refused the whole request (TooLargeError beyond api.limits' bounds)."""
        resp = await self._unary("CreateMany", api_pb2.CreateManyRequest(objects=envelopes, dry_run=dry_run),
                                 timeout=timeout)
        out: list[api_pb2.Object | ApiError] = []
        for result in resp.results:
            for text in result.warnings:
                warning_handler(text)
            out.append(result.object if result.code == 0 else from_status(result.code, result.message))
        return out

    async def get(self, kind: str | type[T], name: str, namespace: str = "") -> Any:
        req = api_pb2.GetRequest(resource=_resource(kind), namespace=namespace, name=name)
        return kinds.unwrap(await self._unary("Get", req))

    async def list(self, kind: str | type[T], namespace: str = "", *, label_selector: str = "",
                   field_selector: str = "", limit: int = 0, continue_token: str = "") -> ListResult:
        req = api_pb2.ListRequest(resource=_resource(kind), namespace=namespace, label_selector=label_selector,
                                  field_selector=field_selector, limit=limit, **{"continue": continue_token})
        resp = await self._unary("List", req, timeout=120)
        return ListResult([kinds.unwrap(o) for o in resp.items], resp.resource_version,
                          getattr(resp, "continue"), resp.remaining_item_count)

    async def list_all(self, kind: str | type[T], namespace: str = "", **kw: Any) -> list[Any]:
        return (await self.list(kind, namespace, **kw)).items

    async def update(self, obj: T, *, dry_run: bool = False) -> T:
        out = await self._unary("Update", api_pb2.UpdateRequest(object=kinds.wrap(obj), dry_run=dry_run))
        return kinds.unwrap(out)  # type: ignore[return-value]

    async def update_status(self, obj: T) -> T:
        out = await self._unary("UpdateStatus", api_pb2.UpdateRequest(object=kinds.wrap(obj)))
        return kinds.unwrap(out)  # type: ignore[return-value]

    async def delete(self, kind: str | type[T], name: str, namespace: str = "", *,
                     grace_period_seconds: int | None = None, propagation_policy: str = "",
                     uid: str = "", resource_version: str = "") -> Any:
        req = api_pb2.DeleteRequest(resource=_resource(kind), namespace=namespace, name=name,
                                    propagation_policy=propagation_policy,
                                    preconditions=api_pb2.Preconditions(uid=uid, resource_version=resource_version))
        if grace_period_seconds is not None:
            req.grace_period_seconds = grace_period_seconds
        return kinds.unwrap(await self._unary("Delete", req))

    async def bind(self, namespace: str, name: str, node_name: str, *, uid: str = "") -> core_pb2.Pod:
        req = api_pb2.BindRequest(namespace=namespace, name=name, node_name=node_name, uid=uid)
        return kinds.unwrap(await self._unary("Bind", req))  # type: ignore[return-value]

    async def bind_many(self, bindings: Sequence[api_pb2.BindRequest]) -> list[ApiError | None]:
        """Apply every binding in one call: per binding, in order, None (bound) or the error its Bind alone would
        have raised. Raises UnimplementedError from a server without BindMany, and the error that refused the
        whole request."""
        resp = await self._unary("BindMany", api_pb2.BindManyRequest(bindings=bindings))
        return [None if r.code == 0 else from_status(r.code, r.message) for r in resp.results]

    async def scale(self, kind: str, name: str, replicas: int, namespace: str = "") -> Any:
        req = api_pb2.ScaleRequest(resource=_resource(kind), namespace=namespace, name=name, replicas=replicas)
        return kinds.unwrap(await self._unary("Scale", req))

    async def evict(self, namespace: str, name: str, *, grace_period_seconds: int | None = None, uid: str = "",
                    dry_run: bool = False) -> core_pb2.Pod:
        """Evict a pod through its eviction subresource; TooManyRequestsError while a disruption budget forbids it."""
        req = policy_pb2.Eviction(metadata={"name": name, "namespace": namespace})
        if grace_period_seconds is not None:
            req.delete_options.grace_period_seconds = grace_period_seconds
        if uid:
            req.delete_options.preconditions.uid = uid
        if dry_run:
            req.delete_options.dry_run.append("All")
        return kinds.unwrap(await self._unary("Evict", req))  # type: ignore[return-value]

    async def access_review(self, verb: str, resource: str, namespace: str = "", *, subresource: str = "",
                            name: str = "") -> api_pb2.AccessReviewResponse:
        """Whether this client may do it (`kubelite auth can-i`)."""
        return await self._unary("AccessReview", api_pb2.AccessReviewRequest(
            verb=verb, resource=resource, subresource=subresource, namespace=namespace, name=name))

    async def create_token(self, req: api_pb2.TokenRequest) -> api_pb2.TokenResponse:
        """A signed token for a ServiceAccount (`kubelite create token`; kubelets, for their pods)."""
        return await self._tokens(req)

    async def _create_token_one(self, req: api_pb2.TokenRequest) -> api_pb2.TokenResponse:
        return await self._unary("CreateToken", req)

    async def create_token_many(self, reqs: Sequence[api_pb2.TokenRequest]) -> list[api_pb2.TokenResponse | ApiError]:
        """Every token request in one call: per request, in order, its token or the error its CreateToken alone would
        have raised. Raises UnimplementedError from a server without CreateTokenMany, and the error that refused
        the whole request."""
        resp = await self._unary("CreateTokenMany", api_pb2.TokenManyRequest(requests=reqs))
        return [r.token if r.code == 0 else from_status(r.code, r.message) for r in resp.results]

    async def who_am_i(self) -> api_pb2.WhoAmIResponse:
        return await self._unary("WhoAmI", api_pb2.WhoAmIRequest())

    async def api_resources(self) -> Sequence[api_pb2.APIResource]:
        return (await self._unary("APIResources", api_pb2.APIResourcesRequest())).resources

    async def request_node_certificates(self, req: api_pb2.NodeCertificatesRequest
                                        ) -> api_pb2.NodeCertificatesResponse:
        """Certificates for a node's CSRs (as the node itself, or with a join token as the bearer)."""
        return await self._unary("RequestNodeCertificates", req)

    async def exec(self, namespace: str, name: str, command: Sequence[str], *, container: str = "",
                   stdin: bytes = b"", timeout_seconds: int = 60) -> api_pb2.ExecResponse:
        req = api_pb2.ExecRequest(namespace=namespace, name=name, container=container, command=list(command),
                                  stdin=stdin, timeout_seconds=timeout_seconds)
        return await self._unary("Exec", req, timeout=timeout_seconds + 10)

    async def logs(self, req: api_pb2.LogsRequest) -> AsyncIterator[bytes]:
        call = (await self._fresh_stub()).Logs(req, timeout=None if req.follow else 60, metadata=self._meta)
        try:
            async for chunk in call:
                yield chunk.data
        except grpc.aio.AioRpcError as e:
            raise self._err(e) from None
        finally:
            call.cancel()

    async def watch(self, kind: str | type[T], namespace: str = "", *, resource_version: str = "",
                    label_selector: str = "", field_selector: str = "",
                    bookmarks: bool = True) -> AsyncIterator[WatchEvent]:
        """Events after `resource_version` ("" starts with ADDED for every current object).

        Raises ExpiredError when that version is too old: relist, then watch again.
        """
        req = api_pb2.WatchRequest(resource=_resource(kind), namespace=namespace, label_selector=label_selector,
                                   field_selector=field_selector, resource_version=resource_version,
                                   allow_bookmarks=bookmarks)
        if self._watches is not None and self._watches.supported:
            try:
                async for answer in self._watches.watch(req):
                    for ev in answer.events:
                        yield WatchEvent(ev.type, kinds.unwrap(ev.object), ev.resource_version)
                return
            except Unsupported:
                pass  # a server before WatchMany, which answered nothing: one Watch per watch, as before it
        call = (await self._fresh_stub()).Watch(req, metadata=self._meta)
        try:
            async for batch in call:
                for ev in batch.events:
                    yield WatchEvent(ev.type, kinds.unwrap(ev.object), ev.resource_version)
        except grpc.aio.AioRpcError as e:
            raise self._err(e) from None
        finally:
            call.cancel()

    async def _open_watch_many(self) -> grpc.aio.StreamStreamCall:
        return (await self._fresh_stub()).WatchMany(metadata=self._meta)

    def stream_pod_status(self) -> grpc.aio.StreamStreamCall:
        """The kubelet's status stream: write PodStatusUpdate, read PodStatusAck."""
        return self._stub().StreamPodStatus(metadata=self._meta)


def _resource(kind: str | type[Message]) -> str:
    if isinstance(kind, str):
        return kind
    return kinds.of(kind()).resource
