"""Storage as the apiserver runs it, for the storage tests."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
import testpki
from aetcd import rpc
from conftest import etcd_connection, free_port

from apiserver.storage import limits
from apiserver.storage.etcd import EtcdStorage, parse_endpoints


@contextlib.asynccontextmanager
async def connected(url: str, *, group_commit: bool) -> AsyncIterator[EtcdStorage]:
    """An EtcdStorage connected to `url`, committing directly or through the group committer."""
    store = EtcdStorage(parse_endpoints(url), tls_files=testpki.get().etcd_tls())
    await store.connect(timeout=10)
    task = asyncio.create_task(store.run_group_commit()) if group_commit else None
    if task is not None:
        await asyncio.sleep(0)  # let the committer start
    try:
        yield store
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await store.close()


@dataclass
class Member:
    name: str
    url: str
    proc: subprocess.Popen


@contextlib.contextmanager
def three_members() -> Iterator[list[Member]]:
    """Three etcd members on loopback, clients over mutual TLS, with kubelite's limits."""
    etcd = shutil.which("etcd")
    if etcd is None:
        pytest.fail("etcd is not installed (apt-get install etcd-server)")
    names = ["m1", "m2", "m3"]
    ports = {n: (free_port(), free_port()) for n in names}
    cluster = ",".join(f"{n}=http://127.0.0.1:{ports[n][1]}" for n in names)
    dirs, out = [], []
    for n in names:
        data_dir = tempfile.mkdtemp(prefix=f"kubelite-etcd-{n}-")
        dirs.append(data_dir)
        url = f"https://127.0.0.1:{ports[n][0]}"
        peer = f"http://127.0.0.1:{ports[n][1]}"
        proc = subprocess.Popen(
            [etcd, "--name", n, "--data-dir", data_dir, *testpki.get().etcd_server_flags(),
             "--listen-client-urls", url, "--advertise-client-urls", url, "--listen-peer-urls", peer,
             "--initial-advertise-peer-urls", peer, "--initial-cluster", cluster, "--initial-cluster-state", "new",
             "--log-level", "error", *limits.etcd_flags()],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out.append(Member(n, url, proc))
    try:
        yield out
    finally:
        for m in out:
            m.proc.kill()
            m.proc.wait()
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)


async def status(member: Member) -> rpc.StatusResponse | None:
    conn = etcd_connection(member.url)
    try:
        return await rpc.MaintenanceStub(conn.channel).Status(rpc.StatusRequest(), timeout=1.0)
    except Exception:
        return None
    finally:
        await conn.close()


async def leader_of(members: list[Member]) -> Member:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for m in members:
            s = await status(m)
            if s is not None and s.leader != 0 and s.leader == s.header.member_id:
                return m
        await asyncio.sleep(0.2)
    raise AssertionError("no etcd leader within 30 s")
