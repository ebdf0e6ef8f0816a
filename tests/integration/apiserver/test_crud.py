"""The generic verbs over every kind against a real apiserver and etcd: codes, server fields, CAS, subresources."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import pytest

from api import kinds
from api.errors import AlreadyExistsError, ConflictError, InvalidError, NotFoundError
from api.pb import apps_pb2, core_pb2
from client.api import Client

from .helpers import make, pod

KIND_NAMES = [k.kind for k in kinds.KINDS]


async def _gone(client: Client, kind: str, name: str, namespace: str = "") -> bool:
    try:
        await client.get(kind, name, namespace)
    except NotFoundError:
        return True
    return False


@pytest.mark.parametrize("kind", KIND_NAMES)
async def test_create_get_list_update_delete(client: Client, kind: str) -> None:
    """Every kind can be created, read, listed, updated and deleted, and the server fills its own fields."""
    k = kinds.lookup(kind)
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=2)
    obj = make(kind)
    created = await client.create(obj)
    meta = created.metadata
    uuid.UUID(meta.uid)
    assert meta.creation_timestamp.ToDatetime(tzinfo=dt.UTC) >= before
    assert meta.generation == 1
    assert int(meta.resource_version) > 0
    assert created.api_version == k.api_version and created.kind == k.kind
    ns = meta.namespace
    assert ns == (obj.metadata.namespace or "default" if k.namespaced else "")

    got = await client.get(kind, meta.name, ns)
    assert got == created
    listed = await client.list(k.resource, ns)
    assert created in listed.items
    assert int(listed.resource_version) >= int(meta.resource_version)

    got.metadata.labels["touched"] = "yes"
    updated = await client.update(got)
    assert updated.metadata.labels["touched"] == "yes"
    assert int(updated.metadata.resource_version) > int(meta.resource_version)
    assert updated.metadata.uid == meta.uid
    assert updated.metadata.generation == 1, "a metadata change does not bump generation"
    assert await client.get(kind, meta.name, ns) == updated

    await client.delete(kind, meta.name, ns)
    if kind == "Namespace":
        # Namespaces wait for their `kubernetes` finalizer: the namespace controller's job, done by hand here.
        terminating = await client.get(kind, meta.name)
        assert terminating.status.phase == "Terminating"
        del terminating.spec.finalizers[:]
        await client.update(terminating)
    if kind in ("PersistentVolume", "PersistentVolumeClaim"):
        # Protected from the start (pv-/pvc-protection): the PV controller lifts it, done by hand here.
        terminating = await client.get(kind, meta.name, ns)
        assert terminating.metadata.HasField("deletion_timestamp")
        short = "pv" if kind == "PersistentVolume" else "pvc"
        assert list(terminating.metadata.finalizers) == [f"kubernetes.io/{short}-protection"]
        del terminating.metadata.finalizers[:]
        await client.update(terminating)
    assert await _gone(client, kind, meta.name, ns)
    with pytest.raises(NotFoundError, match=f'{k.resource} "{meta.name}" not found'):
        await client.delete(kind, meta.name, ns)


async def test_already_exists(client: Client) -> None:
    """Creating a name twice gives AlreadyExists and leaves the first object untouched."""
    first = await client.create(pod("p"))
    with pytest.raises(AlreadyExistsError, match='pods "p" already exists'):
        await client.create(pod("p", labels={"second": "1"}))
    assert await client.get("pods", "p", "default") == first


@pytest.mark.parametrize("verb", ["get", "update", "delete", "update_status"])
async def test_not_found(client: Client, verb: str) -> None:
    """Reading, updating or deleting a missing object gives NotFound naming it."""
    with pytest.raises(NotFoundError, match='pods "ghost" not found'):
        if verb == "get":
            await client.get("pods", "ghost", "default")
        elif verb == "delete":
            await client.delete("pods", "ghost", "default")
        else:
            await getattr(client, verb)(pod("ghost"))


async def test_server_owns_identity_fields(client: Client) -> None:
    """uid, creationTimestamp, generation and resourceVersion sent by a client are replaced by the server's."""
    p = pod("p")
    p.metadata.uid = "client-chosen"
    p.metadata.generation = 42
    p.metadata.resource_version = "999"
    p.metadata.creation_timestamp.FromDatetime(dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
    created = await client.create(p)
    assert created.metadata.uid != "client-chosen"
    assert created.metadata.generation == 1
    assert created.metadata.creation_timestamp.ToDatetime().year > 2000
    changed = core_pb2.Pod()
    changed.CopyFrom(created)
    changed.metadata.uid = "other"
    changed.metadata.creation_timestamp.FromDatetime(dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
    changed.metadata.labels["x"] = "y"
    updated = await client.update(changed)
    assert updated.metadata.uid == created.metadata.uid
    assert updated.metadata.creation_timestamp == created.metadata.creation_timestamp


async def test_generate_name(client: Client) -> None:
    """generateName gets a random suffix, and each create gets a new name."""
    p = pod("")
    p.metadata.generate_name = "web-"
    a, b = await client.create(p), await client.create(p)
    assert a.metadata.name.startswith("web-") and len(a.metadata.name) == len("web-") + 5
    assert a.metadata.name != b.metadata.name


async def test_generation_bumps_on_spec_change_only(client: Client) -> None:
    """generation counts spec changes: labels, annotations and status leave it alone."""
    dep = await client.create(make("Deployment"))
    assert dep.metadata.generation == 1
    dep.metadata.labels["a"] = "b"
    dep.metadata.annotations["note"] = "x"
    dep = await client.update(dep)
    assert dep.metadata.generation == 1
    dep.spec.replicas = 5
    dep = await client.update(dep)
    assert dep.metadata.generation == 2
    dep.status.replicas = 5
    dep.status.observed_generation = 2
    dep = await client.update_status(dep)
    assert dep.metadata.generation == 2
    dep.spec.template.spec.containers[0].image = "nginx:1.26"
    dep = await client.update(dep)
    assert dep.metadata.generation == 3


async def test_noop_update_keeps_resource_version(client: Client) -> None:
    """An update that changes nothing returns the object with its resourceVersion unchanged."""
    created = await client.create(make("Service"))
    again = await client.update(created)
    assert again.metadata.resource_version == created.metadata.resource_version


@pytest.mark.parametrize("kind", ["Deployment", "ReplicaSet", "Service", "Node", "Namespace"])
async def test_update_without_status_is_a_noop(client: Client, kind: str) -> None:
    """Re-sending an object's manifest (no status, as `apply` does) changes nothing: same resourceVersion, no
    `status: {}` appearing."""
    created = await client.create(make(kind))
    again = make(kind)
    again.metadata.name = created.metadata.name
    if kind in ("Service",):
        again.spec.cluster_ip = created.spec.cluster_ip
        again.spec.cluster_ips[:] = created.spec.cluster_ips
        again.spec.ip_families[:] = created.spec.ip_families
        again.spec.ip_family_policy = created.spec.ip_family_policy
    if kind == "Namespace":
        again.spec.finalizers[:] = created.spec.finalizers
    if kind == "Node":
        again.metadata.labels.update(created.metadata.labels)
    updated = await client.update(again)
    assert updated.metadata.resource_version == created.metadata.resource_version
    assert updated == created


async def test_update_uses_the_servers_defaults(client: Client) -> None:
    """An update that omits defaulted fields gets the defaults again instead of losing them."""
    created = await client.create(make("Deployment"))
    sparse = make("Deployment", labels={"a": "b"})
    updated = await client.update(sparse)
    assert updated.spec.strategy.rolling_update.max_surge == "25%"
    assert updated.spec.template.spec.restart_policy == "Always"
    assert updated.spec == created.spec
    assert updated.metadata.generation == 1


async def test_pod_update_may_not_drop_admission_tolerations(client: Client) -> None:
    """The tolerations the apiserver added on create are part of the immutable pod spec."""
    await client.create(pod("p"))
    with pytest.raises(InvalidError, match=r'Pod "p" is invalid: spec: Forbidden: pod updates may not change'):
        await client.update(pod("p", labels={"a": "b"}))


# ---------------------------------------------------------------- compare-and-swap


async def test_two_writers_same_version_one_wins(client: Client) -> None:
    """Two updates from the same resourceVersion: the first wins, the second gets a conflict."""
    base = await client.create(make("Deployment"))
    a, b = apps_pb2.Deployment(), apps_pb2.Deployment()
    a.CopyFrom(base)
    b.CopyFrom(base)
    a.spec.replicas, b.spec.replicas = 7, 9
    await client.update(a)
    with pytest.raises(ConflictError, match='Operation cannot be fulfilled on deployments "web": the object has been '
                                            "modified"):
        await client.update(b)
    assert (await client.get("deploy", "web", "default")).spec.replicas == 7


async def test_many_concurrent_writers_exactly_one_wins(client: Client) -> None:
    """Twenty writers racing from the same resourceVersion: exactly one succeeds, the rest conflict."""
    base = await client.create(make("Deployment"))

    async def write(i: int) -> int:
        d = apps_pb2.Deployment()
        d.CopyFrom(base)
        d.spec.replicas = 100 + i
        return (await client.update(d)).spec.replicas

    results = await asyncio.gather(*(write(i) for i in range(20)), return_exceptions=True)
    wins = [r for r in results if isinstance(r, int)]
    assert len(wins) == 1, results
    assert all(isinstance(r, ConflictError) for r in results if not isinstance(r, int))
    assert (await client.get("deploy", "web", "default")).spec.replicas == wins[0]


async def test_many_writers_on_separate_servers_exactly_one_wins(etcd: str, client: Client) -> None:
    """The compare-and-swap holds across apiservers: writers split over two servers, still one winner."""
    from conftest import start_apiserver

    other = await start_apiserver(etcd)
    try:
        async with other.client() as second:
            base = await client.create(make("Deployment"))

            async def write(i: int) -> int:
                d = apps_pb2.Deployment()
                d.CopyFrom(base)
                d.spec.replicas = 100 + i
                return (await (client if i % 2 else second).update(d)).spec.replicas

            results = await asyncio.gather(*(write(i) for i in range(20)), return_exceptions=True)
    finally:
        await other.stop()
    assert len([r for r in results if isinstance(r, int)]) == 1, results
    assert sum(isinstance(r, ConflictError) for r in results) == 19


async def test_unconditional_updates_never_conflict(client: Client) -> None:
    """Updates without a resourceVersion are retried by the server: all succeed and the last write wins whole."""
    await client.create(make("Deployment"))

    async def label(i: int) -> apps_pb2.Deployment:
        d = await client.get("deploy", "web", "default")
        d.metadata.labels[f"w{i}"] = "1"
        d.metadata.resource_version = ""
        return await client.update(d)

    results = await asyncio.gather(*(label(i) for i in range(10)))
    final = await client.get("deploy", "web", "default")
    newest = max(results, key=lambda d: int(d.metadata.resource_version))
    assert final == newest


async def test_update_and_update_status_never_clobber(client: Client) -> None:
    """A spec writer and a status writer working at once never undo each other's changes."""
    await client.create(make("Deployment"))
    rounds = 25

    async def spec_writer() -> None:
        for i in range(1, rounds + 1):
            d = await client.get("deploy", "web", "default")
            d.spec.replicas = i
            d.status.replicas = -1  # ignored by Update
            d.metadata.resource_version = ""
            await client.update(d)

    async def status_writer() -> None:
        for i in range(1, rounds + 1):
            d = await client.get("deploy", "web", "default")
            d.status.ready_replicas = i
            d.spec.replicas = -1  # ignored by UpdateStatus
            d.metadata.resource_version = ""
            await client.update_status(d)

    await asyncio.gather(spec_writer(), status_writer())
    final = await client.get("deploy", "web", "default")
    assert final.spec.replicas == rounds
    assert final.status.ready_replicas == rounds
    assert final.status.replicas != -1


async def test_update_status_with_stale_version_conflicts(client: Client) -> None:
    """UpdateStatus with a resourceVersion is a compare-and-swap too."""
    created = await client.create(make("Deployment"))
    created.spec.replicas = 4
    await client.update(created)
    created.status.replicas = 1
    with pytest.raises(ConflictError):
        await client.update_status(created)


async def test_update_status_on_kind_without_status(client: Client) -> None:
    """Kinds without a status subresource refuse UpdateStatus."""
    lease = await client.create(make("Lease"))
    # Unsupported travels as INVALID_ARGUMENT, which the client raises as InvalidError.
    with pytest.raises(InvalidError, match="leases have no status subresource"):
        await client.update_status(lease)


# ---------------------------------------------------------------- subresources


async def test_bind_sets_node_once(client: Client) -> None:
    """Bind sets spec.nodeName and PodScheduled=True; a second bind is a conflict naming the node."""
    created = await client.create(pod("p"))
    bound = await client.bind("default", "p", "node-1", uid=created.metadata.uid)
    assert bound.spec.node_name == "node-1"
    assert [(c.type, c.status) for c in bound.status.conditions] == [("PodScheduled", "True")]
    assert int(bound.metadata.resource_version) > int(created.metadata.resource_version)
    with pytest.raises(ConflictError, match='pod p is already assigned to node "node-1"'):
        await client.bind("default", "p", "node-2")
    assert (await client.get("pods", "p", "default")).spec.node_name == "node-1"


async def test_concurrent_binds_one_wins(client: Client) -> None:
    """Schedulers racing to bind the same pod: exactly one bind succeeds."""
    await client.create(pod("p"))
    results = await asyncio.gather(*(client.bind("default", "p", f"node-{i}") for i in range(10)),
                                   return_exceptions=True)
    winners = [r for r in results if not isinstance(r, Exception)]
    assert len(winners) == 1
    assert (await client.get("pods", "p", "default")).spec.node_name == winners[0].spec.node_name


@pytest.mark.parametrize(("name", "uid", "node", "error", "message"), [
    pytest.param("ghost", "", "n1", NotFoundError, 'pods "ghost" not found', id="missing-pod"),
    pytest.param("p", "not-this-uid", "n1", ConflictError, "was recreated", id="wrong-uid"),
    pytest.param("p", "", "", InvalidError, "target.name: Required value", id="no-node"),
])
async def test_bind_errors(client: Client, name: str, uid: str, node: str, error: type, message: str) -> None:
    """Bind refuses missing pods, a recreated pod (uid mismatch) and an empty node name."""
    await client.create(pod("p"))
    with pytest.raises(error, match=message):
        await client.bind("default", name, node, uid=uid)


async def test_update_cannot_bind(client: Client) -> None:
    """A plain Update may not set spec.nodeName: only Bind may."""
    created = await client.create(pod("p"))
    created.spec.node_name = "node-1"
    with pytest.raises(InvalidError, match=r"spec: Forbidden: pod updates may not change fields"):
        await client.update(created)


async def test_scale(client: Client) -> None:
    """Scale sets replicas of Deployments and ReplicaSets and refuses other kinds and negative counts."""
    await client.create(make("Deployment"))
    scaled = await client.scale("deployments", "web", 6, "default")
    assert scaled.spec.replicas == 6 and scaled.metadata.generation == 2
    with pytest.raises(InvalidError, match="pods cannot be scaled; only deployments and replicasets"):
        await client.scale("pods", "web", 1, "default")
    with pytest.raises(InvalidError, match=r"spec\.replicas: Invalid value: -1"):
        await client.scale("deployments", "web", -1, "default")


async def test_dry_run_writes_nothing(client: Client) -> None:
    """A dry-run create or update returns the would-be object and stores nothing."""
    shown = await client.create(pod("p"), dry_run=True)
    assert shown.spec.restart_policy == "Always"
    assert await _gone(client, "pods", "p", "default")
    created = await client.create(pod("p"))
    created.metadata.labels["x"] = "y"
    shown = await client.update(created, dry_run=True)
    assert shown.metadata.labels["x"] == "y"
    assert "x" not in (await client.get("pods", "p", "default")).metadata.labels


async def test_api_resources(client: Client) -> None:
    """APIResources lists every kind with its short names and scope."""
    res = {r.name: r for r in await client.api_resources()}
    assert set(res) == {k.resource for k in kinds.KINDS}
    assert list(res["pods"].short_names) == ["po"] and res["pods"].namespaced
    assert res["deployments"].api_version == "apps/v1"
    assert not res["nodes"].namespaced
