"""The cri runtime against a real containerd started in a kltest-* network namespace."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from deploy.node import containerd, images
from kubelet.runtime.cri import CRIRuntime
from kubelet.runtime.interface import (
    ContainerConfig,
    ContainerCreateError,
    ContainerState,
    ExecTimeoutError,
    ImagePullError,
    NotFoundError,
    PodSandboxConfig,
    Resources,
    SandboxState,
)
from kubelet.runtime.logs import LogOptions, read_log

from .crihelp import (
    cgroup_dirs,
    mounts_under,
    network_namespace,
    processes_mentioning,
    removed_cgroup,
    run_on_node,
    wait_exited,
)

pytestmark = [pytest.mark.cri, pytest.mark.asyncio(loop_scope="module")]

BUSYBOX = images.BUSYBOX_IMAGE
POD_CIDR = "10.244.201.0/24"
# busybox 1.35's `wget -T` segfaults here, so `timeout` bounds each try.
FETCH = "for i in $(seq 50); do timeout 5 wget -q -O - http://localhost:8080 && exit 0; sleep 0.1; done; exit 1"


@dataclass
class Node:
    cfg: containerd.NodeConfig
    rt: CRIRuntime
    logs: Path


def assert_node_gone(cfg: containerd.NodeConfig) -> None:
    """Nothing of the node survives: no mounts, processes, cgroups or files but its log."""
    assert mounts_under(cfg.node_dir) == []
    assert processes_mentioning(str(cfg.node_dir)) == []
    assert cgroup_dirs(cfg.cgroup_root) == []
    assert [p.name for p in cfg.node_dir.iterdir()] == ["containerd.log"]


@contextlib.asynccontextmanager
async def running_node(tmp: Path, image_cache: Path) -> AsyncIterator[Node]:
    with network_namespace() as ns:
        cfg = containerd.NodeConfig(name=ns, node_dir=tmp / "node", netns=ns, pod_cidr=POD_CIDR,
                                    cgroup_root=f"/{ns}", image_dir=image_cache)
        try:
            await containerd.start(cfg)
            rt = CRIRuntime(cfg.address, timeout=20)
            try:
                yield Node(cfg, rt, tmp / "logs")
            finally:
                await rt.close()
        finally:
            await containerd.stop_and_clean(cfg.node_dir)
        assert_node_gone(cfg)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def node(tmp_path_factory: pytest.TempPathFactory, image_cache: Path) -> AsyncIterator[Node]:
    async with running_node(tmp_path_factory.mktemp("cri"), image_cache) as n:
        yield n


@contextlib.asynccontextmanager
async def pod(node: Node, name: str) -> AsyncIterator[tuple[str, PodSandboxConfig]]:
    """A running sandbox, stopped and removed (with its cgroup) afterwards."""
    uid = secrets.token_hex(4)
    async with removed_cgroup(f"{node.cfg.cgroup_root}/pod{uid}") as cgroup:
        config = PodSandboxConfig(name=name, namespace="test", uid=uid, hostname=f"{name}-host",
                                  log_directory=str(node.logs / uid), cgroup_parent=cgroup, labels={"pod": name})
        sandbox_id = await node.rt.run_pod_sandbox(config)
        try:
            yield sandbox_id, config
        finally:
            await node.rt.stop_pod_sandbox(sandbox_id)
            await node.rt.remove_pod_sandbox(sandbox_id)


async def start(node: Node, sandbox: tuple[str, PodSandboxConfig], name: str, *command: str,
                resources: Resources = Resources()) -> str:
    sandbox_id, config = sandbox
    cid = await node.rt.create_container(
        sandbox_id, ContainerConfig(name=name, image=BUSYBOX, command=command, log_path=f"{name}.log",
                                    resources=resources), config)
    await node.rt.start_container(cid)
    return cid


async def test_runtime_ready_with_our_images(node: Node) -> None:
    """containerd reports runtime and network ready, and CRI sees both of our images."""
    status = await node.rt.status()
    assert status.runtime_ready and status.network_ready
    assert (await node.rt.version()).runtime_api_version == "v1"
    held = {t: i.id for i in await node.rt.list_images() for t in i.repo_tags}
    assert {images.PAUSE_IMAGE, images.BUSYBOX_IMAGE} <= set(held)
    # Every image, stand-ins too, from the one bundle import, each under its name with its own ID.
    assert {name: held.get(name) for name, path in images.build_all(node.cfg.image_dir).items()} == \
        {name: images.image_id(path) for name, path in images.build_all(node.cfg.image_dir).items()}


async def test_two_containers_share_network_and_hostname(node: Node) -> None:
    """Containers of one pod reach each other on localhost, share the hostname, and the pod
    has an address from the node's CIDR that the node can reach."""
    async with pod(node, "web") as sandbox:
        server = await start(node, sandbox, "httpd", "httpd", "-f", "-p", "8080", "-h", "/www")
        client = await start(node, sandbox, "client", "sh", "-c", f"hostname; {FETCH}")
        status = await wait_exited(node.rt, client)
        assert (status.exit_code, status.reason) == (0, "Completed")
        hostname, *page = [chunk async for chunk in read_log(status.log_path)]
        assert b"".join(page) == images.INDEX_HTML
        assert hostname == b"web-host\n"
        assert (await node.rt.exec_sync(server, ["hostname"], 5)).stdout == hostname
        client_log = await asyncio.to_thread(Path(sandbox[1].log_directory, "client.log").read_bytes)
        assert b" stdout F <html>" in client_log, "the log file is in CRI format"

        sandbox_status = await node.rt.pod_sandbox_status(sandbox[0])
        assert sandbox_status.state == SandboxState.READY
        assert sandbox_status.ip.startswith("10.244.201.")
        rc, out = await run_on_node(node.cfg.netns, "busybox", "timeout", "5", "busybox", "wget", "-q", "-O", "-",
                                    f"http://{sandbox_status.ip}:8080")
        assert (rc, out) == (0, images.INDEX_HTML)


async def test_exit_codes_and_logs(node: Node) -> None:
    """An exit code comes back with its reason, and stdout and stderr land in one CRI log."""
    async with pod(node, "exits") as sandbox:
        failing = await start(node, sandbox, "failing", "sh", "-c", "echo out; echo err >&2; exit 3")
        status = await wait_exited(node.rt, failing)
        assert (status.exit_code, status.reason) == (3, "Error")
        # containerd stamps finished_at from the exit event, which can precede its own started_at stamp.
        assert status.started_at >= status.created_at > 0 and status.finished_at > 0
        lines = [c async for c in read_log(status.log_path, LogOptions(streams=frozenset({"stderr"})))]
        assert lines == [b"err\n"]
        # stdout and stderr are copied separately, so their order in the file is not fixed.
        assert sorted([c async for c in read_log(status.log_path, LogOptions(tail=2))]) == [b"err\n", b"out\n"]
        listed = await node.rt.list_containers(sandbox_id=sandbox[0], state=ContainerState.EXITED)
        assert [c.id for c in listed] == [failing]


async def test_exec_sync(node: Node) -> None:
    """exec_sync returns output and exit code, and a command outliving its timeout is ExecTimeoutError."""
    async with pod(node, "exec") as sandbox:
        cid = await start(node, sandbox, "main", "sleep", "60")
        result = await node.rt.exec_sync(cid, ["sh", "-c", "echo hi; echo oops >&2; exit 7"], 5)
        assert (result.stdout, result.stderr, result.exit_code) == (b"hi\n", b"oops\n", 7)
        with pytest.raises(ExecTimeoutError):
            await node.rt.exec_sync(cid, ["sleep", "10"], 1)


async def test_stop_honours_grace_period(node: Node) -> None:
    """A PID 1 that traps SIGTERM exits at once; one that ignores it (sh, sleep) is killed after the timeout."""
    async with pod(node, "stop") as sandbox:
        graceful = await start(node, sandbox, "graceful", "sh", "-c", 'trap "exit 0" TERM; while :; do sleep 0.1; done')
        stubborn = await start(node, sandbox, "stubborn", "sleep", "60")
        await asyncio.sleep(0.3)
        t0 = time.monotonic()
        await node.rt.stop_container(graceful, 10)
        assert time.monotonic() - t0 < 5
        assert (await node.rt.container_status(graceful)).exit_code == 0
        t0 = time.monotonic()
        await node.rt.stop_container(stubborn, 1)
        assert time.monotonic() - t0 >= 1
        status = await node.rt.container_status(stubborn)
        assert (status.state, status.exit_code) == (ContainerState.EXITED, 137)


async def test_oom_killed(node: Node) -> None:
    """A container over its memory limit is killed by the kernel and reported OOMKilled."""
    async with pod(node, "oom") as sandbox:
        hog = await start(node, sandbox, "hog", "sh", "-c", "x=aaaaaaaa; while :; do x=$x$x; done",
                          resources=Resources(memory_limit_bytes=16 << 20))
        status = await wait_exited(node.rt, hog)
        assert (status.exit_code, status.reason) == (137, "OOMKilled")


async def test_unknown_image_and_ids(node: Node) -> None:
    """A missing image has no status, fails to pull (ErrImagePull) and to create; unknown ids are NotFound."""
    missing = "localhost:5000/kubelite/missing:0"
    assert await node.rt.image_status(missing) is None
    with pytest.raises(ImagePullError) as pulled:
        await node.rt.pull_image(missing)
    assert pulled.value.reason == "ErrImagePull"
    async with pod(node, "noimage") as (sandbox_id, config):
        with pytest.raises(ContainerCreateError):
            await node.rt.create_container(sandbox_id, ContainerConfig(name="c", image=missing), config)
    with pytest.raises(NotFoundError):
        await node.rt.container_status("0" * 64)
    with pytest.raises(NotFoundError):
        await node.rt.pod_sandbox_status("0" * 64)


async def test_clean_after_containerd_crash(tmp_path: Path, image_cache: Path) -> None:
    """stop_and_clean leaves nothing behind even when containerd was SIGKILLed with a pod running."""
    async with running_node(tmp_path, image_cache) as n:
        uid = secrets.token_hex(4)
        config = PodSandboxConfig(name="orphan", namespace="test", uid=uid, log_directory=str(n.logs),
                                  cgroup_parent=f"{n.cfg.cgroup_root}/pod{uid}")
        sandbox_id = await n.rt.run_pod_sandbox(config)
        await start(n, (sandbox_id, config), "sleeper", "sleep", "60")
        pid = containerd.read_pid(n.cfg.node_dir)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        assert mounts_under(n.cfg.node_dir), "the pod's mounts outlive containerd until cleaned"


async def test_pods_survive_containerd_restart(tmp_path: Path, image_cache: Path) -> None:
    """Stopping containerd alone leaves pods serving; after a restart CRI finds them with the same address."""
    async with running_node(tmp_path, image_cache) as n, pod(n, "durable") as sandbox:
        server = await start(n, sandbox, "httpd", "httpd", "-f", "-p", "8080", "-h", "/www")
        ip = (await n.rt.pod_sandbox_status(sandbox[0])).ip
        fetch = ("busybox", "timeout", "5", "busybox", "wget", "-q", "-O", "-", f"http://{ip}:8080")
        await containerd.stop(n.cfg.node_dir)
        assert containerd.read_pid(n.cfg.node_dir) is None
        assert await run_on_node(n.cfg.netns, *fetch) == (0, images.INDEX_HTML)
        await containerd.start(n.cfg)
        status = await n.rt.pod_sandbox_status(sandbox[0])
        assert (status.state, status.ip) == (SandboxState.READY, ip)
        assert (await n.rt.container_status(server)).state == ContainerState.RUNNING
        assert await run_on_node(n.cfg.netns, *fetch) == (0, images.INDEX_HTML)


async def test_a_restarted_containerd_imports_only_what_it_lacks(tmp_path: Path, image_cache: Path) -> None:
    """A containerd started again over its own store imports nothing (no image event in its log); one that
    lost an image gets it back."""
    async with running_node(tmp_path, image_cache) as n:
        def image_events() -> int:
            return sum(1 for line in n.cfg.log_path.read_text().splitlines()
                       if "ImageCreate event" in line or "ImageUpdate event" in line)

        imported = image_events()
        assert imported >= len(images.build_all(image_cache))
        await containerd.stop(n.cfg.node_dir)
        await containerd.start(n.cfg)
        assert image_events() == imported
        perl = "docker.io/library/perl:5.34.0"
        await n.rt.remove_image(perl)
        assert await n.rt.image_status(perl) is None
        await containerd.stop(n.cfg.node_dir)
        await containerd.start(n.cfg)
        assert (await n.rt.image_status(perl)) is not None and image_events() > imported
