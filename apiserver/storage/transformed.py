"""Storage that encrypts the values of some resources on their way to etcd and decrypts them on the way back.

Kubernetes applies its value transformers in the etcd store the same way:
everything above this layer (registry, watch cache) sees plaintext, etcd sees
only `k8s:enc:aesgcm:v1:<key>:` ciphertext. The configuration file is read
again whenever it changes (checked on each write of an encrypted resource,
and on a read that names an unknown key), so `kubelite secrets rotate-key`
takes effect with the next write and needs no restart.

A value no provider can read reaches the watch cache as an undecodable value:
skipped, counted and logged there, with the reason logged here once.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import structlog

from api.errors import ForbiddenError
from apiserver import encryption
from apiserver.storage.interface import KV, Create, Event, Op, Storage, Update

log = structlog.get_logger(component="storage")

PREFIX = "/registry/"
# Protobuf refuses this byte as the start of a message (field 0, wire type 7): what the cache gets for a
# value it must not see.
UNREADABLE = b"\x07"
_LOGGED_MAX = 10000


def resource_of(key: str) -> str:
    return key[len(PREFIX):].partition("/")[0] if key.startswith(PREFIX) else ""


class TransformedStorage:
    """Wraps a Storage; `config_path` "" means no encryption config: Secrets are then refused, never stored
    in clear text."""

    def __init__(self, inner: Storage, config_path: str | Path = "") -> None:
        self.inner = inner
        self.path = Path(config_path) if config_path else None
        self.config: encryption.EncryptionConfig | None = None
        self._stamp: tuple[int, int, int] | None = None
        self._logged: set[tuple[str, int]] = set()
        if self.path is not None:
            self.config = encryption.load(self.path)  # a bad file stops the apiserver at start, with its error
            self._stamp = self._file_stamp()

    def __getattr__(self, name: str) -> Any:
        # Everything else (connect, run_group_commit, compact, ...) is the wrapped storage's.
        return getattr(self.inner, name)

    # ------------------------------------------------------------ configuration

    def _file_stamp(self) -> tuple[int, int, int] | None:
        assert self.path is not None
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size

    def reload_if_changed(self) -> None:
        if self.path is None:
            return
        stamp = self._file_stamp()
        if stamp is None or stamp == self._stamp:
            return
        try:
            config = encryption.load(self.path)
        except encryption.EncryptionConfigError as e:
            log.error("encryption_config_not_reloaded", path=str(self.path), error=str(e))
            return
        self.config, self._stamp = config, stamp
        log.info("encryption_config_reloaded", path=str(self.path),
                 writers={r: t.writer for r, t in config.resources.items()})

    def transformer(self, key: str) -> encryption.Transformer | None:
        resource = resource_of(key)
        if self.config is None:
            if resource in encryption.DEFAULT_RESOURCES:
                return encryption.Transformer(())  # refuses writes; reads only what is stored unencrypted
            return None
        return self.config.transformer(resource)

    # ------------------------------------------------------------ values

    def _encrypt(self, op: Op) -> Op:
        if not isinstance(op, Create | Update):
            return op
        t = self.transformer(op.key)
        if t is None:
            return op
        try:
            return replace(op, value=t.encrypt(op.key, op.value))
        except encryption.NotStoredError:
            resource = resource_of(op.key)
            raise ForbiddenError(f"{resource} are not stored: this apiserver has no --encryption-provider-config "
                                 f"and kubelite never keeps {resource} in clear text") from None

    def _decrypt(self, key: str, value: bytes, revision: int) -> bytes:
        t = self.transformer(key)
        if t is None or not value:
            return value
        try:
            return t.decrypt(key, value)[0]
        except encryption.DecryptError:
            self.reload_if_changed()  # a key another apiserver or `rotate-key` just added
            t = self.transformer(key) or t
        try:
            return t.decrypt(key, value)[0]
        except encryption.DecryptError as e:
            if (key, revision) not in self._logged and len(self._logged) < _LOGGED_MAX:
                self._logged.add((key, revision))
                log.error("value_not_decrypted", key=key, revision=revision, error=str(e))
            return UNREADABLE

    def _kv(self, kv: KV) -> KV:
        return replace(kv, value=self._decrypt(kv.key, kv.value, kv.mod_revision))

    # ------------------------------------------------------------ Storage

    async def get(self, key: str) -> KV | None:
        kv = await self.inner.get(key)
        return self._kv(kv) if kv is not None else None

    async def list(self, prefix: str, *, revision: int = 0) -> tuple[list[KV], int]:
        items, rev = await self.inner.list(prefix, revision=revision)
        return [self._kv(kv) for kv in items], rev

    async def commit(self, ops: Sequence[Op]) -> int:
        if any(self.transformer(op.key) is not None for op in ops if isinstance(op, Create | Update)):
            self.reload_if_changed()
        return await self.inner.commit([self._encrypt(op) for op in ops])

    async def watch(self, prefix: str, *, from_revision: int) -> AsyncIterator[tuple[list[Event], int]]:
        async for events, rev in self.inner.watch(prefix, from_revision=from_revision):
            yield [replace(ev, value=self._decrypt(ev.key, ev.value, ev.revision)) for ev in events], rev

    async def stale(self, key: str) -> bool:
        """Whether the stored value was written by other than the current writer (an old key, unencrypted):
        an update that changes nothing still rewrites it (Kubernetes' stale read)."""
        t = self.transformer(key)
        if t is None or not t.providers:
            return False
        self.reload_if_changed()
        t = self.transformer(key) or t
        kv = await self.inner.get(key)
        if kv is None:
            return False
        try:
            return t.decrypt(key, kv.value)[1] != t.writer
        except encryption.DecryptError:
            return False
