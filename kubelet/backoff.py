"""Per-key exponential back-off, as client-go's flowcontrol.Backoff the kubelet uses.

A key's delay starts at `initial` and doubles on each `next` up to `max`; an
entry untouched for twice `max` starts over. "In back-off since t" means less
than the current delay has passed since t (a container's exit, a failed pull).
Times are seconds on the caller's clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class _Entry:
    delay: float
    last_update: float


@dataclass
class Backoff:
    initial: float = 10.0
    max: float = 300.0
    _entries: dict[str, _Entry] = field(default_factory=dict)

    def delay(self, key: str) -> float:
        """The current delay of a key (0 if it has none)."""
        entry = self._entries.get(key)
        return entry.delay if entry else 0.0

    def next(self, key: str, event_time: float) -> float:
        """Record an event (a restart, a failed pull) and return the delay now in force."""
        entry = self._entries.get(key)
        if entry is None or event_time - entry.last_update > 2 * self.max:
            entry = self._entries[key] = _Entry(self.initial, event_time)
        else:
            entry.delay = min(entry.delay * 2, self.max)
            entry.last_update = event_time
        return entry.delay

    def in_backoff_since(self, key: str, event_time: float, now: float) -> bool:
        entry = self._entries.get(key)
        return entry is not None and now - event_time < entry.delay

    def in_backoff_since_update(self, key: str, now: float) -> bool:
        """Still within the delay counted from the key's last event (a failed pull)."""
        entry = self._entries.get(key)
        return entry is not None and now - entry.last_update < entry.delay

    def remaining_since_update(self, key: str, now: float) -> float:
        entry = self._entries.get(key)
        return max(0.0, entry.last_update + entry.delay - now) if entry else 0.0

    def remaining(self, key: str, event_time: float, now: float) -> float:
        """Seconds until the back-off since event_time ends (0 when not in back-off)."""
        entry = self._entries.get(key)
        return max(0.0, event_time + entry.delay - now) if entry else 0.0

    def forget_prefix(self, prefix: str) -> None:
        """Drop every key of a pod (keys start with its uid)."""
        for key in [k for k in self._entries if k.startswith(prefix)]:
            del self._entries[key]

    def gc(self, now: float) -> None:
        """Drop entries that would start over anyway."""
        for key in [k for k, e in self._entries.items() if now - e.last_update > 2 * self.max]:
            del self._entries[key]
