"""Events written together: repeats fold into one event, one already written gets its count raised."""

from __future__ import annotations

import pytest

from api.pb import core_pb2
from client.events import AGGREGATE_WINDOW, aggregate


def _event(obj: str, reason: str, at: int, count: int = 1) -> core_pb2.Event:
    ev = core_pb2.Event(metadata={"name": f"{obj}.{at}", "namespace": "default"}, reason=reason, message="m",
                        type="Normal", count=count, involved_object={"kind": "Pod", "name": obj, "uid": f"u-{obj}"})
    ev.first_timestamp.seconds = at
    ev.last_timestamp.seconds = at
    return ev


def _key(obj: str, reason: str) -> tuple[str, str, str, str]:
    return (f"u-{obj}", reason, "m", "Normal")


@pytest.mark.parametrize(("batch", "written", "updates", "creates"), [
    # (object, reason, second) per event; written: (object, reason, count, seconds ago); per write (object, count,
    # last second)
    ([("a", "Scheduled", 1), ("b", "Scheduled", 1)], [], [], [("a", 1, 1), ("b", 1, 1)]),
    ([("a", "Unhealthy", 1), ("a", "Unhealthy", 2), ("a", "Unhealthy", 3)], [], [], [("a", 3, 3)]),
    ([("a", "Unhealthy", 1), ("a", "Killing", 2)], [], [], [("a", 1, 1), ("a", 1, 2)]),
    ([("a", "Unhealthy", 5), ("a", "Unhealthy", 6)], [("a", "Unhealthy", 4, 10)], [("a", 6, 6)], []),
    ([("a", "Unhealthy", 5)], [("a", "Unhealthy", 4, AGGREGATE_WINDOW + 1)], [], [("a", 1, 5)]),
    ([("a", "Unhealthy", 5), ("b", "Unhealthy", 5)], [("b", "Unhealthy", 1, 1)], [("b", 2, 5)], [("a", 1, 5)]),
])
def test_events_taken_together(batch: list[tuple[str, str, int]], written: list[tuple[str, str, int, float]],
                               updates: list[tuple[str, int, int]], creates: list[tuple[str, int, int]]) -> None:
    now = 10_000.0
    seen = {_key(obj, reason): (_event(obj, reason, 0, count), now - ago) for obj, reason, count, ago in written}
    repeats, new = aggregate([_event(*e) for e in batch], seen, now)
    assert [(u.involved_object.name, u.count, u.last_timestamp.seconds) for _, u, _ in repeats] == updates
    assert all(u.metadata.name == f"{u.involved_object.name}.0" and not u.metadata.resource_version
               for _, u, _ in repeats)  # the event written before, raised
    assert [(e.involved_object.name, e.count, e.last_timestamp.seconds) for _, e in new] == creates
