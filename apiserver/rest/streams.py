"""pods/exec over WebSocket, as kubectl 1.32 speaks it (v5.channel.k8s.io, or v4): proxied to the kubelet as
the gRPC Exec is.

Every binary frame starts with its channel: 0 stdin, 1 stdout, 2 stderr, 3 the exit Status, 4 terminal
resizes, 255 (v5, from the client) a stream closed. The kubelet runs a command to its end with all its input
given first, so stdin is read until the client closes it (v5 only) and the output goes back when the command is
done.
"""

from __future__ import annotations

import asyncio
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


def exec_request(query: Any, namespace: str, name: str, max_seconds: int) -> tuple[api_pb2.ExecRequest, bool]:
    """The ExecRequest a query asks for, and whether it wants stdin."""
    command = query.getall("command", [])
    if not command:
        raise InvalidError([FieldError("command", "Required value", "you must specify at least one command")])
    if query.get("tty") in ("1", "true"):
        raise InvalidError([FieldError("tty", "Forbidden", "a terminal is not served: the kubelet runs a command "
                                                           "to its end and returns its output (drop -t)")])
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
        msg = await asyncio.wait_for(ws.receive(), 300)
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
