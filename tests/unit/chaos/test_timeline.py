"""A run's samples turned into per-second series, success rates and recovery times."""

from __future__ import annotations

import pytest

from chaos import timeline as tl
from chaos.timeline import Request, Sample, Write


def reqs(*spec: tuple[float, bool]) -> list[Request]:
    return [Request(t, ok) for t, ok in spec]


def test_per_second_counts_each_whole_second_and_drops_the_partial_last_one() -> None:
    """Requests fall into the second they were sent in; a last partial second is left out."""
    got = tl.per_second(reqs((0.1, True), (0.9, False), (1.5, True), (2.2, True), (2.7, False)), 2.5)
    assert got == [{"t": 0, "ok": 1, "failed": 1}, {"t": 1, "ok": 1, "failed": 0}]


@pytest.mark.parametrize(("requests", "lo", "hi", "want"), [
    pytest.param(reqs((1, True), (2, False), (3, True), (4, True)), 0, 10, 0.75, id="three-of-four"),
    pytest.param(reqs((1, True), (2, False)), 1.5, 3, 0.0, id="window-holds-only-the-failure"),
    pytest.param(reqs((1, True)), 5, 6, None, id="nothing-sent"),
])
def test_success_rate(requests: list[Request], lo: float, hi: float, want: float | None) -> None:
    """The fraction answered among requests sent in [lo, hi), None when none was sent."""
    assert tl.success_rate(requests, lo, hi) == want


def test_the_worst_window_containing_the_fault_is_reported() -> None:
    """Of the 30 s windows that contain the fault's start, the one with the most failures counts."""
    requests = [Request(t / 10, not 100 <= t < 130) for t in range(600)]  # 60 s, failing 10.0-13.0 s
    assert tl.worst_window_success(requests, 10.0, 60.0) == 0.9
    # A window that does not contain the fault (the last 30 s, all answered) never hides it.
    assert tl.success_rate(requests, 30, 60) == 1.0


@pytest.mark.parametrize(("requests", "want"), [
    pytest.param(reqs((9, False), (11, True), (12, True)), 0.0, id="no-failure-after-the-fault"),
    pytest.param(reqs((10.5, False), (11, True), (12.5, False), (13, True), (14, True)), 3.0, id="after-last-failure"),
    pytest.param(reqs((11, True), (12, False)), None, id="still-failing"),
])
def test_seconds_to_service_back(requests: list[Request], want: float | None) -> None:
    """From the fault's start to the first answered request after the last failed one."""
    assert tl.seconds_to_service_back(requests, 10.0, 20.0) == want


@pytest.mark.parametrize(("writes", "want"), [
    pytest.param([Write(11, True, 5)], 0.0, id="never-failed"),
    pytest.param([Write(10.2, False, 2000), Write(12.2, False, 800), Write(13, True, 500)], 3.5,
                 id="acked-after-the-last-failure-counts-its-latency"),
    pytest.param([Write(10.2, True, 5), Write(12, False, 2000)], None, id="never-acked-again"),
])
def test_seconds_to_api_writable(writes: list[Write], want: float | None) -> None:
    """From the fault's start to the acknowledgement of the first write after the last failed one."""
    assert tl.seconds_to_api_writable(writes, 10.0, 30.0) == want


SAMPLES = [
    Sample(9.5, 3, {"n1": 1, "n2": 1, "n3": 1}, 3, 3),
    Sample(14.0, 3, {"n1": 1, "n2": 1}, 2, 3),
    Sample(16.0, 3, {"n1": 2, "n2": 1, "n3": 1}, 2, 3),  # the replacement is up, n3's pod still counted
    Sample(17.0, 3, {"n1": 2, "n2": 1}, 2, 3),
    Sample(30.0, 3, {"n1": 2, "n2": 1}, 3, 3),
]


def test_recovery_times_from_the_watchers_samples() -> None:
    """Replacements: every replica available off the lost node; ready back: after the last shortfall; nodes:
    from the undo until every node is Ready."""
    assert tl.seconds_to_replacements(SAMPLES, 10.0, "n3", 40.0) == 6.0
    assert tl.seconds_to_ready_back(SAMPLES, 10.0, 40.0) == 6.0
    assert tl.seconds_to_ready_back(SAMPLES[:1], 0.0, 40.0) == 0.0
    assert tl.seconds_to_nodes_ready(SAMPLES, 10.0, 25.0, 40.0) == 5.0
    assert tl.seconds_to_nodes_ready(SAMPLES, 10.0, 31.0, 40.0) == 0.0  # Ready before the undo finished
    assert tl.seconds_to_nodes_ready(SAMPLES[:1], 0.0, 5.0, 40.0) == 0.0  # no node went unready
    assert tl.seconds_to_nodes_ready(SAMPLES[:4], 10.0, 25.0, 40.0) is None
    assert tl.seconds_to_replacements(SAMPLES, 10.0, "n3", 15.0) is None


@pytest.mark.parametrize(("figures", "node_fault", "seconds", "want"), [
    pytest.param({"failed_requests": 10, "service_back": 4.0, "replacements_ready": 7.0, "api_writable": 0.0},
                 True, 400.0,
                 {"failed_requests": 490, "service_back": 52.0, "replacements_ready": 354.0, "api_writable": 0.0},
                 id="a-node-lost-longer-than-grace-plus-toleration"),
    pytest.param({"failed_requests": 10, "service_back": 4.0, "replacements_ready": 7.0}, True, 15.0,
                 {"failed_requests": 140, "service_back": 17.0, "replacements_ready": None},
                 id="a-node-back-before-kubernetes-notices-has-nothing-replaced"),
    pytest.param({"failed_requests": 3, "api_writable": 1.5}, False, 0.0, {"failed_requests": 3, "api_writable": 1.5},
                 id="a-component-kill-recovers-the-same"),
])
def test_the_same_recovery_with_kubernetes_defaults(figures: dict, node_fault: bool, seconds: float,
                                                    want: dict) -> None:
    """A lost node is noticed after 50 s instead of 2 (failing meanwhile at the measured rate) and its pods go
    after 300 s more instead of 1."""
    assert tl.with_kubernetes_defaults(figures, node_fault=node_fault, fault_seconds=seconds,
                                       failed_per_second=10.0) == want


def test_failures_are_counted_by_cause_most_first() -> None:
    """Failed requests grouped by what went wrong, the most frequent cause first."""
    requests = [Request(1, False, error="timeout"), Request(2, True), Request(3, False, error="ConnectionRefusedError"),
                Request(4, False, error="timeout"), Request(5, False)]
    assert tl.failures_by_error(requests) == {"timeout": 2, "ConnectionRefusedError": 1, "unknown": 1}
