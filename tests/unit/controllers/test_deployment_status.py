"""Deployment status: counts, Available, and Progressing judged against the progress deadline."""

from __future__ import annotations

import pytest

from api.pb import apps_pb2
from controllers.deployment import status as st

from .builders import T0, deployment, replicaset


def _rs(name: str, spec: int, replicas: int, ready: int, available: int) -> apps_pb2.ReplicaSet:
    rs = replicaset(name, spec)
    rs.status.replicas, rs.status.ready_replicas, rs.status.available_replicas = replicas, ready, available
    return rs


def test_compute_status_counts() -> None:
    """Counts come from the ReplicaSets' statuses; unavailable is spec total minus available, never negative."""
    d = deployment(replicas=4, generation=3)
    new, old = _rs("n", 2, 2, 2, 1), _rs("o", 3, 3, 3, 3)
    s = st.compute_status(d, [old, new], new, T0)
    assert (s.observed_generation, s.replicas, s.updated_replicas, s.ready_replicas, s.available_replicas,
            s.unavailable_replicas) == (3, 5, 2, 5, 4, 1)


@pytest.mark.parametrize(("available", "status", "reason"), [
    pytest.param(3, "True", st.MIN_AVAILABLE, id="enough"),
    pytest.param(2, "False", st.MIN_UNAVAILABLE, id="too-few"),
])
def test_available_condition(available: int, status: str, reason: str) -> None:
    """Available is True once replicas - maxUnavailable pods are available."""
    d = deployment(replicas=4, unavailable="1")
    s = st.compute_status(d, [_rs("n", 4, 4, 4, available)], None, T0)
    cond = st.get_condition(s, st.AVAILABLE)
    assert cond is not None and (cond.status, cond.reason) == (status, reason)


def test_set_condition_keeps_transition_time() -> None:
    """Same status and reason is a no-op; a new reason with the same status keeps lastTransitionTime."""
    s = apps_pb2.DeploymentStatus()
    st.set_condition(s, st.new_condition(st.PROGRESSING, "True", st.NEW_RS_CREATED, "a", T0))
    first = s.conditions[0].last_transition_time
    st.set_condition(s, st.new_condition(st.PROGRESSING, "True", st.NEW_RS_CREATED, "b", T0 + 5))
    assert s.conditions[0].message == "a"
    st.set_condition(s, st.new_condition(st.PROGRESSING, "True", st.RS_UPDATED, "c", T0 + 9))
    assert s.conditions[0].reason == st.RS_UPDATED and s.conditions[0].last_transition_time == first
    assert s.conditions[0].last_update_time.seconds == int(T0 + 9)


def _with_progress(d: apps_pb2.Deployment, reason: str, updated: float, status: str = "True") -> None:
    d.status.conditions.add().CopyFrom(st.new_condition(st.PROGRESSING, status, reason, "", updated))


def test_rollout_completes() -> None:
    """All replicas updated and available: Progressing=True, NewReplicaSetAvailable."""
    d = deployment(replicas=2)
    _with_progress(d, st.RS_UPDATED, T0)
    new = _rs("n", 2, 2, 2, 2)
    s = st.plan_rollout_status(d, [new], new, T0 + 1)
    cond = st.get_condition(s, st.PROGRESSING)
    assert cond is not None and (cond.status, cond.reason) == ("True", st.NEW_RS_AVAILABLE)
    assert cond.message == 'ReplicaSet "n" has successfully progressed.'


def test_progress_refreshes_update_time() -> None:
    """Any progress moves lastUpdateTime, which restarts the deadline."""
    d = deployment(replicas=3, progress_deadline=10)
    _with_progress(d, st.RS_UPDATED, T0)
    d.status.updated_replicas = 1
    new = _rs("n", 3, 2, 0, 0)
    s = st.plan_rollout_status(d, [new], new, T0 + 8)
    cond = st.get_condition(s, st.PROGRESSING)
    assert cond is not None and cond.reason == st.RS_UPDATED and cond.last_update_time.seconds == int(T0 + 8)


@pytest.mark.parametrize(("now", "timed_out"), [
    pytest.param(T0 + 9, False, id="before-deadline"),
    pytest.param(T0 + 11, True, id="after-deadline"),
])
def test_progress_deadline(now: float, timed_out: bool) -> None:
    """No progress for progressDeadlineSeconds: Progressing=False, ProgressDeadlineExceeded."""
    d = deployment(replicas=3, progress_deadline=10)
    _with_progress(d, st.NEW_RS_CREATED, T0)
    new = _rs("n", 3, 0, 0, 0)
    d.status.CopyFrom(st.plan_rollout_status(d, [new], new, T0))
    s = st.plan_rollout_status(d, [new], new, now)
    cond = st.get_condition(s, st.PROGRESSING)
    assert cond is not None
    assert (cond.status, cond.reason) == (("False", st.TIMED_OUT) if timed_out else ("True", st.NEW_RS_CREATED))
    if timed_out:
        assert cond.message == 'ReplicaSet "n" has timed out progressing.'


def test_requeue_at_deadline() -> None:
    """A rollout without progress is looked at again when its deadline passes."""
    d = deployment(replicas=3, progress_deadline=10)
    _with_progress(d, st.RS_UPDATED, T0)
    s = st.plan_rollout_status(d, [_rs("n", 3, 0, 0, 0)], None, T0 + 2)
    assert st.requeue_after(d, s, T0 + 2) == pytest.approx(8.05)
    assert st.requeue_after(deployment(progress_deadline=None), s, T0) is None


def test_no_deadline_removes_progressing() -> None:
    """Without progressDeadlineSeconds there is no Progressing condition."""
    d = deployment(replicas=1, progress_deadline=None)
    _with_progress(d, st.RS_UPDATED, T0)
    s = st.plan_rollout_status(d, [_rs("n", 1, 1, 1, 1)], None, T0)
    assert st.get_condition(s, st.PROGRESSING) is None


def test_replica_failure_surfaces() -> None:
    """A ReplicaSet's ReplicaFailure becomes the deployment's, the new ReplicaSet's first."""
    d = deployment(replicas=1)
    old, new = _rs("o", 0, 0, 0, 0), _rs("n", 1, 0, 0, 0)
    old.status.conditions.add(type="ReplicaFailure", status="True", reason="FailedDelete", message="old")
    new.status.conditions.add(type="ReplicaFailure", status="True", reason="FailedCreate", message="quota")
    cond = st.get_condition(st.plan_rollout_status(d, [old, new], new, T0), st.REPLICA_FAILURE)
    assert cond is not None and (cond.reason, cond.message) == ("FailedCreate", "quota")
    clean = _rs("n", 1, 1, 1, 1)
    d.status.conditions.add(type=st.REPLICA_FAILURE, status="True")
    assert st.get_condition(st.plan_rollout_status(d, [clean], clean, T0), st.REPLICA_FAILURE) is None
