"""The kubelet as users run it: `kubelite kubelet` and `kubelite hollow-nodes` processes, and a kubelet cut
off from the apiserver by a partition that heals."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import testpki

from api.pb import core_pb2
from client.api import Client
from kubelet.runtime import images
from kubelet.runtime.fake import FakeRuntime

from .kubelethelp import config, eventually, kubelet, pod, pod_where, running_ready


def _spawn(*args: str, server: str, log: Path) -> subprocess.Popen[bytes]:
    out = open(log, "wb")  # noqa: SIM115 - handed to the child
    return subprocess.Popen([sys.executable, "-m", "cli.main", *args, "--server", server], stdout=out,
                            stderr=subprocess.STDOUT, env={**os.environ, "KUBELITE_CONFIG": testpki.get().cli_config()})


def _stop(proc: subprocess.Popen[bytes], timeout: float = 15) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout)


async def _node_ready(client: Client, name: str) -> bool:
    node = await client.get("nodes", name)
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)


async def test_kubelet_command(client: Client, apiserver: object, tmp_path: Path) -> None:
    """`kubelite kubelet` with its flags registers the node, runs pods, and exits cleanly on SIGTERM."""
    server = apiserver.address  # type: ignore[attr-defined]
    proc = _spawn("kubelet", *testpki.get().kubelet_flags("cli-node"), "--node-name", "cli-node", "--runtime", "fake",
                  "--node-ip", "127.0.0.1",
                  "--listen", "127.0.0.1:0", "--pod-cidr", "10.244.9.0/24", "--root-dir", str(tmp_path / "root"),
                  "--lease-renew", "0.2", "--cpu", "3", "--memory", "6Gi", "--max-pods", "20",
                  "--reserved-cpu", "500m", "--reserved-memory", "1Gi", "--node-labels", "tier=edge,rack=r1",
                  "--cluster-dns", "10.96.0.10", "--backoff-initial", "0.5", "--backoff-max", "2",
                  "--log-level", "warning", server=server, log=tmp_path / "kubelet.log")
    try:
        await eventually(lambda: _node_ready(client, "cli-node"), what="cli-node Ready")
        node = await client.get("nodes", "cli-node")
        assert dict(node.status.allocatable) == {"cpu": "2500m", "memory": "5Gi", "pods": "20"}
        assert (node.metadata.labels["tier"], node.metadata.labels["rack"]) == ("edge", "r1")
        assert node.spec.pod_cidr == "10.244.9.0/24"
        await client.create(pod("cli-pod", "cli-node"))
        p = await pod_where(client, "cli-pod", running_ready)
        assert p.status.pod_ip.startswith("10.244.9.")
    finally:
        code = await asyncio.to_thread(_stop, proc)
    assert code == 0, (tmp_path / "kubelet.log").read_text()


async def test_hollow_nodes_command(client: Client, apiserver: object, tmp_path: Path) -> None:
    """`kubelite hollow-nodes` registers every node from one process, and a control file stops one."""
    control = tmp_path / "control"
    proc = _spawn("hollow-nodes", "--count", "4", "--prefix", "ho-", "--pods-per-node", "7", "--lease-renew", "0.2",
                  "--control-dir", str(control), "--log-level", "warning", server=apiserver.address,  # type: ignore[attr-defined]
                  log=tmp_path / "hollow.log")
    try:
        for i in range(4):
            await eventually(lambda i=i: _node_ready(client, f"ho-{i}"), what=f"ho-{i} Ready")  # type: ignore[misc]
        assert (await client.get("nodes", "ho-2")).status.capacity["pods"] == "7"
        await client.create(pod("on-hollow", "ho-3"))
        await pod_where(client, "on-hollow", running_ready)
        control.mkdir(exist_ok=True)
        (control / "ho-1.stop").touch()
        await asyncio.sleep(1.0)
        frozen = (await client.get("leases", "ho-1", "kube-node-lease")).spec.renew_time.ToNanoseconds()
        await asyncio.sleep(1.0)
        assert (await client.get("leases", "ho-1", "kube-node-lease")).spec.renew_time.ToNanoseconds() == frozen
    finally:
        code = await asyncio.to_thread(_stop, proc)
    assert code == 0, (tmp_path / "hollow.log").read_text()


class Partition:
    """A TCP relay between a kubelet and the apiserver that can be cut and healed."""

    def __init__(self, target: str) -> None:
        self.host, port = target.rsplit(":", 1)
        self.target_port = int(port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.StreamWriter] = set()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def heal(self) -> None:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for w in list(self._conns):
            w.close()
        await self._server.wait_closed()
        self._server = None

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection(self.host, self.target_port)
        except OSError:
            writer.close()
            return
        self._conns.update((writer, up_w))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))
        self._conns.difference_update((writer, up_w))


async def test_healed_partition_removes_replaced_pods(client: Client, apiserver: object, tmp_path: Path) -> None:
    """Pods deleted while the kubelet was cut off (as the node controller does) are killed once the
    partition heals, and its other pods keep running untouched."""
    partition = Partition(apiserver.address)  # type: ignore[attr-defined]
    await partition.heal()
    cut_off = Client(testpki.get().client(partition.address))
    rt = FakeRuntime(images=(images.PAUSE_IMAGE, images.BUSYBOX_IMAGE), pod_cidr="10.244.8.0/24")
    try:
        async with kubelet(cut_off, rt, config("island", tmp_path)):
            await client.create(pod("replaced", "island"))
            await client.create(pod("survivor", "island"))
            survivor = await pod_where(client, "survivor", running_ready)
            await pod_where(client, "replaced", running_ready)
            await partition.cut()
            await client.delete("pods", "replaced", "default", grace_period_seconds=0)
            await asyncio.sleep(1.0)
            assert {s.name for s in await rt.list_pod_sandboxes()} == {"replaced", "survivor"}, \
                "while cut off, the kubelet keeps running what it has"
            await partition.heal()

            async def healed() -> bool:
                return {s.name for s in await rt.list_pod_sandboxes()} == {"survivor"}

            await eventually(healed, timeout=20, what="the replaced pod removed after the partition healed")
            after: core_pb2.Pod = await client.get("pods", "survivor", "default")
            assert after.status.container_statuses[0].container_id == \
                survivor.status.container_statuses[0].container_id
    finally:
        await cut_off.close()
