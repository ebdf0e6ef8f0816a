"""The EndpointSlice controller against a real apiserver: slices beside Endpoints, terminating pods, mirroring.

As in test_endpoints.py, the test writes pod IPs and readiness with UpdateStatus, the call a kubelet makes.
"""

from __future__ import annotations

from api.pb import core_pb2, discovery_pb2
from client.api import Client
from controllers.manager import ControllerManager

from .conftest import create, eventually
from .test_endpoints import SERVICE, make_pod, report

MANAGED = "endpointslice.kubernetes.io/managed-by"


async def slices(client: Client, service: str = "web") -> list[discovery_pb2.EndpointSlice]:
    found = await client.list_all("endpointslices", "default", label_selector=f"kubernetes.io/service-name={service}")
    return sorted(found, key=lambda s: s.metadata.name)


def conditions(found: list[discovery_pb2.EndpointSlice]) -> dict[str, tuple[bool, bool, bool, str]]:
    return {e.addresses[0]: (e.conditions.ready, e.conditions.serving, e.conditions.terminating, e.node_name)
            for es in found for e in es.endpoints}


async def test_slices_follow_pods_and_keep_terminating_ones(client: Client, manager: ControllerManager) -> None:
    """A Service's slice lists its pods with ready/serving/terminating and node; a pod being deleted stays as
    terminating (not ready, still serving) while Endpoints drop it; the slice is owned by the Service."""
    await make_pod(client, "a", {"app": "web"}, ports=[("http", 8080)], node="n1")
    await make_pod(client, "b", {"app": "web"}, ports=[("http", 8080)], node="n2")
    await report(client, "a", ip="10.1.0.1", ready=True)
    await report(client, "b", ip="10.1.0.2", ready=False)
    svc = await create(client, SERVICE.format(publish="false"))

    async def listed() -> bool:
        return conditions(await slices(client)) == {"10.1.0.1": (True, True, False, "n1"),
                                                    "10.1.0.2": (False, False, False, "n2")}

    await eventually(listed, what="both pods in the slice")
    [es] = await slices(client)
    assert es.address_type == "IPv4"
    assert [(p.name, p.port, p.protocol) for p in es.ports] == [("http", 8080, "TCP")]
    assert es.metadata.labels["endpointslice.kubernetes.io/managed-by"] == "endpointslice-controller.k8s.io"
    assert [(r.kind, r.uid, r.controller) for r in es.metadata.owner_references] == [("Service", svc.metadata.uid,
                                                                                       True)]
    await client.delete("pods", "a", "default", grace_period_seconds=30)

    async def terminating() -> bool:
        ep = await client.get("endpoints", "web", "default")
        gone = all(a.ip != "10.1.0.1" for s in ep.subsets for a in s.addresses)
        return gone and conditions(await slices(client)).get("10.1.0.1") == (False, True, True, "n1")

    await eventually(terminating, what="a terminating but serving in the slice, gone from Endpoints")


async def test_many_pods_are_split_and_a_change_writes_one_slice(client: Client, apiserver: object,
                                                                  running: object) -> None:
    """With at most 5 endpoints per slice, 12 pods make 3 slices; one more pod is written into one slice only."""
    from .conftest import start_manager

    manager = await start_manager(running, apiserver.address, endpointslice_max=5)  # type: ignore[attr-defined]
    assert manager is not None
    for i in range(12):
        await make_pod(client, f"p{i}", {"app": "web"}, ports=[("http", 8080)])
        await report(client, f"p{i}", ip=f"10.1.0.{i + 1}", ready=True)
    await create(client, SERVICE.format(publish="false"))

    async def split() -> list[int] | None:
        sizes = sorted(len(es.endpoints) for es in await slices(client))
        return sizes if sizes == [2, 5, 5] else None

    await eventually(split, what="12 endpoints in slices of 5, 5 and 2")
    before = {es.metadata.name: es.metadata.resource_version for es in await slices(client)}
    await make_pod(client, "p12", {"app": "web"}, ports=[("http", 8080)])
    await report(client, "p12", ip="10.1.0.13", ready=True)

    async def added() -> bool:
        return sorted(len(es.endpoints) for es in await slices(client)) == [3, 5, 5]

    await eventually(added, what="the new pod in the slice with room")
    after = {es.metadata.name: es.metadata.resource_version for es in await slices(client)}
    assert set(after) == set(before)
    assert sum(before[n] != after[n] for n in after) == 1


async def test_selectorless_service_is_mirrored(client: Client, manager: ControllerManager) -> None:
    """A Service without a selector gets slices mirrored from the Endpoints written for it, following each change;
    a headless Service's slices carry the headless label."""
    await create(client, "apiVersion: v1\nkind: Service\nmetadata: {name: ext, namespace: default}\n"
                         "spec: {clusterIP: None, ports: [{name: dns, port: 53, protocol: UDP}]}\n")
    ep = core_pb2.Endpoints(metadata={"name": "ext", "namespace": "default"}, subsets=[{
        "addresses": [{"ip": "10.2.0.1"}], "ports": [{"name": "dns", "port": 53, "protocol": "UDP"}]}])
    await client.create(ep)

    async def mirrored(want: dict) -> bool:
        found = await slices(client, "ext")
        return conditions(found) == want and all(
            es.metadata.labels.get(MANAGED) == "endpointslicemirroring-controller.k8s.io"
            and "service.kubernetes.io/headless" in es.metadata.labels for es in found)

    await eventually(lambda: mirrored({"10.2.0.1": (True, True, False, "")}), what="mirrored slice")
    ep = await client.get("endpoints", "ext", "default")
    ep.subsets[0].not_ready_addresses.add(ip="10.2.0.2")
    await client.update(ep)
    await eventually(lambda: mirrored({"10.2.0.1": (True, True, False, ""), "10.2.0.2": (False, False, False, "")}),
                     what="mirrored not-ready address")
    await client.delete("services", "ext", "default")

    async def gone() -> bool:
        return not await slices(client, "ext")

    await eventually(gone, what="slices removed with the Service")
