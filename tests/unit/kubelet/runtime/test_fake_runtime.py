"""The fake runtime (hollow nodes, kubelet tests) and the instrumented wrapper."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from kubelet.runtime.cri import CRIRuntime
from kubelet.runtime.fake import FakeRuntime, ImageBehavior
from kubelet.runtime.instrumented import InstrumentedRuntime
from kubelet.runtime.interface import (
    ContainerConfig,
    ContainerCreateError,
    ContainerStartError,
    ContainerState,
    ImageNotFoundError,
    ImagePullError,
    LinuxSandboxOptions,
    NotFoundError,
    PodSandboxConfig,
    Runtime,
    RuntimeUnavailableError,
    SandboxCreateError,
    SandboxState,
    ensure_image,
)
from kubelet.runtime.logs import read_log
from kubelet.runtime.process import ProcessRuntime


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


POD = PodSandboxConfig(name="web", namespace="default", uid="u1", labels={"app": "web"})


async def _pod(rt: FakeRuntime, image: str, config: PodSandboxConfig = POD) -> tuple[str, str]:
    sid = await rt.run_pod_sandbox(config)
    await ensure_image(rt, image)
    cid = await rt.create_container(sid, ContainerConfig(name="c", image=image, log_path="c.log"), config)
    return sid, cid


async def test_runs_until_stopped() -> None:
    """By default a container runs until stopped; a graceful stop exits 143, a forced one 137."""
    rt = FakeRuntime()
    _, cid = await _pod(rt, "app")
    await rt.start_container(cid)
    assert (await rt.container_status(cid)).state == ContainerState.RUNNING
    await rt.stop_container(cid, 30)
    status = await rt.container_status(cid)
    assert (status.state, status.exit_code, status.reason) == (ContainerState.EXITED, 143, "Error")


@pytest.mark.parametrize(
    ("behavior", "code", "reason"),
    [
        pytest.param(ImageBehavior(exit_code=0, run_seconds=5), 0, "Completed", id="completes"),
        pytest.param(ImageBehavior(exit_code=2, run_seconds=5), 2, "Error", id="fails"),
        pytest.param(ImageBehavior(oom=True, run_seconds=5), 137, "OOMKilled", id="oom"),
    ],
)
async def test_exits_after_run_seconds(behavior: ImageBehavior, code: int, reason: str) -> None:
    """A container whose image exits does so run_seconds after starting, read lazily off the clock."""
    clock = Clock()
    rt = FakeRuntime(behaviors={"job": behavior}, clock=clock)
    _, cid = await _pod(rt, "job")
    await rt.start_container(cid)
    clock.now += 4.9
    assert (await rt.container_status(cid)).state == ContainerState.RUNNING
    clock.now += 0.2
    status = await rt.container_status(cid)
    assert (status.state, status.exit_code, status.reason) == (ContainerState.EXITED, code, reason)
    assert status.finished_at == status.started_at + 5_000_000_000


async def test_ignore_sigterm_ends_in_sigkill() -> None:
    """An image that ignores SIGTERM reports 137 after a stop, like `sh` as PID 1."""
    rt = FakeRuntime(behaviors={"sh": ImageBehavior(ignore_sigterm=True)})
    _, cid = await _pod(rt, "sh")
    await rt.start_container(cid)
    await rt.stop_container(cid, 30)
    assert (await rt.container_status(cid)).exit_code == 137


async def test_create_and_start_errors() -> None:
    """Per-image create and start failures raise the errors the kubelet maps to waiting reasons."""
    rt = FakeRuntime(behaviors={"bad": ImageBehavior(create_error="no such file"),
                                "crash": ImageBehavior(start_error="exec: not found")})
    sid = await rt.run_pod_sandbox(POD)
    for image in ("bad", "crash"):
        await rt.pull_image(image)
    with pytest.raises(ContainerCreateError) as created:
        await rt.create_container(sid, ContainerConfig(name="c", image="bad"), POD)
    assert created.value.reason == "CreateContainerError"
    cid = await rt.create_container(sid, ContainerConfig(name="c", image="crash"), POD)
    with pytest.raises(ContainerStartError) as started:
        await rt.start_container(cid)
    assert started.value.reason == "RunContainerError"
    status = await rt.container_status(cid)
    assert (status.state, status.reason, status.message) == (ContainerState.EXITED, "StartError", "exec: not found")


async def test_images() -> None:
    """Only preset images exist unless pull_any; a missing image has no status and fails to create."""
    rt = FakeRuntime(images=["present"], pull_any=False)
    assert await rt.image_status("missing") is None
    with pytest.raises(ImageNotFoundError) as pulled:
        await ensure_image(rt, "missing")
    assert isinstance(pulled.value, ImagePullError) and pulled.value.reason == "ErrImagePull"
    sid = await rt.run_pod_sandbox(POD)
    with pytest.raises(ContainerCreateError):
        await rt.create_container(sid, ContainerConfig(name="c", image="missing"), POD)
    assert await ensure_image(rt, "present") == (await rt.image_status("present")).id  # type: ignore[union-attr]
    await rt.remove_image("present")
    assert await rt.list_images() == []


async def test_sandbox_ips_and_lifecycle() -> None:
    """Sandboxes get distinct pod IPs, released on stop and reused; host-network pods use the node IP."""
    rt = FakeRuntime(pod_cidr="10.1.0.0/24")
    a, b = await rt.run_pod_sandbox(POD), await rt.run_pod_sandbox(POD)
    ip_a, ip_b = (await rt.pod_sandbox_status(a)).ip, (await rt.pod_sandbox_status(b)).ip
    assert {ip_a, ip_b} == {"10.1.0.2", "10.1.0.3"}
    await rt.stop_pod_sandbox(a)
    assert (await rt.pod_sandbox_status(a)).state == SandboxState.NOTREADY
    c = await rt.run_pod_sandbox(POD)
    assert (await rt.pod_sandbox_status(c)).ip == ip_a
    host = await rt.run_pod_sandbox(PodSandboxConfig(name="h", namespace="d", uid="h",
                                                     linux=LinuxSandboxOptions(host_network=True)))
    assert (await rt.pod_sandbox_status(host)).ip == rt.node_ip
    await rt.remove_pod_sandbox(a)
    await rt.remove_pod_sandbox(a)
    with pytest.raises(NotFoundError):
        await rt.pod_sandbox_status(a)


async def test_a_full_pod_cidr_is_a_sandbox_error() -> None:
    """A /30 holds one pod address after the bridge's; the next sandbox fails as CNI says it, naming the range."""
    rt = FakeRuntime(pod_cidr="10.1.0.0/30")
    await rt.run_pod_sandbox(POD)
    with pytest.raises(SandboxCreateError, match=r"no IP addresses available in range set 10\.1\.0\.0/30"):
        await rt.run_pod_sandbox(POD)


async def test_list_filters() -> None:
    """Lists filter by sandbox, state and labels as CRI's filters do."""
    rt = FakeRuntime()
    sid, cid = await _pod(rt, "app")
    other = await rt.run_pod_sandbox(PodSandboxConfig(name="db", namespace="default", uid="u2"))
    await rt.start_container(cid)
    assert [s.id for s in await rt.list_pod_sandboxes(labels={"app": "web"})] == [sid]
    assert len(await rt.list_pod_sandboxes(state=SandboxState.READY)) == 2
    await rt.stop_pod_sandbox(other)
    assert [s.id for s in await rt.list_pod_sandboxes(state=SandboxState.NOTREADY)] == [other]
    assert [c.id for c in await rt.list_containers(sandbox_id=sid, state=ContainerState.RUNNING)] == [cid]
    assert await rt.list_containers(state=ContainerState.EXITED) == []
    await rt.stop_pod_sandbox(sid)
    assert [c.id for c in await rt.list_containers(state=ContainerState.EXITED)] == [cid]


async def test_fail_next_and_calls() -> None:
    """An injected failure hits the next call of that operation only; calls are recorded in order."""
    rt = FakeRuntime()
    rt.fail_next("run_pod_sandbox", RuntimeUnavailableError("down"))
    with pytest.raises(RuntimeUnavailableError):
        await rt.run_pod_sandbox(POD)
    await rt.run_pod_sandbox(POD)
    assert list(rt.calls) == ["run_pod_sandbox", "run_pod_sandbox"]


async def test_logs_written_in_cri_format(tmp_path: Path) -> None:
    """An image's log lines land in the container's log file, readable by the shared reader."""
    rt = FakeRuntime(behaviors={"app": ImageBehavior(logs=("hello", "world"))})
    pod = PodSandboxConfig(name="w", namespace="d", uid="u", log_directory=str(tmp_path))
    _, cid = await _pod(rt, "app", pod)
    await rt.start_container(cid)
    path = (await rt.container_status(cid)).log_path
    assert path == str(tmp_path / "c.log")
    assert [chunk async for chunk in read_log(path)] == [b"hello\n", b"world\n"]


async def test_every_runtime_satisfies_the_protocol() -> None:
    """All runtimes and the wrapper provide the whole Runtime interface."""
    cri = CRIRuntime("/nonexistent.sock")
    try:
        for rt in (FakeRuntime(), ProcessRuntime(), cri, InstrumentedRuntime(FakeRuntime(),
                                                                              registry=CollectorRegistry())):
            assert isinstance(rt, Runtime), type(rt).__name__
    finally:
        await cri.close()


async def test_instrumented_records_latency_and_errors() -> None:
    """The wrapper observes each call's duration by operation and counts failures by error type."""
    registry = CollectorRegistry()
    inner = FakeRuntime()
    rt = InstrumentedRuntime(inner, registry=registry)
    # A second wrapper on the same registry shares its metrics instead of re-registering them.
    InstrumentedRuntime(FakeRuntime(), registry=registry)
    await rt.run_pod_sandbox(POD)
    inner.fail_next("start_container", ContainerStartError("boom"))
    with pytest.raises(ContainerStartError):
        await rt.start_container("x")
    sample = registry.get_sample_value
    assert sample("kubelite_runtime_operations_duration_seconds_count", {"operation": "run_pod_sandbox"}) == 1
    assert sample("kubelite_runtime_operations_duration_seconds_count", {"operation": "start_container"}) == 1
    assert sample("kubelite_runtime_operations_errors_total",
                  {"operation": "start_container", "error": "ContainerStartError"}) == 1


async def test_unavailable_cri_socket() -> None:
    """A CRI socket nobody serves is RuntimeUnavailableError, quickly, thanks to the deadline."""
    cri = CRIRuntime("/nonexistent/cri.sock", timeout=1.0)
    try:
        with pytest.raises(RuntimeUnavailableError):
            await cri.version()
    finally:
        await cri.close()
