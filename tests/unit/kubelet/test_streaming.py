"""The kubelet's bridge to the runtime's streaming server: frames in, exit codes out."""

from __future__ import annotations

import json

import pytest

from api.pb import api_pb2
from kubelet import streaming


@pytest.mark.parametrize(("status", "want"), [
    pytest.param({"metadata": {}, "status": "Success"}, ("exit_code", 0), id="success"),
    pytest.param({"status": "Failure", "reason": "NonZeroExitCode",
                  "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}}, ("exit_code", 3), id="exit-3"),
    pytest.param({"status": "Failure", "reason": "InternalError", "message": "exec: \"nope\": not found"},
                 ("error", 'exec: "nope": not found'), id="not-started"),
])
def test_final_status(status: dict[str, object], want: tuple[str, object]) -> None:
    """The runtime's final Status frame becomes the exit code, or the failure that kept the command from running."""
    resp = streaming.exit_of(json.dumps(status).encode())
    assert (resp.WhichOneof("message"), getattr(resp, want[0])) == want


def test_a_status_that_does_not_decode_is_an_error() -> None:
    """Garbage on the status channel is reported, not taken for success."""
    assert streaming.exit_of(b"{oops").WhichOneof("message") == "error"


def test_input_frames() -> None:
    """Input goes on channel 0, a resize on channel 4 as {"Width", "Height"}; the end of input sends nothing (v4
    has no frame for it)."""
    assert streaming.input_frame(api_pb2.StreamRequest(stdin=b"ls\r")) == b"\x00ls\r"
    frame = streaming.input_frame(api_pb2.StreamRequest(resize=api_pb2.TerminalSize(width=100, height=30)))
    assert frame is not None and frame[0] == 4 and json.loads(frame[1:]) == {"Width": 100, "Height": 30}
    assert streaming.input_frame(api_pb2.StreamRequest(stdin_closed=True)) is None
