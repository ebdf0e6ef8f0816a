"""Server-side limits on the streams the apiserver proxies to kubelets: log follows end, exec timeouts are capped,
and one connection may hold only so many at once."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from conftest import start_apiserver

from api.errors import InvalidError, TimeoutError_, TooManyRequestsError
from api.pb import api_pb2
from apiserver.overload import OverloadLimits

from .kubelethelp import config, kubelet, pod, pod_where, running_ready
from .test_kubelet_fake import CHATTY, fake

LIMITS = OverloadLimits(max_follow_seconds=1.5, max_exec_seconds=30, streams_per_connection=2, streams_per_client=3)


async def test_follow_and_exec_have_server_side_limits(etcd: str, tmp_path: Path) -> None:
    """A log follow ends with DEADLINE_EXCEEDED at the server's limit; exec beyond its timeout cap is refused
    naming the field; a third concurrent follow on one connection gets RESOURCE_EXHAUSTED, not CANCELLED."""
    server = await start_apiserver(etcd, overload=LIMITS)
    try:
        async with server.client() as client, \
                kubelet(client, fake(), config("node-s", tmp_path, node_ip="127.0.0.1")):
            await client.create(pod("talk", "node-s", {"name": "main", "image": CHATTY}))
            await pod_where(client, "talk", running_ready)
            follow = api_pb2.LogsRequest(namespace="default", name="talk", follow=True)

            start = time.monotonic()
            got = b""
            with pytest.raises(TimeoutError_, match=r"log follow ended at the server's limit of 1\.5 seconds"):
                async for chunk in client.logs(follow):
                    got += chunk
            assert got == b"hello\nworld\n"
            assert 1.4 < time.monotonic() - start < 10

            with pytest.raises(InvalidError, match=r"timeoutSeconds: Invalid value: 3600: must be between 0 and 30"):
                await client.exec("default", "talk", ["x"], timeout_seconds=3600)
            resp = await client.exec("default", "talk", ["x"], timeout_seconds=30)
            assert resp.exit_code == 3

            async def drain() -> None:
                async for _ in client.logs(follow):
                    pass

            held = [asyncio.ensure_future(drain()) for _ in range(2)]
            await asyncio.sleep(0.5)  # both follows are open
            with pytest.raises(TooManyRequestsError, match=r"too many concurrent log and exec streams from this "
                                                           r"connection \(limit 2\)"):
                await drain()
            results = await asyncio.gather(*held, return_exceptions=True)
            assert all(isinstance(r, TimeoutError_) for r in results), results
    finally:
        await server.stop()
