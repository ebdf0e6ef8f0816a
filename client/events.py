"""Event recording: what controllers did, as Events a user reads with `get events` and `describe`.

Recording never blocks the caller. Repeats of the same event for the same
object within ten minutes raise the count of one Event instead of adding more:
the recorder updates the copy it last wrote, without reading it back, so an
identity that may only create and update Events (a kubelet) aggregates too.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog
from google.protobuf.message import Message

from api import kinds
from api.errors import ApiError, NotFoundError
from api.pb import core_pb2, meta_pb2
from api.timestamps import timestamp
from client.api import Client

log = structlog.get_logger()

AGGREGATE_WINDOW = 600.0
MAX_QUEUE = 5000


def reference(obj: Message) -> meta_pb2.ObjectReference:
    kind = kinds.of(obj)
    meta = obj.metadata  # type: ignore[attr-defined]
    return meta_pb2.ObjectReference(kind=kind.kind, namespace=meta.namespace, name=meta.name, uid=meta.uid,
                                    api_version=kind.api_version, resource_version=meta.resource_version)


class EventRecorder:
    def __init__(self, client: Client, component: str, *, host: str = "") -> None:
        self.client = client
        self.component = component
        self.host = host
        self._queue: asyncio.Queue[core_pb2.Event] = asyncio.Queue(MAX_QUEUE)
        self._seen: dict[tuple[str, str, str, str], tuple[core_pb2.Event, float]] = {}

    def event(self, obj: Message, type_: str, reason: str, message: str) -> None:
        """Record an event about `obj` (type Normal or Warning); dropped if the queue is full."""
        ref = reference(obj)
        ts = timestamp()
        ev = core_pb2.Event(
            # The object's name is cut so that the event's name stays a valid (<= 253) name.
            metadata={"name": f"{ref.name[:236]}.{time.time_ns():x}", "namespace": ref.namespace or "default"},
            involved_object=ref, reason=reason, message=message, type=type_, count=1,
            source=core_pb2.EventSource(component=self.component, host=self.host),
            reporting_component=self.component, reporting_instance=self.host,
        )
        ev.first_timestamp.CopyFrom(ts)
        ev.last_timestamp.CopyFrom(ts)
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(ev)

    async def run(self) -> None:
        while True:
            ev = await self._queue.get()
            try:
                await self._write(ev)
            except ApiError as e:
                log.debug("event_dropped", reason=ev.reason, error=e.message)

    async def _write(self, ev: core_pb2.Event) -> None:
        ref = ev.involved_object
        key = (ref.uid or f"{ref.namespace}/{ref.name}", ev.reason, ev.message, ev.type)
        seen = self._seen.get(key)
        now = time.monotonic()
        if seen is not None and now - seen[1] < AGGREGATE_WINDOW:
            repeat = core_pb2.Event()
            repeat.CopyFrom(seen[0])
            repeat.metadata.resource_version = ""  # the recorder owns its events: last write wins
            repeat.count += 1
            repeat.last_timestamp.CopyFrom(ev.last_timestamp)
            try:
                self._seen[key] = (await self.client.update(repeat), now)
                return
            except NotFoundError:
                pass
        self._seen[key] = (await self.client.create(ev), now)
        if len(self._seen) > 10000:
            cutoff = now - AGGREGATE_WINDOW
            self._seen = {k: v for k, v in self._seen.items() if v[1] > cutoff}
