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
MAX_BATCH = 250  # events written together at most: one CreateMany


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
            # What queued while the last write was out goes together: a scheduler's thousand Scheduled events
            # become a few CreateMany calls rather than a thousand Creates.
            events = [await self._queue.get()]
            while len(events) < MAX_BATCH and not self._queue.empty():
                events.append(self._queue.get_nowait())
            await self._write(events)

    async def _write(self, events: list[core_pb2.Event]) -> None:
        now = time.monotonic()
        repeats, new = aggregate(events, self._seen, now)

        async def count(key: Key, repeat: core_pb2.Event, ev: core_pb2.Event) -> None:
            try:
                self._seen[key] = (await self.client.update(repeat), now)
            except NotFoundError:  # deleted since: written anew
                new.append((key, ev))
            except ApiError as e:
                log.debug("event_dropped", reason=ev.reason, error=e.message)

        await asyncio.gather(*(count(*r) for r in repeats))  # each key once in a batch: no two race
        created = await self.client.create_all([ev for _, ev in new])
        for (key, ev), answer in zip(new, created, strict=True):
            if isinstance(answer, ApiError):
                log.debug("event_dropped", reason=ev.reason, error=answer.message)
            elif isinstance(answer, BaseException):
                raise answer
            else:
                self._seen[key] = (answer, now)
        if len(self._seen) > 10000:
            cutoff = now - AGGREGATE_WINDOW
            self._seen = {k: v for k, v in self._seen.items() if v[1] > cutoff}


Key = tuple[str, str, str, str]


def aggregate(events: list[core_pb2.Event], seen: dict[Key, tuple[core_pb2.Event, float]], now: float,
              ) -> tuple[list[tuple[Key, core_pb2.Event, core_pb2.Event]], list[tuple[Key, core_pb2.Event]]]:
    """Events to write, taken together: repeats among them fold into one event with their count; one written
    within the window gets an update raising its count (with the event to create should it be gone); the rest
    are new. Returns (key, update, event) and (key, event)."""
    folded: dict[Key, core_pb2.Event] = {}
    for ev in events:
        ref = ev.involved_object
        key = (ref.uid or f"{ref.namespace}/{ref.name}", ev.reason, ev.message, ev.type)
        first = folded.get(key)
        if first is None:
            folded[key] = ev
        else:
            first.count += ev.count
            first.last_timestamp.CopyFrom(ev.last_timestamp)
    repeats: list[tuple[Key, core_pb2.Event, core_pb2.Event]] = []
    new: list[tuple[Key, core_pb2.Event]] = []
    for key, ev in folded.items():
        last = seen.get(key)
        if last is not None and now - last[1] < AGGREGATE_WINDOW:
            repeat = core_pb2.Event()
            repeat.CopyFrom(last[0])
            repeat.metadata.resource_version = ""  # the recorder owns its events: last write wins
            repeat.count += ev.count
            repeat.last_timestamp.CopyFrom(ev.last_timestamp)
            repeats.append((key, repeat, ev))
        else:
            new.append((key, ev))
    return repeats, new
