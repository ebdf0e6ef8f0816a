"""`bootstrap control-plane --join`'s work on two machines (root): the first started with --ha, the second given
the cluster's CAs, adding its etcd member through etcd's API and serving the same data."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from api.pb import core_pb2
from client.api import Client
from deploy.lab import LabPlan, Supervisor, netns_path
from deploy.lab.cluster import copy_cluster_secrets
from deploy.node import bootstrap, certs
from deploy.node.launch import SupervisorLauncher

JOIN = r"""
import asyncio, json, sys
from pathlib import Path
from deploy.lab.procs import Supervisor
from deploy.node import bootstrap
from deploy.node.launch import SupervisorLauncher
data, sock, pids, logs, address, existing, netns = sys.argv[1:]
spec = bootstrap.ControlPlaneSpec(address=address, data_dir=Path(data), netns=netns, socket=sock,
                                  etcd_members=(("b", address),), etcd_name="b", daemon_suffix="b")
launcher = SupervisorLauncher(Supervisor(pid_dir=Path(pids), log_dir=Path(logs)))
joined = asyncio.run(bootstrap.join_control_plane(spec, launcher, existing=existing))
print(json.dumps({"members": joined.etcd_members, "servers": joined.servers}))
"""


def spec_for(plan: LabPlan, tmp_path: Path, role: str, name: str) -> bootstrap.ControlPlaneSpec:
    member = plan.control_plane_member(role)
    address = str(member.address)
    return bootstrap.ControlPlaneSpec(address=address, data_dir=tmp_path / name, netns=member.netns,
                                      socket=str(tmp_path / f"{name}.sock"), etcd_members=((name, address),),
                                      etcd_name=name, daemon_suffix="" if name == "a" else name)


def test_a_second_control_plane_joins_the_first(make_lab, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """a runs with a one-member etcd cluster on its address; b, given a's CAs and Secrets key, adds itself as a
    member and starts: both members healthy with one leader, and an object written through b's apiserver is read
    through a's."""
    plan = make_lab(0, control_planes=3)
    sup = Supervisor(pid_dir=tmp_path / "pids", log_dir=tmp_path / "logs")
    a, b = spec_for(plan, tmp_path, "cp", "a"), spec_for(plan, tmp_path, "cp2", "b")
    try:
        asyncio.run(bootstrap.bootstrap_control_plane(a, SupervisorLauncher(sup)))
        with pytest.raises(bootstrap.JoinFailedError, match=r"pki/ca\.key"):
            asyncio.run(bootstrap.join_control_plane(b, SupervisorLauncher(sup), existing=a.address))
        copy_cluster_secrets(a, b)
        done = subprocess.run(["nsenter", f"--net={netns_path(b.netns or '')}", "--", sys.executable, "-c", JOIN,
                               str(b.data_dir), b.socket, str(sup.pid_dir), str(sup.log_dir), b.address, a.address,
                               b.netns or ""], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        joined = json.loads(done.stdout.strip().splitlines()[-1])
        assert sorted(map(tuple, joined["members"])) == [("a", a.address), ("b", b.address)]
        assert joined["servers"] == f"{b.address}:6443,{a.address}:6443"

        store = b.pki
        members = subprocess.run(
            ["nsenter", f"--net={netns_path(b.netns or '')}", "--", *bootstrap.kubelite_argv(), "bootstrap",
             "etcd-members", "--endpoints", f"https://{b.address}:2379", "--cacert", str(store.crt(certs.ETCD_CA)),
             "--cert", str(store.crt("apiserver-etcd-client")), "--key", str(store.key("apiserver-etcd-client")),
             "-o", "json"], capture_output=True, text=True, timeout=60)
        assert members.returncode == 0, members.stderr
        listed = json.loads(members.stdout)
        assert sorted(m["name"] for m in listed) == ["a", "b"]
        assert all(m["healthy"] for m in listed), listed
        assert sum(m["leader"] for m in listed) == 1, listed

        async def write_b_read_a() -> str:
            cm = core_pb2.ConfigMap()
            cm.metadata.name, cm.metadata.namespace = "joined", "default"
            cm.data["via"] = "b"
            async with Client(b.admin()) as client:
                await client.create(cm)
            async with Client(a.admin()) as client:
                for _ in range(50):
                    try:
                        return (await client.get("configmaps", "joined", "default")).data["via"]
                    except Exception:
                        await asyncio.sleep(0.1)
            return ""

        assert asyncio.run(write_b_read_a()) == "b"
    finally:
        sup.stop_all(timeout=5.0)
