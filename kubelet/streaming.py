"""The kubelet's side of an interactive exec or attach: the runtime's streaming server speaks Kubernetes'
remote command protocol over WebSocket (v4.channel.k8s.io: each binary frame starts with its channel, 0 stdin,
1 stdout, 2 stderr, 3 the final Status, 4 terminal resizes); the apiserver speaks StreamRequest/StreamResponse.
v4 has no end-of-input frame: a command whose input ends learns it when the session ends (a terminal sends its
own end-of-input character, ^D, as input)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp

from api.pb import api_pb2

V4 = "v4.channel.k8s.io"
STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4


def exit_of(status: bytes) -> api_pb2.StreamResponse:
    """The exit code (or the failure) a final Status frame reports."""
    try:
        doc: Any = json.loads(status)
    except ValueError:
        return api_pb2.StreamResponse(error=f"the runtime's final status does not decode: {status[:200]!r}")
    if not isinstance(doc, dict) or doc.get("status") == "Success":
        return api_pb2.StreamResponse(exit_code=0)
    if doc.get("reason") == "NonZeroExitCode":
        for cause in (doc.get("details") or {}).get("causes") or []:
            if cause.get("reason") == "ExitCode" and str(cause.get("message", "")).isdigit():
                return api_pb2.StreamResponse(exit_code=int(cause["message"]))
    return api_pb2.StreamResponse(error=str(doc.get("message") or "the command failed"))


def input_frame(req: api_pb2.StreamRequest) -> bytes | None:
    """The frame a request from the apiserver becomes (None: nothing to send)."""
    field = req.WhichOneof("message")
    if field == "stdin":
        return bytes([STDIN]) + req.stdin
    if field == "resize":
        return bytes([RESIZE]) + json.dumps({"Width": req.resize.width, "Height": req.resize.height}).encode()
    return None


async def forward_input(requests: AsyncIterator[api_pb2.StreamRequest],
                        ws: aiohttp.ClientWebSocketResponse) -> None:
    async for req in requests:
        frame = input_frame(req)
        if frame is not None:
            await ws.send_bytes(frame)


async def forward_output(ws: aiohttp.ClientWebSocketResponse,
                         write: Callable[[api_pb2.StreamResponse], Awaitable[None]]) -> None:
    """Output frames as StreamResponses until the final Status (or the runtime closes without one)."""
    async for msg in ws:
        if msg.type != aiohttp.WSMsgType.BINARY or not msg.data:
            continue  # the server's empty "channel open" frames
        channel, payload = msg.data[0], msg.data[1:]
        if channel == STDOUT and payload:
            await write(api_pb2.StreamResponse(stdout=payload))
        elif channel == STDERR and payload:
            await write(api_pb2.StreamResponse(stderr=payload))
        elif channel == ERROR and payload:
            await write(exit_of(payload))
            return
    await write(api_pb2.StreamResponse(error="the runtime closed the stream without a final status"))
