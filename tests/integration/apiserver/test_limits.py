"""Writes within etcd's limits: wide Services, huge objects and stricter etcds never fail an unrelated write."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import grpc
import pytest
import testpki
from conftest import Etcd, start_etcd, stop_etcd

from api.errors import InvalidError, TooLargeError
from api.pb import core_pb2
from apiserver.storage.etcd import EtcdStorage, parse_endpoints
from apiserver.storage.interface import Create
from apiserver.storage.limits import MAX_OBJECT_BYTES, Limits
from client.api import Client

from .helpers import pod, service


def wide_service(name: str, ports: int, *, type_: str = "NodePort") -> core_pb2.Service:
    """A Service with `ports` named TCP ports (each a NodePort claim when of type NodePort)."""
    return service(name, type_=type_, ports=[{"name": f"p{i}", "port": 1000 + i} for i in range(ports)])


async def test_many_creates_beside_wide_node_port_services_all_succeed(client: Client) -> None:
    """800 concurrent pod creates beside six 70-port NodePort Services: every write succeeds."""
    pods = [client.create(pod(f"p-{i}")) for i in range(800)]
    services = [client.create(wide_service(f"wide-{i}", 70)) for i in range(6)]
    results = await asyncio.gather(*pods, *services, return_exceptions=True)
    failed = [r for r in results if isinstance(r, BaseException)]
    assert not failed, failed[:3]
    listed = await client.list("pods", namespace="default")
    assert len(listed.items) == 800
    for svc in results[800:]:
        assert len({p.node_port for p in svc.spec.ports}) == 70  # type: ignore[union-attr]


@pytest.mark.parametrize("ports", [pytest.param(100, id="100-ports"), pytest.param(130, id="130-ports")])
async def test_node_port_service_with_many_ports_is_accepted(client: Client, ports: int) -> None:
    """A NodePort Service with 100 or 130 ports is created, every port with its own node port, and deleted."""
    created = await client.create(wide_service("many", ports))
    assert len({p.node_port for p in created.spec.ports}) == ports
    await client.delete("services", "many", "default")
    again = await client.create(wide_service("many", ports))  # the claims were released with it
    assert len(again.spec.ports) == ports


async def test_oversized_object_gets_a_clear_error_that_is_not_retryable(client: Client) -> None:
    """A 2 MiB pod is refused with RESOURCE_EXHAUSTED naming it and the limit; writes beside it succeed,
    and an object just under the limit is stored."""
    big = pod("big")
    big.spec.containers[0].args.append("x" * (2 * 1024 * 1024))
    others = [client.create(pod(f"beside-{i}")) for i in range(100)]
    results = await asyncio.gather(client.create(big), *others, return_exceptions=True)
    err = results[0]
    assert isinstance(err, TooLargeError), err
    assert err.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert err.message == f'pods "big" in namespace default: object is larger than {MAX_OBJECT_BYTES} bytes'
    assert not [r for r in results[1:] if isinstance(r, BaseException)]
    with pytest.raises(Exception, match="not found"):
        await client.get("pods", "big", "default")
    fits = pod("fits")
    fits.spec.containers[0].args.append("x" * (MAX_OBJECT_BYTES - 4096))
    assert len((await client.create(fits)).spec.containers[0].args[0]) == MAX_OBJECT_BYTES - 4096


@contextlib.asynccontextmanager
async def storage_on(etcd: Etcd, limits: Limits) -> AsyncIterator[EtcdStorage]:
    """EtcdStorage with group commit running, writing within `limits`."""
    storage = EtcdStorage(parse_endpoints(etcd.url), limits, tls_files=testpki.get().etcd_tls())
    await storage.connect()
    runner = asyncio.create_task(storage.run_group_commit())
    await asyncio.sleep(0)  # run() marks the committer running on its first step
    assert storage._committer.running
    try:
        yield storage
    finally:
        runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await runner
        await storage.close()


def _create_ops(name: str, claims: int = 0) -> list[Create]:
    value = pod(name).SerializeToString()
    return [Create(f"/registry/pods/default/{name}", value),
            *(Create(f"/registry/ranges/test/{name}/{i}", b"") for i in range(claims))]


async def test_group_commit_fits_etcds_default_limits() -> None:
    """Against an etcd with its default limits (128 operations, 1.5 MiB), told to the storage: 800 creates and
    six 72-operation writes at once all commit, and etcd refuses no batch."""
    etcd = start_etcd(limit_flags=[])
    try:
        limits = Limits(max_txn_ops=128, max_request_bytes=1536 * 1024, max_object_bytes=1024 * 1024)
        async with storage_on(etcd, limits) as storage:
            writes = [storage.commit(_create_ops(f"p{i}")) for i in range(800)]
            writes += [storage.commit(_create_ops(f"wide{i}", claims=71)) for i in range(6)]
            results = await asyncio.gather(*writes, return_exceptions=True)
            assert not [r for r in results if isinstance(r, BaseException)]
            assert storage._committer.resent == 0
            assert storage._committer.batches < 400  # they did share transactions
            with pytest.raises(InvalidError, match=r"129 etcd operations.*--etcd-max-txn-ops \(128\)"):
                await storage.commit(_create_ops("too-wide", claims=128))
    finally:
        stop_etcd(etcd)


async def test_stricter_etcd_refusing_a_batch_fails_only_the_write_it_cannot_take() -> None:
    """An etcd with lower limits than the apiserver was told refuses a batch; each write is then sent alone, so
    only the write etcd cannot take at all fails, with INVALID_ARGUMENT, and every other one commits."""
    etcd = start_etcd(limit_flags=["--max-txn-ops", "50"])
    try:
        async with storage_on(etcd, Limits()) as storage:
            writes = [storage.commit(_create_ops(f"p{i}")) for i in range(30)]
            writes.insert(10, storage.commit(_create_ops("wide", claims=60)))
            results = await asyncio.gather(*writes, return_exceptions=True)
            assert isinstance(results[10], InvalidError), results[10]
            assert "more operations than etcd accepts" in results[10].message
            assert 'pods "wide" in namespace default' in results[10].message
            assert not [r for i, r in enumerate(results) if i != 10 and isinstance(r, BaseException)]
            assert storage._committer.resent >= 1
    finally:
        stop_etcd(etcd)
