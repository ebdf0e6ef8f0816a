"""Many watches of one client over one WatchMany stream (`Client(..., multiplex_watches=True)`).

A process that watches many things (a controller manager's informers) otherwise holds one gRPC stream per
watch. Over one stream each watch still starts, is authorized and ends as its own Watch would, and ends alone;
the stream's loss ends every watch on it, as a lost channel ends every Watch, and the next watch opens a new
stream. A server without WatchMany answers UNIMPLEMENTED, and the client goes back to one Watch per watch.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc

from api.errors import ApiError, ExpiredError, UnavailableError, from_grpc
from api.pb import api_pb2

# Messages a watch's reader may leave unread before the watch is ended (ExpiredError: relist and watch again),
# so that one slow reader neither holds up the others on the stream nor piles up memory.
MAX_UNREAD = 1024
_CODES = {code.value[0]: code for code in grpc.StatusCode}


class Unsupported(Exception):
    """The server has no WatchMany."""


class WatchMux:
    def __init__(self, open_call: Callable[[], Awaitable[grpc.aio.StreamStreamCall]],
                 error: Callable[[grpc.aio.AioRpcError], ApiError]) -> None:
        self._open_call = open_call
        self._error = error
        self._call: grpc.aio.StreamStreamCall | None = None
        self._reader: asyncio.Task[None] | None = None
        self._opening = asyncio.Lock()
        self._writing = asyncio.Lock()  # gRPC takes one write at a time on a call
        self._ids = itertools.count(1)
        # Each watch's stream and what came for it not yet read (answers, or the error that ends it).
        self._watches: dict[int, tuple[grpc.aio.StreamStreamCall, asyncio.Queue[
            api_pb2.WatchManyEvents | BaseException]]] = {}
        self.supported = True

    async def watch(self, req: api_pb2.WatchRequest) -> AsyncIterator[api_pb2.WatchManyEvents]:
        """The answers of one watch as they come; raises the error its own Watch would end with (Unsupported:
        the server has no WatchMany, and nothing came)."""
        call = await self._stream()
        id_ = next(self._ids)
        queue: asyncio.Queue[api_pb2.WatchManyEvents | BaseException] = asyncio.Queue()
        self._watches[id_] = (call, queue)
        try:
            if self._call is not call:  # the stream ended before the watch was known to its reader
                raise UnavailableError("the watch stream ended") if self.supported else Unsupported()
            await self._write(call, api_pb2.WatchManyRequest(id=id_, start=req))
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                if item.code:
                    raise from_grpc(_CODES.get(item.code, grpc.StatusCode.UNKNOWN), item.message)
                yield item
        finally:
            if self._watches.pop(id_, None) is not None:
                await self._stop(call, id_)

    async def close(self) -> None:
        if self._call is not None:
            self._call.cancel()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    async def _stream(self) -> grpc.aio.StreamStreamCall:
        async with self._opening:
            if self._call is None:
                self._call = await self._open_call()
                self._reader = asyncio.create_task(self._read(self._call))  # cancelled by close()
            return self._call

    async def _write(self, call: grpc.aio.StreamStreamCall, req: api_pb2.WatchManyRequest) -> None:
        try:
            async with self._writing:
                await call.write(req)
        except (grpc.aio.AioRpcError, grpc.aio.UsageError, asyncio.InvalidStateError):
            pass  # the stream is gone: its reader ends every watch on it

    async def _stop(self, call: grpc.aio.StreamStreamCall, id_: int) -> None:
        if self._call is call and not call.done():
            await self._write(call, api_pb2.WatchManyRequest(id=id_))

    async def _read(self, call: grpc.aio.StreamStreamCall) -> None:
        """Hand each answer to its watch; when the stream ends, end every watch on it."""
        end: BaseException = UnavailableError("the watch stream ended")
        try:
            async for resp in call:
                for answer in resp.watches:
                    entry = self._watches.get(answer.id)
                    if entry is None:
                        continue  # a watch stopped meanwhile
                    queue = entry[1]
                    if queue.qsize() >= MAX_UNREAD:  # what it has not read is dropped; it reads its end next
                        while not queue.empty():
                            queue.get_nowait()
                        queue.put_nowait(ExpiredError("watch fell too far behind; resume from the last "
                                                      "resourceVersion"))
                        continue
                    queue.put_nowait(answer)
        except grpc.aio.AioRpcError as e:
            if e.code() == grpc.StatusCode.UNIMPLEMENTED:
                self.supported = False
                end = Unsupported()
            else:
                end = self._error(e)
        except asyncio.CancelledError:
            end = UnavailableError("the client closed")
            raise
        finally:
            if self._call is call:
                self._call = None
            for id_, (on, queue) in list(self._watches.items()):
                if on is call:
                    del self._watches[id_]
                    queue.put_nowait(end)
