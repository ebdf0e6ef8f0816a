"""The load client: HTTP GETs at a fixed rate, one line per outcome on stdout, for a bounded time.

Run inside a lab node's network namespace (`nsenter --net=/run/netns/<node> python -m chaos.loadclient ...`),
where the node's proxy rules carry a Service's cluster IP. Each request is a new connection with a deadline;
a line is `<unix time sent> <1 answered 200 | 0 otherwise> <milliseconds> <error>`. Standard library only.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

MAX_RATE = 500.0
MAX_DURATION = 24 * 3600.0


async def _get(host: str, port: int, path: str, timeout: float) -> str:
    """'' when the answer is a 200, else what went wrong."""
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        await writer.drain()
        status = await reader.readline()
        await reader.read()
    finally:
        writer.close()
    parts = status.split()
    return "" if len(parts) > 1 and parts[1] == b"200" else f"status {status.decode(errors='replace').strip()!r}"


async def _one(host: str, port: int, path: str, timeout: float) -> None:
    sent = time.time()
    start = time.monotonic()
    try:
        async with asyncio.timeout(timeout):
            error = await _get(host, port, path, timeout)
    except TimeoutError:
        error = "timeout"
    except OSError as e:
        error = type(e).__name__
    ms = (time.monotonic() - start) * 1000
    sys.stdout.write(f"{sent:.3f} {0 if error else 1} {ms:.1f} {error.replace(' ', '_')}\n")
    sys.stdout.flush()


async def load(host: str, port: int, path: str, *, rate: float, duration: float, timeout: float) -> None:
    start = time.monotonic()
    async with asyncio.TaskGroup() as tg:
        i = 0
        while (due := start + i / rate) < start + duration:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            tg.create_task(_one(host, port, path, timeout))
            i += 1


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m chaos.loadclient")
    parser.add_argument("host")
    parser.add_argument("--port", type=int, default=80)
    parser.add_argument("--path", default="/")
    parser.add_argument("--rate", type=float, default=50.0, help="requests per second")
    parser.add_argument("--duration", type=float, required=True, help="seconds")
    # Two seconds: a request whose first SYN was lost (retransmitted after 1 s) still counts as answered.
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds each request may take")
    args = parser.parse_args(argv)
    if not 0 < args.rate <= MAX_RATE:
        parser.error(f"--rate must be in (0, {MAX_RATE:g}]")
    if not 0 < args.duration <= MAX_DURATION:
        parser.error(f"--duration must be in (0, {MAX_DURATION:g}]")
    if not 0 < args.timeout <= 10:
        parser.error("--timeout must be in (0, 10]")
    asyncio.run(load(args.host, args.port, args.path, rate=args.rate, duration=args.duration,
                     timeout=args.timeout))


if __name__ == "__main__":
    main()
