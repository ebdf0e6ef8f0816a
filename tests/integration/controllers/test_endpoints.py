"""The Endpoints controller against a real apiserver.

No kubelet runs here: where a pod needs an IP and a Ready condition, the test writes them with UpdateStatus,
which is exactly the API call a kubelet makes to report them.
"""

from __future__ import annotations

from typing import Any

from api.pb import core_pb2
from client.api import Client
from controllers.manager import ControllerManager

from .conftest import create, eventually


async def report(client: Client, name: str, *, ip: str, ready: bool) -> None:
    """Stand in for a kubelet's status report: phase Running, the pod IP, and the Ready condition."""
    pod = await client.get("pods", name, "default")
    pod.status.phase = "Running"
    pod.status.pod_ip = ip
    del pod.status.conditions[:]
    pod.status.conditions.add(type="Ready", status="True" if ready else "False")
    await client.update_status(pod)


async def make_pod(client: Client, name: str, labels: dict[str, str], *, ports: list[tuple[str, int]] = (),
                   node: str = "") -> None:
    pod = core_pb2.Pod(metadata={"name": name, "namespace": "default", "labels": labels})
    c = pod.spec.containers.add(name="c", image="busybox")
    for port_name, number in ports:
        c.ports.add(name=port_name, container_port=number)
    if node:
        pod.spec.node_name = node
    await client.create(pod)


SERVICE = """
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: default}}
spec:
  selector: {{app: web}}
  publishNotReadyAddresses: {publish}
  ports:
  - {{name: http, port: 80, targetPort: http}}
"""


async def endpoints(client: Client) -> tuple[list[str], list[str], list[int]] | None:
    try:
        ep = await client.get("endpoints", "web", "default")
    except Exception:
        return None
    ready = sorted(a.ip for s in ep.subsets for a in s.addresses)
    not_ready = sorted(a.ip for s in ep.subsets for a in s.not_ready_addresses)
    ports = sorted({p.port for s in ep.subsets for p in s.ports})
    return ready, not_ready, ports


async def until(client: Client, want: Any) -> None:
    async def check() -> bool:
        return await endpoints(client) == want

    await eventually(check, what=f"endpoints {want}")


async def test_ready_not_ready_and_named_ports(client: Client, manager: ControllerManager) -> None:
    """Ready pods are addresses, not-ready ones notReadyAddresses, each with its own resolved named port; a pod
    without the named port is left out; readiness changes move addresses at once."""
    await make_pod(client, "a", {"app": "web"}, ports=[("http", 8080)], node="n1")
    await make_pod(client, "b", {"app": "web"}, ports=[("http", 8080)])
    await make_pod(client, "c", {"app": "web"}, ports=[("other", 9999)])
    await make_pod(client, "d", {"app": "db"}, ports=[("http", 8080)])
    for name, ip, ready in (("a", "10.1.0.1", True), ("b", "10.1.0.2", False), ("c", "10.1.0.3", True),
                            ("d", "10.1.0.4", True)):
        await report(client, name, ip=ip, ready=ready)
    await create(client, SERVICE.format(publish="false"))
    await until(client, (["10.1.0.1"], ["10.1.0.2"], [8080]))
    ep = await client.get("endpoints", "web", "default")
    addr = ep.subsets[0].addresses[0]
    assert addr.node_name == "n1" and (addr.target_ref.kind, addr.target_ref.name) == ("Pod", "a")
    await report(client, "b", ip="10.1.0.2", ready=True)
    await report(client, "a", ip="10.1.0.1", ready=False)
    await until(client, (["10.1.0.2"], ["10.1.0.1"], [8080]))
    pod = await client.get("pods", "b", "default")
    pod.metadata.labels["app"] = "elsewhere"
    await client.update(pod)
    await until(client, ([], ["10.1.0.1"], [8080]))


async def test_publish_not_ready_addresses(client: Client, manager: ControllerManager) -> None:
    """publishNotReadyAddresses lists not-ready pods as ready addresses."""
    await make_pod(client, "a", {"app": "web"}, ports=[("http", 8080)])
    await report(client, "a", ip="10.1.0.1", ready=False)
    await create(client, SERVICE.format(publish="true"))
    await until(client, (["10.1.0.1"], [], [8080]))


async def test_terminating_pods_leave(client: Client, manager: ControllerManager) -> None:
    """A pod being deleted (bound, so it waits for its kubelet) leaves the Endpoints at once."""
    await make_pod(client, "a", {"app": "web"}, ports=[("http", 8080)], node="n1")
    await report(client, "a", ip="10.1.0.1", ready=True)
    await create(client, SERVICE.format(publish="false"))
    await until(client, (["10.1.0.1"], [], [8080]))
    await client.delete("pods", "a", "default", grace_period_seconds=30)
    await until(client, ([], [], []))


async def test_service_deletion_removes_endpoints(client: Client, manager: ControllerManager) -> None:
    """Endpoints go with their Service."""
    await create(client, SERVICE.format(publish="false"))
    await eventually(lambda: endpoints(client))
    await client.delete("services", "web", "default")
    await until(client, None)


async def test_selectorless_service_left_alone(client: Client, manager: ControllerManager) -> None:
    """A Service without a selector keeps the Endpoints its user wrote."""
    await create(client, """
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  ports: [{port: 80}]
""")
    await create(client, """
apiVersion: v1
kind: Endpoints
metadata: {name: web, namespace: default}
subsets:
- addresses: [{ip: 192.168.9.9}]
  ports: [{port: 80}]
""")
    await make_pod(client, "a", {"app": "web"})
    await report(client, "a", ip="10.1.0.1", ready=True)
    await eventually(lambda: endpoints(client))
    import asyncio

    await asyncio.sleep(0.5)
    assert await endpoints(client) == (["192.168.9.9"], [], [80])
