"""`kubelite apiserver` as a real process: SIGKILL loses no acknowledged write; metrics are served over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
import testpki
from conftest import free_port, start_etcd, stop_etcd
from grpc_health.v1 import health_pb2, health_pb2_grpc

from api.errors import ApiError, NotFoundError
from client.api import Client

from .helpers import make, pod, restart_port

KUBELITE = str(Path(sys.executable).parent / "kubelite")


@dataclass
class Proc:
    address: str
    metrics: int
    proc: subprocess.Popen
    log: Path


def _spawn(etcd: str, port: int, tmp: Path, *, metrics: bool = False) -> Proc:
    metrics_port = free_port() if metrics else 0
    log = tmp / f"apiserver-{port}-{random.random():.6f}.log"
    env = {**os.environ, "KUBELITE_LOG_LEVEL": "info"}
    extra = ["--metrics-port", str(metrics_port)] if metrics else []
    with log.open("wb") as out:
        proc = subprocess.Popen([KUBELITE, "apiserver", "--etcd-servers", etcd, "--listen", f"127.0.0.1:{port}",
                                 *testpki.get().apiserver_flags(etcd), *extra], stdout=out, stderr=subprocess.STDOUT,
                                env=env)
    return Proc(f"127.0.0.1:{port}", metrics_port, proc, log)


async def _wait_serving(p: Proc, timeout: float = 20) -> None:
    """Until this process has logged its start and answers health checks (not some other process on the port)."""
    deadline = asyncio.get_running_loop().time() + timeout
    async with testpki.get().channel(p.address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            if p.proc.poll() is not None:
                raise AssertionError(f"apiserver exited: {p.log.read_text()[-2000:]}")
            if "apiserver_started" in await asyncio.to_thread(p.log.read_text):
                with contextlib.suppress(grpc.aio.AioRpcError):
                    resp = await stub.Check(health_pb2.HealthCheckRequest(service="kubelite.v1.Api"), timeout=1)
                    if resp.status == health_pb2.HealthCheckResponse.SERVING:
                        return
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError("apiserver did not become ready")
            await asyncio.sleep(0.05)


def _stop(p: Proc) -> None:
    if p.proc.poll() is None:
        p.proc.terminate()
        try:
            p.proc.wait(10)
        except subprocess.TimeoutExpired:
            p.proc.kill()
            p.proc.wait()


@pytest.fixture(scope="module")
def process_etcd() -> Iterator[str]:
    """An etcd of this module's own: `kubelite apiserver` replays recent history on start (20,000 revisions, no
    flag), and the session's shared etcd has a long history of other tests."""
    e = start_etcd()
    try:
        yield e.url
    finally:
        stop_etcd(e)


@pytest.fixture
def procs() -> Iterator[list[Proc]]:
    """Every apiserver process a test starts; all are stopped at the end."""
    started: list[Proc] = []
    try:
        yield started
    finally:
        for p in started:
            _stop(p)


@dataclass
class Ledger:
    """What each writer knows for sure: acknowledged states per object, and what may have happened after."""

    acked: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> (uid, label v) last acknowledged
    deleted: set[str] = field(default_factory=set)  # acknowledged deletes
    maybe: dict[str, set[str]] = field(default_factory=dict)  # key -> label values sent after the last ack
    replicas: int = 0  # last acknowledged Deployment replicas
    replicas_maybe: set[int] = field(default_factory=set)
    count: int = 0


async def _pod_writer(client: Client, w: int, ledger: Ledger) -> None:
    """Create, update, sometimes delete pods, one at a time, recording what the server acknowledged."""
    for i in range(10_000):
        name = f"w{w}-{i}"
        ledger.maybe[name] = {"1"}
        created = await client.create(pod(name, labels={"v": "1"}))
        ledger.acked[name] = (created.metadata.uid, "1")
        ledger.maybe[name] = set()
        ledger.count += 1
        created.metadata.labels["v"] = "2"
        ledger.maybe[name] = {"2"}
        updated = await client.update(created)
        ledger.acked[name] = (updated.metadata.uid, "2")
        ledger.maybe[name] = set()
        ledger.count += 1
        if i % 3 == 0:
            ledger.maybe[name] = {"deleted"}
            await client.delete("pods", name, "default")
            ledger.deleted.add(name)
            ledger.count += 1


async def _scaler(client: Client, ledger: Ledger) -> None:
    """Scale one Deployment up step by step, recording each acknowledged value."""
    for n in range(1, 100_000):
        ledger.replicas_maybe = {n}
        await client.scale("deployments", "web", n, "default")
        ledger.replicas = n
        ledger.replicas_maybe = set()
        ledger.count += 1


async def _run_until_killed(p: Proc, ledger: Ledger, delay: float) -> None:
    async with Client(testpki.get().client(p.address)) as client:
        tasks = [asyncio.create_task(_pod_writer(client, w, ledger)) for w in range(6)]
        tasks.append(asyncio.create_task(_scaler(client, ledger)))
        await asyncio.sleep(delay)
        p.proc.send_signal(signal.SIGKILL)
        p.proc.wait()
        for t in tasks:
            with contextlib.suppress(ApiError):
                await asyncio.wait_for(t, 35)
                raise AssertionError("a writer finished before the kill")


async def _check(client: Client, ledger: Ledger) -> None:
    pods = {p.metadata.name: p for p in await client.list_all("pods", "default")}
    for name, (uid, v) in ledger.acked.items():
        if name in ledger.deleted:
            assert name not in pods, f"{name}: acknowledged delete undone"
            continue
        if "deleted" in ledger.maybe.get(name, set()) and name not in pods:
            continue
        assert name in pods, f"{name}: acknowledged write lost"
        got = pods[name]
        assert got.metadata.uid == uid, f"{name}: different object"
        assert got.metadata.labels["v"] in {v} | ledger.maybe.get(name, set()), f"{name}: content {got.metadata}"
    for name in set(pods) - set(ledger.acked):
        assert name in ledger.maybe, f"{name}: an object nobody wrote"
    replicas = (await client.get("deployments", "web", "default")).spec.replicas
    assert replicas in {ledger.replicas} | ledger.replicas_maybe


async def test_sigkill_loses_no_acknowledged_write(process_etcd: str, tmp_path: Path, procs: list[Proc]) -> None:
    """Concurrent writers against `kubelite apiserver`, SIGKILLed at random moments (three times): after a restart
    every acknowledged create, update, scale and delete is there with its content."""
    rng = random.Random()
    port = restart_port()
    ledger = Ledger()
    first = _spawn(process_etcd, port, tmp_path)
    procs.append(first)
    await _wait_serving(first)
    async with Client(testpki.get().client(first.address)) as c:
        await c.create(make("Deployment"))
    current = first
    for delay in (rng.uniform(0.2, 0.5), rng.uniform(0.5, 1.0), rng.uniform(0.05, 0.2)):
        before = ledger.count
        await _run_until_killed(current, ledger, delay)
        assert ledger.count > before, "the writers got nothing acknowledged before the kill"
        current = _spawn(process_etcd, port, tmp_path)
        procs.append(current)
        await _wait_serving(current)
        try:
            async with Client(testpki.get().client(current.address)) as c:
                await _check(c, ledger)
        except ApiError as e:
            raise AssertionError(f"{e}; apiserver log: {current.log.read_text()[-3000:]}") from e
    assert ledger.count > 20


def _scrape(p: Proc) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{p.metrics}/metrics", timeout=5).read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("apiserver_") and " " in line:
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


async def test_metrics_endpoint(process_etcd: str, tmp_path: Path, procs: list[Proc]) -> None:
    """--metrics-port serves Prometheus text whose request counters move with requests."""
    p = _spawn(process_etcd, free_port(), tmp_path, metrics=True)
    procs.append(p)
    await _wait_serving(p)
    key = 'apiserver_requests_total{code="OK",resource="pods",verb="create"}'
    before = _scrape(p).get(key, 0.0)
    async with Client(testpki.get().client(p.address)) as c:
        for i in range(3):
            await c.create(pod(f"p{i}"))
        with pytest.raises(NotFoundError):
            await c.get("pods", "ghost", "default")
    after = _scrape(p)
    assert after[key] == before + 3
    assert after['apiserver_requests_total{code="NOT_FOUND",resource="pods",verb="get"}'] >= 1
    assert after['apiserver_request_duration_seconds_count{resource="pods",verb="create"}'] >= 3


async def test_sigterm_stops_cleanly(process_etcd: str, tmp_path: Path, procs: list[Proc]) -> None:
    """SIGTERM stops `kubelite apiserver` cleanly, with exit status 0."""
    p = _spawn(process_etcd, free_port(), tmp_path)
    procs.append(p)
    await _wait_serving(p)
    p.proc.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(p.proc.wait, 15) == 0
