"""plan_statefulset: ordinal pods created and deleted in order (or in parallel), failed pods replaced, rolling
updates above the partition, the status; claims per ordinal and the retention policy as owner references."""

from __future__ import annotations

import pytest

from api.pb import apps_pb2, core_pb2
from api.timestamps import timestamp
from controllers.history import REVISION_HASH_LABEL
from controllers.statefulset.plan import (
    Create,
    claims_for,
    ordinal_of,
    plan_claim_owners,
    plan_statefulset,
    pod_for,
)

T0 = 1_700_000_000.0
CUR, UPD = "web-cur", "web-upd"


def sts(replicas: int = 3, *, parallel: bool = False, partition: int = 0, on_delete: bool = False,
        claims: bool = False, when_deleted: str = "Retain", when_scaled: str = "Retain") -> apps_pb2.StatefulSet:
    s = apps_pb2.StatefulSet(metadata={"name": "web", "namespace": "default", "uid": "sts-uid", "generation": 1})
    s.spec.replicas = replicas
    s.spec.service_name = "nginx"
    s.spec.selector.match_labels["app"] = "nginx"
    s.spec.template.metadata.labels["app"] = "nginx"
    s.spec.template.spec.containers.add(name="nginx", image="nginx")
    s.spec.pod_management_policy = "Parallel" if parallel else "OrderedReady"
    s.spec.update_strategy.type = "OnDelete" if on_delete else "RollingUpdate"
    if not on_delete:
        s.spec.update_strategy.rolling_update.partition = partition
    if claims:
        t = s.spec.volume_claim_templates.add()
        t.metadata.name = "www"
        t.spec.access_modes.append("ReadWriteOnce")
    s.spec.persistent_volume_claim_retention_policy.when_deleted = when_deleted
    s.spec.persistent_volume_claim_retention_policy.when_scaled = when_scaled
    return s


def pod(ordinal: int, *, rev: str = UPD, healthy: bool = True, phase: str = "Running",
        deleting: bool = False) -> core_pb2.Pod:
    p = core_pb2.Pod(metadata={"name": f"web-{ordinal}", "namespace": "default", "uid": f"uid-{ordinal}-{rev}"})
    p.metadata.labels[REVISION_HASH_LABEL] = rev
    if deleting:
        p.metadata.deletion_timestamp.CopyFrom(timestamp(T0))
    p.status.phase = phase
    if healthy:
        p.status.conditions.add(type="Ready", status="True", last_transition_time=timestamp(T0))
    return p


def plan(s: apps_pb2.StatefulSet, pods: list[core_pb2.Pod], current: str = UPD) -> tuple[list, list[str]]:
    p = plan_statefulset(s, pods, current, UPD, T0 + 10)
    return [(c.ordinal, c.revision) for c in p.create], [x.metadata.name for x in p.delete]


@pytest.mark.parametrize(("spec", "pods", "create", "delete"), [
    pytest.param({}, [], [(0, UPD)], [], id="ordered-starts-with-0"),
    pytest.param({}, [pod(0)], [(1, UPD)], [], id="next-once-0-is-healthy"),
    pytest.param({}, [pod(0, healthy=False)], [], [], id="waits-for-an-unready-one"),
    pytest.param({"parallel": True}, [], [(0, UPD), (1, UPD), (2, UPD)], [], id="parallel-all-at-once"),
    pytest.param({}, [pod(0), pod(1, phase="Failed", healthy=False), pod(2)], [], ["web-1"], id="failed-replaced"),
    pytest.param({}, [pod(0), pod(1, deleting=True, healthy=False), pod(2)], [], [],
                 id="terminating-identity-not-doubled"),
    pytest.param({"parallel": True}, [pod(0), pod(1, deleting=True, healthy=False)], [(2, UPD)], [],
                 id="parallel-skips-terminating-identity"),
    pytest.param({"replicas": 1}, [pod(0), pod(1), pod(2)], [], ["web-2"], id="scale-down-highest-first"),
    pytest.param({"replicas": 1}, [pod(0), pod(1), pod(2, deleting=True)], [], [], id="scale-down-one-at-a-time"),
    pytest.param({"replicas": 1, "parallel": True}, [pod(0), pod(1), pod(2)], [], ["web-2", "web-1"],
                 id="parallel-scale-down"),
])
def test_scaling(spec: dict, pods: list[core_pb2.Pod], create: list, delete: list[str]) -> None:
    """OrderedReady moves one ordinal at a time, up from 0 and down from the highest; Parallel does not wait."""
    assert plan(sts(**spec), pods) == (create, delete)


@pytest.mark.parametrize(("spec", "pods", "delete"), [
    pytest.param({}, [pod(0, rev=CUR), pod(1, rev=CUR), pod(2, rev=CUR)], ["web-2"], id="highest-first"),
    pytest.param({}, [pod(0, rev=CUR), pod(1, rev=CUR), pod(2)], ["web-1"], id="then-the-next"),
    pytest.param({}, [pod(0, rev=CUR), pod(1, rev=CUR), pod(2, healthy=False)], [], id="waits-for-the-updated"),
    pytest.param({"partition": 2}, [pod(0, rev=CUR), pod(1, rev=CUR), pod(2)], [], id="stops-at-the-partition"),
    pytest.param({"on_delete": True}, [pod(0, rev=CUR), pod(1, rev=CUR), pod(2, rev=CUR)], [], id="on-delete"),
])
def test_rolling_update(spec: dict, pods: list[core_pb2.Pod], delete: list[str]) -> None:
    """A RollingUpdate deletes the highest pod not on the update revision, one at a time, down to the partition."""
    assert plan(sts(**spec), pods, current=CUR) == ([], delete)


def test_new_pods_below_the_partition_keep_the_current_revision() -> None:
    """During a partitioned rollout, a missing ordinal below the partition comes back on the current revision."""
    assert plan(sts(partition=2), [pod(1, rev=CUR), pod(2)], current=CUR)[0] == [(0, CUR)]


def test_status() -> None:
    """replicas, ready, current and updated counts; a finished rollout makes the update revision current."""
    s = sts()
    st = plan_statefulset(s, [pod(0, rev=CUR), pod(1), pod(2, healthy=False)], CUR, UPD, T0).status
    assert (st.replicas, st.ready_replicas, st.current_replicas, st.updated_replicas) == (3, 2, 1, 2)
    assert (st.current_revision, st.update_revision) == (CUR, UPD)
    done = plan_statefulset(s, [pod(0), pod(1), pod(2)], CUR, UPD, T0).status
    assert done.current_revision == UPD and done.current_replicas == 3


def test_pod_identity_and_claims() -> None:
    """web-<n> is its own hostname in the service's subdomain, labelled with its name and index, and mounts its own
    claim www-web-<n>."""
    s = sts(claims=True)
    rev = apps_pb2.ControllerRevision(metadata={"name": UPD})
    rev.data.spec.template.CopyFrom(s.spec.template)
    p = pod_for(s, 2, rev, s.metadata.owner_references.add(kind="StatefulSet", name="web", uid="sts-uid"))
    assert (p.metadata.name, p.spec.hostname, p.spec.subdomain) == ("web-2", "web-2", "nginx")
    assert p.metadata.labels["statefulset.kubernetes.io/pod-name"] == "web-2"
    assert p.metadata.labels["apps.kubernetes.io/pod-index"] == "2"
    assert p.metadata.labels[REVISION_HASH_LABEL] == UPD
    vol = next(v for v in p.spec.volumes if v.name == "www")
    assert vol.persistent_volume_claim.claim_name == "www-web-2"
    claim = claims_for(s, 2)[0]
    assert claim.metadata.name == "www-web-2" and claim.metadata.labels["app"] == "nginx"
    assert ordinal_of("web", p) == 2 and ordinal_of("web", pod(10)) == 10
    assert ordinal_of("web", core_pb2.Pod(metadata={"name": "web-01"})) is None


def _claim(ordinal: int, *owners: tuple[str, str, str]) -> core_pb2.PersistentVolumeClaim:
    c = core_pb2.PersistentVolumeClaim(metadata={"name": f"www-web-{ordinal}", "namespace": "default"})
    for kind, name, uid in owners:
        c.metadata.owner_references.add(kind=kind, name=name, uid=uid)
    return c


@pytest.mark.parametrize(("deleted", "scaled", "claims", "condemned", "updates", "deletes"), [
    pytest.param("Retain", "Retain", [_claim(0), _claim(1)], [], [], [], id="retain-owns-nothing"),
    pytest.param("Retain", "Retain", [_claim(0, ("StatefulSet", "web", "sts-uid"))], [], [("www-web-0", [])], [],
                 id="retain-drops-the-set"),
    pytest.param("Delete", "Retain", [_claim(0), _claim(1)], [], [("www-web-0", ["sts-uid"]),
                                                                  ("www-web-1", ["sts-uid"])], [],
                 id="when-deleted-owned-by-the-set"),
    pytest.param("Delete", "Delete", [_claim(0, ("StatefulSet", "web", "sts-uid")),
                                      _claim(2, ("StatefulSet", "web", "sts-uid"))],
                 [pod(2)], [("www-web-2", ["uid-2-web-upd"])], [], id="scaled-away-owned-by-its-pod-only"),
    pytest.param("Retain", "Delete", [_claim(2)], [], [], ["www-web-2"], id="scaled-away-without-a-pod-deleted"),
])
def test_claim_retention(deleted: str, scaled: str, claims: list, condemned: list, updates: list,
                         deletes: list) -> None:
    """persistentVolumeClaimRetentionPolicy as Kubernetes keeps it in owner references (replicas 2 here)."""
    s = sts(2, claims=True, when_deleted=deleted, when_scaled=scaled)
    got_updates, got_deletes = plan_claim_owners(s, claims, condemned)
    assert [(c.metadata.name, uids) for c, uids in got_updates] == updates
    assert [c.metadata.name for c in got_deletes] == deletes


def test_create_is_a_value() -> None:
    """Plans compare by value."""
    assert Create(1, UPD) == Create(1, UPD)
