"""Logs and exec, proxied from the CLI through the apiserver to the pod's kubelet."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import grpc

from api import kinds
from api.errors import ApiError, ForbiddenError, UnavailableError, from_grpc
from api.pb import api_pb2, api_pb2_grpc, core_pb2


class KubeletProxy:
    def __init__(self, registry) -> None:  # type: ignore[no-untyped-def]
        self.registry = registry
        self._channels: dict[str, grpc.aio.Channel] = {}

    async def _target(self, namespace: str, name: str) -> tuple[api_pb2_grpc.KubeletStub, core_pb2.Pod]:
        pod: core_pb2.Pod = (await self.registry.current(kinds.lookup("Pod"), namespace or "default", name)).obj
        if not pod.spec.node_name:
            raise ForbiddenError(f'pod "{name}" is not scheduled to a node yet')
        node_entry = self.registry.cache.get(kinds.lookup("Node"), "", pod.spec.node_name)
        if node_entry is None:
            raise UnavailableError(f'node "{pod.spec.node_name}" of pod "{name}" is not registered')
        node: core_pb2.Node = node_entry.obj
        port = node.status.daemon_endpoints.kubelet_endpoint.port
        addr = next((a.address for a in node.status.addresses if a.type == "InternalIP"), "")
        if not addr or not port:
            raise UnavailableError(f'node "{node.metadata.name}" publishes no kubelet address')
        target = f"{addr}:{port}"
        channel = self._channels.get(target)
        if channel is None:
            channel = self._channels[target] = grpc.aio.insecure_channel(target)
        return api_pb2_grpc.KubeletStub(channel), pod

    async def logs(self, req: api_pb2.LogsRequest) -> AsyncIterator[api_pb2.LogChunk]:
        stub, _ = await self._target(req.namespace, req.name)
        call = stub.Logs(req, timeout=None if req.follow else 30)
        try:
            async for chunk in call:
                yield chunk
        except grpc.aio.AioRpcError as e:
            raise _mapped(e) from None
        finally:
            call.cancel()

    async def exec(self, req: api_pb2.ExecRequest) -> api_pb2.ExecResponse:
        stub, _ = await self._target(req.namespace, req.name)
        try:
            return await stub.Exec(req, timeout=(req.timeout_seconds or 60) + 5)
        except grpc.aio.AioRpcError as e:
            raise _mapped(e) from None

    async def close(self) -> None:
        for channel in self._channels.values():
            with contextlib.suppress(Exception):
                await channel.close()
        self._channels.clear()


def _mapped(e: grpc.aio.AioRpcError) -> ApiError:
    if e.code() == grpc.StatusCode.UNAVAILABLE:
        return UnavailableError(f"kubelet unreachable: {e.details()}")
    return from_grpc(e.code(), e.details() or "")
