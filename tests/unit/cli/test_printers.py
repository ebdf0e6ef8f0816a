"""Printers: ages, status columns and names as kubectl prints them."""

from __future__ import annotations

import datetime as dt

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from api import convert, kinds
from api.pb import apps_pb2, core_pb2, scheduling_pb2
from cli import printers

NOW = dt.datetime(2025, 6, 1, 12, 0, 0, tzinfo=dt.UTC)


def _ago(seconds: int) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(NOW - dt.timedelta(seconds=seconds))
    return ts


@pytest.mark.parametrize(("seconds", "text"), [
    pytest.param(5, "5s", id="seconds"),
    pytest.param(119, "119s", id="under-two-minutes"),
    pytest.param(182, "3m2s", id="minutes-and-seconds"),
    pytest.param(300, "5m", id="whole-minutes"),
    pytest.param(600, "10m", id="ten-minutes"),
    pytest.param(65 * 60, "65m", id="minutes-up-to-three-hours"),
    pytest.param(185 * 60, "3h5m", id="hours-and-minutes"),
    pytest.param(4 * 3600, "4h", id="whole-hours"),
    pytest.param(10 * 3600 + 120, "10h", id="hours"),
    pytest.param(3 * 86400 + 4 * 3600, "3d4h", id="days-and-hours"),
    pytest.param(12 * 86400, "12d", id="days"),
    pytest.param(800 * 86400, "2y70d", id="years-and-days"),
    pytest.param(3000 * 86400, "8y", id="years"),
    pytest.param(-30, "0s", id="clock-skew"),
])
def test_age(seconds: int, text: str) -> None:
    """Ages print like kubectl's HumanDuration."""
    assert printers.age(_ago(seconds), NOW) == text


def test_age_unknown() -> None:
    """An unset timestamp prints <unknown>."""
    assert printers.age(Timestamp(), NOW) == "<unknown>"


def _pod(**status: object) -> core_pb2.Pod:
    data = {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}, {"name": "b"}]}, "status": status}
    return convert.from_dict(core_pb2.Pod, data)  # type: ignore[return-value]


@pytest.mark.parametrize(("status", "text"), [
    pytest.param({}, "Pending", id="no-status"),
    pytest.param({"phase": "Running", "containerStatuses": [
        {"name": "a", "ready": True, "state": {"running": {}}},
        {"name": "b", "ready": True, "state": {"running": {}}}]}, "Running", id="running"),
    pytest.param({"phase": "Pending", "containerStatuses": [
        {"name": "a", "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}, "ImagePullBackOff", id="waiting"),
    pytest.param({"phase": "Running", "containerStatuses": [
        {"name": "a", "state": {"terminated": {"exitCode": 2}}}]}, "ExitCode:2", id="exit-code"),
    pytest.param({"phase": "Running", "containerStatuses": [
        {"name": "a", "state": {"terminated": {"exitCode": 137, "signal": 9}}}]}, "Signal:9", id="signal"),
    pytest.param({"phase": "Failed", "reason": "Evicted"}, "Evicted", id="reason-wins"),
])
def test_pod_status(status: dict[str, object], text: str) -> None:
    """The STATUS column shows the most telling reason, as kubectl does."""
    assert printers.pod_status(_pod(**status)) == text


def test_pod_status_terminating() -> None:
    """A pod marked for deletion shows Terminating."""
    pod = _pod(phase="Running")
    pod.metadata.deletion_timestamp.CopyFrom(_ago(0))
    assert printers.pod_status(pod) == "Terminating"


def test_pod_ready_and_restarts() -> None:
    """READY counts ready containers over all; RESTARTS sums restart counts."""
    pod = _pod(containerStatuses=[{"name": "a", "ready": True, "restartCount": 2}, {"name": "b", "restartCount": 1}])
    assert (printers.pod_ready(pod), printers.pod_restarts(pod)) == ("1/2", "3")


@pytest.mark.parametrize(("obj", "name"), [
    pytest.param(core_pb2.Pod(metadata={"name": "web"}), "pod/web", id="core"),
    pytest.param(apps_pb2.Deployment(metadata={"name": "web"}), "deployment.apps/web", id="apps"),
    pytest.param(apps_pb2.Lease(metadata={"name": "n1"}), "lease.coordination.k8s.io/n1", id="coordination"),
    pytest.param(scheduling_pb2.PriorityClass(metadata={"name": "high"}), "priorityclass.scheduling.k8s.io/high",
                 id="scheduling"),
])
def test_name_of(obj: object, name: str) -> None:
    """`-o name` prints kind.group/name as kubectl does."""
    assert printers.name_of(obj) == name  # type: ignore[arg-type]


def test_service_ports() -> None:
    """PORT(S) shows port[:nodePort]/protocol for each port."""
    svc = core_pb2.Service(spec={"ports": [{"port": 80, "node_port": 30007, "protocol": "TCP"},
                                           {"port": 53, "protocol": "UDP"}]})
    assert printers.service_ports(svc) == "80:30007/TCP,53/UDP"


def test_table_layout() -> None:
    """Tables are left-aligned columns separated by three spaces, with no number parsing."""
    text = printers.table([["a", "0010"], ["bbbb", "2"]], ["NAME", "N"])
    assert text.splitlines() == ["NAME   N", "a      0010", "bbbb   2"]


def test_headers_per_kind() -> None:
    """Every kind has table columns; -A adds NAMESPACE and -o wide the extra columns."""
    for kind in kinds.KINDS:
        assert printers.headers(kind, wide=False, namespaced=False)[0] in ("NAME", "LAST SEEN")
    pod = kinds.lookup("Pod")
    assert printers.headers(pod, wide=True, namespaced=True) == ["NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS",
                                                                 "AGE", "IP", "NODE", "NOMINATED NODE"]
