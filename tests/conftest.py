"""Shared fixtures: a real etcd on a free loopback port, an in-process apiserver, a client, all with mutual TLS
under the test PKI (tests/testpki.py). `plaintext=True` is the test-only switch for tests that say why."""

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

import pytest
import structlog
import testpki
from aetcd import rpc
from hypothesis import HealthCheck, settings

from apiserver import encryption
from apiserver.registry import Config as RegistryConfig
from apiserver.server import ApiServer, Config
from apiserver.storage import limits
from apiserver.storage.etcd import EtcdConnection, parse_endpoints
from client.api import Client
from client.config import ClientConfig

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


def start_etcd(limit_flags: list[str] | None = None, *, plaintext: bool = False) -> Etcd:
    """An etcd on free loopback ports, with the limits every kubelite etcd has (or `limit_flags`), serving mutual
    TLS with client-cert auth under the test PKI's etcd CA (plaintext: the test-only switch)."""
    etcd = shutil.which("etcd")
    if etcd is None:
        pytest.fail("etcd is not installed (apt-get install etcd-server)")
    data_dir = tempfile.mkdtemp(prefix="kubelite-etcd-")
    client_port, peer_port = free_port(), free_port()
    url = f"{'http' if plaintext else 'https'}://127.0.0.1:{client_port}"
    tls_flags = [] if plaintext else testpki.get().etcd_server_flags()
    proc = subprocess.Popen(
        [etcd, "--name", "test", "--data-dir", data_dir, *tls_flags, "--listen-client-urls", url,
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


def mounts_under(base: str) -> list[str]:
    """Mount points at or below `base`, deepest first (the order they can be unmounted in)."""
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    prefix = base.rstrip("/") + "/"
    return sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True)


# A daemon's logging (api/logs.py) caches each logger on first use: in this process, a test that configured it (a
# CLI command run in-process, at level warning) would leave its level and processors on every later test's
# loggers, and structlog's capture_logs would see nothing. Here loggers are never cached, and each test starts
# from structlog's defaults.
_structlog_configure = structlog.configure


def _configure_uncached(**settings: object) -> None:
    _structlog_configure(**{**settings, "cache_logger_on_first_use": False})  # type: ignore[arg-type]


structlog.configure = _configure_uncached  # type: ignore[assignment]


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[None]:
    yield
    structlog.reset_defaults()


@pytest.fixture(autouse=True)
def _no_mounts_left(request: pytest.FixtureRequest) -> Iterator[None]:
    """A kubelet stopped by a test leaves its pods' volumes mounted (a restarted one adopts them): the test's
    temporary directory is unmounted when the test ends, so no mount outlives the run."""
    yield
    tmp = (request.node.funcargs or {}).get("tmp_path")  # None once a Ctrl-C ended the test
    if tmp is not None:
        for point in mounts_under(str(tmp)):
            subprocess.run(["umount", "--lazy", point], capture_output=True, check=False)


@pytest.fixture(scope="session", autouse=True)
def _no_mounts_left_by_the_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The same for directories shared by a module's tests (tmp_path_factory), once every test has ended."""
    yield
    for point in mounts_under(str(tmp_path_factory.getbasetemp())):
        subprocess.run(["umount", "--lazy", point], capture_output=True, check=False)


@pytest.fixture(scope="session")
def etcd_server() -> Iterator[Etcd]:
    e = start_etcd()
    try:
        yield e
    finally:
        stop_etcd(e)


def etcd_connection(url: str) -> EtcdConnection:
    """A raw connection to a test etcd (with the apiserver's etcd client certificate for https)."""
    ((host, port),) = parse_endpoints(url)
    return EtcdConnection(host, port, testpki.get().etcd_tls() if url.startswith("https") else None)


async def wipe_etcd(url: str) -> None:
    conn = etcd_connection(url)
    try:
        # key and range_end both "\0": every key.
        await conn.kvstub.DeleteRange(rpc.DeleteRangeRequest(key=b"\0", range_end=b"\0"), timeout=10)
    finally:
        await conn.close()


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
    conn: ClientConfig  # the admin's config for `address`

    def client(self, identity: str = "admin") -> Client:
        """A client presenting `identity`'s certificate (a name in the test PKI)."""
        if self.conn.insecure_plaintext:
            return Client(self.conn)
        return Client(testpki.get().client(self.address, identity))

    @property
    def token_address(self) -> str:
        return f"127.0.0.1:{self.server.token_ports[0]}"

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


# Every test apiserver's encryption key lives under one directory, removed when the test run ends.
_KEY_ROOT = tempfile.TemporaryDirectory(prefix="kubelite-test-keys-")


def apiserver_config(etcd_url: str, *, plaintext: bool = False, **overrides: object) -> Config:
    """The test apiserver's config: mutual TLS under the test PKI (plaintext: the test-only switch)."""
    registry = overrides.pop("registry", RegistryConfig())
    config = Config(etcd_servers=etcd_url, listen=["127.0.0.1:0"], registry=registry,  # type: ignore[arg-type]
                    compact_interval=0, replay=int(overrides.pop("replay", 0)))  # type: ignore[call-overload]
    # Pods get ServiceAccount tokens, signed with the test PKI's service account key.
    config.service_accounts = testpki.get().service_accounts()
    if plaintext:
        config.insecure_plaintext = True
    else:
        pki = testpki.get()
        config.tls, config.kubelet_tls, config.signer = pki.serving(), pki.kubelet_tls(), pki.signer()
    if etcd_url.startswith("https"):
        config.etcd_tls = testpki.get().etcd_tls()
    if "encryption_config" not in overrides:
        # Every cluster kubelite makes encrypts Secrets; so does every test apiserver, with a key of its own.
        key_dir = tempfile.mkdtemp(prefix="enc-", dir=_KEY_ROOT.name)
        overrides["encryption_config"] = f"{key_dir}/encryption-config.yaml"
        encryption.ensure_file(str(overrides["encryption_config"]))
    for k, v in overrides.items():
        setattr(config, k, v)
    return config


async def start_apiserver(etcd_url: str, *, plaintext: bool = False, **overrides: object) -> RunningApiserver:
    config = apiserver_config(etcd_url, plaintext=plaintext, **overrides)
    server = ApiServer(config)
    task = asyncio.create_task(server.run())
    started = asyncio.create_task(server.started.wait())
    done, _ = await asyncio.wait({task, started}, timeout=30, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        task.result()
    if started not in done:
        task.cancel()
        pytest.fail("apiserver did not start")
    address = f"127.0.0.1:{server.ports[0]}"
    conn = ClientConfig(server=address, insecure_plaintext=True) if plaintext else testpki.get().client(address)
    return RunningApiserver(server, address, task, conn)


@pytest.fixture
async def apiserver(etcd: str) -> AsyncIterator[RunningApiserver]:
    running = await start_apiserver(etcd)
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
async def client(apiserver: RunningApiserver) -> AsyncIterator[Client]:
    c = apiserver.client()
    try:
        yield c
    finally:
        await c.close()
