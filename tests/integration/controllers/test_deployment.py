"""The Deployment controller against a real apiserver; rollouts run on hollow kubelets with the real scheduler."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable
from typing import Any

import pytest

from api.errors import ConflictError
from api.pb import apps_pb2
from client.api import Client
from controllers.deployment import util
from controllers.manager import ControllerManager
from kubelet.hollow import HollowCluster

from .conftest import (
    KUBELITE_ENV,
    KUBELITE_PATH,
    PodCensus,
    create,
    deployment_yaml,
    eventually,
    owned_by,
    watch_census,
)


def kubelite(address: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the CLI against `address`."""
    return subprocess.run([KUBELITE_PATH, *args, "--server", address], capture_output=True, text=True,
                          timeout=timeout, env=KUBELITE_ENV, check=False)


async def rollout_done(client: Client, name: str = "web") -> apps_pb2.Deployment | None:
    d = await client.get("deployments", name, "default")
    s, r = d.status, d.spec.replicas
    done = (s.observed_generation >= d.metadata.generation and s.updated_replicas == r and s.replicas == r
            and s.available_replicas == r)
    return d if done else None


async def replicasets(client: Client, d: apps_pb2.Deployment) -> list[apps_pb2.ReplicaSet]:
    return sorted((rs for rs in await client.list_all("replicasets", "default") if owned_by(rs, d.metadata.uid)),
                  key=util.revision)


async def edit(client: Client, change: Callable[[apps_pb2.Deployment], None], name: str = "web") -> None:
    """Read, change, update; retried when the controller wrote the deployment in between (as kubectl does)."""
    for _ in range(20):
        d = await client.get("deployments", name, "default")
        change(d)
        try:
            await client.update(d)
            return
        except ConflictError:
            await asyncio.sleep(0.01)
    raise AssertionError("deployment kept changing")


async def set_image(client: Client, image: str, name: str = "web") -> None:
    def change(d: apps_pb2.Deployment) -> None:
        d.spec.template.spec.containers[0].image = image

    await edit(client, change, name)


async def test_new_replicaset_named_by_template_hash(client: Client, manager: ControllerManager) -> None:
    """A Deployment owns a ReplicaSet `<name>-<hash>` whose selector and template carry pod-template-hash."""
    d = await create(client, deployment_yaml(replicas=2))
    rss = await eventually(lambda: _n_replicasets(client, d, 1))
    rs = rss[0]
    h = util.compute_hash(d.spec.template)
    assert rs.metadata.name == f"web-{h}" and rs.spec.replicas == 2
    assert rs.spec.selector.match_labels == {"app": "web", util.HASH_LABEL: h}
    assert rs.spec.template.metadata.labels[util.HASH_LABEL] == h
    assert rs.metadata.annotations[util.REVISION] == "1"
    assert rs.metadata.owner_references[0].controller and rs.metadata.owner_references[0].block_owner_deletion

    async def annotated() -> bool:
        cur = await client.get("deployments", "web", "default")
        return cur.metadata.annotations.get(util.REVISION) == "1" and \
            cur.status.observed_generation == cur.metadata.generation

    await eventually(annotated, what="revision annotation and observedGeneration")
    events = await client.list_all("events", "default", field_selector="involvedObject.kind=Deployment")
    assert any(e.reason == "ScalingReplicaSet" and e.message == f"Scaled up replica set web-{h} from 0 to 2"
               for e in events)


async def _n_replicasets(client: Client, d: apps_pb2.Deployment, n: int) -> list[apps_pb2.ReplicaSet] | None:
    rss = await replicasets(client, d)
    return rss if len(rss) == n else None


@pytest.mark.parametrize(("replicas", "surge", "unavailable", "bounds"), [
    pytest.param(10, "25%", "25%", (13, 8), id="defaults"),
    pytest.param(6, "0", "1", (6, 5), id="no-surge"),
    pytest.param(5, "100%", "0", (10, 5), id="no-unavailability"),
])
async def test_rolling_update_bounds_then_undo(client: Client, cluster: HollowCluster, apiserver: Any,
                                               replicas: int, surge: str, unavailable: str,
                                               bounds: tuple[int, int]) -> None:
    """During a rolling update (and its undo) a watcher never sees more than N + maxSurge pods, terminating ones
    included, nor fewer than N - maxUnavailable ready ones; `rollout undo` brings the first template back."""
    max_pods, min_ready = bounds
    strategy = f"{{type: RollingUpdate, rollingUpdate: {{maxSurge: '{surge}', maxUnavailable: '{unavailable}'}}}}"
    d = await create(client, deployment_yaml(replicas=replicas, strategy=strategy))
    await eventually(lambda: rollout_done(client), timeout=30, what="first rollout")
    first = (await replicasets(client, d))[0]
    census = PodCensus(selector="app=web")
    watcher = asyncio.create_task(watch_census(client, census))
    try:
        await eventually(lambda: _true(census.samples >= 1))
        await set_image(client, "localhost:5000/kubelite/busybox:next")
        await eventually(lambda: rollout_done(client), timeout=30, what="rolling update")
        rss = await replicasets(client, d)
        assert [rs.spec.replicas for rs in rss] == [0, replicas]
        assert [util.revision(rs) for rs in rss] == [1, 2]

        undo = await asyncio.to_thread(kubelite, apiserver.address, "rollout", "undo", "deployment/web")
        assert undo.returncode == 0, undo.stderr
        assert undo.stdout.strip() == "deployment.apps/web rolled back"
        cur = await eventually(lambda: rollout_done(client), timeout=30, what="undo")
        assert util.equal_ignore_hash(cur.spec.template, first.spec.template)
        rss = await replicasets(client, d)
        active = [rs for rs in rss if rs.spec.replicas]
        assert [rs.metadata.name for rs in active] == [first.metadata.name]
        assert util.revision(active[0]) == 3 and active[0].metadata.annotations[util.REVISION_HISTORY] == "1"
        await asyncio.sleep(0.3)
        assert census.active == replicas
    finally:
        watcher.cancel()
    assert census.max_total <= max_pods, census.max_total
    assert census.min_ready >= min_ready, census.min_ready
    assert census.max_total >= replicas + 1 or surge == "0"  # the watcher did see the rollout happen


async def _true(value: bool) -> bool:
    return value


async def test_recreate_never_mixes_versions(client: Client, cluster: HollowCluster) -> None:
    """Recreate scales the old ReplicaSet to zero and waits for its pods to be gone before starting new ones."""
    d = await create(client, deployment_yaml(replicas=4, strategy="{type: Recreate}"))
    await eventually(lambda: rollout_done(client), timeout=30)
    mixed = False
    census = PodCensus(selector="app=web")

    def check(type_: str, pod: Any) -> None:
        nonlocal mixed
        census.apply(type_, pod)
        hashes = {p.metadata.labels[util.HASH_LABEL] for p in census.pods.values()}
        mixed = mixed or len(hashes) > 1

    async def watch() -> None:
        listed = await client.list("pods", "default", label_selector="app=web")
        census.load(listed.items)
        async for ev in client.watch("pods", "default", resource_version=listed.resource_version):
            if ev.type != "BOOKMARK":
                check(ev.type, ev.object)

    watcher = asyncio.create_task(watch())
    try:
        await set_image(client, "localhost:5000/kubelite/busybox:next")
        await eventually(lambda: rollout_done(client), timeout=30)
    finally:
        watcher.cancel()
    assert not mixed
    assert [rs.spec.replicas for rs in await replicasets(client, d)] == [0, 4]


async def test_progress_deadline_exceeded(client: Client, manager: ControllerManager, apiserver: Any) -> None:
    """Pods that never become ready (no nodes here) end in Progressing=False/ProgressDeadlineExceeded, and
    `rollout status` exits non-zero saying so."""
    await create(client, deployment_yaml(replicas=2, extra_spec="\n  progressDeadlineSeconds: 2"))

    async def timed_out() -> bool:
        d = await client.get("deployments", "web", "default")
        return any(c.type == "Progressing" and c.status == "False" and c.reason == "ProgressDeadlineExceeded"
                   for c in d.status.conditions)

    await eventually(timed_out, timeout=10, what="ProgressDeadlineExceeded")
    d = await client.get("deployments", "web", "default")
    available = next(c for c in d.status.conditions if c.type == "Available")
    assert (available.status, available.reason) == ("False", "MinimumReplicasUnavailable")
    result = await asyncio.to_thread(kubelite, apiserver.address, "rollout", "status", "deployment/web")
    assert result.returncode != 0
    assert 'error: deployment "web" exceeded its progress deadline' in result.stderr
    events = await client.list_all("events", "default", field_selector="reason=ProgressDeadlineExceeded")
    assert events


async def test_paused_deployment_does_not_roll(client: Client, manager: ControllerManager) -> None:
    """A paused deployment scales but does not roll out a new template until resumed."""
    d = await create(client, deployment_yaml(replicas=2))
    await eventually(lambda: _n_replicasets(client, d, 1))
    def pause_and_change(cur: apps_pb2.Deployment) -> None:
        cur.spec.paused = True
        cur.spec.template.spec.containers[0].image = "other:1"
        cur.spec.replicas = 3

    await edit(client, pause_and_change)

    async def paused_condition() -> bool:
        x = await client.get("deployments", "web", "default")
        return any(c.type == "Progressing" and c.reason == "DeploymentPaused" and c.status == "Unknown"
                   for c in x.status.conditions)

    await eventually(paused_condition)
    rss = await eventually(lambda: _scaled(client, d, [3]), what="scaled while paused")
    assert rss[0].spec.template.spec.containers[0].image != "other:1"
    await asyncio.sleep(0.3)
    assert len(await replicasets(client, d)) == 1
    def resume(cur: apps_pb2.Deployment) -> None:
        cur.spec.paused = False

    await edit(client, resume)
    await eventually(lambda: _n_replicasets(client, d, 2), what="new ReplicaSet after resume")


async def _scaled(client: Client, d: apps_pb2.Deployment, sizes: list[int]) -> list[apps_pb2.ReplicaSet] | None:
    rss = await replicasets(client, d)
    return rss if [rs.spec.replicas for rs in rss] == sizes else None


async def test_revision_history_limit(client: Client, manager: ControllerManager) -> None:
    """Old ReplicaSets beyond revisionHistoryLimit are deleted once the rollout is complete."""
    d = await create(client, deployment_yaml(replicas=0, extra_spec="\n  revisionHistoryLimit: 1"))
    for i in range(3):
        await eventually(lambda: rollout_done(client))
        await eventually(lambda i=i: _n_replicasets_at_least(client, d, min(i + 1, 2)))
        await set_image(client, f"busybox:{i}")

    async def trimmed() -> list[int] | None:
        revs = [util.revision(rs) for rs in await replicasets(client, d)]
        return revs if revs == [3, 4] else None

    await eventually(trimmed, what="history trimmed to the limit")


async def _n_replicasets_at_least(client: Client, d: apps_pb2.Deployment, n: int) -> bool:
    return len(await replicasets(client, d)) >= n


async def test_scaling_during_rollout_is_proportional(client: Client, manager: ControllerManager) -> None:
    """Scaling a deployment in the middle of a rollout grows old and new ReplicaSets in proportion."""
    strategy = "{type: RollingUpdate, rollingUpdate: {maxSurge: 3, maxUnavailable: 0}}"
    d = await create(client, deployment_yaml(replicas=10, strategy=strategy))
    await eventually(lambda: _scaled(client, d, [10]))
    await set_image(client, "busybox:2")  # no nodes: the new pods never become ready, so the rollout stalls
    await eventually(lambda: _scaled(client, d, [10, 3]), what="stalled rollout")
    await client.scale("deployments", "web", 20, "default")
    rss = await eventually(lambda: _total(client, d, 23), what="proportional scale")
    assert [rs.spec.replicas for rs in rss] == [18, 5]  # 10*23/13 -> 18, 3*23/13 -> 5, as Kubernetes rounds


async def _total(client: Client, d: apps_pb2.Deployment, total: int) -> list[apps_pb2.ReplicaSet] | None:
    rss = await replicasets(client, d)
    return rss if sum(rs.spec.replicas for rs in rss) == total else None


async def test_deleting_deployment_cascades(client: Client, manager: ControllerManager) -> None:
    """Deleting a deployment deletes its ReplicaSets and their pods (background propagation)."""
    d = await create(client, deployment_yaml(replicas=3))
    await eventually(lambda: _pods(client, 3))
    await client.delete("deployments", "web", "default")
    await eventually(lambda: _pods(client, 0), what="pods collected")
    assert not await replicasets(client, d)


async def _pods(client: Client, n: int) -> bool:
    return len(await client.list_all("pods", "default", label_selector="app=web")) == n
