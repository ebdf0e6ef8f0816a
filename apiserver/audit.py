"""The audit log: one JSON line per mutating request, per exec or log request, and per denied request.

Each line: time, user, groups, verb, resource (with its subresource), namespace, name, the response code
and the latency in milliseconds. The file is created 0600 and rotated by size (`<path>.1` ... `<path>.N`).
"""

from __future__ import annotations

import datetime
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from apiserver.authz.attributes import MUTATING, Attributes

# Read requests that still touch a container: what someone saw or ran inside it.
_ALWAYS = frozenset({("pods", "exec"), ("pods", "log")})


@dataclass
class AuditConfig:
    path: str = ""  # "" keeps no audit log
    max_size_mb: int = 100  # rotate past this size
    max_backups: int = 5  # rotated files kept


def audited(attrs: Attributes, code: str) -> bool:
    """Whether a request goes into the audit log."""
    return (attrs.verb in MUTATING or code == "PERMISSION_DENIED"
            or (attrs.resource, attrs.subresource) in _ALWAYS)


def line(attrs: Attributes, code: str, latency: float, now: datetime.datetime) -> str:
    return json.dumps({
        "time": now.isoformat(timespec="microseconds").replace("+00:00", "Z"),
        "user": attrs.user.name, "groups": list(attrs.user.groups), "verb": attrs.verb,
        "resource": attrs.full_resource or attrs.path, "apiGroup": attrs.api_group,
        "namespace": attrs.namespace, "name": attrs.name, "code": code,
        "latencyMs": round(latency * 1000, 3)}, separators=(",", ":"))


class AuditLog:
    """Appends audit lines to a file, rotating it by size; does nothing without a path."""

    def __init__(self, config: AuditConfig) -> None:
        self.config = config
        self._file: IO[str] | None = None
        self._lock = threading.Lock()
        if config.path:
            Path(config.path).parent.mkdir(parents=True, exist_ok=True)
            self._open()

    def _open(self) -> None:
        fd = os.open(self.config.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.fchmod(fd, 0o600)
        self._file = os.fdopen(fd, "a", buffering=1)

    def record(self, attrs: Attributes, code: str, latency: float) -> None:
        if self._file is None or not audited(attrs, code):
            return
        text = line(attrs, code, latency, datetime.datetime.now(datetime.UTC)) + "\n"
        with self._lock:
            self._file.write(text)
            if self._file.tell() >= self.config.max_size_mb * 1024 * 1024:
                self._rotate()

    def _rotate(self) -> None:
        assert self._file is not None
        self._file.close()
        path = self.config.path
        for n in range(self.config.max_backups - 1, 0, -1):
            if os.path.exists(f"{path}.{n}"):
                os.replace(f"{path}.{n}", f"{path}.{n + 1}")
        if self.config.max_backups > 0:
            os.replace(path, f"{path}.1")
        else:
            os.unlink(path)
        self._open()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def read_lines(path: str) -> list[dict[str, Any]]:
    """The audit log's lines, oldest first (rotated files before the current one)."""
    rotated = [p for p in Path(path).parent.glob(Path(path).name + ".*") if p.suffix[1:].isdigit()]
    files = sorted(rotated, key=lambda p: -int(p.suffix[1:]))
    out = []
    for f in [*files, Path(path)]:
        if f.exists():
            out.extend(json.loads(text) for text in f.read_text().splitlines() if text.strip())
    return out
