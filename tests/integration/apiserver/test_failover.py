"""A client given several apiservers leaves one that stops answering without closing its connection (a machine
cut off from the network) within 5 s: its HTTP/2 pings go unanswered."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator

from conftest import RunningApiserver

from api.errors import ApiError
from client.api import Client

from .helpers import pod


class CutLink:
    """A TCP relay to an apiserver; cut, it keeps every connection open and passes nothing, as a dropped link."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.open = asyncio.Event()
        self.open.set()
        self.port = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            await self.open.wait()  # cut: held for ever, neither delivered nor refused
            writer.write(data)
            await writer.drain()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._relay(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[CutLink]:
        server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)


async def test_a_silent_apiserver_is_left_within_five_seconds(apiserver: RunningApiserver) -> None:
    port = int(apiserver.address.rpartition(":")[2])
    async with CutLink(port).running() as link:
        listed = f"127.0.0.1:{link.port},{apiserver.address}"
        async with Client(dataclasses.replace(apiserver.conn, server=listed)) as c:
            await c.create(pod("through-the-link"))
            assert link._tasks, "the first listed apiserver (the relay) carries the calls"
            link.open.clear()
            cut = time.monotonic()
            written = None
            for attempt in range(20):
                try:
                    # Default deadlines (30 s), as a controller's calls: only the silence may end the wait.
                    async with asyncio.timeout(cut + 6.0 - time.monotonic()):
                        written = await c.create(pod(f"after-the-cut-{attempt}"))
                    break
                except ApiError:
                    continue  # the call the dead connection took with it
            assert written is not None and time.monotonic() - cut < 5.0
            names = {p.metadata.name for p in await c.list_all("pods", "default")}
            assert {"through-the-link", written.metadata.name} <= names
