"""Builders for pods and observed runtime state in kubelet unit tests."""

from __future__ import annotations

from api.pb import core_pb2
from kubelet.observed import ContainerView, ObservedPod, SandboxView
from kubelet.runtime.interface import ContainerState

RUNNING, EXITED, CREATED, UNKNOWN = (ContainerState.RUNNING, ContainerState.EXITED, ContainerState.CREATED,
                                     ContainerState.UNKNOWN)
NOW = 1_800_000_000.0


def make_pod(*names: str, init: tuple[str, ...] = (), policy: str = "Always", uid: str = "u1",
             host_network: bool = False, name: str = "web", namespace: str = "default") -> core_pb2.Pod:
    pod = core_pb2.Pod(metadata={"name": name, "namespace": namespace, "uid": uid})
    pod.spec.restart_policy = policy
    pod.spec.host_network = host_network
    pod.spec.node_name = "node-1"
    for n in init:
        pod.spec.init_containers.add(name=n, image="busybox")
    for n in names or ("app",):
        pod.spec.containers.add(name=n, image="busybox")
    return pod


def sandbox(id_: str = "s1", attempt: int = 0, *, ready: bool = True, ip: str = "10.244.0.5") -> SandboxView:
    return SandboxView(id_, attempt, ready, created_at=attempt + 1, ip=ip if ready else "")


def ctr(name: str, state: ContainerState = RUNNING, *, attempt: int = 0, sandbox_id: str = "s1", exit_code: int = 0,
        finished: float = NOW - 100, id_: str = "", hash_: str = "", reason: str = "",
        started: float = NOW - 200) -> ContainerView:
    return ContainerView(
        id=id_ or f"{name}-{attempt}", sandbox_id=sandbox_id, name=name, attempt=attempt, state=state,
        created_at=int((started - 1) * 1e9), started_at=int(started * 1e9) if state != CREATED else 0,
        finished_at=int(finished * 1e9) if state == EXITED else 0, exit_code=exit_code, reason=reason,
        image="busybox", image_ref="sha256:abc", hash=hash_,
    )


def observed(*containers: ContainerView, sandboxes: tuple[SandboxView, ...] = (), uid: str = "u1") -> ObservedPod:
    order = sorted(containers, key=lambda c: (-c.attempt, -c.created_at))
    return ObservedPod(uid, tuple(sorted(sandboxes, key=lambda s: -s.attempt)), tuple(order))
