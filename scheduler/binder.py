"""The scheduler's binds, sent together.

Binds started while earlier ones are on their way wait for a free call and go
in one BindMany call (each is still authorized, applied and answered on its
own), so under load a call carries tens of binds and at rest a bind goes out
at once. Against a server without BindMany, one Bind per pod.
"""

from __future__ import annotations

import asyncio

from api.errors import ApiError, UnimplementedError
from api.pb import api_pb2
from client.api import Client

# BindMany calls in flight at once, and the most binds one call carries.
CALLS = 2
MAX_BATCH = 250

_Pending = tuple[api_pb2.BindRequest, "asyncio.Future[None]"]


class Binder:
    def __init__(self, client: Client, *, calls: int = CALLS, max_batch: int = MAX_BATCH) -> None:
        self.client = client
        self.max_batch = max_batch
        self.batched = True  # False once the server answered BindMany UNIMPLEMENTED
        self._slots = asyncio.Semaphore(calls)
        self._pending: list[_Pending] = []
        self._wake = asyncio.Event()

    async def bind(self, namespace: str, name: str, node: str, *, uid: str = "") -> None:
        """Bind one pod (only the incarnation `uid`); raises the ApiError its own Bind would have raised."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((api_pb2.BindRequest(namespace=namespace, name=name, node_name=node, uid=uid), done))
        self._wake.set()
        await done

    async def run(self) -> None:
        """Send the pending binds until cancelled; binds still waiting then are cancelled too."""
        try:
            async with asyncio.TaskGroup() as tg:
                while True:
                    await self._wake.wait()
                    self._wake.clear()
                    while self._pending:
                        await self._slots.acquire()  # meanwhile more binds gather for this call
                        batch, self._pending = self._pending[:self.max_batch], self._pending[self.max_batch:]
                        tg.create_task(self._send(batch))
        finally:
            for _, done in self._pending:
                done.cancel()
            self._pending.clear()

    async def _send(self, batch: list[_Pending]) -> None:
        answers: list[BaseException | None]
        try:
            answers = await self._call([req for req, _ in batch])
        except asyncio.CancelledError:
            for _, done in batch:
                done.cancel()
            raise
        except Exception as e:  # not an answer from the server: each bind fails with it
            answers = [e] * len(batch)
        finally:
            self._slots.release()
        for (_, done), answer in zip(batch, answers, strict=True):
            if done.done():
                continue
            if answer is None:
                done.set_result(None)
            else:
                done.set_exception(answer)

    async def _call(self, reqs: list[api_pb2.BindRequest]) -> list[BaseException | None]:
        if self.batched:
            try:
                return list(await self.client.bind_many(reqs))
            except UnimplementedError:
                self.batched = False  # a server before BindMany
            except ApiError as e:
                return [e] * len(reqs)  # refused whole: no pod of it was bound

        async def one(req: api_pb2.BindRequest) -> None:
            await self.client.bind(req.namespace, req.name, req.node_name, uid=req.uid)

        return list(await asyncio.gather(*(one(r) for r in reqs), return_exceptions=True))
