"""The apiserver's rules: validation and defaults on the wire, pod immutability, graceful delete, Services."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest
from conftest import RunningApiserver, start_apiserver

from api import convert, kinds
from api.errors import ConflictError, InvalidError, NotFoundError
from api.pb import api_pb2, core_pb2
from apiserver.registry import Config as RegistryConfig
from client.api import Client

from .helpers import make, pod, service


def _manifest(doc: dict) -> object:
    return kinds.unwrap(convert.manifest_to_object(doc))


@pytest.mark.parametrize(("spec", "message"), [
    pytest.param({"containers": [{"name": "c"}]},
                 'Pod "p" is invalid: spec.containers[0].image: Required value', id="image-required"),
    pytest.param({"containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 70000}]}]},
                 'Pod "p" is invalid: spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between '
                 "1 and 65535, inclusive", id="port-range"),
    pytest.param({"containers": [{"name": "c", "image": "x"}], "restartPolicy": "Sometimes"},
                 'Pod "p" is invalid: spec.restartPolicy: Unsupported value: \'Sometimes\': supported values: '
                 '"Always", "OnFailure", "Never"', id="restart-policy"),
    pytest.param({"containers": []}, 'Pod "p" is invalid: spec.containers: Required value', id="no-containers"),
])
async def test_validation_errors_name_the_field(client: Client, spec: dict, message: str) -> None:
    """The server refuses invalid objects with INVALID_ARGUMENT naming the field, and stores nothing."""
    with pytest.raises(InvalidError) as err:
        await client.create(_manifest({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec}))
    assert err.value.message == message
    assert await client.list_all("pods") == []


async def test_every_error_is_reported(client: Client) -> None:
    """Several problems come back together in one message."""
    bad = _manifest({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "P"},
                     "spec": {"containers": [{"name": "c"}]}})
    with pytest.raises(InvalidError) as err:
        await client.create(bad)
    assert "metadata.name: Invalid value: 'P'" in err.value.message
    assert "spec.containers[0].image: Required value" in err.value.message


async def test_empty_envelope_is_invalid(client: Client) -> None:
    """A create with no object in the envelope is refused, not a server error."""
    with pytest.raises(InvalidError, match="object: Required value"):
        await client.create_object(api_pb2.Object())


async def test_pod_defaults_are_filled(client: Client) -> None:
    """The server fills Kubernetes' defaults into a bare pod."""
    created = await client.create(_manifest({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "a", "image": "nginx", "ports": [{"containerPort": 80}]},
                                {"name": "b", "image": "busybox:1.36"}]}}))
    spec = created.spec
    assert spec.restart_policy == "Always"
    assert spec.termination_grace_period_seconds == 30
    assert spec.dns_policy == "ClusterFirst"
    assert spec.scheduler_name == "default-scheduler"
    assert spec.containers[0].ports[0].protocol == "TCP"
    assert [c.image_pull_policy for c in spec.containers] == ["Always", "IfNotPresent"]
    assert created.status.phase == "Pending" and created.status.qos_class == "BestEffort"
    assert {(t.key, t.toleration_seconds) for t in spec.tolerations} == {
        ("node.kubernetes.io/not-ready", 1), ("node.kubernetes.io/unreachable", 1)}


async def test_toleration_seconds_follow_the_flag(etcd: str) -> None:
    """--default-toleration-seconds sets the admission tolerations' seconds."""
    server = await start_apiserver(etcd, registry=RegistryConfig(toleration_seconds=300))
    try:
        async with server.client() as c:
            created = await c.create(pod("p"))
    finally:
        await server.stop()
    assert {t.toleration_seconds for t in created.spec.tolerations} == {300}


async def test_service_defaults_are_filled(client: Client) -> None:
    """A Service gets type ClusterIP, TCP, targetPort = port and a cluster IP in the service range."""
    created = await client.create(_manifest({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
        "spec": {"selector": {"app": "s"}, "ports": [{"port": 80}]}}))
    assert created.spec.type == "ClusterIP"
    assert (created.spec.ports[0].protocol, created.spec.ports[0].target_port) == ("TCP", "80")
    assert ipaddress.ip_address(created.spec.cluster_ip) in ipaddress.ip_network("10.96.0.0/16")
    assert list(created.spec.cluster_ips) == [created.spec.cluster_ip]


# ---------------------------------------------------------------- pod immutability


@pytest.mark.parametrize(("change", "allowed"), [
    pytest.param(lambda p: setattr(p.spec.containers[0], "image", "nginx:1.26"), True, id="image"),
    pytest.param(lambda p: setattr(p.spec, "active_deadline_seconds", 60), True, id="active-deadline"),
    pytest.param(lambda p: p.spec.tolerations.add(key="extra", operator="Exists"), True, id="add-toleration"),
    pytest.param(lambda p: p.spec.tolerations.pop(), False, id="remove-toleration"),
    pytest.param(lambda p: p.spec.containers[0].args.append("--x"), False, id="args"),
    pytest.param(lambda p: setattr(p.spec, "restart_policy", "Never"), False, id="restart-policy"),
    pytest.param(lambda p: p.spec.containers.add(name="second", image="x"), False, id="add-container"),
    pytest.param(lambda p: setattr(p.spec, "termination_grace_period_seconds", 5), False, id="grace"),
])
async def test_pod_spec_is_immutable(client: Client, change, allowed: bool) -> None:  # type: ignore[no-untyped-def]
    """After creation only images, activeDeadlineSeconds and added tolerations may change in a pod's spec."""
    created = await client.create(pod("p"))
    change(created)
    if allowed:
        updated = await client.update(created)
        assert updated.spec == created.spec
        assert updated.metadata.generation == 2
    else:
        with pytest.raises(InvalidError, match=r'Pod "p" is invalid: spec: Forbidden: pod updates may not change'):
            await client.update(created)


# ---------------------------------------------------------------- delete


async def test_unbound_pod_goes_at_once(client: Client) -> None:
    """A pod on no node has nothing to stop: delete removes it at once."""
    await client.create(pod("p"))
    gone = await client.delete("pods", "p", "default")
    assert gone.metadata.name == "p"
    with pytest.raises(NotFoundError):
        await client.get("pods", "p", "default")


async def test_bound_pod_is_deleted_gracefully(client: Client) -> None:
    """A bound pod gets a deletionTimestamp and grace period and stays until its kubelet deletes it with grace 0."""
    await client.create(pod("p", node="node-1"))
    marked = await client.delete("pods", "p", "default")
    assert marked.metadata.HasField("deletion_timestamp")
    assert marked.metadata.deletion_grace_period_seconds == 30
    assert (await client.get("pods", "p", "default")).metadata.deletion_timestamp == marked.metadata.deletion_timestamp
    shorter = await client.delete("pods", "p", "default", grace_period_seconds=5)
    assert shorter.metadata.deletion_grace_period_seconds == 5
    again = await client.delete("pods", "p", "default", grace_period_seconds=10)
    assert again.metadata.deletion_grace_period_seconds == 5, "a grace period never grows"
    await client.delete("pods", "p", "default", grace_period_seconds=0)
    with pytest.raises(NotFoundError):
        await client.get("pods", "p", "default")


async def test_grace_zero_removes_a_bound_pod_at_once(client: Client) -> None:
    """gracePeriodSeconds=0 removes even a bound pod immediately."""
    await client.create(pod("p", node="node-1"))
    await client.delete("pods", "p", "default", grace_period_seconds=0)
    with pytest.raises(NotFoundError):
        await client.get("pods", "p", "default")


async def test_being_deleted_pod_cannot_be_bound(client: Client) -> None:
    """A pod marked for deletion cannot be scheduled."""
    p = pod("p")
    p.metadata.finalizers.append("example.com/hold")
    await client.create(p)
    await client.delete("pods", "p", "default")
    with pytest.raises(ConflictError, match="is being deleted"):
        await client.bind("default", "p", "node-1")


@pytest.mark.parametrize("kind", ["Service", "Deployment", "Node"])
async def test_finalizers_hold_deletion(client: Client, kind: str) -> None:
    """An object with finalizers is only marked on delete, and goes when the last finalizer is removed."""
    obj = make(kind)
    obj.metadata.finalizers.append("example.com/cleanup")
    created = await client.create(obj)
    ns = created.metadata.namespace
    marked = await client.delete(kind, created.metadata.name, ns)
    assert marked.metadata.HasField("deletion_timestamp")
    held = await client.get(kind, created.metadata.name, ns)
    assert list(held.metadata.finalizers) == ["example.com/cleanup"]
    held.metadata.labels["still"] = "editable"
    held = await client.update(held)
    del held.metadata.finalizers[:]
    await client.update(held)
    with pytest.raises(NotFoundError):
        await client.get(kind, created.metadata.name, ns)


@pytest.mark.parametrize(("policy", "finalizer"), [
    pytest.param("Foreground", "foregroundDeletion", id="foreground"),
    pytest.param("Orphan", "orphan", id="orphan"),
])
async def test_propagation_policies_add_finalizers(client: Client, policy: str, finalizer: str) -> None:
    """Foreground and Orphan deletes leave the owner marked with the finalizer the garbage collector acts on."""
    await client.create(make("Deployment"))
    marked = await client.delete("deployments", "web", "default", propagation_policy=policy)
    assert list(marked.metadata.finalizers) == [finalizer]
    assert marked.metadata.HasField("deletion_timestamp")


async def test_delete_preconditions(client: Client) -> None:
    """A delete with a stale uid or resourceVersion precondition is a conflict."""
    created = await client.create(pod("p"))
    with pytest.raises(ConflictError, match="Precondition failed: UID"):
        await client.delete("pods", "p", "default", uid="other")
    with pytest.raises(ConflictError, match="Precondition failed: ResourceVersion"):
        await client.delete("pods", "p", "default", resource_version="1")
    await client.delete("pods", "p", "default", uid=created.metadata.uid,
                        resource_version=created.metadata.resource_version)


async def test_bad_propagation_policy(client: Client) -> None:
    """An unknown propagation policy is refused naming the supported ones."""
    await client.create(pod("p"))
    with pytest.raises(InvalidError, match='propagationPolicy: Unsupported value: \'Later\''):
        await client.delete("pods", "p", "default", propagation_policy="Later")


# ---------------------------------------------------------------- services


def _allocations(services: list[core_pb2.Service]) -> tuple[list[str], list[int]]:
    ips = [s.spec.cluster_ip for s in services]
    ports = [p.node_port for s in services for p in s.spec.ports]
    return ips, ports


async def test_concurrent_services_get_unique_addresses(client: Client) -> None:
    """Fifty NodePort services created at once get fifty distinct cluster IPs and node ports."""
    created = await asyncio.gather(*(client.create(service(f"s{i}", type_="NodePort")) for i in range(50)))
    ips, ports = _allocations(created)
    assert len(set(ips)) == 50 and len(set(ports)) == 50
    assert all(30000 <= p <= 32767 for p in ports)
    stored_ips, stored_ports = _allocations(await client.list_all("services", "default"))
    assert (sorted(stored_ips), sorted(stored_ports)) == (sorted(ips), sorted(ports))


async def test_services_unique_across_two_apiservers(etcd: str, client: Client) -> None:
    """Services created at once through two apiservers in a small range still never share an address or port."""
    narrow = RegistryConfig(service_cidr="10.96.0.0/26", node_port_range="30000-30099")
    servers: list[RunningApiserver] = [await start_apiserver(etcd, registry=narrow) for _ in range(2)]
    clients = [s.client() for s in servers]
    try:
        created = await asyncio.gather(*(clients[i % 2].create(service(f"s{i}", type_="NodePort"))
                                         for i in range(40)))
    finally:
        for c in clients:
            await c.close()
        for s in servers:
            await s.stop()
    ips, ports = _allocations(created)
    assert len(set(ips)) == 40 and len(set(ports)) == 40


async def test_addresses_are_released_on_delete(etcd: str) -> None:
    """Deleting a Service frees its cluster IP and node port for the next one."""
    tiny = RegistryConfig(service_cidr="10.96.0.0/30", node_port_range="30000-30000")  # one IP (.2), one port
    server = await start_apiserver(etcd, registry=tiny)
    try:
        async with server.client() as c:
            first = await c.create(service("a", type_="NodePort"))
            assert (first.spec.cluster_ip, first.spec.ports[0].node_port) == ("10.96.0.2", 30000)
            with pytest.raises(InvalidError, match=r"range 10\.96\.0\.0/30 is full"):
                await c.create(service("b", type_="NodePort"))
            await c.delete("services", "a", "default")
            second = await c.create(service("b", type_="NodePort"))
            assert (second.spec.cluster_ip, second.spec.ports[0].node_port) == ("10.96.0.2", 30000)
    finally:
        await server.stop()


async def test_dry_run_holds_no_address(etcd: str) -> None:
    """A dry-run Service create shows an address but keeps none: the next real create can have it."""
    tiny = RegistryConfig(service_cidr="10.96.0.0/30", node_port_range="30000-30000")
    server = await start_apiserver(etcd, registry=tiny)
    try:
        async with server.client() as c:
            shown = await c.create(service("a", type_="NodePort"), dry_run=True)
            assert (shown.spec.cluster_ip, shown.spec.ports[0].node_port) == ("10.96.0.2", 30000)
            real = await c.create(service("a", type_="NodePort"))
            assert (real.spec.cluster_ip, real.spec.ports[0].node_port) == ("10.96.0.2", 30000)
    finally:
        await server.stop()


async def test_requested_addresses(client: Client) -> None:
    """A requested cluster IP or node port is honoured if free, refused if taken or outside the range."""
    mine = await client.create(service("a", type_="NodePort", clusterIP="10.96.5.5",
                                       ports=[{"port": 80, "nodePort": 30007}]))
    assert (mine.spec.cluster_ip, mine.spec.ports[0].node_port) == ("10.96.5.5", 30007)
    with pytest.raises(ConflictError, match=r"serviceips/10\.96\.5\.5 is already allocated"):
        await client.create(service("b", clusterIP="10.96.5.5"))
    with pytest.raises(ConflictError, match="nodeports/tcp/30007 is already allocated"):
        await client.create(service("c", type_="NodePort", ports=[{"port": 80, "nodePort": 30007}]))
    with pytest.raises(InvalidError, match=r"spec.clusterIP: Invalid value: '10.0.0.1': provided IP is not in the "
                                           r"valid range. The range of valid IPs is 10.96.0.0/16"):
        await client.create(service("d", clusterIP="10.0.0.1"))
    with pytest.raises(InvalidError, match=r"spec.ports\[0\].nodePort: Invalid value: 8080"):
        await client.create(service("e", type_="NodePort", ports=[{"port": 80, "nodePort": 8080}]))
    assert [s.metadata.name for s in await client.list_all("services", "default")] == ["a"]


async def test_cluster_ip_is_immutable(client: Client) -> None:
    """A Service's cluster IP cannot be changed by an update."""
    created = await client.create(service("a"))
    created.spec.cluster_ip = "10.96.9.9"
    created.spec.cluster_ips[:] = ["10.96.9.9"]
    with pytest.raises(InvalidError, match=r"spec\.clusterIP: Invalid value: '10\.96\.9\.9': field is immutable"):
        await client.update(created)


async def test_type_change_moves_node_ports(client: Client) -> None:
    """Turning a NodePort service into ClusterIP releases its node port; the reverse allocates one."""
    created = await client.create(service("a", type_="NodePort", ports=[{"port": 80, "nodePort": 30010}]))
    created.spec.type = "ClusterIP"
    created.spec.ports[0].node_port = 0
    plain = await client.update(created)
    assert plain.spec.ports[0].node_port == 0
    reuse = await client.create(service("b", type_="NodePort", ports=[{"port": 80, "nodePort": 30010}]))
    assert reuse.spec.ports[0].node_port == 30010
    plain.spec.type = "NodePort"
    back = await client.update(plain)
    assert back.spec.ports[0].node_port not in (0, 30010)


async def test_load_balancer_addresses(etcd: str) -> None:
    """With an LB pool, LoadBalancer services get a distinct address each (EXTERNAL-IP still empty: no node
    announces it yet), released on delete."""
    ann = "kubelite.io/load-balancer-ip"
    server = await start_apiserver(etcd, registry=RegistryConfig(lb_pool="192.168.50.0/29"))
    try:
        async with server.client() as c:
            created = await asyncio.gather(*(c.create(service(f"lb{i}", type_="LoadBalancer")) for i in range(6)))
            addresses = {s.metadata.annotations[ann] for s in created}
            assert len(addresses) == 6 and not any(s.status.load_balancer.ingress for s in created)
            assert all(ipaddress.ip_address(a) in ipaddress.ip_network("192.168.50.0/29") for a in addresses)
            with pytest.raises(InvalidError, match=r"pool 192\.168\.50\.0/29 is full"):
                await c.create(service("lb6", type_="LoadBalancer"))
            await c.delete("services", "lb0", "default")
            again = await c.create(service("lb6", type_="LoadBalancer"))
            assert again.metadata.annotations[ann] == created[0].metadata.annotations[ann]
    finally:
        await server.stop()


async def test_load_balancer_address_rules(etcd: str) -> None:
    """loadBalancerIP must lie in the pool; another loadBalancerClass gets nothing; a type change releases the
    address; only the allocated address may be reported in the status, and the annotation is the server's."""
    ann = "kubelite.io/load-balancer-ip"
    server = await start_apiserver(etcd, registry=RegistryConfig(lb_pool="192.168.50.10-192.168.50.11"))
    try:
        async with server.client() as c:
            with pytest.raises(InvalidError, match=r"spec.loadBalancerIP: .*not in the load-balancer pool"):
                await c.create(service("out", type_="LoadBalancer", loadBalancerIP="192.168.50.12"))
            pinned = await c.create(service("pinned", type_="LoadBalancer", loadBalancerIP="192.168.50.11"))
            assert pinned.metadata.annotations[ann] == "192.168.50.11"
            other = service("other", type_="LoadBalancer")
            other.spec.load_balancer_class = "example.com/elsewhere"
            other = await c.create(other)
            assert ann not in other.metadata.annotations
            forged = service("forged", type_="LoadBalancer")
            forged.metadata.annotations[ann] = "192.168.50.10"
            with pytest.raises(InvalidError, match=r"metadata.annotations\[kubelite.io/load-balancer-ip\]"):
                await c.create(forged)
            pinned.status.load_balancer.ingress.add(ip="192.168.50.10")
            with pytest.raises(InvalidError, match=r"status.loadBalancer.ingress\[0\].ip"):
                await c.update_status(pinned)
            del pinned.status.load_balancer.ingress[:]
            pinned.status.load_balancer.ingress.add(ip="192.168.50.11")
            announced = await c.update_status(pinned)
            assert [i.ip for i in announced.status.load_balancer.ingress] == ["192.168.50.11"]
            announced.spec.type = "ClusterIP"
            announced.spec.load_balancer_ip = ""
            for p in announced.spec.ports:
                p.node_port = 0
            plain = await c.update(announced)
            assert ann not in plain.metadata.annotations and not plain.status.load_balancer.ingress
            took = await c.create(service("took", type_="LoadBalancer", loadBalancerIP="192.168.50.11"))
            assert took.metadata.annotations[ann] == "192.168.50.11"
    finally:
        await server.stop()


async def test_local_load_balancer_gets_a_health_check_port(client: Client) -> None:
    """externalTrafficPolicy Local on a LoadBalancer allocates a healthCheckNodePort, held like a node port and
    released when the policy goes back to Cluster."""
    created = await client.create(service("lb", type_="LoadBalancer", externalTrafficPolicy="Local"))
    port = created.spec.health_check_node_port
    assert 30000 <= port <= 32767 and port not in {p.node_port for p in created.spec.ports}
    with pytest.raises(ConflictError, match=f"nodeports/tcp/{port} is already allocated"):
        await client.create(service("np", type_="NodePort", ports=[{"port": 80, "nodePort": port}]))
    created.spec.external_traffic_policy = "Cluster"
    cluster = await client.update(created)
    assert cluster.spec.health_check_node_port == 0
    reuse = await client.create(service("np", type_="NodePort", ports=[{"port": 80, "nodePort": port}]))
    assert reuse.spec.ports[0].node_port == port


async def test_new_ingress_gets_the_default_class(client: Client) -> None:
    """An Ingress naming no class gets the newest IngressClass marked default; one naming a class keeps it."""
    marked = {"ingressclass.kubernetes.io/is-default-class": "true"}
    await client.create(make("IngressClass", "old", annotations=marked))
    await client.create(make("IngressClass", "plain"))
    await asyncio.sleep(1.1)  # creation timestamps have one-second resolution
    await client.create(make("IngressClass", "new", annotations=marked))
    defaulted = await client.create(make("Ingress", "a"))
    assert defaulted.spec.ingress_class_name == "new"
    chosen = make("Ingress", "b")
    chosen.spec.ingress_class_name = "plain"
    assert (await client.create(chosen)).spec.ingress_class_name == "plain"
