"""The watch cache: one etcd watch feeds an in-memory copy of every kind.

List, Get and Watch are served from memory. Each change is decoded once and
its wire frames are encoded once, then shared by every watcher, so a thousand
watchers cost etcd one stream and the apiserver one encode per change.

Revisions are etcd's: an object's resourceVersion is its mod revision, and
the cache's `revision` is the newest store revision it has applied (for every
kind at once, because there is one stream).
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import contextlib
import json
import uuid
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import structlog
from google.protobuf.message import DecodeError, Message
from prometheus_client import Counter

from api import kinds, labels
from api.errors import ExpiredError, InvalidError, TimeoutError_, UnavailableError
from api.pb import meta_pb2
from apiserver import rules, wire
from apiserver.storage.interface import CompactedError, Create, Event, Storage, WatchMovedError

log = structlog.get_logger(component="apiserver")

PREFIX = "/registry/"

# Per kind, changes kept for watchers resuming from an older resourceVersion.
HISTORY = 20000
# On start, the cache replays this many store revisions, so a watcher that was
# connected to an apiserver before it restarted can resume where it was.
REPLAY = 20000
# A watcher that falls this many changes behind is cut off and must resume.
MAX_PENDING = 100000
# Keys the cache writes to learn when its watch has caught up (see WatchCache._mark); they expire.
MARK_PREFIX = "cachesync/"
MARK_TTL = 60
# A stalled watch is started again at most this often (a cache merely slow to catch up is not restarted in a loop).
STALL_RESTART_EVERY = 5.0
STALL_CHECK_TIMEOUT = 2.0
# Watch pacing (see watch_pause): a message costs the server ~30 us of CPU whatever it carries, so with
# many watchers a watcher that sent moments ago waits, and its next message carries everything since.
# The server then sends at most about WATCH_MESSAGE_RATE messages a second in all, and adds at most
# WATCH_MAX_PAUSE to any event's delivery; an idle watch still sends its first event at once.
WATCH_MESSAGE_RATE = 10000
WATCH_MIN_PAUSE = 0.002
WATCH_MAX_PAUSE = 0.1
# Values under the prefix that do not decode as their kind (written by something other than an
# apiserver, or damaged): skipped, counted, and logged once each.
UNDECODABLE = Counter("apiserver_storage_undecodable_values_total",
                      "Values in etcd that do not decode as their kind, by resource", ["resource"])
_LOGGED_MAX = 10000


def object_key(kind: kinds.Kind, namespace: str, name: str) -> str:
    if kind.namespaced:
        return f"{PREFIX}{kind.resource}/{namespace}/{name}"
    return f"{PREFIX}{kind.resource}/{name}"


def kind_prefix(kind: kinds.Kind, namespace: str = "") -> str:
    if kind.namespaced and namespace:
        return f"{PREFIX}{kind.resource}/{namespace}/"
    return f"{PREFIX}{kind.resource}/"


def _rv_fragment(rev: int) -> bytes:
    # Appending `metadata { resourceVersion: rev }` merges into the stored bytes:
    # protobuf merges repeated occurrences of an embedded message field.
    return wire.field_bytes(3, wire.field_bytes(5, str(rev).encode()))


@dataclass(slots=True)
class Entry:
    obj: Message  # typed object with metadata.resourceVersion set; never mutate
    rev: int
    item: bytes  # the Object envelope, encoded


@dataclass(slots=True)
class Change:
    type: str  # ADDED, MODIFIED, DELETED
    key: str
    obj: Message
    old: Message | None
    rev: int
    item: bytes
    _frames: dict[str, bytes] = field(default_factory=dict)

    def frame(self, type_: str) -> bytes:
        """This change as one encoded WatchEvent inside a WatchEvents message."""
        cached = self._frames.get(type_)
        if cached is None:
            ev = (wire.field_bytes(1, type_.encode()) + wire.field_bytes(2, self.item)
                  + wire.field_bytes(3, str(self.rev).encode()))
            cached = self._frames[type_] = wire.field_bytes(1, ev)
        return cached


def bookmark_frame(kind: kinds.Kind, rev: int) -> bytes:
    obj = kind.cls(metadata=meta_pb2.ObjectMeta(resource_version=str(rev)))
    item = wire.field_bytes(kinds.wrap(obj).DESCRIPTOR.fields_by_name[kind.field].number, obj.SerializeToString())
    ev = wire.field_bytes(1, b"BOOKMARK") + wire.field_bytes(2, item) + wire.field_bytes(3, str(rev).encode())
    return wire.field_bytes(1, ev)


@dataclass(frozen=True)
class Filter:
    namespace: str = ""
    label: labels.Selector = labels.EVERYTHING
    fields: tuple[labels.FieldRequirement, ...] = ()

    def matches(self, obj: Message) -> bool:
        meta = obj.metadata  # type: ignore[attr-defined]
        if self.namespace and meta.namespace != self.namespace:
            return False
        if not self.label.empty and not self.label.matches(meta.labels):
            return False
        return not self.fields or labels.fields_match(self.fields, labels.field_values(obj))


def frame_for(flt: Filter, change: Change) -> bytes | None:
    """The frame a watcher with this filter gets for this change; None if the change is not its business."""
    new_ok = flt.matches(change.obj)
    if change.type == "DELETED":
        return change.frame("DELETED") if new_ok else None
    old_ok = change.old is not None and flt.matches(change.old)
    if new_ok:
        return change.frame("MODIFIED" if old_ok else "ADDED")
    # It left the selection: to this watcher it is gone.
    return change.frame("DELETED") if old_ok else None


# Watchers grouped by filter: a change is matched once per distinct filter, however many watch with it
# (a thousand proxies watching every Service share one).
Watchers = dict[Filter, set["Watcher"]]


def _offer(groups: Watchers, change: Change) -> None:
    for flt, watchers in groups.items():
        frame = frame_for(flt, change)
        if frame is not None:
            for w in watchers:
                w._push(frame, change.rev)


def _join(groups: Watchers, w: Watcher) -> None:
    groups.setdefault(w.filter, set()).add(w)


def _leave(groups: Watchers, w: Watcher) -> None:
    group = groups.get(w.filter)
    if group is not None:
        group.discard(w)
        if not group:
            del groups[w.filter]


class Watcher:
    """One client's watch: frames queue up here until its stream sends them."""

    def __init__(self, store: Store, flt: Filter, *, bookmarks: bool) -> None:
        self.store = store
        self.filter = flt
        self.bookmarks = bookmarks
        self.pending: list[bytes] = []
        self.revs: list[int] = []  # the revision of each pending frame
        self.ready = asyncio.Event()
        self.sent_rev = 0
        self.error: Exception | None = None

    def offer(self, change: Change) -> None:
        frame = frame_for(self.filter, change)
        if frame is not None:
            self._push(frame, change.rev)

    def _push(self, frame: bytes, rev: int) -> None:
        if self.error is not None:
            return
        self.sent_rev = rev
        self.pending.append(frame)
        self.revs.append(rev)
        if len(self.pending) > MAX_PENDING:
            self.pending.clear()
            self.revs.clear()
            self.error = ExpiredError("watch fell too far behind; resume from the last resourceVersion")
        self.ready.set()

    def fail(self, error: Exception) -> None:
        self.error = error
        self.ready.set()

    def push_frame(self, frame: bytes, rev: int) -> None:
        self.pending.append(frame)
        self.revs.append(rev)

    def take(self, max_bytes: int) -> bytes:
        """Pending frames, about `max_bytes` of them (large initial lists go out in pieces).

        A piece never ends inside one revision: writes committed together share a revision,
        and a client resuming from it must already have them all.
        """
        size = 0
        for n, frame in enumerate(self.pending):
            size += len(frame)
            if size >= max_bytes:
                end = n + 1
                while end < len(self.pending) and self.revs[end] == self.revs[n]:
                    end += 1
                if end < len(self.pending):
                    out, self.pending, self.revs = self.pending[:end], self.pending[end:], self.revs[end:]
                    return b"".join(out)
                break
        out, self.pending, self.revs = self.pending, [], []
        self.ready.clear()
        return b"".join(out)


class Store:
    """The cached objects of one kind, their recent changes, and their watchers."""

    def __init__(self, kind: kinds.Kind, index: rules.Index | None = None) -> None:
        self.kind = kind
        self.objects: dict[str, Entry] = {}
        self._sorted: list[str] | None = None
        # The kind's extra index (pods by spec.nodeName, for kubelets): keys by the indexed field's value.
        self.index = index if index is not None else rules.index_of(kind)
        self.by_index: dict[str, set[str]] = {}
        self.history: deque[Change] = deque()
        self.history_start = 0  # every change with rev > history_start is in history
        self.watchers: set[Watcher] = set()
        # Watchers pinned to one value of the indexed field (a kubelet's node) are offered only its changes.
        self._unindexed: Watchers = {}
        self._indexed_watchers: dict[str, Watchers] = {}  # by the value their filter pins the index to
        self._field_number = kinds.wrap(kind.cls()).DESCRIPTOR.fields_by_name[kind.field].number
        self._logged: set[tuple[str, int]] = set()
        self.version = 0  # advances on every change: readers that derive state from the store (RBAC) rebuild

    def decode(self, value: bytes, rev: int) -> Entry:
        raw = value + _rv_fragment(rev)
        obj = self.kind.cls.FromString(raw)
        return Entry(obj, rev, wire.field_bytes(self._field_number, raw))

    def written_item(self, value: bytes, rev: int) -> bytes:
        """The Object envelope of a value this server just encoded and wrote at `rev`, as decode would give it,
        without decoding what is known to decode."""
        return wire.field_bytes(self._field_number, value + _rv_fragment(rev))

    def try_decode(self, key: str, value: bytes, rev: int) -> Entry | None:
        """The entry for a value read from etcd, or None (logged once, counted) if it does not decode."""
        try:
            return self.decode(value, rev)
        except (DecodeError, RecursionError, ValueError) as e:
            UNDECODABLE.labels(self.kind.resource).inc()
            if (key, rev) not in self._logged and len(self._logged) < _LOGGED_MAX:
                self._logged.add((key, rev))
                log.error("undecodable_value_skipped", key=key, revision=rev, bytes=len(value),
                          error=f"{type(e).__name__}: {e}")
            return None

    def encode_item(self, obj: Message) -> bytes:
        return wire.field_bytes(self._field_number, obj.SerializeToString())

    def reset(self, entries: dict[str, Entry], rev: int) -> None:
        self.version += 1
        self.objects = entries
        self._sorted = None
        self.by_index = {}
        if self.index is not None:
            for key, entry in entries.items():
                self._index(key, entry.obj, add=True)
        self.history.clear()
        self.history_start = rev

    def _index(self, key: str, obj: Message, *, add: bool) -> None:
        value = self.index.value(obj)  # type: ignore[union-attr]
        if not value:
            return
        if add:
            self.by_index.setdefault(value, set()).add(key)
        else:
            keys = self.by_index.get(value)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self.by_index[value]

    def apply(self, ev: Event) -> Change | None:
        self.version += 1
        old = self.objects.get(ev.key)
        if ev.type == "DELETE" and old is None:
            return None
        entry = self.try_decode(ev.key, ev.value, ev.revision)
        if ev.type == "DELETE" or entry is None:
            # A value that does not decode is no object: one that replaces an object ends it.
            if old is None:
                return None
            del self.objects[ev.key]
            self._sorted = None
            gone = entry if entry is not None and ev.type == "DELETE" else old
            change = Change("DELETED", ev.key, gone.obj, old.obj, ev.revision, gone.item)
        else:
            self.objects[ev.key] = entry
            if old is None:
                self._sorted = None
            change = Change("MODIFIED" if old else "ADDED", ev.key, entry.obj, old.obj if old else None,
                            ev.revision, entry.item)
        if self.index is not None:
            if old is not None:
                self._index(ev.key, old.obj, add=False)
            if change.type != "DELETED":
                self._index(ev.key, change.obj, add=True)
        self.history.append(change)
        if len(self.history) > HISTORY:
            self.history_start = self.history.popleft().rev
        _offer(self._unindexed, change)
        if self._indexed_watchers:
            values = {self.index.value(change.obj)}  # type: ignore[union-attr]
            if old is not None:
                values.add(self.index.value(old.obj))  # type: ignore[union-attr]
            for value in values:
                groups = self._indexed_watchers.get(value)
                if groups:
                    _offer(groups, change)
        return change

    def _pinned(self, flt: Filter) -> str:
        """The value of the indexed field a filter is pinned to (spec.nodeName=X); "" if none."""
        if self.index is None:
            return ""
        field_ = self.index.field
        return next((f.value for f in flt.fields if f.field == field_ and f.op == "="), "")

    def add_watcher(self, w: Watcher) -> None:
        self.watchers.add(w)
        value = self._pinned(w.filter)
        _join(self._indexed_watchers.setdefault(value, {}) if value else self._unindexed, w)

    def remove_watcher(self, w: Watcher) -> None:
        self.watchers.discard(w)
        value = self._pinned(w.filter)
        if not value:
            _leave(self._unindexed, w)
            return
        groups = self._indexed_watchers.get(value)
        if groups is not None:
            _leave(groups, w)
            if not groups:
                del self._indexed_watchers[value]

    def sorted_keys(self) -> list[str]:
        if self._sorted is None:
            self._sorted = sorted(self.objects)
        return self._sorted

    def select(self, flt: Filter, *, after: str = "") -> Iterator[tuple[str, Entry]]:
        """Matching entries in key order, starting after key `after`."""
        value = self._pinned(flt)
        if value:  # objects with an empty value (unbound pods) are not indexed
            keys: Iterable[str] = sorted(k for k in self.by_index.get(value, ()) if k > after)
        else:
            keys = self.sorted_keys()
            start = kind_prefix(self.kind, flt.namespace)
            lo = bisect.bisect_right(keys, after) if after > start else bisect.bisect_left(keys, start)
            keys = _prefixed(keys, lo, start)
        for key in keys:
            entry = self.objects.get(key)
            if entry is not None and flt.matches(entry.obj):
                yield key, entry


def _prefixed(keys: list[str], lo: int, prefix: str) -> Iterator[str]:
    for i in range(lo, len(keys)):
        key = keys[i]
        if not key.startswith(prefix):
            return
        yield key


@dataclass
class ListResult:
    items: list[bytes]
    revision: int
    continue_token: str
    remaining: int

    def encode(self) -> bytes:
        out = [wire.field_bytes(1, item) for item in self.items]
        out.append(wire.field_bytes(2, str(self.revision).encode()))
        if self.continue_token:
            out.append(wire.field_bytes(3, self.continue_token.encode()))
        if self.remaining:
            out.append(wire.field_varint(4, self.remaining))
        return b"".join(out)


class WatchCache:
    """Every kind's Store, fed by one etcd watch on /registry/."""

    def __init__(self, storage: Storage, *, replay: int = REPLAY, bookmark_interval: float = 1.0) -> None:
        self.storage = storage
        self.stores = {k.kind: Store(k) for k in kinds.KINDS}
        self._by_resource = {k.resource: self.stores[k.kind] for k in kinds.KINDS}
        self.revision = 0
        self.replay = replay
        self.bookmark_interval = bookmark_interval
        self.ready = asyncio.Event()
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._catch_up_target = 0
        self.events_applied = 0
        self.watchers = 0  # open watches of every kind: they set the pace (watch_pause)
        # The newest revision this server's own writes got from etcd: the watch must deliver it. When a wait
        # for a revision that etcd has reached times out (this server's write, or one a client saw elsewhere),
        # the watch is stalled (open, sending nothing) and is started again, whatever the cause.
        self.written = 0
        self._stalled = asyncio.Event()
        self._restarted_at = -STALL_RESTART_EVERY
        self.watch_restarts = 0

    def store(self, kind: kinds.Kind) -> Store:
        return self.stores[kind.kind]

    async def run(self) -> None:
        """Load, then follow etcd until cancelled; reload if history was compacted away; watch again if the
        watch ends or stalls."""
        start = await self._load()
        backoff = 0.2
        while True:
            before = self.revision
            try:
                if await self._follow(start + 1):
                    log.warning("watch_cache_stalled", revision=self.revision, written=self.written)
            except CompactedError:
                log.warning("watch_cache_compacted", revision=self.revision)
                start = await self._load(expire_watchers=True)
                continue
            except WatchMovedError as e:  # the storage is connected elsewhere already
                log.warning("watch_cache_moved", error=str(e), revision=self.revision)
                start = self.revision
                continue
            except UnavailableError as e:
                log.warning("watch_cache_disconnected", error=str(e), revision=self.revision)
            if self.revision > before:
                backoff = 0.2
            start = self.revision
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)
            with contextlib.suppress(UnavailableError):
                await self.storage.connect(timeout=5.0)  # type: ignore[attr-defined]

    async def _follow(self, from_revision: int) -> bool:
        """Apply the watch's events until it ends (False) or is found stalled (True; the watch is cancelled)."""
        async def consume() -> None:
            async for events, rev in self.storage.watch(PREFIX, from_revision=from_revision):
                self._apply(events, rev)

        self._stalled.clear()
        follow = asyncio.ensure_future(consume())
        stalled = asyncio.ensure_future(self._stalled.wait())
        try:
            await asyncio.wait({follow, stalled}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (follow, stalled):
                task.cancel()
            await asyncio.wait({follow, stalled})
        if not follow.cancelled() and follow.exception() is not None:
            raise follow.exception()  # type: ignore[misc]
        return follow.cancelled()

    def note_written(self, revision: int) -> None:
        """A write of this server's own was stored at `revision`."""
        self.written = max(self.written, revision)

    async def _load(self, *, expire_watchers: bool = False) -> int:
        """Read every kind at one revision; return it. Starts `replay` revisions back when possible."""
        while True:
            try:
                now = await self.storage.revision()
                start = max(1, now - self.replay) if self.replay else now
                try:
                    snapshot = await self._read_all(start)
                except CompactedError:
                    start = now
                    snapshot = await self._read_all(start)
                target = await self._mark()
                break
            except (UnavailableError, CompactedError) as e:
                log.warning("watch_cache_load_failed", error=str(e))
                await asyncio.sleep(0.5)
        for kind_name, entries in snapshot.items():
            store = self.stores[kind_name]
            if expire_watchers:
                for w in list(store.watchers):
                    w.fail(ExpiredError("the watch cache was reloaded; relist"))
            store.reset(entries, start)
        self.revision = start
        self._catch_up_target = target
        log.info("watch_cache_loaded", revision=start, current=now,
                 objects=sum(len(s.objects) for s in self.stores.values()))
        self._wake()
        return start

    async def _mark(self) -> int:
        """Write a short-lived key under the prefix; return its revision.

        The cache is caught up once its watch delivers this key. etcd's own current revision
        cannot serve as that mark: the newest writes may be to keys outside the prefix, which
        this watch never sees (and etcd 3.4 stamps catch-up batches and progress answers with
        the current revision before it has sent everything).
        """
        lease = await self.storage.grant_lease(MARK_TTL)
        return await self.storage.commit([Create(f"{PREFIX}{MARK_PREFIX}{uuid.uuid4()}", b"", lease)])

    async def _read_all(self, revision: int) -> dict[str, dict[str, Entry]]:
        out: dict[str, dict[str, Entry]] = {}
        for kind in kinds.KINDS:
            store = self.stores[kind.kind]
            items, _ = await self.storage.list(kind_prefix(kind), revision=revision)
            entries = ((kv.key, store.try_decode(kv.key, kv.value, kv.mod_revision)) for kv in items)
            out[kind.kind] = {key: entry for key, entry in entries if entry is not None}
        return out

    def _apply(self, events: list[Event], rev: int) -> None:
        for ev in events:
            resource = ev.key[len(PREFIX):].split("/", 1)[0]
            store = self._by_resource.get(resource)
            if store is not None:
                store.apply(ev)
                self.events_applied += 1
        last = events[-1].revision if events else 0
        self.revision = max(self.revision, rev, last)
        if not self.ready.is_set() and self.revision >= self._catch_up_target:
            self.ready.set()
        self._wake()

    def _wake(self) -> None:
        if not self._waiters:
            return
        keep = []
        for target, fut in self._waiters:
            if self.revision >= target:
                if not fut.done():
                    fut.set_result(None)
            else:
                keep.append((target, fut))
        self._waiters = keep

    async def wait_for(self, revision: int, timeout: float = 3.0) -> None:
        """Return once the cache has applied `revision` (a write this server made, or a client's RV)."""
        if self.revision >= revision:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((revision, fut))
        try:
            async with asyncio.timeout(timeout):
                await fut
        except TimeoutError:
            if await self._stalled_behind(revision):
                self.watch_restarts += 1
                self._stalled.set()
            raise TimeoutError_(
                f"too large resource version: {revision}, current: {self.revision}") from None

    async def _stalled_behind(self, revision: int) -> bool:
        """After a wait for `revision` timed out: is the watch withholding it? Yes if this server wrote past the
        cache, or etcd has reached `revision` (a client's guess beyond it is only an error), or the member does
        not even say how far it is (the watch then starts again on a fresh connection). Asked at most once every
        STALL_RESTART_EVERY seconds, so a cache merely slow to catch up is not restarted in a loop."""
        now = asyncio.get_running_loop().time()
        if now - self._restarted_at < STALL_RESTART_EVERY:
            return False
        self._restarted_at = now
        if self.written > self.revision:
            return True
        try:
            async with asyncio.timeout(STALL_CHECK_TIMEOUT):
                current = await self.storage.revision()
        except (TimeoutError, UnavailableError):
            return True
        return current >= revision > self.revision

    # ------------------------------------------------------------ reads

    def get(self, kind: kinds.Kind, namespace: str, name: str) -> Entry | None:
        return self.store(kind).objects.get(object_key(kind, namespace, name))

    def list(self, kind: kinds.Kind, flt: Filter, *, limit: int = 0, continue_token: str = "") -> ListResult:
        store = self.store(kind)
        after = ""
        if continue_token:
            try:
                after = json.loads(base64.urlsafe_b64decode(continue_token.encode()))["start"]
            except (ValueError, KeyError, TypeError):
                raise InvalidError("continue: Invalid value: not a token this server issued") from None
        items: list[bytes] = []
        last = ""
        remaining = 0
        for key, entry in store.select(flt, after=after):
            if limit and len(items) >= limit:
                remaining += 1
                continue
            items.append(entry.item)
            last = key
        token = ""
        if remaining:
            token = base64.urlsafe_b64encode(json.dumps({"start": last, "rv": self.revision}).encode()).decode()
        return ListResult(items, self.revision, token, remaining)

    def watch(self, kind: kinds.Kind, flt: Filter, *, since: int, bookmarks: bool) -> Watcher:
        """Register a watcher; it first receives what happened after `since` (0: ADDED for all)."""
        store = self.store(kind)
        w = Watcher(store, flt, bookmarks=bookmarks)
        if since == 0:
            for _, entry in store.select(flt):
                w.push_frame(wire.field_bytes(1, wire.field_bytes(1, b"ADDED") + wire.field_bytes(2, entry.item)
                                              + wire.field_bytes(3, str(entry.rev).encode())), entry.rev)
        else:
            if since < store.history_start:
                raise ExpiredError(f"too old resource version: {since} ({store.history_start})")
            # History is in revision order: skip what the watcher has seen.
            idx = _first_after(store.history, since)
            for i in range(idx, len(store.history)):
                w.offer(store.history[i])
        w.sent_rev = max(since, self.revision)
        if w.pending:
            w.ready.set()
        store.add_watcher(w)
        self.watchers += 1
        return w

    def unwatch(self, w: Watcher) -> None:
        if w in w.store.watchers:
            self.watchers -= 1
        w.store.remove_watcher(w)

    def bookmark(self) -> None:
        """Tell idle watchers how far they are: lets them resume without a relist."""
        rev = self.revision
        for store in self.stores.values():
            frame: bytes | None = None
            for w in store.watchers:
                if w.bookmarks and not w.pending and w.sent_rev < rev:
                    frame = frame or bookmark_frame(store.kind, rev)
                    w.push_frame(frame, rev)
                    w.sent_rev = rev
                    w.ready.set()

    async def run_bookmarks(self) -> None:
        while True:
            await asyncio.sleep(self.bookmark_interval)
            self.bookmark()

    def stats(self) -> dict[str, int]:
        return {s.kind.resource: len(s.objects) for s in self.stores.values()}


def watch_pause(watchers: int) -> float:
    """Seconds a watcher waits after each message before it looks for more to send, while `watchers` watches
    are open on the server."""
    return min(WATCH_MAX_PAUSE, max(WATCH_MIN_PAUSE, watchers / WATCH_MESSAGE_RATE))


def _first_after(history: deque[Change], rev: int) -> int:
    lo, hi = 0, len(history)
    while lo < hi:
        mid = (lo + hi) // 2
        if history[mid].rev <= rev:
            lo = mid + 1
        else:
            hi = mid
    return lo

