"""The load client against a server on loopback: one line per request, answered or not, at the rate asked."""

from __future__ import annotations

import asyncio
import contextlib
import io
import socket

import pytest

from chaos import loadclient


async def _serve(status: bytes) -> tuple[asyncio.Server, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.0 " + status + b"\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _lines(port: int, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    await loadclient.load("127.0.0.1", port, "/", rate=40, duration=0.5, timeout=1.0)
    return [line.split() for line in out.getvalue().splitlines()]


@pytest.mark.parametrize(("status", "ok", "error"), [
    pytest.param(b"200 OK", "1", None, id="answered"),
    pytest.param(b"503 Service Unavailable", "0", "status", id="an-error-status-fails"),
])
async def test_each_request_prints_its_outcome(status: bytes, ok: str, error: str | None,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """40 requests/s for half a second: 20 lines, each with its send time, outcome and latency."""
    server, port = await _serve(status)
    async with server:
        lines = await _lines(port, monkeypatch)
    assert len(lines) == 20
    assert {line[1] for line in lines} == {ok}
    assert all(float(line[2]) < 1000 for line in lines)
    if error:
        assert all(line[3].startswith(error) for line in lines)


async def test_a_refused_connection_is_a_failure_with_its_cause(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing listening: every request fails, naming ConnectionRefusedError."""
    lines = await _lines(_free_port(), monkeypatch)
    assert len(lines) == 20 and {(line[1], line[3]) for line in lines} == {("0", "ConnectionRefusedError")}


@pytest.mark.parametrize("argv", [
    pytest.param(["10.96.0.1", "--duration", "0"], id="no-duration"),
    pytest.param(["10.96.0.1", "--duration", "5", "--rate", "5000"], id="rate-too-high"),
    pytest.param(["10.96.0.1", "--duration", "5", "--timeout", "60"], id="timeout-too-long"),
])
def test_unbounded_load_is_refused(argv: list[str]) -> None:
    """The client refuses a run without bounds: no duration, too high a rate, too long a deadline."""
    with pytest.raises(SystemExit), contextlib.redirect_stderr(io.StringIO()):
        loadclient.main(argv)
