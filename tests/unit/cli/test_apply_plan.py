"""apply's plan for sending: namespaces first, then chunks for CreateMany in file order within both bounds."""

from __future__ import annotations

import pytest

from api.limits import MAX_CREATE_MANY_OBJECTS
from cli.apply import OBJECT_OVERHEAD, plan_chunks, plan_phases


@pytest.mark.parametrize(("kinds", "phases"), [
    pytest.param([], [], id="nothing"),
    pytest.param(["pod", "service"], [[0, 1]], id="no-namespaces"),
    pytest.param(["namespace"], [[0]], id="only-a-namespace"),
    pytest.param(["pod", "namespace", "service", "namespace"], [[1, 3], [0, 2]], id="namespaces-first-in-order"),
])
def test_plan_phases(kinds: list[str], phases: list[list[int]]) -> None:
    """Namespaces go in a phase before everything else; each phase keeps the file's order; none is empty."""
    assert plan_phases(kinds) == phases


W = OBJECT_OVERHEAD


@pytest.mark.parametrize(("sizes", "max_objects", "max_bytes", "chunks"), [
    pytest.param([], 3, 1000, [], id="nothing"),
    pytest.param([10] * 7, 3, 1000, [range(0, 3), range(3, 6), range(6, 7)], id="by-count"),
    pytest.param([100 - W, 100 - W, 100 - W], 10, 200, [range(0, 2), range(2, 3)], id="by-bytes-exactly-full"),
    pytest.param([100 - W, 101 - W, 50], 10, 200, [range(0, 1), range(1, 3)], id="one-byte-over"),
    pytest.param([10, 5000, 10], 10, 200, [range(0, 1), range(1, 2), range(2, 3)], id="too-big-goes-alone"),
    pytest.param([1] * 5, 10, 1000, [range(0, 5)], id="all-in-one"),
])
def test_plan_chunks(sizes: list[int], max_objects: int, max_bytes: int, chunks: list[range]) -> None:
    """Consecutive runs, in order, covering every object once, each within the count and (wrapped) byte bounds."""
    assert plan_chunks(sizes, max_objects=max_objects, max_bytes=max_bytes) == chunks


def test_plan_chunks_never_exceeds_the_servers_count() -> None:
    """Asked for more objects per chunk than the server accepts, chunks stay within the server's limit."""
    chunks = plan_chunks([1] * (MAX_CREATE_MANY_OBJECTS * 2 + 1), max_objects=10 * MAX_CREATE_MANY_OBJECTS)
    assert [len(c) for c in chunks] == [MAX_CREATE_MANY_OBJECTS, MAX_CREATE_MANY_OBJECTS, 1]
