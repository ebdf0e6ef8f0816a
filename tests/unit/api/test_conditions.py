"""Object conditions, timestamps and pod phases: the helpers every component shares."""

from __future__ import annotations

import pytest

from api import conditions, pods, timestamps
from api.pb import core_pb2


@pytest.mark.parametrize(("before", "status", "moved"), [
    pytest.param(None, "True", True, id="added"),
    pytest.param("False", "True", True, id="status-changed"),
    pytest.param("True", "True", False, id="same-status-keeps-time"),
])
def test_set_moves_transition_time_only_on_change(before: str | None, status: str, moved: bool) -> None:
    """Setting a condition moves its transition time only when its status changes."""
    pod = core_pb2.Pod()
    old_time = timestamps.timestamp(1000.0)
    if before is not None:
        pod.status.conditions.add(type="Ready", status=before, last_transition_time=old_time)
    conditions.set_(pod.status.conditions, "Ready", status, "Why", "msg", now=timestamps.timestamp(2000.0))
    cond = conditions.get(pod.status.conditions, "Ready")
    assert cond is not None and (cond.status, cond.reason, cond.message) == (status, "Why", "msg")
    assert (cond.last_transition_time.seconds == 2000) is moved
    assert len(pod.status.conditions) == 1


def test_carried_keeps_time_of_unchanged_status() -> None:
    """A recomputed condition keeps the previous transition time while its status stays."""
    previous = [core_pb2.PodCondition(type="Ready", status="True", last_transition_time=timestamps.timestamp(5.0))]
    same = conditions.carried(previous, core_pb2.PodCondition, "Ready", "True", "", "", now=timestamps.timestamp(9.0))
    flipped = conditions.carried(previous, core_pb2.PodCondition, "Ready", "False", "NotReady", "",
                                 now=timestamps.timestamp(9.0))
    assert same.last_transition_time.seconds == 5 and flipped.last_transition_time.seconds == 9


def test_remove_and_is_true() -> None:
    """remove drops a condition type; is_true reads one."""
    node = core_pb2.Node()
    conditions.set_(node.status.conditions, "Ready", "True")
    assert conditions.is_true(node.status.conditions, "Ready")
    conditions.remove(node.status.conditions, "Ready")
    assert not conditions.is_true(node.status.conditions, "Ready") and not node.status.conditions


@pytest.mark.parametrize(("phase", "deleting", "terminal", "active"), [
    pytest.param("Running", False, False, True, id="running"),
    pytest.param("Succeeded", False, True, False, id="succeeded"),
    pytest.param("Failed", False, True, False, id="failed"),
    pytest.param("Running", True, False, False, id="terminating"),
])
def test_pod_phase_predicates(phase: str, deleting: bool, terminal: bool, active: bool) -> None:
    """Terminal pods and pods being deleted are not active."""
    pod = core_pb2.Pod(status={"phase": phase})
    if deleting:
        pod.metadata.deletion_timestamp.CopyFrom(timestamps.timestamp())
    assert pods.is_terminal(pod) is terminal and pods.phase_is_terminal(pod.status) is terminal
    assert pods.is_active(pod) is active and pods.is_terminating(pod) is deleting


def test_timestamps_round_trip() -> None:
    """seconds(timestamp(t)) is t to the microsecond; whole_seconds drops the fraction."""
    assert abs(timestamps.seconds(timestamps.timestamp(1234.5678)) - 1234.5678) < 1e-6
    assert timestamps.whole_seconds(1234.9).seconds == 1234 and timestamps.whole_seconds(1234.9).nanos == 0
