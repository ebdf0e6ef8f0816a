"""The process runtime: host processes in per-pod namespaces, addressed by real CNI plugins
run inside a kltest-* node namespace."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kubelet.runtime import cgroups
from kubelet.runtime.cni import render_conflist
from kubelet.runtime.interface import (
    ContainerConfig,
    ContainerCreateError,
    ContainerStartError,
    ContainerState,
    ExecTimeoutError,
    Mount,
    PodSandboxConfig,
    Resources,
    SandboxState,
)
from kubelet.runtime.logs import LogOptions, read_log
from kubelet.runtime.process import ProcessRuntime, ProcessRuntimeConfig

from .crihelp import cgroup_dirs, mounts_under, network_namespace, processes_mentioning, run_on_node, wait_exited

pytestmark = pytest.mark.cri

PAGE = b"hello from a process pod\n"


@dataclass
class Node:
    rt: ProcessRuntime
    netns: str
    dir: Path
    cgroup_root: str
    marker: str


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    """A process runtime whose pods get addresses from a bridge in a fresh node namespace.

    Holders run `sleep <marker>` so the test can tell its processes from anyone else's.
    """
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "index.html").write_bytes(PAGE)
    marker = f"86400.{secrets.randbelow(10**9)}"
    with network_namespace() as ns:
        conflist = render_conflist(pod_cidr="10.244.202.0/24", data_dir=str(tmp_path / "ipam"))
        rt = ProcessRuntime(ProcessRuntimeConfig(cni_conflist=conflist, node_netns=f"/run/netns/{ns}",
                                                 holder_command=("sleep", marker)))
        n = Node(rt, ns, tmp_path, f"/{ns}", marker)
        try:
            yield n
        finally:
            await rt.close()
            await cgroups.remove(n.cgroup_root, kill_procs=True)
        # Nothing left: no pod processes, addresses all released, no cgroups, no veths.
        assert processes_mentioning(marker) == [] and processes_mentioning(str(tmp_path)) == []
        assert sorted(p.name for p in (tmp_path / "ipam" / "kubelite").iterdir()) == ["last_reserved_ip.0", "lock"]
        assert cgroup_dirs(n.cgroup_root) == []
        rc, links = await run_on_node(ns, "ip", "-o", "link")
        assert rc == 0 and b"veth" not in links


@contextlib.asynccontextmanager
async def pod(node: Node, name: str) -> AsyncIterator[tuple[str, PodSandboxConfig]]:
    uid = secrets.token_hex(4)
    config = PodSandboxConfig(name=name, namespace="test", uid=uid, hostname=f"{name}-host",
                              log_directory=str(node.dir / "logs" / uid), cgroup_parent=f"{node.cgroup_root}/pod{uid}")
    sandbox_id = await node.rt.run_pod_sandbox(config)
    try:
        yield sandbox_id, config
    finally:
        await node.rt.remove_pod_sandbox(sandbox_id)


async def start(node: Node, sandbox: tuple[str, PodSandboxConfig], name: str, *command: str, **kw: object) -> str:
    sandbox_id, config = sandbox
    cid = await node.rt.create_container(
        sandbox_id, ContainerConfig(name=name, image="busybox", command=command, log_path=f"{name}.log", **kw),  # type: ignore[arg-type]
        config)
    await node.rt.start_container(cid)
    return cid


async def test_two_containers_share_network_and_hostname(node: Node) -> None:
    """Containers of a pod reach each other on localhost and share its hostname; the pod's CNI
    address answers from the node's namespace."""
    fetch = ("for i in $(seq 50); do timeout 5 busybox wget -q -O - http://localhost:8080 && exit 0; "
             "sleep 0.1; done; exit 1")
    async with pod(node, "web") as sandbox:
        www = str(node.dir / "www")
        server = await start(node, sandbox, "httpd", "busybox", "httpd", "-f", "-p", "8080", "-h", www)
        client = await start(node, sandbox, "client", "sh", "-c", f"hostname; {fetch}")
        status = await wait_exited(node.rt, client)
        assert (status.exit_code, status.reason) == (0, "Completed")
        hostname, *page = [chunk async for chunk in read_log(status.log_path)]
        assert (hostname, b"".join(page)) == (b"web-host\n", PAGE)
        assert (await node.rt.exec_sync(server, ["hostname"], 5)).stdout == hostname

        ip = (await node.rt.pod_sandbox_status(sandbox[0])).ip
        assert ip.startswith("10.244.202.")
        rc, out = await run_on_node(node.netns, "busybox", "timeout", "5", "busybox", "wget", "-q", "-O", "-",
                                    f"http://{ip}:8080")
        assert (rc, out) == (0, PAGE)


async def test_exit_codes_exec_and_stop(node: Node) -> None:
    """Exit codes and reasons, exec output and timeouts, and stop: SIGTERM first, SIGKILL after the timeout."""
    async with pod(node, "jobs") as sandbox:
        failing = await start(node, sandbox, "failing", "sh", "-c", "echo err >&2; exit 3")
        status = await wait_exited(node.rt, failing)
        assert (status.exit_code, status.reason) == (3, "Error")
        assert [c async for c in read_log(status.log_path)] == [b"err\n"]

        polite = await start(node, sandbox, "polite", "sleep", "60")
        result = await node.rt.exec_sync(polite, ["sh", "-c", "echo hi; exit 4"], 5)
        assert (result.stdout, result.exit_code) == (b"hi\n", 4)
        with pytest.raises(ExecTimeoutError):
            await node.rt.exec_sync(polite, ["sleep", "10"], 0.5)
        await node.rt.stop_container(polite, 10)
        assert (await node.rt.container_status(polite)).exit_code == 143

        stubborn = await start(node, sandbox, "stubborn", "sh", "-c", 'trap "" TERM; sleep 60')
        await asyncio.sleep(0.2)
        t0 = time.monotonic()
        await node.rt.stop_container(stubborn, 1)
        assert time.monotonic() - t0 >= 1
        assert (await node.rt.container_status(stubborn)).exit_code == 137


async def test_oom_killed(node: Node) -> None:
    """A container over its memory limit (its own cgroup) is reported OOMKilled."""
    async with pod(node, "oom") as sandbox:
        hog = await start(node, sandbox, "hog", "sh", "-c", "x=aaaaaaaa; while :; do x=$x$x; done",
                          resources=Resources(memory_limit_bytes=16 << 20))
        status = await wait_exited(node.rt, hog)
        assert (status.exit_code, status.reason) == (137, "OOMKilled")


async def test_start_and_create_errors(node: Node) -> None:
    """A missing executable fails the start (RunContainerError); no command, or a mount
    whose target is missing, fails the create (CreateContainerError)."""
    async with pod(node, "errors") as (sandbox_id, config):
        cid = await node.rt.create_container(sandbox_id, ContainerConfig(name="c", image="x", command=("no-such-cmd",)),
                                             config)
        with pytest.raises(ContainerStartError, match="no-such-cmd"):
            await node.rt.start_container(cid)
        assert (await node.rt.container_status(cid)).state == ContainerState.EXITED
        with pytest.raises(ContainerCreateError):
            await node.rt.create_container(sandbox_id, ContainerConfig(name="c", image="x"), config)
        bad = ContainerConfig(name="c", image="x", command=("true",), mounts=(Mount("/nonexistent", "/nowhere"),))
        with pytest.raises(ContainerCreateError):
            await node.rt.create_container(sandbox_id, bad, config)


async def test_readonly_bind_mount_stays_private(node: Node) -> None:
    """A mount is visible inside the container, read-only when asked, and never in the host's mount table."""
    src, dst = node.dir / "src", node.dir / "dst"
    src.mkdir()
    dst.mkdir()
    (src / "data").write_text("mounted\n")
    async with pod(node, "mounts") as sandbox:
        cid = await start(node, sandbox, "reader", "sh", "-c", f"cat {dst}/data; touch {dst}/x || echo readonly",
                          mounts=(Mount(str(src), str(dst), readonly=True),))
        status = await wait_exited(node.rt, cid)
        stdout = LogOptions(streams=frozenset({"stdout"}))
        assert [c async for c in read_log(status.log_path, stdout)] == [b"mounted\n", b"readonly\n"]
    assert mounts_under(dst) == [] and not (dst / "data").exists()


async def test_stop_sandbox(node: Node) -> None:
    """Stopping a sandbox kills its containers and releases its address; it then lists as not ready."""
    async with pod(node, "short") as sandbox:
        cid = await start(node, sandbox, "main", "sleep", "60")
        await node.rt.stop_pod_sandbox(sandbox[0])
        assert (await node.rt.container_status(cid)).state == ContainerState.EXITED
        status = await node.rt.pod_sandbox_status(sandbox[0])
        assert status.state == SandboxState.NOTREADY
        assert [s.id for s in await node.rt.list_pod_sandboxes(state=SandboxState.NOTREADY)] == [sandbox[0]]
