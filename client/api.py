"""The typed client: Python objects in, Python objects out, kubelite errors raised.

Every component and the CLI talk to the apiserver through this class only.
gRPC statuses come back as the classes in api.errors, so callers catch
`ConflictError`, never a status code.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message

from api import kinds
from api.errors import ApiError, from_grpc
from api.pb import api_pb2, api_pb2_grpc, core_pb2, policy_pb2
from client.channel import open_channel
from client.config import ClientConfig, resolve

T = TypeVar("T", bound=Message)

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


def _err(e: grpc.aio.AioRpcError) -> ApiError:
    return from_grpc(e.code(), e.details() or "")


class Client:
    def __init__(self, config: ClientConfig | None = None, *, channel: grpc.aio.Channel | None = None) -> None:
        self.config = config or resolve()
        self.channel = channel or open_channel(self.config)
        self.stub = api_pb2_grpc.ApiStub(self.channel)
        self._meta: tuple[tuple[str, str], ...] = (
            (("authorization", f"Bearer {self.config.token}"),) if self.config.token else ()
        )

    @classmethod
    def from_server(cls, server: str, *, token: str = "") -> Client:
        return cls(ClientConfig(server=server, token=token))

    async def close(self) -> None:
        await self.channel.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _unary(self, method: Any, request: Message, timeout: float | None = DEADLINE) -> Any:
        try:
            return await method(request, timeout=timeout, metadata=self._meta)
        except grpc.aio.AioRpcError as e:
            raise _err(e) from None

    # ------------------------------------------------------------ verbs

    async def create(self, obj: T, *, dry_run: bool = False) -> T:
        out = await self._unary(self.stub.Create, api_pb2.CreateRequest(object=kinds.wrap(obj), dry_run=dry_run))
        return kinds.unwrap(out)  # type: ignore[return-value]

    async def create_object(self, envelope: api_pb2.Object, *, dry_run: bool = False) -> api_pb2.Object:
        return await self._unary(self.stub.Create, api_pb2.CreateRequest(object=envelope, dry_run=dry_run))

    async def get(self, kind: str | type[T], name: str, namespace: str = "") -> Any:
        req = api_pb2.GetRequest(resource=_resource(kind), namespace=namespace, name=name)
        return kinds.unwrap(await self._unary(self.stub.Get, req))

    async def list(self, kind: str | type[T], namespace: str = "", *, label_selector: str = "",
                   field_selector: str = "", limit: int = 0, continue_token: str = "") -> ListResult:
        req = api_pb2.ListRequest(resource=_resource(kind), namespace=namespace, label_selector=label_selector,
                                  field_selector=field_selector, limit=limit, **{"continue": continue_token})
        resp = await self._unary(self.stub.List, req, timeout=120)
        return ListResult([kinds.unwrap(o) for o in resp.items], resp.resource_version,
                          getattr(resp, "continue"), resp.remaining_item_count)

    async def list_all(self, kind: str | type[T], namespace: str = "", **kw: Any) -> list[Any]:
        return (await self.list(kind, namespace, **kw)).items

    async def update(self, obj: T, *, dry_run: bool = False) -> T:
        out = await self._unary(self.stub.Update, api_pb2.UpdateRequest(object=kinds.wrap(obj), dry_run=dry_run))
        return kinds.unwrap(out)  # type: ignore[return-value]

    async def update_status(self, obj: T) -> T:
        out = await self._unary(self.stub.UpdateStatus, api_pb2.UpdateRequest(object=kinds.wrap(obj)))
        return kinds.unwrap(out)  # type: ignore[return-value]

    async def delete(self, kind: str | type[T], name: str, namespace: str = "", *,
                     grace_period_seconds: int | None = None, propagation_policy: str = "",
                     uid: str = "", resource_version: str = "") -> Any:
        req = api_pb2.DeleteRequest(resource=_resource(kind), namespace=namespace, name=name,
                                    propagation_policy=propagation_policy,
                                    preconditions=api_pb2.Preconditions(uid=uid, resource_version=resource_version))
        if grace_period_seconds is not None:
            req.grace_period_seconds = grace_period_seconds
        return kinds.unwrap(await self._unary(self.stub.Delete, req))

    async def bind(self, namespace: str, name: str, node_name: str, *, uid: str = "") -> core_pb2.Pod:
        req = api_pb2.BindRequest(namespace=namespace, name=name, node_name=node_name, uid=uid)
        return kinds.unwrap(await self._unary(self.stub.Bind, req))  # type: ignore[return-value]

    async def scale(self, kind: str, name: str, replicas: int, namespace: str = "") -> Any:
        req = api_pb2.ScaleRequest(resource=_resource(kind), namespace=namespace, name=name, replicas=replicas)
        return kinds.unwrap(await self._unary(self.stub.Scale, req))

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
        return kinds.unwrap(await self._unary(self.stub.Evict, req))  # type: ignore[return-value]

    async def api_resources(self) -> Sequence[api_pb2.APIResource]:
        return (await self._unary(self.stub.APIResources, api_pb2.APIResourcesRequest())).resources

    async def exec(self, namespace: str, name: str, command: Sequence[str], *, container: str = "",
                   stdin: bytes = b"", timeout_seconds: int = 60) -> api_pb2.ExecResponse:
        req = api_pb2.ExecRequest(namespace=namespace, name=name, container=container, command=list(command),
                                  stdin=stdin, timeout_seconds=timeout_seconds)
        return await self._unary(self.stub.Exec, req, timeout=timeout_seconds + 10)

    async def logs(self, req: api_pb2.LogsRequest) -> AsyncIterator[bytes]:
        call = self.stub.Logs(req, timeout=None if req.follow else 60, metadata=self._meta)
        try:
            async for chunk in call:
                yield chunk.data
        except grpc.aio.AioRpcError as e:
            raise _err(e) from None
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
        call = self.stub.Watch(req, metadata=self._meta)
        try:
            async for batch in call:
                for ev in batch.events:
                    yield WatchEvent(ev.type, kinds.unwrap(ev.object), ev.resource_version)
        except grpc.aio.AioRpcError as e:
            raise _err(e) from None
        finally:
            call.cancel()

    def stream_pod_status(self) -> grpc.aio.StreamStreamCall:
        """The kubelet's status stream: write PodStatusUpdate, read PodStatusAck."""
        return self.stub.StreamPodStatus(metadata=self._meta)


def _resource(kind: str | type[Message]) -> str:
    if isinstance(kind, str):
        return kind
    return kinds.of(kind()).resource
