"""Informer: list once, watch from there, keep an indexed local copy, call handlers.

When the watch says the version is too old, it lists again and reports the
difference as adds, updates and deletes; when the connection drops, it waits
and resumes from the last version it saw, so no change is missed or repeated.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import structlog
from google.protobuf.message import Message

from api import kinds
from api.errors import ApiError, ExpiredError
from client.api import Client

log = structlog.get_logger()

T = TypeVar("T", bound=Message)


def key_of(obj: Message) -> str:
    meta = obj.metadata  # type: ignore[attr-defined]
    return f"{meta.namespace}/{meta.name}" if meta.namespace else meta.name


def split_key(key: str) -> tuple[str, str]:
    ns, _, name = key.rpartition("/")
    return ns, name


@dataclass
class Handlers:
    on_add: Callable[[Any], None] | None = None
    on_update: Callable[[Any, Any], None] | None = None
    on_delete: Callable[[Any], None] | None = None


@dataclass
class _Index:
    fn: Callable[[Any], Iterable[str]]
    values: dict[str, set[str]] = field(default_factory=dict)


class Informer(Generic[T]):
    def __init__(self, client: Client, kind: str | type[T], *, namespace: str = "", label_selector: str = "",
                 field_selector: str = "", name: str = "") -> None:
        self.client = client
        self.kind = kinds.lookup(kind) if isinstance(kind, str) else kinds.of(kind())
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.store: dict[str, T] = {}
        self.resource_version = ""
        self.synced = asyncio.Event()
        self._handlers: list[Handlers] = []
        self._indexes: dict[str, _Index] = {}
        self._log = log.bind(informer=name or self.kind.resource)
        self.relists = 0

    # ------------------------------------------------------------ setup

    def add_handlers(self, on_add: Callable[[T], None] | None = None,
                     on_update: Callable[[T, T], None] | None = None,
                     on_delete: Callable[[T], None] | None = None) -> None:
        self._handlers.append(Handlers(on_add, on_update, on_delete))

    def add_index(self, name: str, fn: Callable[[T], Iterable[str]]) -> None:
        index = _Index(fn)
        for key, obj in self.store.items():
            for v in fn(obj):
                index.values.setdefault(v, set()).add(key)
        self._indexes[name] = index

    # ------------------------------------------------------------ reads

    def get(self, key: str) -> T | None:
        return self.store.get(key)

    def get_named(self, namespace: str, name: str) -> T | None:
        return self.store.get(f"{namespace}/{name}" if namespace else name)

    def list(self) -> list[T]:
        return list(self.store.values())

    def by_index(self, name: str, value: str) -> list[T]:
        keys = self._indexes[name].values.get(value, ())
        return [self.store[k] for k in keys if k in self.store]

    def index_keys(self, name: str, value: str) -> set[str]:
        return set(self._indexes[name].values.get(value, ()))

    async def wait_synced(self, timeout: float | None = None) -> None:
        async with asyncio.timeout(timeout):
            await self.synced.wait()

    # ------------------------------------------------------------ loop

    async def run(self) -> None:
        """List and watch until cancelled."""
        backoff = 0.1
        need_list = True
        while True:
            try:
                if need_list:
                    await self._relist()
                    need_list = False
                async for ev in self.client.watch(self.kind.resource, self.namespace,
                                                  resource_version=self.resource_version,
                                                  label_selector=self.label_selector,
                                                  field_selector=self.field_selector):
                    self._apply(ev.type, ev.object, ev.resource_version)
                    backoff = 0.1
            except ExpiredError as e:
                self._log.info("informer_expired", error=e.message)
                need_list = True
                continue
            except ApiError as e:
                self._log.info("informer_disconnected", error=e.message, code=e.code.name)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)

    async def _relist(self) -> None:
        result = await self.client.list(self.kind.resource, self.namespace, label_selector=self.label_selector,
                                        field_selector=self.field_selector)
        self.relists += 1
        fresh = {key_of(o): o for o in result.items}
        old = self.store
        self.store = {}
        for index in self._indexes.values():
            index.values.clear()
        for key, obj in fresh.items():
            self._put(key, obj)
        for key, obj in fresh.items():
            prev = old.get(key)
            if prev is None:
                self._emit_add(obj)
            elif prev.metadata.resource_version != obj.metadata.resource_version:  # type: ignore[attr-defined]
                self._emit_update(prev, obj)
        for key, prev in old.items():
            if key not in fresh:
                self._emit_delete(prev)
        self.resource_version = result.resource_version
        self.synced.set()

    def _apply(self, type_: str, obj: Message, rv: str) -> None:
        if type_ == "BOOKMARK":
            self.resource_version = rv
            return
        key = key_of(obj)
        prev = self.store.get(key)
        if type_ == "DELETED":
            if prev is not None:
                self._drop(key, prev)
            self._emit_delete(obj)
        else:
            if prev is not None:
                self._drop(key, prev)
            self._put(key, obj)  # type: ignore[arg-type]
            if prev is None:
                self._emit_add(obj)
            else:
                self._emit_update(prev, obj)
        self.resource_version = rv

    def _put(self, key: str, obj: T) -> None:
        self.store[key] = obj
        for index in self._indexes.values():
            for v in index.fn(obj):
                index.values.setdefault(v, set()).add(key)

    def _drop(self, key: str, obj: T) -> None:
        self.store.pop(key, None)
        for index in self._indexes.values():
            for v in index.fn(obj):
                keys = index.values.get(v)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del index.values[v]

    def _emit_add(self, obj: Any) -> None:
        for h in self._handlers:
            if h.on_add:
                h.on_add(obj)

    def _emit_update(self, old: Any, new: Any) -> None:
        for h in self._handlers:
            if h.on_update:
                h.on_update(old, new)

    def _emit_delete(self, obj: Any) -> None:
        for h in self._handlers:
            if h.on_delete:
                h.on_delete(obj)
