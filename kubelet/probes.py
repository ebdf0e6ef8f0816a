"""Liveness, readiness and startup probes: exec, httpGet and tcpSocket.

One worker per probe of each running container (kubelet's prober worker).
It waits initialDelaySeconds after the container started, then probes every
periodSeconds with timeoutSeconds, and flips its result after
successThreshold successes or failureThreshold failures in a row. Until a
startup probe succeeds the other two wait; readiness starts out failed,
liveness and startup start out unknown. A failed liveness or startup probe
ends its worker and marks the container unhealthy, which the next sync
turns into a kill and restart; every change wakes the pod's worker.

Network probes connect to the pod IP from the kubelet. Deployed, the kubelet
runs in the node's network namespace where pod IPs are routed; a kubelet
elsewhere (tests) names that namespace (`probe_netns`) and its sockets are
created there by a thread that entered it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ctypes
import os
import random
import re
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

import structlog

from api.pb import core_pb2
from kubelet.observed import ObservedPod
from kubelet.runtime.interface import ContainerRuntimeError, ExecTimeoutError, Runtime

log = structlog.get_logger(__name__)

CLONE_NEWNET = 0x40000000
_STATUS_LINE = re.compile(rb"^HTTP/\d(?:\.\d)? (\d{3})")
USER_AGENT = "kube-probe/kubelite"
MAX_BODY = 10 * 1024


class Kind(StrEnum):
    LIVENESS = "Liveness"
    READINESS = "Readiness"
    STARTUP = "Startup"


_FIELDS = {Kind.LIVENESS: "liveness_probe", Kind.READINESS: "readiness_probe", Kind.STARTUP: "startup_probe"}


class Dialer:
    """Opens TCP connections, optionally from another network namespace."""

    def __init__(self, netns: str = "") -> None:
        self.netns = netns
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        if netns:
            self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="probe-netns",
                                                               initializer=_enter_netns, initargs=(netns,))

    async def open(self, host: str, port: int, *, timeout: float, tls: bool = False
                   ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        context = None
        if tls:
            # Probes do not verify certificates, as Kubernetes' do not.
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        async with asyncio.timeout(timeout):
            if self._pool is None:
                return await asyncio.open_connection(host, port, ssl=context)
            sock = await loop.run_in_executor(self._pool, socket.socket, family, socket.SOCK_STREAM)
            try:
                sock.setblocking(False)
                await loop.sock_connect(sock, (host, port))
                return await asyncio.open_connection(sock=sock, ssl=context,
                                                     server_hostname=host if tls else None)
            except BaseException:
                sock.close()
                raise

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False)


def _enter_netns(path: str) -> None:
    """Move this (pool) thread into a network namespace; its sockets are created there."""
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns({path})")
    finally:
        os.close(fd)


def _dial_error(exc: OSError) -> str:
    """A connect error in Go's words (what Kubernetes users see in probe events)."""
    if isinstance(exc, ConnectionRefusedError):
        return "connect: connection refused"
    if exc.errno is not None and exc.strerror:
        return f"connect: {exc.strerror.lower()}"
    return str(exc)


def resolve_port(port: str, container: core_pb2.Container) -> int:
    """A probe's port: a number, or the name of one of the container's ports."""
    if port.isdigit():
        return int(port)
    for p in container.ports:
        if p.name == port:
            return p.container_port
    raise ValueError(f"port {port!r} not found in container {container.name}")


@dataclass
class Prober:
    """Runs one probe once: (success, message)."""

    runtime: Runtime
    dialer: Dialer = field(default_factory=Dialer)

    async def run(self, probe: core_pb2.Probe, container: core_pb2.Container, container_id: str,
                  pod_ip: str) -> tuple[bool, str]:
        timeout = float(probe.timeout_seconds or 1)
        try:
            if probe.HasField("exec"):
                return await self._exec(probe.exec, container_id, timeout)
            if probe.HasField("http_get"):
                return await self._http(probe.http_get, container, pod_ip, timeout)
            if probe.HasField("tcp_socket"):
                return await self._tcp(probe.tcp_socket, container, pod_ip, timeout)
            if probe.HasField("grpc"):
                return False, "gRPC probes are not supported by kubelite"
        except ValueError as exc:
            return False, str(exc)
        return False, "probe has no handler"

    async def _exec(self, action: core_pb2.ExecAction, container_id: str, timeout: float) -> tuple[bool, str]:
        try:
            result = await self.runtime.exec_sync(container_id, list(action.command), timeout)
        except ExecTimeoutError:
            return False, f"command {list(action.command)!r} timed out"
        except ContainerRuntimeError as exc:
            return False, str(exc)
        if result.exit_code == 0:
            return True, ""
        output = (result.stdout + result.stderr).decode(errors="replace").strip()
        return False, f"command {list(action.command)!r} exited with {result.exit_code}: {output[:200]}"

    async def _http(self, action: core_pb2.HTTPGetAction, container: core_pb2.Container, pod_ip: str,
                    timeout: float) -> tuple[bool, str]:
        host = action.host or pod_ip
        port = resolve_port(action.port, container)
        tls = action.scheme.upper() == "HTTPS"
        url = f"{'https' if tls else 'http'}://{host}:{port}{action.path or '/'}"
        if not host:
            return False, f"Get {url}: the pod has no IP"
        headers = {"Host": f"{host}:{port}", "User-Agent": USER_AGENT, "Accept": "*/*", "Connection": "close"}
        for h in action.http_headers:
            headers[h.name] = h.value
        request = f"GET {action.path or '/'} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await self.dialer.open(host, port, timeout=timeout, tls=tls)
                try:
                    writer.write(request.encode() + b"\r\n")
                    await writer.drain()
                    line = await reader.readline()
                    with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
                        await reader.read(MAX_BODY)
                finally:
                    writer.close()
                    with contextlib.suppress(Exception):
                        await writer.wait_closed()
        except TimeoutError:
            return False, f"Get {url}: context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        except OSError as exc:
            return False, f"Get {url}: dial tcp {host}:{port}: {_dial_error(exc)}"
        m = _STATUS_LINE.match(line)
        if not m:
            return False, f"Get {url}: malformed HTTP response {line[:60]!r}"
        code = int(m.group(1))
        if 200 <= code < 400:
            return True, ""
        return False, f"HTTP probe failed with statuscode: {code}"

    async def _tcp(self, action: core_pb2.TCPSocketAction, container: core_pb2.Container, pod_ip: str,
                   timeout: float) -> tuple[bool, str]:
        host = action.host or pod_ip
        port = resolve_port(action.port, container)
        if not host:
            return False, f"dial tcp :{port}: the pod has no IP"
        try:
            _, writer = await self.dialer.open(host, port, timeout=timeout)
        except TimeoutError:
            return False, f"dial tcp {host}:{port}: i/o timeout"
        except OSError as exc:
            return False, f"dial tcp {host}:{port}: {_dial_error(exc)}"
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
        return True, ""


@dataclass
class _Results:
    """One pod's probe outcomes by container id."""

    ready: dict[str, bool] = field(default_factory=dict)
    started: dict[str, bool] = field(default_factory=dict)
    unhealthy: dict[str, str] = field(default_factory=dict)


class ProbeManager:
    """Keeps one worker per probe of each running container and their results.

    on_change(uid) is called whenever a result changes; on_failure(pod, kind,
    message) on every failed probe (for events).
    """

    def __init__(self, prober: Prober, tg: asyncio.TaskGroup, *, on_change: Callable[[str], None],
                 on_failure: Callable[[core_pb2.Pod, Kind, str], None] | None = None, host_ip: str = "") -> None:
        self.prober = prober
        self.host_ip = host_ip
        self._tg = tg
        self._on_change = on_change
        self._on_failure = on_failure
        self._workers: dict[tuple[str, str, Kind], asyncio.Task[None]] = {}
        self._results: dict[str, _Results] = {}

    def results(self, uid: str) -> _Results:
        return self._results.get(uid) or _Results()

    def sync(self, pod: core_pb2.Pod, observed: ObservedPod) -> None:
        """Start workers for the pod's running containers' probes; stop those of containers gone."""
        uid = pod.metadata.uid
        ip = observed.sandbox.ip if observed.sandbox else ""
        if pod.spec.host_network:
            ip = self.host_ip
        specs = {c.name: c for c in pod.spec.containers}
        wanted: set[tuple[str, str, Kind]] = set()
        for view in observed.running:
            container = specs.get(view.name)
            if container is None or view.sandbox_id != (observed.sandbox.id if observed.sandbox else ""):
                continue
            for kind, attr in _FIELDS.items():
                if container.HasField(attr):
                    key = (uid, view.id, kind)
                    wanted.add(key)
                    if key not in self._workers:
                        self._workers[key] = self._tg.create_task(
                            self._worker(pod, container, view.id, view.started_at, ip, kind))
        for key in [k for k in self._workers if k[0] == uid and k not in wanted]:
            self._workers.pop(key).cancel()
        live = {k[1] for k in wanted}
        res = self._results.get(uid)
        if res is not None:
            for d in (res.ready, res.started, res.unhealthy):
                for cid in [c for c in d if c not in live]:
                    del d[cid]

    def remove_pod(self, uid: str) -> None:
        for key in [k for k in self._workers if k[0] == uid]:
            self._workers.pop(key).cancel()
        self._results.pop(uid, None)

    def _set(self, uid: str, table: str, cid: str, value: object) -> None:
        res = self._results.setdefault(uid, _Results())
        d: dict = getattr(res, table)
        if d.get(cid) != value:
            d[cid] = value
            self._on_change(uid)

    async def _worker(self, pod: core_pb2.Pod, container: core_pb2.Container, cid: str, started_at: int,
                      ip: str, kind: Kind) -> None:
        try:
            await self._probe_loop(pod, container, cid, started_at, ip, kind)
        except Exception as exc:
            # A probe bug must not take the kubelet's task group down.
            log.error("probe_worker_failed", pod=f"{pod.metadata.namespace}/{pod.metadata.name}",
                      container=container.name, kind=kind.value, error=repr(exc))

    async def _probe_loop(self, pod: core_pb2.Pod, container: core_pb2.Container, cid: str, started_at: int,
                          ip: str, kind: Kind) -> None:
        probe: core_pb2.Probe = getattr(container, _FIELDS[kind])
        uid = pod.metadata.uid
        period = float(probe.period_seconds or 10)
        success_threshold = probe.success_threshold or 1
        failure_threshold = probe.failure_threshold or 3
        # Spread workers out, then wait out the initial delay counted from the container's start.
        started = started_at / 1e9 if started_at else time.time()
        delay = max(0.0, started + probe.initial_delay_seconds - time.time())
        await asyncio.sleep(delay or random.uniform(0, min(period, 1.0)))
        successes = failures = 0
        while True:
            if kind != Kind.STARTUP and container.HasField("startup_probe") and \
                    not self.results(uid).started.get(cid, False):
                await asyncio.sleep(min(period, 1.0))
                continue
            ok, message = await self.prober.run(probe, container, cid, ip)
            if ok:
                successes, failures = successes + 1, 0
            else:
                successes, failures = 0, failures + 1
                if self._on_failure is not None:
                    self._on_failure(pod, kind, f"{kind.value} probe failed: {message}")
                log.debug("probe_failed", pod=f"{pod.metadata.namespace}/{pod.metadata.name}",
                          container=container.name, kind=kind.value, message=message)
            if kind == Kind.READINESS:
                if successes >= success_threshold:
                    self._set(uid, "ready", cid, True)
                elif failures >= failure_threshold or cid not in self.results(uid).ready:
                    self._set(uid, "ready", cid, False)
            elif kind == Kind.STARTUP:
                if ok:
                    self._set(uid, "started", cid, True)
                    return
                if failures >= failure_threshold:
                    self._set(uid, "unhealthy", cid, f"Container {container.name} failed startup probe")
                    return
            elif failures >= failure_threshold:
                self._set(uid, "unhealthy", cid, f"Container {container.name} failed liveness probe")
                return
            await asyncio.sleep(period)
