"""The apiserver stamps timeAdded on NoExecute taints when they are added, keeping the time of taints already there."""

from __future__ import annotations

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from api.pb import core_pb2
from apiserver import rules
from apiserver.rules import Config
from apiserver.rules.node import stamp_taints

NOW = Timestamp(seconds=2000, nanos=5)
EARLIER = Timestamp(seconds=1000)
GIVEN = Timestamp(seconds=1500)


def _taint(key: str, effect: str = "NoExecute", value: str = "x", at: Timestamp | None = None) -> core_pb2.Taint:
    t = core_pb2.Taint(key=key, value=value, effect=effect)
    if at is not None:
        t.time_added.CopyFrom(at)
    return t


def _times(taints: list[core_pb2.Taint]) -> list[int | None]:
    return [t.time_added.seconds if t.HasField("time_added") else None for t in taints]


@pytest.mark.parametrize(("new", "stored", "want"), [
    pytest.param([_taint("dedicated")], [], [2000], id="new-no-execute-stamped"),
    pytest.param([_taint("dedicated", "NoSchedule"), _taint("soft", "PreferNoSchedule")], [], [None, None],
                 id="other-effects-untouched"),
    pytest.param([_taint("dedicated")], [_taint("dedicated", at=EARLIER)], [1000], id="kept-from-stored"),
    pytest.param([_taint("dedicated", value="y")], [_taint("dedicated", value="x", at=EARLIER)], [1000],
                 id="same-key-and-effect-new-value-keeps-time"),
    pytest.param([_taint("dedicated", at=GIVEN)], [_taint("dedicated", at=EARLIER)], [1500], id="given-time-kept"),
    pytest.param([_taint("dedicated")], [_taint("dedicated", "NoSchedule", at=EARLIER)], [2000],
                 id="other-effect-is-another-taint"),
    pytest.param([_taint("dedicated")], [_taint("dedicated")], [None], id="stored-without-time-stays-so"),
    pytest.param([_taint("a", at=EARLIER), _taint("b")], [_taint("a", at=EARLIER)], [1000, 2000],
                 id="one-kept-one-added"),
])
def test_stamp_taints(new: list[core_pb2.Taint], stored: list[core_pb2.Taint], want: list[int | None]) -> None:
    """NoExecute taints without timeAdded get the stored taint's time, or now if they are new."""
    stamp_taints(new, stored, NOW)
    assert _times(new) == want


def test_node_rules_stamp_on_create_and_update() -> None:
    """A node created or updated with a NoExecute taint stores it with timeAdded; an update keeps that time."""
    strategy = rules.build(Config())["Node"]
    node = core_pb2.Node(metadata={"name": "n1"}, spec={"taints": [_taint("dedicated")]})
    strategy.prepare_for_create(node)
    stamped = node.spec.taints[0].time_added
    assert stamped.seconds > 0
    again = core_pb2.Node(metadata={"name": "n1"}, spec={"taints": [_taint("dedicated"), _taint("new")]})
    strategy.prepare_for_update(again, node)
    assert again.spec.taints[0].time_added == stamped
    assert again.spec.taints[1].time_added.seconds >= stamped.seconds
