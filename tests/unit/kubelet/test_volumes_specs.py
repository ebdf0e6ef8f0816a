"""Volumes (emptyDir, hostPath checks, mounts) and the runtime configs built from a pod spec."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

from api.pb import core_pb2
from kubelet import identity
from kubelet.config import KubeletConfig
from kubelet.specs import compute_container_config, compute_dns, compute_resources, compute_sandbox_config, hostname
from kubelet.volumes import (
    VolumeError,
    check_host_path,
    container_mounts,
    prepare_volumes,
    remove_pod_dir,
    set_ownership,
)

from .podbuild import make_pod


def test_empty_dir_shared_and_removed(tmp_path: Path) -> None:
    """An emptyDir is one directory under the pod's dir that every mounting container sees; removal deletes it."""
    pod = make_pod("a", "b")
    pod.spec.volumes.add(name="data", empty_dir={"medium": "Memory"})
    for c in pod.spec.containers:
        c.volume_mounts.add(name="data", mount_path="/data")
    paths = prepare_volumes(pod, tmp_path)
    expected = tmp_path / "u1" / "volumes" / "kubernetes.io~empty-dir" / "data"
    assert paths == {"data": str(expected)} and expected.is_dir()
    mounts = [container_mounts(c, paths) for c in pod.spec.containers]
    assert mounts[0] == mounts[1] and mounts[0][0].host_path == str(expected)
    remove_pod_dir(tmp_path, "u1")
    assert not (tmp_path / "u1").exists()


def test_sub_path_created(tmp_path: Path) -> None:
    """A subPath mounts a directory inside the volume, created if missing."""
    c = core_pb2.Container(name="a")
    c.volume_mounts.add(name="data", mount_path="/logs", sub_path="logs/a", read_only=True)
    (mount,) = container_mounts(c, {"data": str(tmp_path)})
    assert (mount.host_path, mount.readonly) == (str(tmp_path / "logs" / "a"), True)
    assert (tmp_path / "logs" / "a").is_dir()


@pytest.mark.parametrize(
    ("make", "type_", "error"),
    [
        pytest.param("dir", "Directory", None, id="directory-ok"),
        pytest.param("file", "Directory", "is not a directory", id="file-is-not-directory"),
        pytest.param(None, "Directory", "is not a directory", id="missing-directory"),
        pytest.param(None, "DirectoryOrCreate", None, id="directory-created"),
        pytest.param("file", "File", None, id="file-ok"),
        pytest.param("dir", "File", "is not a file", id="dir-is-not-file"),
        pytest.param(None, "FileOrCreate", None, id="file-created"),
        pytest.param("file", "Socket", "is not a socket file", id="file-is-not-socket"),
        pytest.param("socket", "Socket", None, id="socket-ok"),
        pytest.param("file", "CharDevice", "is not a character device", id="not-char-device"),
        pytest.param(None, "", None, id="no-type-no-check"),
    ],
)
def test_host_path_types(tmp_path: Path, make: str | None, type_: str, error: str | None) -> None:
    """hostPath types are checked as Kubernetes checks them; *OrCreate make what is missing."""
    path = tmp_path / "target"
    if make == "dir":
        path.mkdir()
    elif make == "file":
        path.write_text("x")
    elif make == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(path))
        sock.close()
    if error is None:
        check_host_path(str(path), type_)
        if type_ == "DirectoryOrCreate":
            assert path.is_dir()
        if type_ == "FileOrCreate":
            assert path.is_file()
    else:
        with pytest.raises(VolumeError, match=f"hostPath type check failed: {path} {error}"):
            check_host_path(str(path), type_)


def test_char_device_accepted() -> None:
    """A real character device passes the CharDevice check."""
    check_host_path("/dev/null", "CharDevice")


def test_prepare_volumes_reports_bad_host_path(tmp_path: Path) -> None:
    """A pod whose hostPath fails its check gets a VolumeError naming the path."""
    pod = make_pod("a")
    pod.spec.volumes.add(name="cfg", host_path={"path": str(tmp_path / "nope"), "type": "File"})
    with pytest.raises(VolumeError, match="is not a file"):
        prepare_volumes(pod, tmp_path)


CONFIG = KubeletConfig(node_name="node-1", node_ip="192.168.1.10", cluster_dns=("10.96.0.10",),
                       root_dir=Path("/var/lib/k"), cgroup_root="/kubelite/node-1")


@pytest.mark.parametrize(
    ("policy", "host_network", "servers", "searches"),
    [
        pytest.param("ClusterFirst", False, ("10.96.0.10",),
                     ("shop.svc.cluster.local", "svc.cluster.local", "cluster.local"), id="cluster-first"),
        pytest.param("ClusterFirst", True, (), (), id="cluster-first-host-network-uses-node"),
        pytest.param("ClusterFirstWithHostNet", True, ("10.96.0.10",),
                     ("shop.svc.cluster.local", "svc.cluster.local", "cluster.local"), id="with-host-net"),
        pytest.param("Default", False, (), (), id="default-uses-node"),
    ],
)
def test_dns_policies(policy: str, host_network: bool, servers: tuple[str, ...], searches: tuple[str, ...]) -> None:
    """ClusterFirst points resolv.conf at the cluster DNS with the namespace's search path and ndots:5."""
    pod = make_pod("a", namespace="shop", host_network=host_network)
    pod.spec.dns_policy = policy
    dns = compute_dns(pod, cluster_dns=("10.96.0.10",), domain="cluster.local")
    assert (dns.servers, dns.searches) == (servers, searches)
    assert dns.options == (("ndots:5",) if servers else ())


def test_dns_config_merged() -> None:
    """dnsConfig adds servers and searches and overrides options by name; policy None uses it alone."""
    pod = make_pod("a")
    pod.spec.dns_config.nameservers.append("1.1.1.1")
    pod.spec.dns_config.searches.append("corp.example")
    pod.spec.dns_config.options.add(name="ndots", value="2")
    pod.spec.dns_config.options.add(name="edns0")
    dns = compute_dns(pod, cluster_dns=("10.96.0.10",), domain="cluster.local")
    assert dns.servers == ("10.96.0.10", "1.1.1.1")
    assert dns.searches[-1] == "corp.example"
    assert dns.options == ("ndots:2", "edns0")
    pod.spec.dns_policy = "None"
    assert compute_dns(pod, cluster_dns=("10.96.0.10",), domain="cluster.local").servers == ("1.1.1.1",)


def test_sandbox_config() -> None:
    """The sandbox carries hostname, log dir, cgroup parent, identifying labels and host ports."""
    pod = make_pod("a")
    pod.metadata.labels["app"] = "web"
    pod.spec.hostname = "front"
    pod.spec.containers[0].ports.add(container_port=8080, host_port=30080, protocol="TCP")
    pod.spec.containers[0].ports.add(container_port=9090)
    cfg = compute_sandbox_config(pod, CONFIG, attempt=2)
    assert (cfg.hostname, cfg.attempt, cfg.cgroup_parent) == ("front", 2, "/kubelite/node-1/podu1")
    assert cfg.log_directory == "/var/lib/k/logs/default_web_u1"
    assert cfg.labels[identity.POD_UID] == "u1" and cfg.labels["app"] == "web"
    assert cfg.labels[identity.NODE] == "node-1"
    assert [(p.container_port, p.host_port) for p in cfg.port_mappings] == [(8080, 30080)]
    assert hostname(make_pod("a", name="x" * 70)) == "x" * 63


@pytest.mark.parametrize(
    ("limits", "requests", "shares", "quota", "memory"),
    [
        pytest.param({}, {}, 2, 0, 0, id="best-effort"),
        pytest.param({"cpu": "500m", "memory": "64Mi"}, {"cpu": "500m"}, 512, 50_000, 64 << 20, id="limits"),
        pytest.param({}, {"cpu": "2"}, 2048, 0, 0, id="request-only"),
        pytest.param({"cpu": "1m"}, {"cpu": "1m"}, 2, 1_000, 0, id="tiny-cpu-floors"),
    ],
)
def test_resources(limits: dict[str, str], requests: dict[str, str], shares: int, quota: int, memory: int) -> None:
    """Requests become CFS shares, limits become quota (100 ms period) and the memory limit."""
    c = core_pb2.Container(name="a", resources={"limits": limits, "requests": requests})
    r = compute_resources(c)
    assert (r.cpu_shares, r.cpu_quota, r.memory_limit_bytes) == (shares, quota, memory)
    assert r.cpu_period == (100_000 if quota else 0)


def test_container_config_labels_and_log_path() -> None:
    """A container is labelled with its pod and name, annotated with hash and restart count, logs per attempt."""
    pod = make_pod("a")
    cfg = compute_container_config(pod, pod.spec.containers[0], attempt=3, env={"A": "1"}, command=("sh",), args=(),
                                   mounts=(), node="node-1")
    assert cfg.log_path == "a/3.log" and cfg.attempt == 3
    assert cfg.labels[identity.CONTAINER_NAME] == "a" and cfg.labels[identity.POD_UID] == "u1"
    assert cfg.annotations[identity.RESTART_COUNT] == "3"
    assert cfg.annotations[identity.CONTAINER_HASH] == identity.container_hash(pod.spec.containers[0])


def test_fs_group_owns_a_volume(tmp_path: Path) -> None:
    """fsGroup gives every file and directory of a volume to the group, group-writable, directories set-group-ID;
    OnRootMismatch leaves a volume whose root already is so alone; no fsGroup changes nothing."""
    root = tmp_path / "vol"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "f").write_text("x")
    (root / "sub" / "f").chmod(0o600)
    set_ownership(root, core_pb2.PodSecurityContext())
    assert (root / "sub" / "f").stat().st_mode & 0o777 == 0o600
    set_ownership(root, core_pb2.PodSecurityContext(fs_group=4321))
    for path in (root, root / "sub", root / "sub" / "f"):
        assert path.stat().st_gid == 4321
    assert stat.S_IMODE((root / "sub" / "f").stat().st_mode) == 0o660
    assert (root / "sub").stat().st_mode & 0o2070 == 0o2070
    (root / "late").write_text("y")
    os.chown(root / "late", -1, 0)
    set_ownership(root, core_pb2.PodSecurityContext(fs_group=4321, fs_group_change_policy="OnRootMismatch"))
    assert (root / "late").stat().st_gid == 0  # the root matched: not walked
    set_ownership(root, core_pb2.PodSecurityContext(fs_group=4321, fs_group_change_policy="Always"))
    assert (root / "late").stat().st_gid == 4321
