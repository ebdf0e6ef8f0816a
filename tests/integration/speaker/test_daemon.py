"""`kubelite speaker` as a node runs it: inside the node's namespace, over mutual TLS as its node."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import testpki

from api import loadbalancer
from api.errors import NotFoundError
from api.pb import apps_pb2, core_pb2
from apiserver.registry import Config as RegistryConfig
from client.api import Client
from integration.proxy.proxyhelp import add_netns, del_netns, eventually, in_netns, kubelite, root_conftest

NODE_IP = "10.250.0.11"
POOL = "10.250.0.200/30"


@pytest.fixture
def node_ns() -> Iterator[str]:
    """A scratch node namespace whose link (a veth pair, both ends inside) holds the node's address; deleted after
    the test."""
    name = add_netns("speaker")
    try:
        in_netns(name, "ip", "link", "add", "node0", "type", "veth", "peer", "name", "wire0")
        in_netns(name, "ip", "addr", "add", f"{NODE_IP}/24", "dev", "node0")
        in_netns(name, "ip", "link", "set", "node0", "up")
        in_netns(name, "ip", "link", "set", "wire0", "up")
        yield name
    finally:
        del_netns(name)


async def start_speaker(node_ns: str, server: str, pki: testpki.TestPki) -> asyncio.subprocess.Process:
    """`kubelite speaker` for node n1 inside `node_ns`, with n1's kubelet client certificate under `pki`."""
    node = pki.node("n1", NODE_IP)
    return await asyncio.create_subprocess_exec(
        "nsenter", f"--net=/run/netns/{node_ns}", "--", kubelite(), "speaker", "--server", server,
        "--certificate-authority", testpki.get().ca_file, "--client-certificate", node["kubelet"],
        "--client-key", node["kubelet-key"], "--node-name", "n1", "--node-ip", NODE_IP,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)


async def make_web(client: Client) -> str:
    """Ready node n1, LoadBalancer Service web with an endpoint on n1; web's allocated address."""
    n1 = await client.create(core_pb2.Node(metadata={"name": "n1"}, spec={"pod_cidr": "10.244.1.0/24"}))
    n1.status.conditions.add(type="Ready", status="True")
    await client.update_status(n1)
    web = await client.create(core_pb2.Service(
        metadata={"name": "web", "namespace": "default"},
        spec={"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP"}]}))
    await client.create(core_pb2.Endpoints(
        metadata={"name": "web", "namespace": "default"},
        subsets=[{"addresses": [{"ip": "10.244.1.5", "node_name": "n1"}], "ports": [{"port": 80}]}]))
    return web.metadata.annotations[loadbalancer.ALLOCATED_IP]


async def lease_holder(client: Client) -> str | None:
    try:
        lease = await client.get(apps_pb2.Lease, loadbalancer.lease_name("web"), "default")
    except NotFoundError:
        return None
    return lease.spec.holder_identity or None


async def test_speaker_takes_the_lease_and_reports_the_address_as_its_node(etcd: str, node_ns: str,
                                                                           tmp_path: Path) -> None:
    """Started with the kubelet's client certificate (system:node:n1) and the cluster CA, the speaker takes the
    Service's Lease for its node and writes the address into the Service's status."""
    sock = tmp_path / "api.sock"
    api = await root_conftest().start_apiserver(etcd, listen=["127.0.0.1:0", f"unix://{sock}"],
                                                registry=RegistryConfig(lb_pool=POOL))
    try:
        async with api.client() as client:
            ip = await make_web(client)
            proc = await start_speaker(node_ns, f"unix://{sock}", testpki.get())
            try:
                assert await eventually(lambda: lease_holder(client), timeout=20, what="web's Lease taken") == "n1"

                async def ingress() -> list[str] | None:
                    svc = await client.get(core_pb2.Service, "web", "default")
                    return [i.ip for i in svc.status.load_balancer.ingress] or None

                assert await eventually(ingress, timeout=10, what="web's EXTERNAL-IP") == [ip]
            finally:
                proc.send_signal(signal.SIGTERM)
                _, err = await asyncio.wait_for(proc.communicate(), 20)
            assert b"address_taken" in err, err.decode()
            assert b"sync_failed" not in err, err.decode()
    finally:
        await api.stop()


async def test_speaker_with_another_clusters_certificate_takes_nothing(etcd: str, node_ns: str,
                                                                         tmp_path: Path) -> None:
    """A speaker presenting a node certificate of another cluster's CA is refused at the handshake: no Lease, no
    EXTERNAL-IP, and its log says why."""
    sock = tmp_path / "api.sock"
    api = await root_conftest().start_apiserver(etcd, listen=["127.0.0.1:0", f"unix://{sock}"],
                                                registry=RegistryConfig(lb_pool=POOL))
    try:
        async with api.client() as client:
            await make_web(client)
            proc = await start_speaker(node_ns, f"unix://{sock}", testpki.foreign())
            try:
                await asyncio.sleep(3)
                assert await lease_holder(client) is None
                svc = await client.get(core_pb2.Service, "web", "default")
                assert not svc.status.load_balancer.ingress
            finally:
                proc.send_signal(signal.SIGTERM)
                _, err = await asyncio.wait_for(proc.communicate(), 20)
            assert b"address_taken" not in err
            assert b"is not signed by the cluster CA" in err, err.decode()
    finally:
        await api.stop()
