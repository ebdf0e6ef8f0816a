"""A bounded-frequency runner: merge bursts of requests into one run, at most one run per interval.

Like kube-proxy's BoundedFrequencyRunner: `request()` asks for a run; the run
starts at once if the previous one started at least `min_interval` ago, else as
soon as that much time has passed, so a change is acted on within
`min_interval` and a burst of changes costs one run. With no requests, it runs
every `max_interval` anyway.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable


class BoundedFrequencyRunner:
    def __init__(self, fn: Callable[[], Awaitable[None]], *, min_interval: float, max_interval: float) -> None:
        if min_interval < 0 or max_interval <= 0:
            raise ValueError("min_interval must be >= 0 and max_interval > 0")
        self.fn = fn
        self.min_interval = min_interval
        self.max_interval = max_interval
        self._requested = asyncio.Event()
        self._last = -math.inf
        self.runs = 0

    def request(self) -> None:
        """Ask for a run (cheap; safe to call from event handlers)."""
        self._requested.set()

    async def run(self) -> None:
        """Run `fn` as requested until cancelled; the first run happens at once."""
        self._requested.set()
        while True:
            idle = self._last + self.max_interval - time.monotonic()
            if idle > 0 and not self._requested.is_set():
                try:
                    async with asyncio.timeout(idle):
                        await self._requested.wait()
                except TimeoutError:
                    pass
            wait = self._last + self.min_interval - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            self._requested.clear()
            self._last = time.monotonic()
            self.runs += 1
            await self.fn()
