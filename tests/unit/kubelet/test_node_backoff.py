"""The Node a kubelet registers (pure parts) and the back-off it restarts containers with."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.pb import core_pb2
from kubelet.backoff import Backoff
from kubelet.config import KubeletConfig
from kubelet.node import (
    MachineInfo,
    compute_capacity,
    compute_node,
    compute_node_status,
    compute_readiness,
    merge_registration,
    runtime_readiness,
)
from kubelet.runtime.interface import RuntimeCondition, RuntimeStatus, RuntimeVersion

MACHINE = MachineInfo(cpu_milli=4000, memory=8 << 30, kernel="6.1.0", os_image="Debian GNU/Linux 12",
                      architecture="amd64", machine_id="m1", boot_id="b1")
VERSION = RuntimeVersion("containerd", "1.6.20", "v1")
CONFIG = KubeletConfig(node_name="node-1", node_ip="10.0.0.11", pod_cidr="10.244.1.0/24", listen="10.0.0.11:10250",
                       reserved_cpu_milli=500, reserved_memory=1 << 30, max_pods=50, node_labels={"zone": "a"})
READY_STATUS = RuntimeStatus((RuntimeCondition("RuntimeReady", True), RuntimeCondition("NetworkReady", True)))
READY = compute_readiness(READY_STATUS)


def test_registered_node() -> None:
    """The node carries labels, podCIDR, addresses, the kubelet port, node info and capacity minus reserved."""
    node = compute_node(CONFIG, MACHINE, VERSION, READY, now=1000)
    assert node.metadata.labels["kubernetes.io/hostname"] == "node-1" and node.metadata.labels["zone"] == "a"
    assert node.spec.pod_cidr == "10.244.1.0/24"
    assert [(a.type, a.address) for a in node.status.addresses] == [("InternalIP", "10.0.0.11"), ("Hostname", "node-1")]
    assert node.status.daemon_endpoints.kubelet_endpoint.port == 10250
    assert dict(node.status.capacity) == {"cpu": "4", "memory": "8Gi", "pods": "50"}
    assert dict(node.status.allocatable) == {"cpu": "3500m", "memory": "7Gi", "pods": "50"}
    info = node.status.node_info
    assert (info.container_runtime_version, info.kernel_version, info.os_image) == (
        "containerd://1.6.20", "6.1.0", "Debian GNU/Linux 12")
    ready = next(c for c in node.status.conditions if c.type == "Ready")
    assert (ready.status, ready.reason) == ("True", "KubeletReady")


def test_capacity_flags_override_machine() -> None:
    """--cpu/--memory replace what the machine has."""
    cfg = KubeletConfig(node_name="n", capacity_cpu_milli=16000, capacity_memory=64 << 30)
    assert compute_capacity(cfg, MACHINE)[0] == {"cpu": "16", "memory": "64Gi", "pods": "110"}


def test_not_ready_when_network_is_not() -> None:
    """Ready follows the runtime: a network not ready, or a runtime down, makes the node NotReady with why."""
    r = compute_readiness(RuntimeStatus((RuntimeCondition("RuntimeReady", True),
                                         RuntimeCondition("NetworkReady", False, "NoCNI", "cni config uninitialized"))))
    assert not r.ready and "NetworkReady=false reason:NoCNI" in r.message
    down = compute_readiness(None, "connection refused")
    assert not down.ready and down.message == "container runtime is down: connection refused"


NOT_READY_NET = compute_readiness(RuntimeStatus((RuntimeCondition("RuntimeReady", True),
                                                 RuntimeCondition("NetworkReady", False, "NoCNI", "no config"))))
STARTING = compute_readiness(None, "kubelet is starting")


@pytest.mark.parametrize(("status", "previous", "silent_for", "ready", "message"), [
    pytest.param(None, READY, 0.5, True, "kubelet is posting ready status", id="a-blip-keeps-ready"),
    pytest.param(None, READY, 29.9, True, "kubelet is posting ready status", id="still-within-30s"),
    pytest.param(None, READY, 30.0, False, "container runtime is down: refused", id="down-after-30s"),
    pytest.param(None, READY, None, False, "container runtime is down: refused", id="never-answered"),
    pytest.param(None, NOT_READY_NET, 1.0, False, NOT_READY_NET.message, id="a-blip-keeps-not-ready"),
    pytest.param(RuntimeStatus((RuntimeCondition("RuntimeReady", False, "Down", "shim"),
                                RuntimeCondition("NetworkReady", True))), READY, 0.0, False,
                 "container runtime runtime not ready: RuntimeReady=false reason:Down message:shim",
                 id="an-answered-not-ready-at-once"),
    pytest.param(READY_STATUS, STARTING, 0.0, True,
                 "kubelet is posting ready status", id="an-answer-after-silence-is-ready"),
])
def test_runtime_readiness(status: RuntimeStatus | None, previous: object, silent_for: float | None, ready: bool,
                           message: str) -> None:
    """A runtime that does not answer leaves the node as it was for 30 s (Kubernetes' kubelet: a containerd started
    again within it never makes the node NotReady); one that answers "not ready" is reported at once."""
    got = runtime_readiness(status, "refused", previous=previous, silent_for=silent_for)  # type: ignore[arg-type]
    assert (got.ready, got.message) == (ready, message)


def test_transition_time_kept_while_unchanged() -> None:
    """A heartbeat refreshes lastHeartbeatTime but keeps lastTransitionTime until the status flips."""
    first = compute_node_status(CONFIG, MACHINE, VERSION, READY, previous=None, now=1000)
    later = compute_node_status(CONFIG, MACHINE, VERSION, READY, previous=first, now=1010)
    r2 = next(c for c in later.conditions if c.type == "Ready")
    assert (r2.last_heartbeat_time.seconds, r2.last_transition_time.seconds) == (1010, 1000)
    down = compute_node_status(CONFIG, MACHINE, VERSION, compute_readiness(None, "x"), previous=later, now=1020)
    assert next(c for c in down.conditions if c.type == "Ready").last_transition_time.seconds == 1020


def test_merge_registration_keeps_others_fields() -> None:
    """Re-registering adds our labels and a missing podCIDR but keeps taints, others' labels and a set podCIDR."""
    existing = core_pb2.Node(metadata={"name": "node-1", "labels": {"team": "x", "zone": "old"}})
    existing.spec.taints.add(key="node.kubernetes.io/unreachable", effect="NoExecute")
    existing.spec.unschedulable = True
    wanted = compute_node(CONFIG, MACHINE, VERSION, READY, now=1)
    merged = merge_registration(existing, wanted)
    assert merged is not None
    assert merged.metadata.labels["team"] == "x" and merged.metadata.labels["zone"] == "a"
    assert merged.spec.pod_cidr == "10.244.1.0/24" and merged.spec.unschedulable
    assert [t.key for t in merged.spec.taints] == ["node.kubernetes.io/unreachable"]
    assert merge_registration(merged, wanted) is None, "nothing to change the second time"
    existing.spec.pod_cidr = "10.244.9.0/24"
    assert merge_registration(existing, wanted).spec.pod_cidr == "10.244.9.0/24"  # type: ignore[union-attr]


def test_backoff_doubles_to_max_and_resets() -> None:
    """Delays double from initial to max; an entry idle for twice max starts over."""
    b = Backoff(initial=10, max=40)
    assert [b.next("k", t) for t in (0, 1, 2, 3, 4)] == [10, 20, 40, 40, 40]
    assert b.in_backoff_since("k", 100, 139) and not b.in_backoff_since("k", 100, 140)
    assert b.remaining("k", 100, 130) == 10
    assert b.next("k", 4 + 81) == 10, "idle for more than 2 x max: start over"
    b.forget_prefix("k")
    assert b.delay("k") == 0 and not b.in_backoff_since("k", 0, 0)


@given(st.lists(st.floats(0, 1000), min_size=1, max_size=20), st.floats(0.1, 10), st.floats(10, 100))
def test_backoff_bounds(events: list[float], initial: float, cap: float) -> None:
    """Whatever the events, the delay stays within [initial, max]."""
    b = Backoff(initial=initial, max=cap)
    t = 0.0
    for dt in events:
        t += dt
        delay = b.next("k", t)
        assert initial <= delay <= max(cap, initial)


def test_kill_grace_counts_down_to_the_deletion_deadline() -> None:
    """A deleted pod is stopped with what is left of its grace period; one past its deadline is killed at once."""
    from kubelet.identity import grace_period, kill_grace

    pod = core_pb2.Pod(metadata={"name": "p", "uid": "u"}, spec={"termination_grace_period_seconds": 30})
    assert grace_period(pod) == kill_grace(pod, 1000) == 30
    pod.metadata.deletion_timestamp.seconds = 1010  # deleted at 1000 with 10 s of grace
    pod.metadata.deletion_grace_period_seconds = 10
    assert grace_period(pod) == 10
    assert kill_grace(pod, 1000) == 10
    assert kill_grace(pod, 1007.5) == 3
    assert kill_grace(pod, 1500) == 0
