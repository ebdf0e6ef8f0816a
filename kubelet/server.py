"""The kubelet's own gRPC API (service Kubelet): container logs, exec, and interactive streams.

The apiserver proxies `kubelite logs` and `kubelite exec` here, to the
address the Node publishes (InternalIP : daemonEndpoints.kubeletEndpoint).
The service speaks mutual TLS only: its serving certificate is signed by the
cluster CA, and the one client it serves is the apiserver's kubelet-client
identity (`kube-apiserver-kubelet-client`): anyone else fails the handshake
(no certificate of the cluster) or is refused (another identity).
Logs are read from the CRI log files (tail, follow until the container
exits, previous attempt, timestamps, since); exec runs through the runtime's
ExecSync. CRI's ExecSync has no stdin, so stdin is handed to the command
through the container's own `sh` and `base64` (busybox has both). An interactive
exec (with a terminal) or an attach goes through Stream, bridged to the runtime's
streaming server (CRI Exec/Attach; see streaming.py).
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Callable

import aiohttp
import grpc
import structlog

from api.pb import api_pb2, api_pb2_grpc, core_pb2
from client import tls
from kubelet import streaming
from kubelet.observed import ContainerView, observe_pod
from kubelet.runtime.interface import (
    ContainerRuntimeError,
    ContainerState,
    ExecTimeoutError,
    NotFoundError,
    Runtime,
    StreamingUnsupportedError,
)
from kubelet.runtime.logs import LogOptions, read_log

log = structlog.get_logger(__name__)

CHUNK = 64 * 1024
MAX_STDIN = 96 * 1024  # one argv string stays under the kernel's 128 KiB limit once base64-encoded

PodLookup = Callable[[str, str], core_pb2.Pod | None]
# The apiserver's identity toward kubelets (its --kubelet-client-certificate).
APISERVER_CLIENT = "kube-apiserver-kubelet-client"


class _Abort(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class KubeletServicer(api_pb2_grpc.KubeletServicer):
    """`authorized`: the certificate names (common names) served; None only without TLS (tests)."""

    def __init__(self, runtime: Runtime, pods: PodLookup, *,
                 authorized: frozenset[str] | None = frozenset({APISERVER_CLIENT})) -> None:
        self.runtime = runtime
        self.pods = pods
        self.authorized = authorized

    def _check_caller(self, context: grpc.aio.ServicerContext) -> None:
        if self.authorized is None:
            return
        names = [n.decode(errors="replace") for n in context.auth_context().get("x509_common_name", [])]
        if not set(names) & self.authorized:
            who = names[0] if names else "no certificate"
            raise _Abort(grpc.StatusCode.PERMISSION_DENIED,
                         f"the kubelet serves {', '.join(sorted(self.authorized))} only, not {who}")

    async def _target(self, namespace: str, name: str, container: str, *, previous: bool = False
                      ) -> tuple[core_pb2.Pod, ContainerView]:
        namespace = namespace or "default"
        pod = self.pods(namespace, name)
        if pod is None:
            raise _Abort(grpc.StatusCode.NOT_FOUND, f'pod "{name}" not found on this node')
        names = [c.name for c in pod.spec.containers]
        init_names = [c.name for c in pod.spec.init_containers]
        if not container:
            if len(names) != 1:
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"a container name must be specified for pod {name}, "
                                                               f"choose one of: [{' '.join(names)}]")
            container = names[0]
        elif container not in names and container not in init_names:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f'container {container} is not valid for pod {name}')
        observed = await observe_pod(self.runtime, pod.metadata.uid)
        view = observed.previous(container) if previous else observed.latest(container)
        if view is None:
            if previous:
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT,
                             f'previous terminated container "{container}" in pod "{name}" not found')
            raise _Abort(grpc.StatusCode.FAILED_PRECONDITION,
                         f'container "{container}" in pod "{name}" is waiting to start')
        return pod, view

    async def Logs(self, request: api_pb2.LogsRequest, context: grpc.aio.ServicerContext
                   ) -> AsyncIterator[api_pb2.LogChunk]:
        try:
            self._check_caller(context)
            _, view = await self._target(request.namespace, request.name, request.container,
                                         previous=request.previous)
        except _Abort as exc:
            await context.abort(exc.code, exc.message)
            return
        if not view.log_path:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"container {view.name} has no log file")
            return
        since = 0
        if request.HasField("since_seconds"):
            since = time.time_ns() - request.since_seconds * 1_000_000_000
        options = LogOptions(tail=request.tail_lines if request.HasField("tail_lines") else None,
                             follow=request.follow and view.running, timestamps=request.timestamps,
                             since_ns=since)

        async def exited() -> bool:
            try:
                return (await self.runtime.container_status(view.id)).state != ContainerState.RUNNING
            except ContainerRuntimeError:
                return True

        try:
            if options.follow:
                async for line in read_log(view.log_path, options, stop=exited):
                    yield api_pb2.LogChunk(data=line)
                return
            buf = bytearray()
            async for line in read_log(view.log_path, options):
                buf += line
                if len(buf) >= CHUNK:
                    yield api_pb2.LogChunk(data=bytes(buf))
                    buf.clear()
            if buf:
                yield api_pb2.LogChunk(data=bytes(buf))
        except FileNotFoundError:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"log file of container {view.name} is gone")

    async def Exec(self, request: api_pb2.ExecRequest, context: grpc.aio.ServicerContext) -> api_pb2.ExecResponse:
        try:
            view = await self._running(context, request.namespace, request.name, request.container)
        except _Abort as exc:
            await context.abort(exc.code, exc.message)
            raise
        if not request.command:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "a command is required")
        command = list(request.command)
        if request.stdin:
            if len(request.stdin) > MAX_STDIN:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                                    f"stdin is limited to {MAX_STDIN} bytes (CRI ExecSync has no stdin stream)")
            encoded = base64.b64encode(request.stdin).decode()
            command = ["sh", "-c", 'printf %s "$0" | base64 -d | "$@"', encoded, *command]
        timeout = float(request.timeout_seconds or 60)
        try:
            result = await self.runtime.exec_sync(view.id, command, timeout)
        except ExecTimeoutError:
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, f"command timed out after {timeout:.0f}s")
            raise
        except NotFoundError:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"container {view.name} is gone")
            raise
        except ContainerRuntimeError as exc:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
            raise
        log.info("container_exec", pod=f"{request.namespace}/{request.name}", container=view.name,
                 command=list(request.command)[:3], exit_code=result.exit_code)
        return api_pb2.ExecResponse(stdout=result.stdout, stderr=result.stderr, exit_code=result.exit_code)

    async def _running(self, context: grpc.aio.ServicerContext, namespace: str, name: str,
                       container: str) -> ContainerView:
        """What an exec or attach runs in: the caller checked, the container found and running (else _Abort)."""
        self._check_caller(context)
        _, view = await self._target(namespace, name, container)
        if view.state != ContainerState.RUNNING:
            raise _Abort(grpc.StatusCode.FAILED_PRECONDITION,
                         f"container {view.name} is not running (it is {view.state})")
        return view

    async def Stream(self, request_iterator: AsyncIterator[api_pb2.StreamRequest],
                     context: grpc.aio.ServicerContext) -> None:
        """An interactive exec or attach: bridged to the runtime's streaming server over WebSocket
        (v4.channel.k8s.io), input and resizes one way, output the other, then the exit code."""
        requests = request_iterator.__aiter__()
        first = await anext(requests, None)
        if first is None or first.WhichOneof("message") != "start":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "a stream starts with what it runs (start)")
            raise AssertionError  # abort raises
        start = first.start
        try:
            view = await self._running(context, start.namespace, start.name, start.container)
            url = await self.runtime.stream_url(view.id, list(start.command), tty=start.tty, stdin=start.stdin)
        except _Abort as exc:
            await context.abort(exc.code, exc.message)
            raise
        except StreamingUnsupportedError as exc:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, str(exc))
            raise
        except NotFoundError:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"container {view.name} is gone")
            raise
        except ContainerRuntimeError as exc:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
            raise
        log.info("container_stream_started", pod=f"{start.namespace}/{start.name}", container=view.name,
                 command=list(start.command)[:3], tty=start.tty, stdin=start.stdin)
        timeout = aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5)
        async with aiohttp.ClientSession() as session, session.ws_connect(
                url, protocols=(streaming.V4,), timeout=timeout, max_msg_size=0, autoping=True) as ws, \
                asyncio.TaskGroup() as tg:
            pump = tg.create_task(streaming.forward_input(requests, ws))
            await streaming.forward_output(ws, context.write)
            pump.cancel()


class KubeletServer:
    """Serves the Kubelet service on `listen` (host:port; port 0 picks one) until cancelled: with mutual TLS
    when given `credentials` (renewed certificate files are taken at the next connection), else in plaintext."""

    def __init__(self, servicer: KubeletServicer, listen: str, credentials: tls.ServerCredentials | None = None
                 ) -> None:
        self.servicer = servicer
        self.listen = listen
        self.credentials = credentials
        self.port = 0
        self._server: grpc.aio.Server | None = None

    async def start(self) -> int:
        # No SO_REUSEPORT: a second kubelet on the same port must fail, not share it.
        self._server = grpc.aio.server(options=[("grpc.max_send_message_length", 16 * 1024 * 1024),
                                                ("grpc.so_reuseport", 0)])
        api_pb2_grpc.add_KubeletServicer_to_server(self.servicer, self._server)
        try:
            if self.credentials is not None:
                self.port = self._server.add_secure_port(self.listen, self.credentials.grpc_credentials())
            else:
                self.port = self._server.add_insecure_port(self.listen)
        except RuntimeError as exc:
            raise OSError(f"kubelet cannot listen on {self.listen}: {exc}") from None
        await self._server.start()
        log.info("kubelet_server_started", listen=self.listen, port=self.port)
        return self.port

    async def run(self) -> None:
        if self._server is None:
            await self.start()
        assert self._server is not None
        try:
            await self._server.wait_for_termination()
        finally:
            await self.stop()

    async def stop(self) -> None:
        if self._server is not None:
            server, self._server = self._server, None
            await server.stop(grace=1)
