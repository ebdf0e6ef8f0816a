"""pods/exec and pods/attach over WebSocket, as kubectl 1.32 speaks them (v5.channel.k8s.io, or v4), proxied to
the kubelet.

Every binary frame starts with its channel: 0 stdin, 1 stdout, 2 stderr, 3 the exit Status, 4 terminal
resizes, 255 (v5, from the client) a stream closed. An exec without a terminal runs as the gRPC Exec does: to
its end with all its input given first, so stdin is read until the client closes it (v5 only) and the output
goes back when the command is done. An exec with a terminal (`kubectl exec -it`) and an attach are streamed both
ways through the kubelet's Stream call, as they happen.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from aiohttp import WSMsgType, web

from api.errors import ApiError, FieldError, InvalidError
from api.pb import api_pb2

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
MAX_STDIN = 1024 * 1024


def exit_status(code: int, command: list[str]) -> dict[str, Any]:
    """The Status the error channel carries when the command ends (Kubernetes' shape for an exit code)."""
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {"metadata": {}, "status": "Failure",
            "message": f"command terminated with non-zero exit code: error executing command {command}, "
                       f"exit code {code}",
            "reason": "NonZeroExitCode", "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def failure(e: ApiError) -> dict[str, Any]:
    return {"metadata": {}, "status": "Failure", "message": e.message, "reason": e.reason}


def stream_start(query: Any, namespace: str, name: str, *, attach: bool) -> api_pb2.StreamStart | None:
    """The interactive stream a query asks for: every attach, and an exec with a terminal; None for an exec
    without one (run to its end)."""
    command = query.getall("command", [])
    tty = query.get("tty") in ("1", "true")
    if attach and command:
        raise InvalidError([FieldError("command", "Forbidden", "an attach runs no command (use pods/exec)")])
    if not attach and not command:
        raise InvalidError([FieldError("command", "Required value", "you must specify at least one command")])
    if not attach and not tty:
        return None
    return api_pb2.StreamStart(namespace=namespace, name=name, container=query.get("container", ""),
                               command=command, tty=tty, stdin=query.get("stdin") in ("1", "true"))


def resize_of(payload: bytes) -> api_pb2.TerminalSize:
    """A resize frame's {"Width": w, "Height": h}."""
    try:
        size = json.loads(payload)
        return api_pb2.TerminalSize(width=int(size["Width"]), height=int(size["Height"]))
    except (ValueError, KeyError, TypeError):
        raise InvalidError([FieldError("resize", "Invalid value", 'a resize is {"Width": W, "Height": H}',
                                       payload[:100].decode(errors="replace"))]) from None


class _ClientGone(Exception):
    """The client closed its WebSocket: the stream ends."""


async def serve_stream(request: web.Request, start: api_pb2.StreamStart, run: Any,
                       max_seconds: int) -> web.WebSocketResponse:
    """Upgrade, then carry input and resizes to `run` (the kubelet proxy's stream) and its output back as it
    comes, until the command (or attached process) ends, the client goes, or `max_seconds` pass."""
    ws = web.WebSocketResponse(protocols=(V5, V4), autoping=True, heartbeat=None)
    await ws.prepare(request)
    queue: asyncio.Queue[api_pb2.StreamRequest | None] = asyncio.Queue(maxsize=64)

    async def requests() -> Any:
        while (item := await queue.get()) is not None:
            yield item

    async def read_client() -> None:
        async for msg in ws:
            if msg.type != WSMsgType.BINARY or not msg.data:
                continue
            channel, payload = msg.data[0], msg.data[1:]
            if channel == STDIN and payload:
                await queue.put(api_pb2.StreamRequest(stdin=payload))
            elif channel == RESIZE:
                await queue.put(api_pb2.StreamRequest(resize=resize_of(payload)))
            elif channel == CLOSE and payload[:1] == bytes([STDIN]):
                await queue.put(api_pb2.StreamRequest(stdin_closed=True))
        raise _ClientGone

    status: dict[str, Any] = {"metadata": {}, "status": "Failure", "message": "the stream ended without an exit "
                                                                                "status", "reason": "InternalError"}
    try:
        async with asyncio.timeout(max_seconds), asyncio.TaskGroup() as tg:
            reader = tg.create_task(read_client())
            async with contextlib.aclosing(run(start, requests())) as responses:
                async for resp in responses:
                    field = resp.WhichOneof("message")
                    if field == "stdout":
                        await ws.send_bytes(bytes([STDOUT]) + resp.stdout)
                    elif field == "stderr":
                        await ws.send_bytes(bytes([STDERR]) + resp.stderr)
                    elif field == "exit_code":
                        status = exit_status(resp.exit_code, list(start.command))
                    elif field == "error":
                        status = {"metadata": {}, "status": "Failure", "message": resp.error, "reason": "InternalError"}
            reader.cancel()
    except* _ClientGone:
        status = {}  # nobody to tell
    except* ApiError as group:
        status = failure(group.exceptions[0])  # type: ignore[arg-type]
    except* TimeoutError:
        status = {"metadata": {}, "status": "Failure", "reason": "Timeout",
                  "message": f"the stream was closed after its limit of {max_seconds}s"}
    if status and not ws.closed:
        await ws.send_bytes(bytes([ERROR]) + json.dumps(status).encode())
    await ws.close()
    return ws


def exec_request(query: Any, namespace: str, name: str, max_seconds: int) -> tuple[api_pb2.ExecRequest, bool]:
    """The ExecRequest a query asks for, and whether it wants stdin."""
    command = query.getall("command", [])
    if not command:
        raise InvalidError([FieldError("command", "Required value", "you must specify at least one command")])
    return (api_pb2.ExecRequest(namespace=namespace, name=name, container=query.get("container", ""),
                                command=command, timeout_seconds=max_seconds),
            query.get("stdin") in ("1", "true"))


async def serve(request: web.Request, namespace: str, name: str, run: Any, max_seconds: int) -> web.WebSocketResponse:
    """Upgrade, read stdin if asked for, run the command through `run` (the kubelet proxy's exec), send its
    output and exit Status, close."""
    req, wants_stdin = exec_request(request.query, namespace, name, max_seconds)
    ws = web.WebSocketResponse(protocols=(V5, V4), autoping=True, heartbeat=None)
    await ws.prepare(request)
    try:
        if wants_stdin and ws.ws_protocol != V5:
            raise InvalidError([FieldError("stdin", "Forbidden", f"stdin needs {V5}, where the client says when it "
                                                                 f"ends")])
        if wants_stdin:
            req.stdin = await _read_stdin(ws)
        resp: api_pb2.ExecResponse = await run(req)
        if resp.stdout:
            await ws.send_bytes(bytes([STDOUT]) + resp.stdout)
        if resp.stderr:
            await ws.send_bytes(bytes([STDERR]) + resp.stderr)
        status = exit_status(resp.exit_code, list(req.command))
    except ApiError as e:
        status = failure(e)
    await ws.send_bytes(bytes([ERROR]) + json.dumps(status).encode())
    await ws.close()  # the end of every stream: kubectl takes no close frames (255) from the server
    return ws


async def _read_stdin(ws: web.WebSocketResponse) -> bytes:
    data = bytearray()
    while True:
        async with asyncio.timeout(300):
            msg = await ws.receive()
        if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
            return bytes(data)
        if msg.type != WSMsgType.BINARY or not msg.data:
            continue
        channel, payload = msg.data[0], msg.data[1:]
        if channel == STDIN:
            data += payload
            if len(data) > MAX_STDIN:
                raise InvalidError([FieldError("stdin", "Too long", f"at most {MAX_STDIN} bytes")])
        elif channel == CLOSE and payload[:1] == bytes([STDIN]):
            return bytes(data)
