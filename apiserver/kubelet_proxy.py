"""Logs and exec, proxied from the CLI through the apiserver to the pod's kubelet.

Over mutual TLS: the apiserver presents its kubelet-client certificate (the
only identity a kubelet serves) and checks the kubelet's serving certificate
against the cluster CA, for the address the Node publishes. A renewed client
certificate is picked up at the next call; channels made with the old one
are closed then.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc

from api import kinds
from api.errors import ApiError, CertificateError, ForbiddenError, UnavailableError, from_grpc
from api.pb import api_pb2, api_pb2_grpc, core_pb2
from client import tls
from client.config import ClientConfig


@dataclass(frozen=True)
class KubeletTLS:
    """--kubelet-certificate-authority, --kubelet-client-certificate, --kubelet-client-key."""

    ca_file: str
    cert_file: str
    key_file: str

    def client_config(self, target: str = "") -> ClientConfig:
        return ClientConfig(server=target, ca_file=self.ca_file, cert_file=self.cert_file, key_file=self.key_file,
                            cluster="kubelets")


class KubeletProxy:
    def __init__(self, registry, tls_files: KubeletTLS | None = None) -> None:  # type: ignore[no-untyped-def]
        self.registry = registry
        self.tls_files = tls_files
        self.creds = tls.ClientCredentials(tls_files.client_config()) if tls_files else None
        self._channels: dict[str, grpc.aio.Channel] = {}

    async def _channel(self, target: str) -> grpc.aio.Channel:
        if self.creds is not None and self.creds.changed():
            old, self._channels = self._channels, {}
            for channel in old.values():
                await channel.close(grace=5)
        channel = self._channels.get(target)
        if channel is None:
            if self.creds is None:
                channel = grpc.aio.insecure_channel(target)
            else:
                channel = grpc.aio.secure_channel(target, self.creds.channel_credentials())
            self._channels[target] = channel
        return channel

    async def _target(self, namespace: str, name: str) -> tuple[api_pb2_grpc.KubeletStub, core_pb2.Pod, str]:
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
        return api_pb2_grpc.KubeletStub(await self._channel(target)), pod, target

    async def logs(self, req: api_pb2.LogsRequest) -> AsyncIterator[api_pb2.LogChunk]:
        stub, pod, target = await self._target(req.namespace, req.name)
        call = stub.Logs(req, timeout=None if req.follow else 30)
        try:
            async for chunk in call:
                yield chunk
        except grpc.aio.AioRpcError as e:
            raise self._mapped(e, pod, target) from None
        finally:
            call.cancel()

    async def exec(self, req: api_pb2.ExecRequest) -> api_pb2.ExecResponse:
        stub, pod, target = await self._target(req.namespace, req.name)
        try:
            return await stub.Exec(req, timeout=(req.timeout_seconds or 60) + 5)
        except grpc.aio.AioRpcError as e:
            raise self._mapped(e, pod, target) from None

    async def stream(self, start: api_pb2.StreamStart, requests: AsyncIterator[api_pb2.StreamRequest]
                     ) -> AsyncIterator[api_pb2.StreamResponse]:
        """An interactive exec or attach on the pod's kubelet: `requests` (input, resizes) go up, output comes
        back."""
        stub, pod, target = await self._target(start.namespace, start.name)

        async def outgoing() -> AsyncIterator[api_pb2.StreamRequest]:
            yield api_pb2.StreamRequest(start=start)
            async for req in requests:
                yield req

        call = stub.Stream(outgoing())
        try:
            async for resp in call:
                yield resp
        except grpc.aio.AioRpcError as e:
            raise self._mapped(e, pod, target) from None
        finally:
            call.cancel()

    def _mapped(self, e: grpc.aio.AioRpcError, pod: core_pb2.Pod, target: str) -> ApiError:
        if e.code() == grpc.StatusCode.UNAVAILABLE:
            if self.tls_files is not None:
                why = tls.explain(self.tls_files.client_config(target), e.details() or "",
                                  peer=f'the kubelet of node "{pod.spec.node_name}"')
                if why:
                    return CertificateError(why)
            return UnavailableError(f"kubelet unreachable: {e.details()}")
        return from_grpc(e.code(), e.details() or "")

    async def close(self) -> None:
        for channel in self._channels.values():
            with contextlib.suppress(Exception):
                await channel.close()
        self._channels.clear()

