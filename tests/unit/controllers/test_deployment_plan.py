"""The Deployment planner: fenceposts, hashes, rolling and recreate steps, proportional scaling, cleanup."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.pb import apps_pb2
from controllers import owners
from controllers.deployment import util
from controllers.deployment.plan import (
    RSView,
    find_active_or_latest,
    is_scaling_event,
    new_rs_replicas,
    next_available,
    old_pods_running,
    plan_cleanup,
    plan_new_rs,
    plan_old_rs,
    plan_scale,
    pod_facts,
    view_of,
)

from .builders import T0, deployment, pod, replicaset


@pytest.mark.parametrize(("replicas", "surge", "unavailable", "expect"), [
    pytest.param(10, "25%", "25%", (3, 2), id="percent-rounds-surge-up-unavailable-down"),
    pytest.param(4, "25%", "25%", (1, 1), id="exact-percent"),
    pytest.param(3, "25%", "25%", (1, 0), id="small"),
    pytest.param(3, "0", "0%", (0, 1), id="both-zero-means-one-unavailable"),
    pytest.param(5, "2", "1", (2, 1), id="counts"),
    pytest.param(1, "0%", "10%", (0, 1), id="percent-zero-both"),
    pytest.param(10, "100%", "0", (10, 0), id="full-surge"),
])
def test_resolve_fenceposts(replicas: int, surge: str, unavailable: str, expect: tuple[int, int]) -> None:
    """maxSurge rounds up, maxUnavailable down, and both zero becomes maxUnavailable 1, as in Kubernetes."""
    assert util.resolve_fenceposts(deployment(replicas=replicas, surge=surge, unavailable=unavailable)) == expect


def test_max_unavailable_bounds() -> None:
    """maxUnavailable never exceeds replicas and is zero for Recreate or zero replicas."""
    assert util.max_unavailable(deployment(replicas=2, unavailable="5")) == 2
    assert util.max_unavailable(deployment(replicas=0)) == 0
    assert util.max_unavailable(deployment(strategy="Recreate")) == 0
    assert util.max_surge(deployment(strategy="Recreate")) == 0


def test_hash_is_stable_and_template_sensitive() -> None:
    """The pod-template-hash depends on the template and collision count only, in safe characters."""
    a, b = deployment(image="x:1"), deployment(image="x:2")
    h = util.compute_hash(a.spec.template)
    assert h == util.compute_hash(a.spec.template)
    assert h != util.compute_hash(b.spec.template)
    assert h != util.compute_hash(a.spec.template, 1)
    assert set(h) <= set("bcdfghjklmnpqrstvwxz2456789") and 1 <= len(h) <= 10
    labeled = apps_pb2.Deployment()
    labeled.CopyFrom(a)
    labeled.spec.template.metadata.labels[util.HASH_LABEL] = h
    assert util.compute_hash(labeled.spec.template) == h


def test_new_replicaset_shape() -> None:
    """The new ReplicaSet is `<deploy>-<hash>` with the hash in labels, selector and template, and annotations."""
    d = deployment(replicas=4, surge="1")
    d.metadata.annotations["kubernetes.io/change-cause"] = "v2"
    d.metadata.annotations[util.LAST_APPLIED] = "{}"
    rs = util.new_replicaset(d, replicas=2, new_revision=3, controller=owners.make_controller_ref(d))
    h = util.compute_hash(d.spec.template)
    assert rs.metadata.name == f"web-{h}"
    assert rs.spec.selector.match_labels[util.HASH_LABEL] == h
    assert rs.spec.template.metadata.labels[util.HASH_LABEL] == h == rs.metadata.labels[util.HASH_LABEL]
    assert util.equal_ignore_hash(rs.spec.template, d.spec.template)
    ann = rs.metadata.annotations
    assert (ann[util.REVISION], ann[util.DESIRED_REPLICAS], ann[util.MAX_REPLICAS]) == ("3", "4", "5")
    assert ann["kubernetes.io/change-cause"] == "v2" and util.LAST_APPLIED not in ann


def test_rollback_keeps_revision_history() -> None:
    """A ReplicaSet brought back as the new one gets the next revision and remembers its old ones."""
    d = deployment()
    rs = replicaset("web-a", 0, revision=1)
    assert util.set_new_rs_annotations(d, rs, 4, exists=True)
    assert rs.metadata.annotations[util.REVISION] == "4"
    assert rs.metadata.annotations[util.REVISION_HISTORY] == "1"
    assert util.set_new_rs_annotations(d, rs, 6, exists=True)
    assert rs.metadata.annotations[util.REVISION_HISTORY] == "1,4"
    assert not util.set_new_rs_annotations(d, rs, 5, exists=True)  # revisions never go down


def test_view_respects_min_ready_seconds() -> None:
    """With minReadySeconds a ready pod counts as available only once it has been ready that long."""
    rs = replicaset("web-a", 2)
    facts = [pod_facts(pod("a", ready=True, ready_since=T0)), pod_facts(pod("b", ready=True, ready_since=T0 + 8))]
    assert view_of(rs, facts, min_ready_seconds=10, now=T0 + 9)[0].available == 0
    assert view_of(rs, facts, min_ready_seconds=10, now=T0 + 10)[0].available == 1
    assert next_available(facts, 10, T0 + 10) == T0 + 18
    assert next_available(facts, 0, T0) is None


def test_view_counts_pods() -> None:
    """A view counts active, available and still-terminating pods, and when the next grace period ends."""
    rs = replicaset("web-a", 3)
    pods = [pod("a", ready=True), pod("b", ready=False), pod("c", ready=True, deleting=T0 + 30),
            pod("d", ready=True, deleting=T0 - 1), pod("e", phase="Succeeded")]
    view, deadline = view_of(rs, [pod_facts(p) for p in pods], min_ready_seconds=0, now=T0)
    assert (view.active, view.available, view.terminating, deadline) == (2, 1, 1, pytest.approx(T0 + 30))
    assert view.pods_upper_bound == 4 and view.available_lower_bound == 1


@pytest.mark.parametrize(("new", "olds", "expect"), [
    pytest.param(RSView(replicaset("n", 0)), [RSView(replicaset("o", 10), 10, 10)], 3, id="surge-from-zero"),
    pytest.param(RSView(replicaset("n", 3), 3), [RSView(replicaset("o", 10), 10, 10)], 3, id="at-surge"),
    pytest.param(RSView(replicaset("n", 3), 3), [RSView(replicaset("o", 8), 10, 10)], 3,
                 id="old-pods-beyond-spec-count"),
    pytest.param(RSView(replicaset("n", 3), 3), [RSView(replicaset("o", 8), 8, 8, terminating=2)], 3,
                 id="terminating-pods-count"),
    pytest.param(RSView(replicaset("n", 3), 3), [RSView(replicaset("o", 8), 8, 8)], 5, id="room-after-scale-down"),
    pytest.param(RSView(replicaset("n", 9), 9), [RSView(replicaset("o", 0))], 10, id="never-beyond-replicas"),
])
def test_new_rs_replicas(new: RSView, olds: list[RSView], expect: int) -> None:
    """The new ReplicaSet grows only into the surge left after counting every pod that exists."""
    d = deployment(replicas=10)
    assert new_rs_replicas(d, [new, *olds], new) == expect


def test_plan_new_rs_scales_down_excess() -> None:
    """A new ReplicaSet above the deployment's replicas is brought down to them."""
    d = deployment(replicas=3)
    assert plan_new_rs(d, [RSView(replicaset("n", 5), 5)], RSView(replicaset("n", 5), 5)) == 3
    assert plan_new_rs(d, [RSView(replicaset("n", 3), 3)], RSView(replicaset("n", 3), 3)) is None


@pytest.mark.parametrize(("new", "olds", "expect"), [
    pytest.param(RSView(replicaset("n", 3), 3, 0), [RSView(replicaset("o", 10), 10, 10)], {"o": 8},
                 id="unavailable-budget"),
    pytest.param(RSView(replicaset("n", 3), 3, 3), [RSView(replicaset("o", 10), 10, 10)], {"o": 5},
                 id="new-available-frees-old"),
    pytest.param(RSView(replicaset("n", 3), 3, 0), [RSView(replicaset("o", 10), 10, 8)], {"o": 8},
                 id="unhealthy-first"),
    pytest.param(RSView(replicaset("n", 3), 3, 0), [RSView(replicaset("o", 8), 8, 8)], {},
                 id="no-room"),
    pytest.param(RSView(replicaset("n", 10), 10, 10), [RSView(replicaset("o", 0))], {}, id="nothing-old"),
    pytest.param(RSView(replicaset("n", 3), 3, 3),
                 [RSView(replicaset("o1", 4, created=T0), 4, 4), RSView(replicaset("o2", 6, created=T0 + 1), 6, 6)],
                 {"o1": 0, "o2": 5}, id="oldest-first"),
])
def test_plan_old_rs(new: RSView, olds: list[RSView], expect: dict[str, int]) -> None:
    """Old ReplicaSets shrink, unhealthy replicas first, never below replicas - maxUnavailable available."""
    assert plan_old_rs(deployment(replicas=10), new, olds) == expect


def test_old_pods_running() -> None:
    """Recreate waits while any old pod exists, terminating ones included; finished pods do not count."""
    olds = [RSView(replicaset("o", 0))]
    assert not old_pods_running(olds, [pod("x", phase="Succeeded")])
    assert old_pods_running(olds, [pod("x", deleting=T0)])
    busy = replicaset("o", 0)
    busy.status.replicas = 1
    assert old_pods_running([RSView(busy)], [])


def _annotated(name: str, replicas: int, desired: int, maximum: int, created: float = T0) -> apps_pb2.ReplicaSet:
    rs = replicaset(name, replicas, created=created,
                    annotations={util.DESIRED_REPLICAS: str(desired), util.MAX_REPLICAS: str(maximum)})
    return rs


def test_scaling_event_detection() -> None:
    """A scaling event is an active ReplicaSet sized for another replica count."""
    d = deployment(replicas=5)
    assert is_scaling_event(d, [_annotated("a", 3, 3, 4)])
    assert not is_scaling_event(d, [_annotated("a", 5, 5, 7)])
    assert not is_scaling_event(d, [_annotated("a", 0, 3, 4)])


def test_plan_scale_single_active() -> None:
    """With one active ReplicaSet (or none), that one (or the newest) takes the whole count."""
    d = deployment(replicas=7)
    only = _annotated("a", 3, 3, 4)
    assert plan_scale(d, only, [replicaset("b", 0)]) == {"a": 7}
    assert find_active_or_latest(None, [replicaset("x", 0, created=T0), replicaset("y", 0, created=T0 + 5)]) \
        .metadata.name == "y"


def test_plan_scale_proportional() -> None:
    """During a rollout a scale-up is shared in proportion to each ReplicaSet's size (leftover to the largest)."""
    d = deployment(replicas=20, surge="3", unavailable="2")  # was 10 (max 13)
    new = _annotated("new", 6, 10, 13, created=T0 + 10)
    old = _annotated("old", 7, 10, 13, created=T0)
    sizes = plan_scale(d, new, [old])
    assert sum(sizes.values()) == 23
    assert sizes == {"old": 12, "new": 11}


@st.composite
def rollout_states(draw: st.DrawFn) -> tuple[int, int, int, int, int]:
    """A mid-rollout state of a deployment of `before` replicas, then scaled to `after`."""
    before, surge = draw(st.integers(1, 30)), draw(st.integers(0, 5))
    new_size = draw(st.integers(1, before + surge))
    old_size = draw(st.integers(0, before + surge - new_size))
    after = draw(st.integers(0, 40).filter(lambda a: a != before))
    return new_size, old_size, before, after, surge


@given(rollout_states())
def test_plan_scale_settles(state: tuple[int, int, int, int, int]) -> None:
    """Scaling mid-rollout settles within a few syncs on a total between replicas and replicas + maxSurge
    (zero when scaled to zero), with no scaling event left and no negative size."""
    new_size, old_size, before, after, surge = state
    d = deployment(replicas=after, surge=str(surge), unavailable="1")
    rss = {"new": _annotated("new", new_size, before, before + surge, created=T0 + 1),
           "old": _annotated("old", old_size, before, before + surge)}
    assert is_scaling_event(d, list(rss.values()))
    for _ in range(4):
        if not is_scaling_event(d, list(rss.values())):
            break
        for name, size in plan_scale(d, rss["new"], [rss["old"]]).items():
            rss[name].spec.replicas = size
            util.replicas_annotations_changed(rss[name], after, after + util.max_surge(d))
    assert not is_scaling_event(d, list(rss.values()))
    sizes = [rs.spec.replicas for rs in rss.values()]
    assert all(v >= 0 for v in sizes)
    if after == 0:
        assert sum(sizes) == 0
    else:
        assert after <= sum(sizes) <= after + util.max_surge(d)


def test_plan_cleanup_respects_history_limit() -> None:
    """Only settled, scaled-to-zero old ReplicaSets beyond revisionHistoryLimit go, oldest revision first."""
    d = deployment(history=1)
    olds = [replicaset(f"r{i}", 0, revision=i) for i in (3, 1, 2)]
    for rs in olds:
        rs.status.observed_generation = 1
    busy = replicaset("busy", 1, revision=0)
    assert [rs.metadata.name for rs in plan_cleanup(d, [*olds, busy])] == ["r1", "r2"]
    assert plan_cleanup(deployment(history=10), olds) == []


# ---------------------------------------------------------------- a simulated rollout


@dataclass
class SimPod:
    rs: str
    ready: bool = False
    terminating: bool = False
    n: int = 0


@dataclass
class Sim:
    """A deployment, its ReplicaSets and pods; actors move it one small step at a time, in random order."""

    d: apps_pb2.Deployment
    rss: dict[str, apps_pb2.ReplicaSet] = field(default_factory=dict)
    pods: list[SimPod] = field(default_factory=list)
    counter: int = 0

    def views(self) -> dict[str, RSView]:
        out = {}
        for name, rs in self.rss.items():
            mine = [p for p in self.pods if p.rs == name]
            active = [p for p in mine if not p.terminating]
            out[name] = RSView(rs, len(active), sum(1 for p in active if p.ready),
                               sum(1 for p in mine if p.terminating))
        return out

    def deployment_step(self, new: str) -> None:
        views = self.views()
        size = plan_new_rs(self.d, list(views.values()), views[new])
        if size is not None:
            self.rss[new].spec.replicas = size
            return
        olds = [v for name, v in views.items() if name != new]
        for name, size in plan_old_rs(self.d, views[new], olds).items():
            self.rss[name].spec.replicas = size

    def replicaset_step(self, name: str) -> None:
        active = [p for p in self.pods if p.rs == name and not p.terminating]
        want = self.rss[name].spec.replicas
        if len(active) < want:
            self.counter += 1
            self.pods.append(SimPod(name, n=self.counter))
        elif len(active) > want:
            # Least valuable first: not ready before ready, newest first.
            victim = sorted(active, key=lambda p: (p.ready, -p.n))[0]
            victim.terminating = True

    def kubelet_step(self, rng: random.Random) -> None:
        starting = [p for p in self.pods if not p.ready and not p.terminating]
        stopping = [p for p in self.pods if p.terminating]
        choice = rng.choice(starting + stopping) if starting or stopping else None
        if choice is None:
            return
        if choice.terminating:
            self.pods.remove(choice)
        else:
            choice.ready = True


@settings(max_examples=120, deadline=None)
@given(st.integers(1, 15), st.sampled_from(["0", "1", "2", "25%", "50%", "100%"]),
       st.sampled_from(["0", "1", "3", "25%", "50%"]), st.integers(0, 2**32 - 1))
def test_rolling_update_bounds_hold_in_any_order(replicas: int, surge: str, unavailable: str, seed: int) -> None:
    """Random interleavings of deployment, replicaset and kubelet steps: never more than N + maxSurge pods
    (terminating ones included) nor fewer than N - maxUnavailable ready ones, and the rollout finishes."""
    d = deployment(replicas=replicas, surge=surge, unavailable=unavailable)
    max_surge, max_unavailable = util.max_surge(d), util.max_unavailable(d)
    sim = Sim(d)
    sim.rss["old"] = replicaset("old", replicas, created=T0)
    sim.pods = [SimPod("old", ready=True, n=i) for i in range(replicas)]
    sim.counter = replicas
    new = replicaset("new", 0, created=T0 + 1)
    new.spec.replicas = new_rs_replicas(d, [*sim.views().values(), RSView(new)], RSView(new))
    sim.rss["new"] = new
    rng = random.Random(seed)
    for _ in range(20000):
        actor = rng.randrange(4)
        if actor == 0:
            sim.deployment_step("new")
        elif actor == 1:
            sim.replicaset_step(rng.choice(["old", "new"]))
        else:
            sim.kubelet_step(rng)
        assert len(sim.pods) <= replicas + max_surge
        assert sum(1 for p in sim.pods if p.ready and not p.terminating) >= replicas - max_unavailable
        done = (len(sim.pods) == replicas and all(p.rs == "new" and p.ready for p in sim.pods)
                and sim.rss["old"].spec.replicas == 0 and sim.rss["new"].spec.replicas == replicas)
        if done:
            return
    raise AssertionError(f"rollout did not finish: {[(n, rs.spec.replicas) for n, rs in sim.rss.items()]}")
