"""The kubelet over the fake runtime against a real apiserver and etcd: node, lease, pods, status, deletion."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import time
from pathlib import Path

import pytest
import testpki

from api.errors import NotFoundError
from api.pb import api_pb2, core_pb2
from apiserver import satoken
from client.api import Client
from deploy.node import certs
from kubelet import node as node_module
from kubelet.hollow import HollowCluster, HollowConfig
from kubelet.node import LEASE_NAMESPACE
from kubelet.objects import ObjectManager
from kubelet.runtime import images
from kubelet.runtime.fake import FakeRuntime, ImageBehavior
from kubelet.runtime.interface import ExecResult, RuntimeUnavailableError
from kubelet.status import StatusManager
from kubelet.volumes import SERVICE_ACCOUNT_PATH

from .kubelethelp import (
    BUSYBOX,
    Apiserver,
    condition,
    config,
    eventually,
    gone,
    kubelet,
    pod,
    pod_where,
    running_ready,
    state_of,
)

EXIT0 = "localhost:5000/test/exit0:1"
EXIT1 = "localhost:5000/test/exit1:1"
CHATTY = "localhost:5000/test/chatty:1"
BRIEF = "localhost:5000/test/brief:1"
BEHAVIORS = {
    BRIEF: ImageBehavior(exit_code=0, run_seconds=1.5, logs=("one", "two")),
    EXIT0: ImageBehavior(exit_code=0, run_seconds=0.2),
    EXIT1: ImageBehavior(exit_code=1, run_seconds=0.1),
    CHATTY: ImageBehavior(logs=("hello", "world"), exec_result=ExecResult(b"out\n", b"err\n", 3)),
}


def fake(**kw: object) -> FakeRuntime:
    return FakeRuntime(images=(images.PAUSE_IMAGE, BUSYBOX, EXIT0, EXIT1, CHATTY, BRIEF), behaviors=BEHAVIORS,
                       pod_cidr="10.244.5.0/24", **kw)  # type: ignore[arg-type]


async def test_registers_node_and_renews_lease(client: Client, tmp_path: Path) -> None:
    """The kubelet registers its Node with capacity, addresses, kubelet port and node info, and renews its Lease."""
    cfg = config("node-a", tmp_path, pod_cidr="10.244.5.0/24", node_ip="127.0.0.1", capacity_cpu_milli=8000,
                 capacity_memory=16 << 30, reserved_cpu_milli=1000, max_pods=30, node_labels={"zone": "z1"})
    async with kubelet(client, fake(), cfg) as k:
        node: core_pb2.Node = await client.get("nodes", "node-a")
        assert node.spec.pod_cidr == "10.244.5.0/24"
        assert node.metadata.labels["kubernetes.io/hostname"] == "node-a" and node.metadata.labels["zone"] == "z1"
        assert dict(node.status.capacity) == {"cpu": "8", "memory": "16Gi", "pods": "30"}
        assert node.status.allocatable["cpu"] == "7"
        assert node.status.daemon_endpoints.kubelet_endpoint.port == k.config.listen_port > 0
        assert ("InternalIP", "127.0.0.1") in [(a.type, a.address) for a in node.status.addresses]
        assert node.status.node_info.container_runtime_version == "kubelite-fake://0.1.0"
        assert next(c for c in node.status.conditions if c.type == "Ready").status == "True"

        lease = await eventually(lambda: client.get("leases", "node-a", LEASE_NAMESPACE), what="the lease")
        assert (lease.spec.holder_identity, lease.spec.lease_duration_seconds) == ("node-a", 4)
        assert lease.metadata.owner_references[0].uid == node.metadata.uid
        first = lease.spec.renew_time.ToNanoseconds()

        async def renewed() -> bool:
            current = await client.get("leases", "node-a", LEASE_NAMESPACE)
            return current.spec.renew_time.ToNanoseconds() > first

        await eventually(renewed, timeout=3, what="the lease to be renewed")


def node_ready(node: core_pb2.Node) -> tuple[str, str]:
    ready = next(c for c in node.status.conditions if c.type == "Ready")
    return ready.status, ready.message


async def test_a_runtime_silent_for_seconds_leaves_the_node_ready(client: Client, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A runtime that does not answer for about 3 s (containerd killed and started again) leaves the node Ready
    throughout; one silent past RUNTIME_DOWN_AFTER (30 s, here 2 s) makes it NotReady, saying why."""
    runtime = fake()
    cfg = config("node-silent", tmp_path, pod_cidr="10.244.5.0/24", node_ip="127.0.0.1")
    async with kubelet(client, runtime, cfg):
        await eventually(lambda: _ready_node(client, "node-silent"), what="the node Ready")
        for _ in range(3):  # the next three checks, one a second
            runtime.fail_next("status", RuntimeUnavailableError("connection refused"))
        seen = set()
        for _ in range(40):
            seen.add(node_ready(await client.get("nodes", "node-silent"))[0])
            await asyncio.sleep(0.1)
        assert "status" in runtime.calls and not runtime._failures["status"], "the three checks failed"
        assert seen == {"True"}, seen

        monkeypatch.setattr(node_module, "RUNTIME_DOWN_AFTER", 2.0)
        for _ in range(6):
            runtime.fail_next("status", RuntimeUnavailableError("connection refused"))
        node = await eventually(lambda: _not_ready_node(client, "node-silent"), timeout=10, what="the node NotReady")
        assert node_ready(node) == ("False", "container runtime is down: connection refused")


async def _ready_node(client: Client, name: str) -> core_pb2.Node | None:
    node = await client.get("nodes", name)
    return node if node_ready(node)[0] == "True" else None


async def _not_ready_node(client: Client, name: str) -> core_pb2.Node | None:
    node = await client.get("nodes", name)
    return node if node_ready(node)[0] == "False" else None


async def test_reregisters_over_existing_node(client: Client, tmp_path: Path) -> None:
    """A Node of the same name (a restart or rebuild) is taken over, not refused: labels merged, taints kept."""
    stale = core_pb2.Node(metadata={"name": "node-b", "labels": {"team": "infra"}})
    stale.spec.taints.add(key="node.kubernetes.io/unreachable", effect="NoExecute")
    stale.status.conditions.add(type="Ready", status="Unknown", reason="NodeStatusUnknown")
    created = await client.create(stale)
    cfg = config("node-b", tmp_path, pod_cidr="10.244.6.0/24")
    async with kubelet(client, fake(), cfg):
        node = await client.get("nodes", "node-b")
        assert node.metadata.uid == created.metadata.uid
        assert node.metadata.labels["team"] == "infra" and node.metadata.labels["kubernetes.io/hostname"] == "node-b"
        assert [t.key for t in node.spec.taints] == ["node.kubernetes.io/unreachable"]
        assert node.spec.pod_cidr == "10.244.6.0/24"
        assert next(c for c in node.status.conditions if c.type == "Ready").status == "True"
    async with kubelet(client, fake(), cfg) as again:
        assert again.node is not None and again.node.registered.is_set()
        assert (await client.get("nodes", "node-b")).metadata.uid == created.metadata.uid


async def test_pod_runs_and_reports_status(client: Client, tmp_path: Path) -> None:
    """A bound pod runs: Running and Ready with an IP, the host IP, started containers and its QoS class kept."""
    async with kubelet(client, fake(), config("node-c", tmp_path, node_ip="127.0.0.1")) as k:
        await client.create(pod("web", "node-c", {"name": "a"}, {"name": "b", "resources": {"limits": {
            "cpu": "100m", "memory": "32Mi"}}}))
        p = await pod_where(client, "web", running_ready, what="web running and ready")
        sent = k.status.sent
        await asyncio.sleep(1.5)
        assert k.status.sent == sent, "a steady pod sends no more statuses (its own writes do not echo back)"
        assert p.status.pod_ip.startswith("10.244.5.") and p.status.host_ip == "127.0.0.1"
        assert [c.container_id.split("://")[0] for c in p.status.container_statuses] == ["kubelite-fake"] * 2
        assert all(c.started and c.state.HasField("running") for c in p.status.container_statuses)
        assert condition(p, "PodScheduled") == "True" and condition(p, "Ready") == "True"
        assert p.status.qos_class == "Burstable" and p.status.HasField("start_time")


@pytest.mark.parametrize(
    ("image", "policy", "phase"),
    [
        pytest.param(EXIT0, "Never", "Succeeded", id="job-succeeds"),
        pytest.param(EXIT1, "Never", "Failed", id="never-fails"),
        pytest.param(EXIT0, "OnFailure", "Succeeded", id="onfailure-succeeds"),
    ],
)
async def test_finished_pods(client: Client, tmp_path: Path, image: str, policy: str, phase: str) -> None:
    """Pods whose containers exit end Succeeded or Failed per restartPolicy, with the exit code reported."""
    rt = fake()
    async with kubelet(client, rt, config("node-d", tmp_path)):
        await client.create(pod("job", "node-d", {"name": "main", "image": image}, policy=policy))
        p = await pod_where(client, "job", lambda p: p.status.phase == phase, what=f"job {phase}")
        term = state_of(p, "main").state.terminated  # type: ignore[union-attr]
        assert term.exit_code == (0 if phase == "Succeeded" else 1)
        assert condition(p, "Ready") == "False"
        # The sandbox is stopped once nothing will run again.
        await eventually(lambda: _no_ready_sandbox(rt), what="sandbox stopped")


async def _no_ready_sandbox(rt: FakeRuntime) -> bool:
    return all(s.state.value != "ready" for s in await rt.list_pod_sandboxes())


async def test_crash_loop_back_off(client: Client, tmp_path: Path) -> None:
    """A container that keeps failing under Always restarts with rising counts and waits in CrashLoopBackOff."""
    async with kubelet(client, fake(), config("node-e", tmp_path)):
        await client.create(pod("crash", "node-e", {"name": "main", "image": EXIT1}))
        seen: set[str] = set()

        async def looping() -> core_pb2.Pod | None:
            p = await client.get("pods", "crash", "default")
            cs = state_of(p, "main")
            if cs is not None and cs.state.HasField("waiting"):
                seen.add(cs.state.waiting.reason)
            return p if cs is not None and cs.restart_count >= 3 and "CrashLoopBackOff" in seen else None

        p = await eventually(looping, timeout=20, what="restarts and CrashLoopBackOff")
        cs = state_of(p, "main")
        assert cs is not None and cs.last_state.terminated.exit_code == 1
        assert p.status.phase == "Running"


async def test_delete_stops_reports_and_removes(client: Client, tmp_path: Path) -> None:
    """A deleted pod is stopped, its final status reported, then removed from the API and the runtime."""
    rt = fake()
    async with kubelet(client, rt, config("node-f", tmp_path)):
        created = await client.create(pod("doomed", "node-f", {"name": "main"}, grace=5))
        await pod_where(client, "doomed", running_ready)
        events = []

        async def watch() -> None:
            async for ev in client.watch("pods", "default", resource_version=created.metadata.resource_version):
                events.append(ev)
                if ev.type == "DELETED" and ev.object.metadata.name == "doomed":
                    return

        watcher = asyncio.ensure_future(watch())
        await client.delete("pods", "doomed", "default")
        async with asyncio.timeout(15):
            await watcher
        finals = [e.object for e in events if e.type == "MODIFIED" and e.object.status.phase in ("Failed", "Succeeded")]
        assert finals, "the final status reached the API before the pod was removed"
        term = state_of(finals[-1], "main").state.terminated  # type: ignore[union-attr]
        assert term.exit_code == 143, "stopped with SIGTERM within its grace period"

        async def removed() -> bool:
            # The pod's directory (its service account token among it) goes after the runtime lets go.
            return await rt.list_pod_sandboxes() == [] and await rt.list_containers() == [] and \
                not (tmp_path / "pods" / created.metadata.uid).exists()

        await eventually(removed, what="the pod removed from the runtime and its directory")


async def test_logs_and_exec_through_apiserver(client: Client, tmp_path: Path) -> None:
    """Logs and exec reach the kubelet through the apiserver's proxy (node InternalIP and kubelet port)."""
    async with kubelet(client, fake(), config("node-g", tmp_path, node_ip="127.0.0.1")):
        await client.create(pod("talk", "node-g", {"name": "main", "image": CHATTY}))
        await pod_where(client, "talk", running_ready)
        req = api_pb2.LogsRequest(namespace="default", name="talk", container="main")
        assert b"".join([c async for c in client.logs(req)]) == b"hello\nworld\n"
        req.tail_lines = 1
        req.timestamps = True
        (line,) = [c async for c in client.logs(req)]
        assert line.endswith(b"Z world\n")
        await client.create(pod("brief", "node-g", {"name": "main", "image": BRIEF}, policy="Never"))
        await pod_where(client, "brief", lambda p: p.status.phase == "Running")
        follow = api_pb2.LogsRequest(namespace="default", name="brief", follow=True)
        async with asyncio.timeout(10):
            assert b"".join([c async for c in client.logs(follow)]) == b"one\ntwo\n", "follow ends with the container"
        since = api_pb2.LogsRequest(namespace="default", name="talk", since_seconds=0)
        assert [c async for c in client.logs(since)] == []
        resp = await client.exec("default", "talk", ["anything"])
        assert (resp.stdout, resp.stderr, resp.exit_code) == (b"out\n", b"err\n", 3)
        with pytest.raises(NotFoundError):
            await client.exec("default", "missing", ["x"])


async def test_restart_adopts_pods_and_removes_orphans(client: Client, tmp_path: Path) -> None:
    """A restarted kubelet keeps running pods as they are, and removes pods deleted while it was away."""
    rt = fake()
    cfg = config("node-h", tmp_path)
    async with kubelet(client, rt, cfg):
        await client.create(pod("keep", "node-h"))
        await client.create(pod("lost", "node-h"))
        keep = await pod_where(client, "keep", running_ready)
        await pod_where(client, "lost", running_ready)
    # Deleted while no kubelet watched: bound pods with grace 0 go at once.
    await client.delete("pods", "lost", "default", grace_period_seconds=0)
    rt.calls.clear()
    async with kubelet(client, rt, cfg):
        async def orphan_gone() -> bool:
            return {s.name for s in await rt.list_pod_sandboxes()} == {"keep"}

        await eventually(orphan_gone, what="the orphan's sandbox removed")
        again = await client.get("pods", "keep", "default")
        assert [c.container_id for c in again.status.container_statuses] == \
            [c.container_id for c in keep.status.container_statuses]
        assert again.status.container_statuses[0].restart_count == 0
        assert "create_container" not in rt.calls and "run_pod_sandbox" not in rt.calls


async def _mark_node_lost(client: Client, name: str) -> None:
    """What the node-lifecycle controller writes for a pod of an unreachable node."""
    p = await client.get("pods", name, "default")
    for c in p.status.conditions:
        if c.type == "Ready":
            c.status = "False"
    p.status.reason = "NodeLost"
    p.status.message = f"Node {p.spec.node_name} which was running pod {name} is unresponsive"
    p.metadata.resource_version = ""
    await client.update_status(p)


def _reported(p: core_pb2.Pod) -> bool:
    return running_ready(p) and not p.status.reason and not p.status.message


async def test_restarted_kubelet_clears_node_lost(client: Client, tmp_path: Path) -> None:
    """A kubelet that comes back writes what it observes: NodeLost, set while it was away, is gone and the pod is
    Running and Ready again within 5 s, with the same container."""
    rt = fake()
    cfg = config("node-n", tmp_path)
    async with kubelet(client, rt, cfg):
        await client.create(pod("adopt", "node-n"))
        before = await pod_where(client, "adopt", running_ready)
    await _mark_node_lost(client, "adopt")
    start = time.monotonic()
    async with kubelet(client, rt, cfg):
        after = await pod_where(client, "adopt", _reported, what="NodeLost cleared", timeout=5)
    assert time.monotonic() - start < 5
    assert after.status.container_statuses[0].container_id == before.status.container_statuses[0].container_id


async def test_returning_node_clears_node_lost(client: Client, tmp_path: Path) -> None:
    """A kubelet that kept running while its node was cut off rewrites its pods' status when it sees NodeLost."""
    async with kubelet(client, fake(), config("node-r", tmp_path)):
        await client.create(pod("stay", "node-r"))
        await pod_where(client, "stay", running_ready)
        await _mark_node_lost(client, "stay")
        await pod_where(client, "stay", _reported, what="NodeLost cleared", timeout=5)


async def test_status_drift_is_corrected(client: Client, tmp_path: Path) -> None:
    """If another writer changes a pod's status (a controller marking it not ready), the kubelet's comes back."""
    async with kubelet(client, fake(), config("node-i", tmp_path)):
        await client.create(pod("steady", "node-i"))
        p = await pod_where(client, "steady", running_ready)
        for c in p.status.conditions:
            if c.type == "Ready":
                c.status = "False"
        p.metadata.resource_version = ""
        await client.update_status(p)
        await pod_where(client, "steady", lambda p: condition(p, "Ready") == "True", what="Ready restored")


async def test_status_updates_coalesce(client: Client) -> None:
    """A burst of statuses for one pod sends far fewer updates than were set, and the latest wins."""
    created = await client.create(pod("busy", "node-j"))
    manager = StatusManager(client, node="node-j")
    task = asyncio.ensure_future(manager.run())
    try:
        for i in range(200):
            manager.set(created, core_pb2.PodStatus(phase="Running", message=f"step {i}"))
            if i % 50 == 0:
                await asyncio.sleep(0)
        assert await manager.wait_acked(created.metadata.uid, 10)
        assert (await client.get("pods", "busy", "default")).status.message == "step 199"
        assert manager.sent < 20
    finally:
        task.cancel()


async def test_one_stream_carries_many_pods(client: Client) -> None:
    """Statuses of many pods set at once all go over one stream, without breaking it, and are acknowledged."""
    pods = await asyncio.gather(*(client.create(pod(f"many-{i}", "node-n")) for i in range(60)))
    manager = StatusManager(client, node="node-n")
    task = asyncio.ensure_future(manager.run())
    try:
        for i, p in enumerate(pods):
            manager.set(p, core_pb2.PodStatus(phase="Running", message=f"pod {i}"))
        for p in pods:
            assert await manager.wait_acked(p.metadata.uid, 20)
        assert manager.sessions == 1 and manager.sent == 60
        assert (await client.get("pods", "many-59", "default")).status.message == "pod 59"
    finally:
        task.cancel()


async def test_status_stream_resumes_after_apiserver_restart(etcd: str) -> None:
    """Statuses set while the apiserver is down are sent once it is back, on a new stream."""
    api = Apiserver(etcd)
    await api.start()
    client = api.client()
    manager = StatusManager(client, node="node-k")
    task = asyncio.ensure_future(manager.run())
    try:
        created = await client.create(pod("survivor", "node-k"))
        manager.set(created, core_pb2.PodStatus(phase="Pending", message="before"))
        assert await manager.wait_acked(created.metadata.uid, 10)
        await api.stop()
        manager.set(created, core_pb2.PodStatus(phase="Running", message="during"))
        manager.set(created, core_pb2.PodStatus(phase="Running", message="latest"))
        await asyncio.sleep(0.5)
        assert not manager.acknowledged(created.metadata.uid)
        await api.start()
        assert await manager.wait_acked(created.metadata.uid, 20)
        assert (await client.get("pods", "survivor", "default")).status.message == "latest"
        assert manager.sessions >= 2
    finally:
        task.cancel()
        await client.close()
        await api.stop()


async def test_kubelet_survives_apiserver_restart(etcd: str, tmp_path: Path) -> None:
    """A kubelet keeps its pods through an apiserver restart and reports what changed meanwhile."""
    api = Apiserver(etcd)
    await api.start()
    client = api.client()
    try:
        async with kubelet(client, fake(), config("node-l", tmp_path)):
            await client.create(pod("later", "node-l", {"name": "main", "image": EXIT0}, policy="Never",
                                    init=({"name": "wait", "image": EXIT0},)))
            await api.stop()
            await asyncio.sleep(1.0)  # the pod runs and finishes while the apiserver is away
            await api.start()
            p = await pod_where(client, "later", lambda p: p.status.phase == "Succeeded", timeout=30)
            assert state_of(p, "wait").state.terminated.exit_code == 0  # type: ignore[union-attr]
            lease = await client.get("leases", "node-l", LEASE_NAMESPACE)
            assert time.time() - lease.spec.renew_time.seconds < 5, "the lease is renewed again"
    finally:
        await client.close()
        await api.stop()


async def test_hollow_cluster(client: Client, tmp_path: Path) -> None:
    """Hollow nodes register and heartbeat, run pods, and stop and start on demand (also through files)."""
    control = tmp_path / "control"
    cluster = HollowCluster(client, HollowConfig(count=3, prefix="hollow-", lease_renew=0.2, control_dir=control,
                                                 root_dir=tmp_path / "hollow"))
    task = asyncio.ensure_future(cluster.run())
    try:
        await cluster.wait_registered(30)
        nodes = {n.metadata.name for n in await client.list_all("nodes")}
        assert {"hollow-0", "hollow-1", "hollow-2"} <= nodes
        for i in range(4):
            await client.create(pod(f"h{i}", f"hollow-{i % 3}"))
        for i in range(4):
            await pod_where(client, f"h{i}", running_ready)

        async def renewed_at(name: str) -> int:
            return (await client.get("leases", name, LEASE_NAMESPACE)).spec.renew_time.ToNanoseconds()

        (control / "hollow-1.stop").touch()
        await eventually(lambda: _stopped(cluster, "hollow-1"), what="hollow-1 stopped")
        frozen = await renewed_at("hollow-1")
        await asyncio.sleep(0.8)
        assert await renewed_at("hollow-1") == frozen, "a stopped hollow node no longer renews its lease"
        assert await renewed_at("hollow-2") > frozen
        (control / "hollow-1.stop").unlink()

        async def renewing() -> bool:
            return await renewed_at("hollow-1") > frozen

        await eventually(renewing, what="hollow-1 renewing again")
        await cluster.stop_node_and_wait("hollow-2")
        assert not cluster.nodes["hollow-2"].running
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _stopped(cluster: HollowCluster, name: str) -> bool:
    return not cluster.nodes[name].running


async def test_pod_deleted_from_api_is_removed(client: Client, tmp_path: Path) -> None:
    """A pod force-deleted from the API while running is stopped and removed from the runtime."""
    rt = fake()
    async with kubelet(client, rt, config("node-m", tmp_path)):
        await client.create(pod("forced", "node-m"))
        await pod_where(client, "forced", running_ready)
        await client.delete("pods", "forced", "default", grace_period_seconds=0)
        await gone(client, "pods", "forced", "default")

        async def cleaned() -> bool:
            return await rt.list_pod_sandboxes() == []

        await eventually(cleaned, what="the runtime emptied")


def _token_files(directory: str) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in Path(directory).iterdir() if not p.name.startswith("..")}


async def test_service_account_token_is_mounted(client: Client, tmp_path: Path) -> None:
    """A pod gets token, ca.crt and namespace mounted read-only at the usual path in each container, the token
    authenticating as its ServiceAccount; a pod with automountServiceAccountToken: false gets none."""
    runtime = fake()
    async with kubelet(client, runtime, config("node-sa", tmp_path)):
        with_token = await client.create(pod("with-token", "node-sa", {"name": "a"}, {"name": "b"}))
        await client.create(pod("without", "node-sa", automount_service_account_token=False))
        await pod_where(client, "with-token", running_ready, what="with-token running")
        await pod_where(client, "without", running_ready, what="without running")
        mounts = {(c.config.labels.get("io.kubernetes.pod.name"), c.config.name): c.config.mounts
                  for c in runtime._containers.values()}
        for name in ("a", "b"):
            [m] = [m for m in mounts[("with-token", name)] if m.container_path == SERVICE_ACCOUNT_PATH]
            assert m.readonly
            files = _token_files(m.host_path)
            assert sorted(files) == ["ca.crt", "namespace", "token"]
            assert files["namespace"] == b"default"
            assert files["ca.crt"] == testpki.get().pem(certs.CA)
            claims = satoken.verify(files["token"].decode(), satoken.load_public(testpki.get().store.sa_pub),
                                    audiences=[satoken.ISSUER], now=datetime.datetime.now(datetime.UTC))
            assert (claims.namespace, claims.name, claims.pod_name, claims.pod_uid) == (
                "default", "default", "with-token", with_token.metadata.uid)
        assert not [m for m in mounts[("without", "main")] if m.container_path == SERVICE_ACCOUNT_PATH]


async def test_service_account_token_is_renewed_at_80_percent(client: Client) -> None:
    """The kubelet keeps a pod's token until 80% of its lifetime has passed, then asks for a new one."""
    created = await client.create(pod("renewed", "node-r"))
    async with asyncio.TaskGroup() as tg:
        manager = ObjectManager(client, tg, lambda _: None)
        first = await manager.resolve(created)
        assert first.service_account is not None and not first.service_account_error
        held = manager._tokens[created.metadata.uid]
        lifetime = (held.renew_at - datetime.datetime.now(datetime.UTC)).total_seconds()
        assert 0.79 * 3600 < lifetime <= 0.8 * 3600
        assert (await manager.resolve(created)).service_account == first.service_account  # kept
        await asyncio.sleep(1.1)  # a new token has another iat
        manager._tokens[created.metadata.uid] = dataclasses.replace(held, renew_at=datetime.datetime.now(datetime.UTC))
        renewed = await manager.resolve(created)
        assert renewed.service_account is not None
        assert renewed.service_account["token"] != first.service_account["token"]
        manager.forget(created.metadata.uid)
