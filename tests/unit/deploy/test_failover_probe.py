"""How the write probe turns sent and acknowledged times into seconds to writable."""

from __future__ import annotations

import pytest

from client.config import ClientConfig
from deploy.lab.failover import Write, WriteProbe


def probe(*writes: tuple[float, float | None]) -> WriteProbe:
    p = WriteProbe(ClientConfig(), prefix="w")
    p.writes = [Write(f"w-{i}", sent, acked) for i, (sent, acked) in enumerate(writes)]
    return p


@pytest.mark.parametrize(("writes", "expected"), [
    pytest.param([(9.0, 9.01), (10.05, 10.06), (10.1, 10.11)], 0.06, id="no-outage-first-ack"),
    pytest.param([(10.05, None), (10.5, None), (11.0, 11.02), (11.5, 11.51)], 1.02, id="failed-writes-then-ok"),
    pytest.param([(10.05, 16.0), (10.5, 10.6), (11.0, 11.02)], 0.6, id="a-stuck-write-does-not-count-later-ones"),
    pytest.param([(10.05, 10.06), (10.5, None), (12.0, 12.5)], 2.5, id="late-failure-moves-the-cutoff"),
    pytest.param([(10.05, None), (10.5, None)], None, id="never-writable"),
])
def test_writable_after(writes: list[tuple[float, float | None]], expected: float | None) -> None:
    """Writable again = the first acknowledgement of a write sent after the last failed or slow one."""
    got = probe(*writes).writable_after(10.0)
    assert got == pytest.approx(expected) if expected is not None else got is None
