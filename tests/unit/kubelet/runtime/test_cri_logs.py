"""CRI log files: parsing records, joining partial lines, reading with tail/follow, writing."""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubelet.runtime.logs import (
    LogOptions,
    LogParseError,
    LogRecord,
    LogWriter,
    format_record,
    format_timestamp,
    join_partials,
    parse_line,
    parse_timestamp,
    read_log,
)

T0 = 1_700_000_000_000_000_000


@pytest.mark.parametrize(
    ("line", "stream", "partial", "content"),
    [
        pytest.param(b"2016-10-06T00:17:09.669794202Z stdout F hi there", "stdout", False, b"hi there", id="full"),
        pytest.param(b"2016-10-06T00:17:09.669794202Z stderr P part", "stderr", True, b"part", id="partial"),
        pytest.param(b"2016-10-06T00:17:09.669794202Z stdout F ", "stdout", False, b"", id="empty-content"),
        pytest.param(b"2016-10-06T00:17:09.669794202Z stdout F", "stdout", False, b"", id="no-content"),
        pytest.param(b"2016-10-06T00:17:09Z stdout F a  b ", "stdout", False, b"a  b ", id="spaces-kept"),
        pytest.param(b"2016-10-06T00:17:09Z stdout F:extra x", "stdout", False, b"x", id="tag-with-more"),
    ],
)
def test_parse_line(line: bytes, stream: str, partial: bool, content: bytes) -> None:
    """A CRI record splits into time, stream, full/partial tag and the text as written."""
    rec = parse_line(line)
    assert (rec.stream, rec.partial, rec.content) == (stream, partial, content)


@pytest.mark.parametrize(
    "line",
    [
        pytest.param(b"garbage", id="no-fields"),
        pytest.param(b"2016-10-06T00:17:09Z stdin F x", id="bad-stream"),
        pytest.param(b"2016-10-06T00:17:09Z stdout X x", id="bad-tag"),
        pytest.param(b"yesterday stdout F x", id="bad-time"),
    ],
)
def test_parse_line_rejects(line: bytes) -> None:
    """Lines that are not CRI records raise LogParseError."""
    with pytest.raises(LogParseError):
        parse_line(line)


@pytest.mark.parametrize(
    ("ts", "ns"),
    [
        pytest.param(b"1970-01-01T00:00:00Z", 0, id="epoch"),
        pytest.param(b"1970-01-01T00:00:01.5Z", 1_500_000_000, id="trimmed-fraction"),
        pytest.param(b"1970-01-01T00:00:00.000000001Z", 1, id="nanosecond"),
        pytest.param(b"1970-01-01T01:00:00+01:00", 0, id="positive-offset"),
        pytest.param(b"1969-12-31T23:00:00-01:00", 0, id="negative-offset"),
    ],
)
def test_parse_timestamp(ts: bytes, ns: int) -> None:
    """RFC3339Nano parses to ns since the epoch, honouring trimmed fractions and zones."""
    assert parse_timestamp(ts) == ns


@given(st.integers(min_value=0, max_value=4_000_000_000 * 10**9))
def test_timestamp_roundtrip(ns: int) -> None:
    """Formatting then parsing a timestamp gives back the same nanosecond."""
    assert parse_timestamp(format_timestamp(ns)) == ns


def _rec(stream: str, content: bytes, partial: bool = False, t: int = T0) -> LogRecord:
    return parse_line(format_record(t, stream, content, partial=partial).rstrip(b"\n"))


def test_join_partials_per_stream() -> None:
    """P pieces join with the F that ends them, per stream, even when streams interleave."""
    recs = [
        _rec("stdout", b"ab", True, T0),
        _rec("stderr", b"err", False, T0 + 1),
        _rec("stdout", b"cd", False, T0 + 2),
        _rec("stdout", b"tail", True, T0 + 3),
    ]
    lines = join_partials(recs)
    assert [(r.stream, r.content, r.partial) for r in lines] == [
        ("stderr", b"err", False),
        ("stdout", b"abcd", False),
        ("stdout", b"tail", True),
    ]
    assert lines[1].time_ns == T0, "a joined line keeps its first piece's time"


def _write(path: Path, records: list[tuple[str, bytes, bool]]) -> None:
    with open(path, "ab") as f:
        for i, (stream, content, partial) in enumerate(records):
            f.write(format_record(T0 + i, stream, content, partial=partial))


async def _read(path: Path, **options: object) -> bytes:
    return b"".join([chunk async for chunk in read_log(path, LogOptions(**options))])  # type: ignore[arg-type]


async def test_read_all_joins_partials(tmp_path: Path) -> None:
    """Reading a whole file renders each line once, with partial pieces joined."""
    log = tmp_path / "c.log"
    _write(log, [("stdout", b"one", False), ("stdout", b"tw", True), ("stdout", b"o", False), ("stderr", b"x", False)])
    assert await _read(log) == b"one\ntwo\nx\n"


@pytest.mark.parametrize(
    ("tail", "expected"),
    [
        pytest.param(0, b"", id="zero"),
        pytest.param(1, b"line-2999\n", id="one"),
        pytest.param(3, b"line-2997\nline-2998\nline-2999\n", id="three"),
        pytest.param(5000, None, id="more-than-there-are"),
    ],
)
async def test_tail(tmp_path: Path, tail: int, expected: bytes | None) -> None:
    """tail N gives the last N lines, even when the file spans many read blocks."""
    log = tmp_path / "c.log"
    _write(log, [("stdout", b"line-%d" % i, False) for i in range(3000)])
    out = await _read(log, tail=tail)
    if expected is None:
        assert out.count(b"\n") == 3000
    else:
        assert out == expected


async def test_tail_counts_joined_lines(tmp_path: Path) -> None:
    """tail counts whole lines: a line split into many P records is one line."""
    log = tmp_path / "c.log"
    _write(log, [("stdout", b"first", False)] + [("stdout", b"x" * 1000, True)] * 200 + [("stdout", b"end", False)])
    assert await _read(log, tail=1) == b"x" * 200_000 + b"end\n"


async def test_timestamps_since_streams_limit(tmp_path: Path) -> None:
    """timestamps prefixes each line; since, streams and limit_bytes filter and cut."""
    log = tmp_path / "c.log"
    _write(log, [("stdout", b"a", False), ("stderr", b"b", False), ("stdout", b"c", False)])
    stamped = await _read(log, timestamps=True)
    assert stamped.splitlines()[0] == format_timestamp(T0) + b" a"
    assert await _read(log, since_ns=T0 + 1) == b"b\nc\n"
    assert await _read(log, streams=frozenset({"stderr"})) == b"b\n"
    assert await _read(log, limit_bytes=3) == b"a\nb"


async def test_follow_until_stopped(tmp_path: Path) -> None:
    """follow yields lines as they are appended, holds a partial line until it ends,
    and returns after stop() says so, draining what is left."""
    log = tmp_path / "c.log"
    _write(log, [("stdout", b"before", False)])
    stopped = asyncio.Event()

    async def stop() -> bool:
        return stopped.is_set()

    got: list[bytes] = []

    async def follow() -> None:
        opts = LogOptions(follow=True, poll_interval=0.01)
        async for chunk in read_log(log, opts, stop=stop, stop_check_interval=0.01):
            got.append(chunk)

    task = asyncio.create_task(follow())
    await asyncio.sleep(0.05)
    _write(log, [("stdout", b"par", True)])
    await asyncio.sleep(0.05)
    assert got == [b"before\n"], "a partial line is held back while following"
    _write(log, [("stdout", b"tial", False), ("stdout", b"last", False)])
    stopped.set()
    await asyncio.wait_for(task, 2)
    assert got == [b"before\n", b"partial\n", b"last\n"]


async def test_follow_reopens_rotated_file(tmp_path: Path) -> None:
    """When the log is rotated (renamed and recreated), follow continues in the new file."""
    log = tmp_path / "c.log"
    _write(log, [("stdout", b"old", False)])
    got: list[bytes] = []

    async def follow() -> None:
        async for chunk in read_log(log, LogOptions(follow=True, poll_interval=0.01)):
            got.append(chunk)
            if len(got) == 2:
                return

    task = asyncio.create_task(follow())
    await asyncio.sleep(0.05)
    os.rename(log, tmp_path / "c.log.1")
    _write(log, [("stdout", b"new", False)])
    await asyncio.wait_for(task, 2)
    assert got == [b"old\n", b"new\n"]


async def _pump(path: Path, data: bytes, *, max_line: int = 16 * 1024) -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    writer = LogWriter(path, max_line=max_line)
    try:
        await writer.pump(reader, "stdout")
    finally:
        writer.close()


async def test_writer_splits_long_lines(tmp_path: Path) -> None:
    """The writer cuts lines longer than max_line into P records and writes an
    unterminated last line as F, as containerd does."""
    log = tmp_path / "c.log"
    await _pump(log, b"0123456789\nshort\nend-without-newline", max_line=4)
    recs = [parse_line(line) for line in log.read_bytes().splitlines()]
    assert [(r.content, r.partial) for r in recs] == [
        (b"0123", True), (b"4567", True), (b"89", False), (b"shor", True), (b"t", False),
        (b"end-", True), (b"with", True), (b"out-", True), (b"newl", True), (b"ine", False),
    ]


@given(st.lists(st.binary(max_size=40).filter(lambda b: b"\n" not in b), max_size=20))
async def test_writer_reader_roundtrip(lines: list[bytes]) -> None:
    """Whatever a container prints comes back line for line through writer and reader."""
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "c.log"
        data = b"".join(line + b"\n" for line in lines)
        await _pump(log, data, max_line=7)
        assert await _read(log) == data
