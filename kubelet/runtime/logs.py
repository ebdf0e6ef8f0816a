"""Container logs in the CRI file format, shared by every runtime.

CRI has no logs RPC: the runtime writes each container's output to a file,
one record per line, `<RFC3339Nano> <stdout|stderr> <F|P> <text>`, where P
marks a piece of a longer line that continues in the next record of the same
stream. The kubelet reads the files itself with `read_log`; the process
runtime writes them with `LogWriter` so both runtimes share the reader.
"""

from __future__ import annotations

import asyncio
import calendar
import collections
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

STREAMS = frozenset({"stdout", "stderr"})
# containerd's default max_container_log_line_size: longer lines become P records.
MAX_LINE = 16 * 1024
_BLOCK = 64 * 1024
_TIME = re.compile(rb"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)")


class LogParseError(ValueError):
    """A line that is not a CRI log record."""


@dataclass(frozen=True)
class LogRecord:
    """One record, or (after joining) one whole line whose time is its first piece's."""

    time_ns: int
    timestamp: bytes
    stream: str
    partial: bool
    content: bytes


def parse_timestamp(ts: bytes) -> int:
    """RFC3339 with up to nanosecond fraction (Go trims trailing zeros) -> ns since the epoch."""
    m = _TIME.fullmatch(ts)
    if not m:
        raise LogParseError(f"bad timestamp {ts!r}")
    year, month, day, hour, minute, sec = (int(g) for g in m.groups()[:6])
    frac, zone = m.group(7) or b"", m.group(8)
    seconds = calendar.timegm((year, month, day, hour, minute, sec, 0, 0, 0))
    if zone != b"Z":
        sign = 1 if zone[:1] == b"+" else -1
        seconds -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return seconds * 1_000_000_000 + int(frac.ljust(9, b"0") or b"0")


def format_timestamp(time_ns: int) -> bytes:
    """ns since the epoch -> RFC3339 UTC with nine fraction digits."""
    seconds, nanos = divmod(time_ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)).encode() + b".%09dZ" % nanos


def parse_line(line: bytes) -> LogRecord:
    """Parse one record (without its newline)."""
    parts = line.split(b" ", 3)
    if len(parts) < 3:
        raise LogParseError(f"not a CRI log record: {line[:80]!r}")
    ts, stream, tag = parts[0], parts[1].decode(errors="replace"), parts[2]
    if stream not in STREAMS:
        raise LogParseError(f"bad stream {stream!r}")
    # Tags may carry more after ':'; only the first says full or partial.
    kind = tag.split(b":", 1)[0]
    if kind not in (b"F", b"P"):
        raise LogParseError(f"bad tag {tag!r}")
    return LogRecord(parse_timestamp(ts), ts, stream, kind == b"P", parts[3] if len(parts) == 4 else b"")


def format_record(time_ns: int, stream: str, content: bytes, *, partial: bool = False) -> bytes:
    return b"%s %s %s %s\n" % (format_timestamp(time_ns), stream.encode(), b"P" if partial else b"F", content)


class _Joiner:
    """Merges each stream's P records into the F record that ends them."""

    def __init__(self) -> None:
        self._pending: dict[str, list[LogRecord]] = {}

    def feed(self, rec: LogRecord) -> LogRecord | None:
        """The whole line once `rec` ends one, else None (more pieces to come)."""
        parts = self._pending.setdefault(rec.stream, [])
        parts.append(rec)
        if rec.partial:
            return None
        line = _merge(parts)
        parts.clear()
        return line

    def flush(self) -> list[LogRecord]:
        """Unfinished lines as they are (still marked partial)."""
        lines = [_merge(parts) for parts in self._pending.values() if parts]
        self._pending.clear()
        return lines


def _merge(parts: list[LogRecord]) -> LogRecord:
    first = parts[0]
    if len(parts) == 1:
        return first
    return LogRecord(first.time_ns, first.timestamp, first.stream, parts[-1].partial,
                     b"".join(p.content for p in parts))


def join_partials(records: Iterable[LogRecord]) -> list[LogRecord]:
    """Whole lines from records; a trailing unfinished line comes last, still partial."""
    joiner = _Joiner()
    lines = [line for rec in records if (line := joiner.feed(rec)) is not None]
    return lines + joiner.flush()


@dataclass(frozen=True)
class LogOptions:
    """What `kubectl logs` asks for. tail=None means all lines."""

    tail: int | None = None
    follow: bool = False
    timestamps: bool = False
    since_ns: int = 0
    streams: frozenset[str] = STREAMS
    limit_bytes: int = 0
    poll_interval: float = 0.1


def render(rec: LogRecord, *, timestamps: bool) -> bytes:
    """A joined record as kubectl prints it: the text, a newline unless still partial."""
    out = rec.content if rec.partial else rec.content + b"\n"
    return rec.timestamp + b" " + out if timestamps else out


def _tail_offset(f: BinaryIO, n: int, streams: frozenset[str]) -> int:
    """Where to start reading so the last n whole lines are included.

    Reads backwards until n+1 complete F records of the wanted streams are
    seen: every line after the first of them starts a whole line.
    """
    size = f.seek(0, os.SEEK_END)
    if n <= 0:
        return size
    pos, buf = size, b""
    while pos > 0:
        step = min(_BLOCK, pos)
        pos -= step
        f.seek(pos)
        buf = f.read(step) + buf
        lines = buf.split(b"\n")
        # The first piece may be cut mid-record unless at the file start; the last lacks its newline.
        start = 1 if pos > 0 else 0
        offset = pos + (len(lines[0]) + 1 if pos > 0 else 0)
        ends = []
        for line in lines[start:-1]:
            offset += len(line) + 1
            rec = _try_parse(line)
            if rec is not None and not rec.partial and rec.stream in streams:
                ends.append(offset)
        if len(ends) > n:
            return ends[-n - 1]
    return 0


def _try_parse(line: bytes) -> LogRecord | None:
    try:
        return parse_line(line)
    except LogParseError:
        return None


def _records(chunk: bytes) -> Iterator[LogRecord]:
    for line in chunk.split(b"\n"):
        rec = _try_parse(line) if line else None
        if rec is not None:
            yield rec


class _Output:
    """Applies since, tail and limit_bytes to whole lines and renders them."""

    def __init__(self, options: LogOptions) -> None:
        self._options = options
        self._tail = collections.deque[LogRecord](maxlen=options.tail) if options.tail is not None else None
        self._sent = 0
        self.full = False

    def add(self, rec: LogRecord) -> list[bytes]:
        if rec.time_ns < self._options.since_ns:
            return []
        if self._tail is not None:
            self._tail.append(rec)
            return []
        return self._emit(rec)

    def release_tail(self) -> list[bytes]:
        """At the first end of file: the last N lines, then pass everything through."""
        held, self._tail = list(self._tail or ()), None
        return [out for rec in held for out in self._emit(rec)]

    def _emit(self, rec: LogRecord) -> list[bytes]:
        if self.full:
            return []
        out = render(rec, timestamps=self._options.timestamps)
        limit = self._options.limit_bytes
        if limit and self._sent + len(out) >= limit:
            out, self.full = out[: limit - self._sent], True
        self._sent += len(out)
        return [out]


async def read_log(
    path: str | Path,
    options: LogOptions = LogOptions(),
    *,
    stop: Callable[[], Awaitable[bool]] | None = None,
    stop_check_interval: float = 1.0,
) -> AsyncIterator[bytes]:
    """Yield a container's log lines, rendered as kubectl shows them.

    With follow, keeps reading as the file grows (and reopens it if it is
    replaced or truncated) until cancelled, or until `stop()` — asked at most
    every stop_check_interval seconds while idle, typically "has the container
    exited?" — returns True, after a last read of what remains.
    """
    output, joiner = _Output(options), _Joiner()
    # Opening and the backward tail scan go to a thread; forward reads are page-cache fast.
    f = await asyncio.to_thread(open, path, "rb")
    try:
        if options.tail is not None:
            f.seek(await asyncio.to_thread(_tail_offset, f, options.tail, options.streams))
        carry, last_check, stopping = b"", 0.0, False
        while not output.full:
            chunk = f.read(_BLOCK)
            if chunk:
                data = carry + chunk
                cut = data.rfind(b"\n") + 1
                carry = data[cut:]
                for rec in _records(data[:cut]):
                    if rec.stream in options.streams and (line := joiner.feed(rec)) is not None:
                        for out in output.add(line):
                            yield out
                continue
            for out in output.release_tail():
                yield out
            if not options.follow or stopping:
                # Nothing more will come: what is unfinished goes out as it is.
                last = [r for r in _records(carry) if r.stream in options.streams]
                for line in [ln for r in last if (ln := joiner.feed(r)) is not None] + joiner.flush():
                    for out in output.add(line):
                        yield out
                return
            if _replaced(path, f):
                f.close()
                f = await asyncio.to_thread(open, path, "rb")
                carry = b""
                continue
            now = time.monotonic()
            if stop is not None and now - last_check >= stop_check_interval:
                last_check = now
                stopping = await stop()
                if stopping:
                    continue
            await asyncio.sleep(options.poll_interval)
    finally:
        f.close()


def _replaced(path: str | Path, f: BinaryIO) -> bool:
    """The file at path is a new one (rotated) or this one shrank (truncated)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    return st.st_ino != os.fstat(f.fileno()).st_ino or st.st_size < f.tell()


class LogWriter:
    """Writes a container's stdout and stderr to one CRI log file.

    Each record goes out in a single write, so the two streams' pumps can
    share the file; lines longer than MAX_LINE are split into P records, and
    an unterminated last line is written as F when its stream ends, as
    containerd does.
    """

    def __init__(self, path: str | Path, *, max_line: int = MAX_LINE) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        self._max = max_line

    def write(self, stream: str, content: bytes, *, partial: bool = False) -> None:
        os.write(self._fd, format_record(time.time_ns(), stream, content, partial=partial))

    async def pump(self, reader: asyncio.StreamReader, stream: str) -> None:
        """Copy one stream into the file until it closes."""
        buf = b""
        while chunk := await reader.read(_BLOCK):
            buf += chunk
            while True:
                nl = buf.find(b"\n", 0, self._max + 1)
                if nl >= 0:
                    self.write(stream, buf[:nl])
                    buf = buf[nl + 1 :]
                elif len(buf) > self._max:
                    self.write(stream, buf[: self._max], partial=True)
                    buf = buf[self._max :]
                else:
                    break
        if buf:
            self.write(stream, buf)

    def close(self) -> None:
        os.close(self._fd)
