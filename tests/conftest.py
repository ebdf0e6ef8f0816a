"""Shared fixtures: a real etcd on a free loopback port, an in-process apiserver, a client."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import aetcd
import pytest
from aetcd import rpc
from hypothesis import HealthCheck, settings

from apiserver import encryption
from apiserver.registry import Config as RegistryConfig
from apiserver.server import ApiServer, Config
from apiserver.storage import limits
from client.api import Client

# The test machines are small and shared: a slow draw or example is noise,
# not a finding, so only wrong answers fail a property test.
settings.register_profile("shared-machine", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("shared-machine")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Etcd:
    url: str
    proc: subprocess.Popen
    data_dir: str


def start_etcd(limit_flags: list[str] | None = None) -> Etcd:
    """An etcd on free loopback ports, with the limits every kubelite etcd has (or `limit_flags`)."""
    etcd = shutil.which("etcd")
    if etcd is None:
        pytest.fail("etcd is not installed (apt-get install etcd-server)")
    data_dir = tempfile.mkdtemp(prefix="kubelite-etcd-")
    client_port, peer_port = free_port(), free_port()
    url = f"http://127.0.0.1:{client_port}"
    proc = subprocess.Popen(
        [etcd, "--name", "test", "--data-dir", data_dir, "--listen-client-urls", url,
         "--advertise-client-urls", url, "--listen-peer-urls", f"http://127.0.0.1:{peer_port}",
         "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer_port}",
         "--initial-cluster", f"test=http://127.0.0.1:{peer_port}", "--log-level", "error",
         "--quota-backend-bytes", str(4 * 1024**3),
         *(limits.etcd_flags() if limit_flags is None else limit_flags)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", client_port), timeout=0.2):
            break
        time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("etcd did not start")
    return Etcd(url, proc, data_dir)


def stop_etcd(e: Etcd) -> None:
    e.proc.terminate()
    try:
        e.proc.wait(5)
    except subprocess.TimeoutExpired:
        e.proc.kill()
        e.proc.wait()
    shutil.rmtree(e.data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def etcd_server() -> Iterator[Etcd]:
    e = start_etcd()
    try:
        yield e
    finally:
        stop_etcd(e)


async def wipe_etcd(url: str) -> None:
    host, port = url.removeprefix("http://").split(":")
    async with aetcd.Client(host=host, port=int(port)) as c:
        # key and range_end both "\0": every key.
        await c.kvstub.DeleteRange(rpc.DeleteRangeRequest(key=b"\0", range_end=b"\0"), timeout=10)


@pytest.fixture
async def etcd(etcd_server: Etcd) -> str:
    """A real etcd with no keys (wiped before each test)."""
    await wipe_etcd(etcd_server.url)
    return etcd_server.url


@dataclass
class RunningApiserver:
    server: ApiServer
    address: str
    task: asyncio.Task

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def start_apiserver(etcd_url: str, **overrides: object) -> RunningApiserver:
    registry = overrides.pop("registry", RegistryConfig())
    config = Config(etcd_servers=etcd_url, listen=["127.0.0.1:0"], registry=registry,  # type: ignore[arg-type]
                    compact_interval=0, replay=int(overrides.pop("replay", 0)))  # type: ignore[call-overload]
    if "encryption_config" not in overrides:
        # Every cluster kubelite makes encrypts Secrets; so does every test apiserver, with a key of its own.
        key_dir = tempfile.mkdtemp(prefix="kubelite-enc-")
        overrides["encryption_config"] = f"{key_dir}/encryption-config.yaml"
        encryption.ensure_file(str(overrides["encryption_config"]))
    for k, v in overrides.items():
        setattr(config, k, v)
    server = ApiServer(config)
    task = asyncio.create_task(server.run())
    started = asyncio.create_task(server.started.wait())
    done, _ = await asyncio.wait({task, started}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()
    if started not in done:
        task.cancel()
        pytest.fail("apiserver did not start")
    return RunningApiserver(server, f"127.0.0.1:{server.ports[0]}", task)


@pytest.fixture
async def apiserver(etcd: str) -> AsyncIterator[RunningApiserver]:
    running = await start_apiserver(etcd)
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
async def client(apiserver: RunningApiserver) -> AsyncIterator[Client]:
    c = Client.from_server(apiserver.address)
    try:
        yield c
    finally:
        await c.close()
