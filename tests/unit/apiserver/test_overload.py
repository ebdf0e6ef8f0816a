"""Overload admission: calls counted per connection and per client, refused over a limit, released when done."""

from __future__ import annotations

import pytest

from api.errors import TooManyRequestsError
from apiserver.overload import REQUEST, STREAM, WATCH, Admission, OverloadLimits, peer_keys


@pytest.mark.parametrize(("peer", "keys"), [
    pytest.param("ipv4:10.0.0.5:41234", ("ipv4:10.0.0.5:41234", "10.0.0.5"), id="ipv4"),
    pytest.param("ipv6:[::1]:5000", ("ipv6:[::1]:5000", "[::1]"), id="ipv6"),
    pytest.param("unix:/run/kubelite/api.sock", (None, "unix"), id="unix-socket"),
    pytest.param("unix:", (None, "unix"), id="unix-unnamed"),
])
def test_peer_keys(peer: str, keys: tuple[str | None, str]) -> None:
    """A TCP peer is one connection of its host; unix socket peers share one client and name no connection."""
    assert peer_keys(peer) == keys


def test_limits_per_connection_and_client() -> None:
    """A connection may hold its limit of watches; another connection from the same host adds up to the client
    limit; a refusal names the kind and scope; finished calls free their slots."""
    gate = Admission(OverloadLimits(watches_per_connection=2, watches_per_client=3))
    a, b = "ipv4:10.0.0.5:1000", "ipv4:10.0.0.5:1001"
    held = [gate.admit(WATCH, a), gate.admit(WATCH, a)]
    for h in held:
        h.__enter__()
    with pytest.raises(TooManyRequestsError, match=r"too many concurrent watches from this connection \(limit 2\)"), \
            gate.admit(WATCH, a):
        pass
    with gate.admit(WATCH, b):
        with pytest.raises(TooManyRequestsError, match=r"watches from this client \(limit 3\)"), \
                gate.admit(WATCH, "ipv4:10.0.0.5:1002"):
            pass
        with gate.admit(REQUEST, a), gate.admit(WATCH, "ipv4:10.0.0.6:1000"):
            pass  # other kinds and other hosts have their own counts
    held[0].__exit__(None, None, None)
    with gate.admit(WATCH, a):
        assert gate.open(WATCH, "connection", a) == 2
    held[1].__exit__(None, None, None)
    assert gate.open(WATCH, "client", "10.0.0.5") == 0


def test_refused_call_takes_no_slot() -> None:
    """A refused call counts nowhere: the client's count is unchanged by it."""
    gate = Admission(OverloadLimits(streams_per_connection=1, streams_per_client=5))
    with gate.admit(STREAM, "ipv4:1.2.3.4:1"):
        with pytest.raises(TooManyRequestsError), gate.admit(STREAM, "ipv4:1.2.3.4:1"):
            pass
        assert gate.open(STREAM, "client", "1.2.3.4") == 1
