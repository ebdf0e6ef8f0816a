"""Event recording for controllers, with Kubernetes' spam filter in front of the client's recorder.

A replicaset creating a thousand pods would otherwise write a thousand
SuccessfulCreate events while the apiserver is busiest. As in client-go's
EventSourceObjectSpamFilter, each (object, type, reason) gets a burst of 25
events, then one more per five minutes; the rest are dropped.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from google.protobuf.message import Message

from client.api import Client
from client.events import EventRecorder

SPAM_BURST = 25
SPAM_REFILL_SECONDS = 300.0


class Recorder:
    def __init__(self, client: Client, component: str, *, burst: int = SPAM_BURST,
                 refill_seconds: float = SPAM_REFILL_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.component = component
        self.inner = EventRecorder(client, component)
        self.burst = burst
        self.refill_seconds = refill_seconds
        self._clock = clock
        self._buckets: dict[tuple[str, str, str], tuple[float, float]] = {}
        self.dropped = 0

    def allow(self, uid: str, type_: str, reason: str) -> bool:
        """Take a token for this (object, type, reason); False when the bucket is empty."""
        key = (uid, type_, reason)
        now = self._clock()
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) / self.refill_seconds)
        if tokens < 1.0:
            self._buckets[key] = (tokens, now)
            return False
        self._buckets[key] = (tokens - 1.0, now)
        if len(self._buckets) > 50000:
            self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < self.refill_seconds}
        return True

    def event(self, obj: Message, type_: str, reason: str, message: str) -> None:
        meta = obj.metadata  # type: ignore[attr-defined]
        if not self.allow(meta.uid or f"{meta.namespace}/{meta.name}", type_, reason):
            self.dropped += 1
            return
        self.inner.event(obj, type_, reason, message)

    def normal(self, obj: Message, reason: str, message: str) -> None:
        self.event(obj, "Normal", reason, message)

    def warning(self, obj: Message, reason: str, message: str) -> None:
        self.event(obj, "Warning", reason, message)

    async def run(self) -> None:
        await self.inner.run()
