"""The kubelet against a real containerd in a kltest-* network namespace, with a real apiserver and etcd.

One containerd, apiserver and kubelet serve the whole module. The kubelet runs in this process, in the
root network namespace (only loopback is used there); it reaches pod IPs for probes from the node's
namespace (`probe_netns`), and all pod networking lives in that namespace.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import pytest_asyncio
import testpki
from conftest import apiserver_config, wipe_etcd

from api.errors import NotFoundError, UnavailableError
from api.pb import api_pb2, core_pb2
from apiserver.server import ApiServer
from client.api import Client
from deploy.node import containerd, images
from kubelet.config import KubeletConfig
from kubelet.kubelet import Kubelet
from kubelet.runtime import cgroups
from kubelet.runtime.cri import CRIRuntime

pytestmark = [pytest.mark.cri, pytest.mark.asyncio(loop_scope="module")]

T = TypeVar("T")
BUSYBOX = images.BUSYBOX_IMAGE
POD_CIDR = "10.244.202.0/24"
NODE = "cri-node"
# busybox 1.35's `wget -T` segfaults here, so `timeout` bounds each try.
FETCH = "for i in $(seq 50); do timeout 5 wget -q -O - http://localhost:8080 && break; sleep 0.1; done"
HTTPD = ["httpd", "-f", "-p", "8080", "-h", "/www"]


@contextlib.contextmanager
def network_namespace() -> Iterator[str]:
    """A fresh network namespace (kltest-*) with loopback up, deleted on exit."""
    name = f"kltest-{os.urandom(4).hex()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def cgroup_dirs(cgroup: str) -> list[Path]:
    return [p for p in cgroups.paths(cgroup) if p.exists()]


@dataclass
class Env:
    client: Client  # the admin's: what a user creates and reads
    kubelet_client: Client  # the node's own credentials, as a kubelet runs
    runtime: CRIRuntime
    node: containerd.NodeConfig
    kubelet_config: KubeletConfig
    address: str
    kubelet: Kubelet | None = None
    task: asyncio.Task[None] | None = None

    async def start_kubelet(self) -> Kubelet:
        k = Kubelet(self.kubelet_config, self.kubelet_client, self.runtime)
        self.task = asyncio.ensure_future(k.run())
        async with asyncio.timeout(30):
            while k.node is None or not k.node.registered.is_set():
                if self.task.done():
                    self.task.result()
                await asyncio.sleep(0.05)
        self.kubelet = k
        return k

    async def stop_kubelet(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        self.task = self.kubelet = None


async def _start_apiserver(etcd_url: str) -> tuple[ApiServer, asyncio.Task[None]]:
    server = ApiServer(apiserver_config(etcd_url))
    task = asyncio.ensure_future(server.run())
    async with asyncio.timeout(30):
        while not server.started.is_set():
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
    return server, task


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def env(tmp_path_factory: pytest.TempPathFactory, image_cache: Path, etcd_server: Any) -> AsyncIterator[Env]:
    await wipe_etcd(etcd_server.url)
    tmp = tmp_path_factory.mktemp("kubelet-cri")
    with network_namespace() as ns:
        cfg = containerd.NodeConfig(name=ns, node_dir=tmp / "node", netns=ns, pod_cidr=POD_CIDR, cgroup_root=f"/{ns}",
                                    image_dir=image_cache)
        try:
            await containerd.start(cfg)
            server, server_task = await _start_apiserver(etcd_server.url)
            address = f"127.0.0.1:{server.ports[0]}"
            files = testpki.get().node(NODE)
            client = Client(testpki.get().client(address))
            kubelet_client = Client(testpki.get().client(address, f"nodes/{NODE}/kubelet"))
            runtime = CRIRuntime(cfg.address, timeout=30)
            kcfg = KubeletConfig(
                node_name=NODE, node_ip="127.0.0.1", pod_cidr=POD_CIDR, listen="127.0.0.1:0",
                cluster_dns=("10.96.0.10",), root_dir=tmp / "kubelet", cgroup_root=f"/{ns}",
                probe_netns=f"/run/netns/{ns}", backoff_initial=0.5, backoff_max=2.0, pleg_period=0.3,
                lease_renew=0.5, housekeeping_period=0.5, resync_period=5.0,
                serving_cert_file=files["kubelet-serving"], serving_key_file=files["kubelet-serving-key"],
                client_ca_file=testpki.get().ca_file,
            )
            e = Env(client, kubelet_client, runtime, cfg, kcfg, address)
            await e.start_kubelet()
            try:
                yield e
            finally:
                await e.stop_kubelet()
                await runtime.close()
                await client.close()
                await kubelet_client.close()
                server_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await server_task
        finally:
            await containerd.stop_and_clean(cfg.node_dir)


# ---------------------------------------------------------------- helpers


def make_pod(name: str, *containers: dict[str, Any], policy: str = "Always", grace: int = 1, **spec: Any
             ) -> core_pb2.Pod:
    return core_pb2.Pod(metadata={"name": name, "namespace": "default"}, spec={
        "node_name": NODE, "restart_policy": policy, "termination_grace_period_seconds": grace,
        "containers": [{"image": BUSYBOX, **c} for c in containers], **spec})


async def eventually(check: Callable[[], Awaitable[T | None]], *, timeout: float = 30.0, what: str = "") -> T:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            result = await check()
        except (NotFoundError, UnavailableError) as exc:
            last = exc
        else:
            if result:
                return result
            last = result
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")


async def pod_where(env: Env, name: str, predicate: Callable[[core_pb2.Pod], bool], *, timeout: float = 30.0,
                    what: str = "") -> core_pb2.Pod:
    async def check() -> core_pb2.Pod | None:
        p = await env.client.get("pods", name, "default")
        return p if predicate(p) else None

    return await eventually(check, timeout=timeout, what=what or f"pod {name}")


def cstatus(p: core_pb2.Pod, name: str) -> core_pb2.ContainerStatus:
    return next(c for c in p.status.container_statuses if c.name == name)


def ready(p: core_pb2.Pod) -> bool:
    return p.status.phase == "Running" and bool(p.status.container_statuses) and all(
        c.ready for c in p.status.container_statuses)


def condition(p: core_pb2.Pod, type_: str) -> str:
    return next((c.status for c in p.status.conditions if c.type == type_), "")


async def logs(env: Env, pod: str, container: str, **kw: Any) -> bytes:
    req = api_pb2.LogsRequest(namespace="default", name=pod, container=container, **kw)
    return b"".join([chunk async for chunk in env.client.logs(req)])


async def reasons_seen(env: Env, name: str, container: str, wanted: set[str], *, timeout: float = 30.0
                       ) -> tuple[set[str], core_pb2.Pod]:
    """Watch a pod until its container has shown every waiting/terminated reason in `wanted`."""
    seen: set[str] = set()
    last = core_pb2.Pod()

    async def watch() -> None:
        nonlocal last
        async for ev in env.client.watch("pods", "default", field_selector=f"metadata.name={name}"):
            last = ev.object
            for cs in ev.object.status.container_statuses:
                if cs.name == container:
                    seen.update(r for r in (cs.state.waiting.reason, cs.state.terminated.reason,
                                            cs.last_state.terminated.reason) if r)
            if wanted <= seen:
                return

    try:
        async with asyncio.timeout(timeout):
            await watch()
    except TimeoutError:
        raise AssertionError(f"{name}/{container} showed {sorted(seen)}, not all of {sorted(wanted)}") from None
    return seen, last


async def delete_and_wait(env: Env, name: str) -> None:
    with contextlib.suppress(NotFoundError):
        await env.client.delete("pods", name, "default")

    async def gone() -> bool:
        try:
            await env.client.get("pods", name, "default")
        except NotFoundError:
            return True
        return False

    await eventually(gone, timeout=30, what=f"{name} deleted")


def kubelite(env: Env, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
    """The CLI as a user runs it, against this module's apiserver."""
    return subprocess.run([sys.executable, "-m", "cli.main", *args], capture_output=True, timeout=timeout,
                          env={**os.environ, "KUBELITE_SERVER": env.address,
                               "KUBELITE_CONFIG": testpki.get().cli_config()})


# ---------------------------------------------------------------- tests


async def test_node_reports_containerd(env: Env) -> None:
    """The node registers Ready with containerd's version as its runtime."""
    node = await env.client.get("nodes", NODE)
    assert node.status.node_info.container_runtime_version.startswith("containerd://")
    assert next(c for c in node.status.conditions if c.type == "Ready").status == "True"
    assert node.spec.pod_cidr == POD_CIDR


async def test_two_containers_share_network_and_hostname(env: Env) -> None:
    """A client container fetches from its neighbour on localhost; both report the pod's name as hostname,
    through logs and exec proxied by the apiserver and through the CLI."""
    await env.client.create(make_pod(
        "web",
        {"name": "httpd", "command": HTTPD, "readiness_probe": {"http_get": {"port": "8080"}, "period_seconds": 1}},
        {"name": "client", "command": ["sh", "-c", f"hostname; {FETCH}; cat /etc/resolv.conf; sleep 3600"]},
    ))
    p = await pod_where(env, "web", ready, what="web running and ready")
    assert p.status.pod_ip.startswith("10.244.202.")

    async def fetched() -> bytes | None:
        out = await logs(env, "web", "client")
        return out if images.INDEX_HTML in out and b"ndots" in out else None

    out = await eventually(fetched, what="the client's fetch in its log")
    assert out.startswith(b"web\n"), "the client's hostname is the pod's name"
    assert b"nameserver 10.96.0.10" in out and b"search default.svc.cluster.local svc.cluster.local cluster.local" \
        in out and b"options ndots:5" in out
    resp = await env.client.exec("default", "web", ["hostname"], container="httpd")
    assert (resp.stdout, resp.exit_code) == (b"web\n", 0)

    cli = await asyncio.to_thread(kubelite, env, "exec", "web", "-c", "httpd", "--", "sh", "-c",
                                  "hostname; echo oops >&2; exit 3")
    assert (cli.returncode, cli.stdout, cli.stderr) == (3, b"web\n", b"oops\n")
    cli = await asyncio.to_thread(kubelite, env, "logs", "web", "-c", "client", "--tail", "1")
    assert cli.returncode == 0 and cli.stdout == b"options ndots:5\n"
    cli = await asyncio.to_thread(kubelite, env, "logs", "web")
    assert cli.returncode == 1 and b"a container name must be specified" in cli.stderr
    await delete_and_wait(env, "web")


async def test_crash_loop_back_off(env: Env) -> None:
    """A container exiting 1 under Always restarts with rising counts and shows CrashLoopBackOff; its
    previous instance's log stays readable."""
    await env.client.create(make_pod("crash", {"name": "main", "command": ["sh", "-c", "echo boom; exit 1"]}))
    await reasons_seen(env, "crash", "main", {"CrashLoopBackOff", "Error"})

    async def restarted_twice() -> core_pb2.Pod | None:
        p = await env.client.get("pods", "crash", "default")
        return p if cstatus(p, "main").restart_count >= 2 else None

    p = await eventually(restarted_twice, what="two restarts")
    cs = cstatus(p, "main")
    assert cs.last_state.terminated.exit_code == 1 and p.status.phase == "Running"
    assert await logs(env, "crash", "main", previous=True) == b"boom\n"
    await delete_and_wait(env, "crash")


async def test_never_fails_and_job_succeeds(env: Env) -> None:
    """Under Never a failing container fails the pod; a job-like pod exiting 0 succeeds; init containers run first."""
    await env.client.create(make_pod("fails", {"name": "main", "command": ["sh", "-c", "exit 1"]}, policy="Never"))
    await env.client.create(make_pod("job", {"name": "main", "command": ["sh", "-c", "cat /work/ticket"],
                                             "volume_mounts": [{"name": "work", "mount_path": "/work"}]},
                                     policy="Never", volumes=[{"name": "work", "empty_dir": {}}],
                                     init_containers=[{"name": "prepare", "image": BUSYBOX, "command": [
                                         "sh", "-c", "echo ticket-42 > /work/ticket"],
                                         "volume_mounts": [{"name": "work", "mount_path": "/work"}]}]))
    failed = await pod_where(env, "fails", lambda p: p.status.phase == "Failed", what="fails Failed")
    assert cstatus(failed, "main").state.terminated.exit_code == 1
    done = await pod_where(env, "job", lambda p: p.status.phase == "Succeeded", what="job Succeeded")
    assert cstatus(done, "main").state.terminated.reason == "Completed"
    assert done.status.init_container_statuses[0].state.terminated.exit_code == 0
    assert await logs(env, "job", "main") == b"ticket-42\n"
    await asyncio.gather(delete_and_wait(env, "fails"), delete_and_wait(env, "job"))


async def test_readiness_probe_gates_ready(env: Env) -> None:
    """A failing readiness probe keeps the pod Running but not Ready; once it passes the pod is Ready."""
    await env.client.create(make_pod("gated", {
        "name": "main", "command": ["sleep", "3600"],
        "readiness_probe": {"exec": {"command": ["test", "-f", "/tmp/ready"]}, "period_seconds": 1},
    }, {
        "name": "closed", "command": ["sleep", "3600"],
        "readiness_probe": {"tcp_socket": {"port": "9999"}, "period_seconds": 1, "failure_threshold": 1},
    }))
    p = await pod_where(env, "gated", lambda p: p.status.phase == "Running" and all(
        c.started for c in p.status.container_statuses), what="gated running")
    await asyncio.sleep(3)
    p = await env.client.get("pods", "gated", "default")
    assert p.status.phase == "Running" and condition(p, "Ready") == "False"
    assert not cstatus(p, "main").ready and not cstatus(p, "closed").ready
    await env.client.exec("default", "gated", ["touch", "/tmp/ready"], container="main")
    p = await pod_where(env, "gated", lambda p: cstatus(p, "main").ready, what="main ready")
    assert condition(p, "Ready") == "False", "the pod is Ready only when every container is"
    assert cstatus(p, "main").restart_count == 0 and cstatus(p, "closed").restart_count == 0
    await delete_and_wait(env, "gated")


async def test_liveness_probe_restarts_container(env: Env) -> None:
    """A failing liveness probe restarts its container (count +1, last state terminated); a passing one does not."""
    await env.client.create(make_pod("lively", {
        "name": "good", "command": HTTPD,
        "liveness_probe": {"http_get": {"port": "8080", "path": "/"}, "period_seconds": 1, "failure_threshold": 2},
    }, {
        "name": "bad", "command": ["sleep", "3600"],
        "liveness_probe": {"http_get": {"port": "8081"}, "period_seconds": 1, "failure_threshold": 2},
    }))

    async def restarted() -> core_pb2.Pod | None:
        p = await env.client.get("pods", "lively", "default")
        return p if p.status.container_statuses and cstatus(p, "bad").restart_count >= 1 else None

    p = await eventually(restarted, timeout=40, what="bad restarted by its liveness probe")
    bad = cstatus(p, "bad")
    assert bad.last_state.HasField("terminated") and bad.last_state.terminated.exit_code == 137
    assert cstatus(p, "good").restart_count == 0
    await delete_and_wait(env, "lively")


async def test_bad_specs_become_statuses(env: Env, tmp_path: Path) -> None:
    """An unknown image, a missing command and an invalid volume reach the user as waiting reasons with messages."""
    default = await env.client.get("namespaces", "default")
    default.metadata.labels["pod-security.kubernetes.io/enforce"] = "privileged"  # hostPath is beyond baseline
    await env.client.update(default)
    await env.client.create(make_pod("noimage", {"name": "main", "image": "localhost:5000/kubelite/missing:1"}))
    await env.client.create(make_pod("nocmd", {"name": "main", "command": ["no-such-command"]}))
    await env.client.create(make_pod("novol", {"name": "main", "command": ["sleep", "3600"],
                                               "volume_mounts": [{"name": "cfg", "mount_path": "/cfg"}]},
                                     volumes=[{"name": "cfg", "host_path": {"path": str(tmp_path / "absent"),
                                                                            "type": "File"}}]))
    _, (_, cmd_pod), (_, vol_pod) = await asyncio.gather(
        reasons_seen(env, "noimage", "main", {"ErrImagePull", "ImagePullBackOff"}),
        reasons_seen(env, "nocmd", "main", {"RunContainerError"}),
        reasons_seen(env, "novol", "main", {"CreateContainerConfigError"}),
    )
    noimage = await env.client.get("pods", "noimage", "default")
    assert noimage.status.phase == "Pending"
    assert "localhost:5000/kubelite/missing:1" in cstatus(noimage, "main").state.waiting.message
    nocmd = cstatus(cmd_pod, "main")
    assert "no-such-command" in (nocmd.state.waiting.message + nocmd.last_state.terminated.message)
    assert f"hostPath type check failed: {tmp_path / 'absent'} is not a file" == \
        cstatus(vol_pod, "main").state.waiting.message
    node = await env.client.get("nodes", NODE)
    assert next(c for c in node.status.conditions if c.type == "Ready").status == "True", "the kubelet is fine"
    await asyncio.gather(*(delete_and_wait(env, n) for n in ("noimage", "nocmd", "novol")))


async def test_oom_killed(env: Env) -> None:
    """A container over its memory limit is reported terminated with reason OOMKilled."""
    hog = ["sh", "-c", "x=aaaaaaaa; while :; do x=$x$x; done"]
    await env.client.create(make_pod("hog", {"name": "main", "command": hog,
                                             "resources": {"limits": {"memory": "16Mi"}}}, policy="Never"))
    p = await pod_where(env, "hog", lambda p: p.status.phase == "Failed", what="hog Failed")
    term = cstatus(p, "main").state.terminated
    assert (term.reason, term.exit_code) == ("OOMKilled", 137)
    await delete_and_wait(env, "hog")


async def test_environment_and_volumes(env: Env) -> None:
    """Containers get service links, fieldRefs and $(VAR) expansion, and share an emptyDir; hostname follows
    spec.hostname."""
    await env.client.create(core_pb2.Service(metadata={"name": "backend", "namespace": "default"},
                                             spec={"ports": [{"name": "http", "port": 80}], "selector": {"a": "b"}}))
    svc = await env.client.get("services", "backend", "default")
    script = ("echo shared > /data/note; env | sort > /data/env; hostname > /data/host; sleep 3600")
    await env.client.create(make_pod(
        "envy",
        {"name": "writer", "command": ["sh", "-c", script], "volume_mounts": [{"name": "data", "mount_path": "/data"}],
         "env": [{"name": "MY_IP", "value_from": {"field_ref": {"field_path": "status.podIP"}}},
                 {"name": "MY_NODE", "value_from": {"field_ref": {"field_path": "spec.nodeName"}}},
                 {"name": "GREETING", "value": "hi from $(MY_NODE)"}]},
        {"name": "reader", "command": ["sleep", "3600"], "volume_mounts": [{"name": "data", "mount_path": "/in"}]},
        volumes=[{"name": "data", "empty_dir": {"medium": "Memory"}}], hostname="envy-host",
    ))
    p = await pod_where(env, "envy", ready, what="envy ready")

    async def read(path: str) -> bytes | None:
        resp = await env.client.exec("default", "envy", ["cat", path], container="reader")
        return resp.stdout if resp.exit_code == 0 else None

    assert await eventually(lambda: read("/in/note"), what="the note") == b"shared\n"
    variables = dict(line.split("=", 1) for line in (await read("/in/env") or b"").decode().splitlines() if "=" in line)
    assert variables["MY_IP"] == p.status.pod_ip and variables["MY_NODE"] == NODE
    assert variables["GREETING"] == f"hi from {NODE}"
    assert variables["BACKEND_SERVICE_HOST"] == svc.spec.cluster_ip
    assert variables["BACKEND_SERVICE_PORT_HTTP"] == "80"
    assert variables["BACKEND_PORT_80_TCP"] == f"tcp://{svc.spec.cluster_ip}:80"
    assert await read("/in/host") == b"envy-host\n"
    resp = await env.client.exec("default", "envy", ["cat"], container="reader", stdin=b"piped \x00 bytes")
    assert resp.stdout == b"piped \x00 bytes"
    await delete_and_wait(env, "envy")
    await env.client.delete("services", "backend", "default")


async def test_delete_is_graceful_and_cleans_up(env: Env) -> None:
    """Deleting a pod sends SIGTERM with its grace period, reports the final status, removes the pod from the
    API, and leaves no sandbox, cgroup or files behind."""
    trap = 'trap "echo bye; exit 0" TERM; while :; do sleep 0.1; done'
    created = await env.client.create(make_pod("graceful", {"name": "main", "command": ["sh", "-c", trap]}, grace=20))
    await pod_where(env, "graceful", ready)
    uid = created.metadata.uid
    final: list[core_pb2.Pod] = []

    async def watch() -> None:
        async for ev in env.client.watch("pods", "default", field_selector="metadata.name=graceful"):
            if ev.type == "DELETED":
                return
            if ev.object.status.phase in ("Succeeded", "Failed"):
                final.append(ev.object)

    watcher = asyncio.ensure_future(watch())
    await asyncio.sleep(0.2)
    started = time.monotonic()
    await env.client.delete("pods", "graceful", "default")
    async with asyncio.timeout(30):
        await watcher
    assert time.monotonic() - started < 10, "the trap exits at SIGTERM, long before the 20 s grace period"
    assert final and final[-1].status.phase == "Succeeded"
    assert cstatus(final[-1], "main").state.terminated.exit_code == 0

    async def cleaned() -> bool:
        sandboxes = await env.runtime.list_pod_sandboxes(labels={"io.kubernetes.pod.uid": uid})
        return not sandboxes and not cgroup_dirs(f"{env.node.cgroup_root}/pod{uid}")

    await eventually(cleaned, what="sandbox and cgroup removed")
    root = env.kubelet_config.root_dir
    assert not (root / "pods" / uid).exists() and not any((root / "logs").glob(f"*_{uid}"))


async def test_restart_adopts_pods_and_removes_orphans(env: Env) -> None:
    """A restarted kubelet adopts running containers (no restarts) and kills pods deleted while it was down."""
    await env.client.create(make_pod("stays", {"name": "main", "command": ["sleep", "3600"]}))
    await env.client.create(make_pod("orphan", {"name": "main", "command": ["sleep", "3600"]}))
    before = await pod_where(env, "stays", ready)
    orphan = await pod_where(env, "orphan", ready)
    await env.stop_kubelet()
    await env.client.delete("pods", "orphan", "default", grace_period_seconds=0)
    containers_before = {c.id for c in await env.runtime.list_containers(labels={
        "io.kubernetes.pod.uid": before.metadata.uid})}
    await env.start_kubelet()

    async def orphan_gone() -> bool:
        return not await env.runtime.list_pod_sandboxes(labels={"io.kubernetes.pod.uid": orphan.metadata.uid})

    await eventually(orphan_gone, what="the orphan removed")
    await asyncio.sleep(1)
    after = await pod_where(env, "stays", ready)
    assert cstatus(after, "main").container_id == cstatus(before, "main").container_id
    assert cstatus(after, "main").restart_count == 0
    assert {c.id for c in await env.runtime.list_containers(labels={
        "io.kubernetes.pod.uid": before.metadata.uid})} == containers_before
    await delete_and_wait(env, "stays")


# ---------------------------------------------------------------- securityContext


async def exec_out(env: Env, pod: str, *command: str) -> str:
    """What `kubelite exec POD -- COMMAND` prints (the command must succeed)."""
    done = await asyncio.to_thread(kubelite, env, "exec", pod, "--", *command)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


async def status_field(env: Env, pod: str, name: str) -> str:
    """A field of the container's own /proc/self/status, e.g. CapEff."""
    text = await exec_out(env, pod, "cat", "/proc/self/status")
    return next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith(f"{name}:"))


async def test_run_as_user_groups_and_fs_group_apply(env: Env) -> None:
    """runAsUser 1000, runAsGroup 3000, supplementalGroups and fsGroup: `id` through exec shows them, and the
    emptyDir belongs to the fsGroup, so files the container writes there join it."""
    await env.client.create(make_pod(
        "uid1000", {"name": "main", "command": ["sleep", "3600"],
                    "volume_mounts": [{"name": "data", "mount_path": "/data"}]},
        volumes=[{"name": "data", "empty_dir": {}}],
        security_context={"run_as_user": 1000, "run_as_group": 3000, "supplemental_groups": [4000],
                          "fs_group": 2000}))
    await pod_where(env, "uid1000", ready, what="uid1000 running")
    assert await exec_out(env, "uid1000", "id", "-u") == "1000\n"
    assert await exec_out(env, "uid1000", "id", "-g") == "3000\n"
    assert set((await exec_out(env, "uid1000", "id", "-G")).split()) == {"3000", "2000", "4000"}
    await exec_out(env, "uid1000", "touch", "/data/mine")
    assert await exec_out(env, "uid1000", "stat", "-c", "%u %g", "/data/mine") == "1000 2000\n"
    assert await exec_out(env, "uid1000", "stat", "-c", "%g", "/data") == "2000\n"
    await delete_and_wait(env, "uid1000")


async def test_capabilities_privileges_seccomp_and_read_only_root(env: Env) -> None:
    """drop: [ALL] leaves no effective capabilities (a plain container keeps containerd's default set);
    allowPrivilegeEscalation: false sets no_new_privs; seccomp RuntimeDefault filters; a read-only root refuses
    writes; privileged has every capability the node has."""
    await env.client.create(make_pod(
        "locked", {"name": "main", "command": ["sleep", "3600"], "security_context": {
            "capabilities": {"drop": ["ALL"]}, "allow_privilege_escalation": False,
            "read_only_root_filesystem": True, "seccomp_profile": {"type": "RuntimeDefault"}}}))
    await env.client.create(make_pod("plain", {"name": "main", "command": ["sleep", "3600"]}))
    await pod_where(env, "locked", ready, what="locked running")
    await pod_where(env, "plain", ready, what="plain running")
    assert await status_field(env, "locked", "CapEff") == "0000000000000000"
    assert await status_field(env, "locked", "NoNewPrivs") == "1"
    assert await status_field(env, "locked", "Seccomp") == "2"
    assert await status_field(env, "plain", "CapEff") == "00000000a80425fb"  # containerd's default set
    assert await status_field(env, "plain", "NoNewPrivs") == "0"
    assert await status_field(env, "plain", "Seccomp") == "0"
    write = await asyncio.to_thread(kubelite, env, "exec", "locked", "--", "touch", "/x")
    assert write.returncode != 0 and b"Read-only file system" in write.stderr + write.stdout
    added = make_pod("netadmin", {"name": "main", "command": ["sleep", "3600"], "security_context": {
        "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}})
    await env.client.create(added)
    await pod_where(env, "netadmin", ready, what="netadmin running")
    assert await status_field(env, "netadmin", "CapEff") == "0000000000000400"  # CAP_NET_BIND_SERVICE is bit 10
    default = await env.client.get("namespaces", "default")
    default.metadata.labels["pod-security.kubernetes.io/enforce"] = "privileged"
    await env.client.update(default)
    await env.client.create(make_pod("root", {"name": "main", "command": ["sleep", "3600"],
                                              "security_context": {"privileged": True}}))
    await pod_where(env, "root", ready, what="privileged running")
    # Every capability this machine's root has (its bounding set may lack some, e.g. in a VM sandbox).
    status = await asyncio.to_thread(Path("/proc/self/status").read_text)
    bounding = next(line.split()[1] for line in status.splitlines() if line.startswith("CapBnd:"))
    assert await status_field(env, "root", "CapEff") == bounding
    for name in ("locked", "plain", "netadmin", "root"):
        await delete_and_wait(env, name)


async def test_run_as_non_root_refuses_a_root_image(env: Env) -> None:
    """runAsNonRoot on an image that runs as root: CreateContainerConfigError with Kubernetes' message and a
    Failed event; with runAsUser 1000 the same image runs."""
    await env.client.create(make_pod("nonroot", {"name": "main", "command": ["sleep", "3600"],
                                                 "security_context": {"run_as_non_root": True}}))
    _, p = await reasons_seen(env, "nonroot", "main", {"CreateContainerConfigError"})
    assert cstatus(p, "main").state.waiting.message == (
        f'container has runAsNonRoot and image will run as root (pod: "nonroot_default({p.metadata.uid})", '
        f"container: main)")
    events = await env.client.list_all("events", "default")
    assert any(e.reason == "Failed" and e.message.startswith("Error: container has runAsNonRoot")
               and e.involved_object.name == "nonroot" for e in events)
    await env.client.create(make_pod("nonroot1000", {"name": "main", "command": ["sleep", "3600"],
                                                     "security_context": {"run_as_non_root": True,
                                                                          "run_as_user": 1000}}))
    await pod_where(env, "nonroot1000", ready, what="nonroot1000 running")
    assert await exec_out(env, "nonroot1000", "id", "-u") == "1000\n"
    for name in ("nonroot", "nonroot1000"):
        await delete_and_wait(env, name)
