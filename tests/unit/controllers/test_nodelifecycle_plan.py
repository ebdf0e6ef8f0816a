"""Node health from leases, taints from the Ready condition, zone disruption, NoExecute eviction times."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.defaults import NOT_READY_TAINT, UNREACHABLE_TAINT
from api.pb import apps_pb2, core_pb2
from api.timestamps import timestamp
from controllers.nodelifecycle import plan
from controllers.nodelifecycle.eviction import observe_taints, plan_eviction, tolerates

from .builders import T0, pod


def node(name: str, ready: str | None = "True", *, zone: str = "", taints: list[tuple[str, str]] | None = None,
         conditions: tuple[str, ...] = ()) -> core_pb2.Node:
    n = core_pb2.Node(metadata={"name": name})
    if zone:
        n.metadata.labels["topology.kubernetes.io/zone"] = zone
    if ready is not None:
        n.status.conditions.add(type="Ready", status=ready, reason="KubeletReady")
    for c in conditions:
        n.status.conditions.add(type=c, status="False")
    for key, effect in taints or []:
        n.spec.taints.add(key=key, effect=effect)
    return n


def lease(renew: float, rv: str = "1") -> apps_pb2.Lease:
    lease = apps_pb2.Lease(metadata={"name": "n1", "resource_version": rv})
    if renew:
        lease.spec.renew_time.CopyFrom(timestamp(renew))
    return lease


def test_observation_restarts_only_on_renewal() -> None:
    """Seeing the same renewal again keeps the clock; a new renewal restarts it."""
    first = plan.observe(None, plan.renewal_of(lease(T0)), 100.0)
    assert plan.observe(first, plan.renewal_of(lease(T0, rv="2")), 105.0) is first
    assert plan.observe(first, plan.renewal_of(lease(T0 + 1)), 105.0).observed_at == 105.0
    assert plan.renewal_of(lease(0, rv="7")) == ("rv", "7")


@pytest.mark.parametrize(("observed", "now", "expired"), [
    pytest.param(None, 1000.0, False, id="untracked-never-expires"),
    pytest.param(100.0, 103.9, False, id="within-grace"),
    pytest.param(100.0, 104.1, True, id="after-grace"),
])
def test_lease_expiry(observed: float | None, now: float, expired: bool) -> None:
    """A node is unreachable once its lease went unrenewed for the grace period; never-leased nodes never are."""
    obs = None if observed is None else plan.LeaseObservation(("renew", 1, 0), observed)
    assert plan.lease_expired(obs, now, 4.0) is expired


def test_unknown_status() -> None:
    """Every condition becomes Unknown with Kubernetes' reason and message; a missing Ready is added."""
    n = node("n1", conditions=("MemoryPressure",))
    s = plan.plan_unknown_status(n, T0)
    assert s is not None
    assert {(c.type, c.status, c.reason, c.message) for c in s.conditions} == {
        ("Ready", "Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status."),
        ("MemoryPressure", "Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.")}
    n.status.CopyFrom(s)
    assert plan.plan_unknown_status(n, T0 + 1) is None
    never = plan.plan_unknown_status(node("n2", ready=None), T0)
    assert never is not None and never.conditions[0].reason == "NodeStatusNeverUpdated"


@pytest.mark.parametrize(("ready", "evict", "expect"), [
    pytest.param("True", True, set(), id="ready"),
    pytest.param("Unknown", True, {(UNREACHABLE_TAINT, "NoSchedule"), (UNREACHABLE_TAINT, "NoExecute")},
                 id="unreachable"),
    pytest.param("Unknown", False, {(UNREACHABLE_TAINT, "NoSchedule")}, id="unreachable-disrupted-zone"),
    pytest.param("False", True, {(NOT_READY_TAINT, "NoSchedule"), (NOT_READY_TAINT, "NoExecute")}, id="not-ready"),
])
def test_taints_follow_ready(ready: str, evict: bool, expect: set[tuple[str, str]]) -> None:
    """Taints follow the Ready condition; other taints stay; NoExecute is withheld when eviction is halted."""
    n = node("n1", ready, taints=[("dedicated", "NoSchedule"), (NOT_READY_TAINT, "NoExecute")])
    got = {(t.key, t.effect) for t in plan.plan_taints(n, evict=evict, now=T0)}
    assert got == expect | {("dedicated", "NoSchedule")}


def test_taints_keep_time_added_and_ignore_hollow_nodes() -> None:
    """An existing taint keeps its timeAdded; a node without a Ready condition (registered by hand) is left alone."""
    n = node("n1", "Unknown")
    first = plan.plan_taints(n, evict=True, now=T0)
    del n.spec.taints[:]
    n.spec.taints.extend(first)
    assert not plan.taints_differ(n.spec.taints, plan.plan_taints(n, evict=True, now=T0 + 50))
    bare = node("hollow", ready=None, taints=[(UNREACHABLE_TAINT, "NoExecute")])
    assert list(plan.plan_taints(bare, evict=True, now=T0)) == list(bare.spec.taints)


@pytest.mark.parametrize(("states", "unreachable", "expect"), [
    pytest.param(["True"] * 3, [], plan.NORMAL, id="healthy"),
    pytest.param(["True", "True", "False"], [], plan.NORMAL, id="one-of-three"),
    pytest.param(["True", "False", "False"], [], plan.NORMAL, id="two-not-ready-are-never-a-disruption"),
    pytest.param(["True", "False", "Unknown", "False"], [], plan.PARTIAL_DISRUPTION, id="three-of-four"),
    pytest.param(["True"] * 4, ["n0", "n1"], plan.NORMAL, id="half-is-under-the-threshold"),
    pytest.param(["True"] * 4, ["n0", "n1", "n2"], plan.PARTIAL_DISRUPTION, id="lease-lapsed"),
    pytest.param(["True"] * 9 + ["False"] * 11, [], plan.PARTIAL_DISRUPTION, id="55-percent"),
    pytest.param(["True"] * 10 + ["False"] * 10, [], plan.NORMAL, id="50-percent"),
    pytest.param(["False", "Unknown"], [], plan.FULL_DISRUPTION, id="none-ready"),
    pytest.param(["True"], ["n0"], plan.FULL_DISRUPTION, id="the-only-node-lost"),
])
def test_zone_states(states: list[str], unreachable: list[str], expect: str) -> None:
    """Kubernetes' zone states; nodes without a Ready condition (hollow ones) do not count."""
    nodes = [node(f"n{i}", s, zone="z") for i, s in enumerate(states)] + [node("hollow", ready=None, zone="z")]
    assert plan.compute_zones(nodes, unreachable) == {"z": plan.Zone(expect, len(states))}


@given(st.lists(st.tuples(st.sampled_from(["a", "b"]), st.sampled_from(["True", "False", "Unknown"])), max_size=12))
def test_zone_states_property(spec: list[tuple[str, str]]) -> None:
    """No node ready is a full disruption; else more than 2 and at least 55% not ready is a partial one."""
    nodes = [node(f"n{i}", s, zone=z) for i, (z, s) in enumerate(spec)]
    zones = plan.compute_zones(nodes)
    for name, zone in zones.items():
        members = [s for z, s in spec if z == name]
        bad = sum(1 for s in members if s != "True")
        assert zone.size == len(members)
        assert (zone.state == plan.FULL_DISRUPTION) == (bad == len(members))
        assert (zone.state == plan.PARTIAL_DISRUPTION) == (bad < len(members) and bad > 2 and bad / len(members) >= .55)


RATES = plan.EvictionRates(rate=0.1, secondary_rate=0.01, large_cluster_size=50)


@pytest.mark.parametrize(("zones", "expect"), [
    pytest.param({"a": (plan.NORMAL, 3)}, {"a": 0.1}, id="normal"),
    pytest.param({"a": (plan.PARTIAL_DISRUPTION, 50)}, {"a": 0.0}, id="partial-small-zone-stops"),
    pytest.param({"a": (plan.PARTIAL_DISRUPTION, 51)}, {"a": 0.01}, id="partial-large-zone-slows"),
    pytest.param({"a": (plan.FULL_DISRUPTION, 3), "b": (plan.NORMAL, 3)}, {"a": 0.1, "b": 0.1},
                 id="one-zone-down-is-a-zone-outage"),
    pytest.param({"a": (plan.FULL_DISRUPTION, 3), "b": (plan.FULL_DISRUPTION, 1)}, {"a": 0.0, "b": 0.0},
                 id="all-zones-down-stops-everything"),
    pytest.param({"a": (plan.FULL_DISRUPTION, 3), "b": (plan.PARTIAL_DISRUPTION, 60)}, {"a": 0.1, "b": 0.01},
                 id="full-and-partial"),
    pytest.param({}, {}, id="no-zones"),
])
def test_eviction_rates(zones: dict[str, tuple[str, int]], expect: dict[str, float]) -> None:
    """Kubernetes' handleDisruption and setLimiterInZone with the default rates."""
    assert plan.eviction_rates({k: plan.Zone(*v) for k, v in zones.items()}, RATES) == expect


def test_all_disrupted() -> None:
    assert plan.all_disrupted({"a": plan.Zone(plan.FULL_DISRUPTION, 2)})
    assert not plan.all_disrupted({"a": plan.Zone(plan.FULL_DISRUPTION, 2), "b": plan.Zone(plan.NORMAL, 1)})
    assert not plan.all_disrupted({})


def test_token_bucket_holds_one_token() -> None:
    bucket = plan.TokenBucket.full(0.1, now=100.0)
    assert bucket.take(100.0)
    assert not bucket.take(100.0)
    assert bucket.wait(104.0) == pytest.approx(6.0)
    assert not bucket.take(109.9)
    assert bucket.take(110.0)
    assert bucket.take(200.0) and not bucket.take(200.0)  # a long quiet time still stores only one


def test_token_bucket_at_rate_zero_never_gives() -> None:
    bucket = plan.TokenBucket.full(0.0, now=0.0)
    assert not bucket.take(1e6)
    assert bucket.wait(1e6) == float("inf")


def test_token_bucket_swap_keeps_an_empty_bucket_empty() -> None:
    """Kubernetes' SwapLimiter: a zone flapping between states gets no extra tokens."""
    spent = plan.TokenBucket.full(0.1, now=0.0)
    assert spent.take(0.0)
    stopped = spent.with_rate(0.0, 1.0)
    assert not stopped.take(2.0)
    again = stopped.with_rate(0.1, 3.0)
    assert not again.take(3.0) and again.take(13.0)
    fresh = plan.TokenBucket.full(0.1, now=0.0).with_rate(0.01, 0.0)
    assert fresh.take(0.0)
    same = plan.TokenBucket.full(0.1, now=0.0)
    assert same.with_rate(0.1, 0.0) is same


@pytest.mark.parametrize(("current", "ready", "expect"), [
    pytest.param([], "Unknown", True, id="lost-node-starts"),
    pytest.param([], "False", True, id="not-ready-node-starts"),
    pytest.param([(UNREACHABLE_TAINT, "NoSchedule")], "Unknown", True, id="held-back-node-starts"),
    pytest.param([(UNREACHABLE_TAINT, "NoExecute")], "False", False, id="swap-needs-no-token"),
    pytest.param([(NOT_READY_TAINT, "NoExecute")], "Unknown", False, id="swap-back"),
    pytest.param([("user", "NoExecute")], "Unknown", True, id="a-users-taint-is-not-ours"),
    pytest.param([], "True", False, id="ready"),
])
def test_starts_eviction(current: list[tuple[str, str]], ready: str, expect: bool) -> None:
    n = node("n1", ready, taints=current)
    assert plan.starts_eviction(n.spec.taints, plan.plan_taints(n, evict=True, now=T0)) is expect


def test_pods_marked_not_ready() -> None:
    """Pods of an unreachable node that still say Ready get Ready=False and reason NodeLost."""
    ready, unready = pod("a", ready=True), pod("b", ready=False)
    assert plan.pods_to_mark_not_ready([ready, unready]) == [ready]
    ready.spec.node_name = "n1"
    s = plan.pod_not_ready_status(ready, T0 + 5)
    assert [(c.type, c.status) for c in s.conditions] == [("Ready", "False")]
    assert s.conditions[0].last_transition_time.seconds == int(T0 + 5)
    assert (s.reason, s.message) == ("NodeLost", "Node n1 which was running pod a is unresponsive")


def _tol(key: str = "", op: str = "Exists", effect: str = "NoExecute", seconds: int | None = None,
         value: str = "") -> core_pb2.Toleration:
    t = core_pb2.Toleration(key=key, operator=op, effect=effect, value=value)
    if seconds is not None:
        t.toleration_seconds = seconds
    return t


def _taint(key: str = UNREACHABLE_TAINT, effect: str = "NoExecute", added: float = T0, value: str = "") \
        -> core_pb2.Taint:
    t = core_pb2.Taint(key=key, effect=effect, value=value)
    t.time_added.CopyFrom(timestamp(added))
    return t


@pytest.mark.parametrize(("tol", "taint", "expect"), [
    pytest.param(_tol(UNREACHABLE_TAINT), _taint(), True, id="key-exists"),
    pytest.param(_tol(), _taint(), True, id="empty-key-exists-matches-all"),
    pytest.param(_tol("other"), _taint(), False, id="other-key"),
    pytest.param(_tol(UNREACHABLE_TAINT, effect="NoSchedule"), _taint(), False, id="other-effect"),
    pytest.param(_tol(UNREACHABLE_TAINT, effect=""), _taint(), True, id="empty-effect-matches-all"),
    pytest.param(_tol("k", op="Equal", value="v"), _taint("k", value="v"), True, id="equal-value"),
    pytest.param(_tol("k", op="", value="v"), _taint("k", value="w"), False, id="equal-other-value"),
])
def test_tolerates(tol: core_pb2.Toleration, taint: core_pb2.Taint, expect: bool) -> None:
    """Toleration matching is Kubernetes' ToleratesTaint."""
    assert tolerates(tol, taint) is expect


@pytest.mark.parametrize(("tolerations", "taints", "expect"), [
    pytest.param([], [_taint(effect="NoSchedule")], None, id="no-noexecute"),
    pytest.param([], [_taint()], T0 + 100, id="untolerated-now"),
    pytest.param([_tol(UNREACHABLE_TAINT, seconds=2)], [_taint()], T0 + 2, id="toleration-seconds"),
    pytest.param([_tol(UNREACHABLE_TAINT)], [_taint()], None, id="forever"),
    pytest.param([_tol(UNREACHABLE_TAINT, seconds=30), _tol(seconds=5)], [_taint()], T0 + 5, id="smallest-wins"),
    pytest.param([_tol(UNREACHABLE_TAINT, seconds=-3)], [_taint()], T0, id="negative-is-zero"),
    pytest.param([_tol(UNREACHABLE_TAINT, seconds=10), _tol(NOT_READY_TAINT, seconds=10)],
                 [_taint(added=T0 + 4), _taint(NOT_READY_TAINT, added=T0 + 1)], T0 + 11, id="earliest-taint-counts"),
])
def test_plan_eviction(tolerations: list[core_pb2.Toleration], taints: list[core_pb2.Taint],
                       expect: float | None) -> None:
    """NoExecute semantics: untolerated means now; tolerationSeconds counts from the taint; none means forever."""
    p = pod("a", node="n1")
    p.spec.tolerations.extend(tolerations)
    assert plan_eviction(p, taints, T0 + 100) == expect


def _plain(key: str, effect: str = "NoExecute", value: str = "") -> core_pb2.Taint:
    """A taint as a user adds it: no timeAdded."""
    return core_pb2.Taint(key=key, effect=effect, value=value)


@pytest.mark.parametrize(("seen", "taints", "expect"), [
    pytest.param({}, [_plain("dedicated")], {("dedicated", "NoExecute"): T0 + 5}, id="new-taint-now"),
    pytest.param({("dedicated", "NoExecute"): T0}, [_plain("dedicated", value="y")], {("dedicated", "NoExecute"): T0},
                 id="kept-across-updates"),
    pytest.param({("dedicated", "NoExecute"): T0}, [], {}, id="removed-forgotten"),
    pytest.param({}, [_plain("dedicated", "NoSchedule")], {}, id="noschedule-ignored"),
    pytest.param({("a", "NoExecute"): T0}, [_plain("a"), _plain("b")],
                 {("a", "NoExecute"): T0, ("b", "NoExecute"): T0 + 5}, id="second-taint-own-clock"),
])
def test_observe_taints(seen: dict[tuple[str, str], float], taints: list[core_pb2.Taint],
                        expect: dict[tuple[str, str], float]) -> None:
    """Each NoExecute taint's clock starts when it is first seen and stays until the taint goes."""
    assert observe_taints(seen, taints, T0 + 5) == expect


@pytest.mark.parametrize(("first_seen", "now", "expect"), [
    pytest.param({("dedicated", "NoExecute"): T0}, T0 + 1, T0 + 5, id="counts-from-first-seen"),
    pytest.param({("dedicated", "NoExecute"): T0}, T0 + 30, T0 + 5, id="deadline-does-not-move"),
    pytest.param(None, T0 + 30, T0 + 35, id="unseen-counts-from-now"),
])
def test_plan_eviction_without_time_added(first_seen: dict[tuple[str, str], float] | None, now: float,
                                          expect: float) -> None:
    """A taint without timeAdded is timed from when it was first seen, so re-checks do not push the deadline."""
    p = pod("a", node="n1")
    p.spec.tolerations.append(_tol("dedicated", seconds=5))
    assert plan_eviction(p, [_plain("dedicated", value="x")], now, first_seen) == expect


def test_status_heartbeat() -> None:
    """A kubelet's status post (Ready not Unknown, new heartbeat or status) counts as a heartbeat; ours does not."""
    old = node("n1", "True")
    new = core_pb2.Node()
    new.CopyFrom(old)
    assert not plan.status_heartbeat(old, new)
    new.status.conditions[0].last_heartbeat_time.CopyFrom(timestamp(T0))
    assert plan.status_heartbeat(old, new)
    unknown = node("n1", "Unknown")
    assert not plan.status_heartbeat(old, unknown)
    assert plan.status_heartbeat(unknown, node("n1", "True"))
