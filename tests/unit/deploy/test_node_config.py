"""Rendering one node's containerd config and CNI conflist."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from deploy.node import containerd
from deploy.node.containerd import NodeConfig, NodeRuntimeError, render_config, render_toml, write_config
from kubelet.runtime.cni import render_conflist
from kubelet.runtime.images import PAUSE_IMAGE

CRI = "io.containerd.grpc.v1.cri"


def _cfg(tmp_path: Path, **kw: object) -> NodeConfig:
    return NodeConfig(name="n1", node_dir=tmp_path / "n1", netns="kltest-n1", pod_cidr="10.244.7.0/24", **kw)  # type: ignore[arg-type]


def test_containerd_config_settings(tmp_path: Path) -> None:
    """The CRI settings this machine needs are on, and the pause image is ours."""
    doc = tomllib.loads(render_toml(render_config(_cfg(tmp_path))))
    cri = doc["plugins"][CRI]
    assert doc["version"] == 2
    assert cri["sandbox_image"] == PAUSE_IMAGE
    assert (cri["restrict_oom_score_adj"], cri["disable_apparmor"], cri["enable_selinux"]) == (True, True, False)
    assert cri["netns_mounts_under_state_dir"] is True
    runc = cri["containerd"]["runtimes"]["runc"]
    assert runc["runtime_type"] == "io.containerd.runc.v2" and runc["options"]["SystemdCgroup"] is False
    assert cri["cni"]["bin_dir"] == "/usr/lib/cni"


def test_containerd_config_keeps_everything_in_node_dir(tmp_path: Path) -> None:
    """Every path containerd writes to is under the node's own directory, so nodes never share state."""
    cfg = _cfg(tmp_path)
    doc = tomllib.loads(render_toml(render_config(cfg)))
    cri = doc["plugins"][CRI]
    paths = [doc["root"], doc["state"], doc["grpc"]["address"], doc["ttrpc"]["address"], doc["debug"]["address"],
             doc["plugins"]["io.containerd.internal.v1.opt"]["path"],
             cri["containerd"]["runtimes"]["runc"]["options"]["Root"], cri["cni"]["conf_dir"]]
    assert all(p.startswith(str(cfg.node_dir) + "/") for p in paths), paths
    assert len(set(paths)) == len(paths)
    assert doc["grpc"]["address"] == cfg.address


def test_conflist(tmp_path: Path) -> None:
    """The pod network is a gateway bridge with hairpin and no masquerade, host-local
    IPAM over the node's CIDR in its own data dir, then portmap."""
    conf = render_conflist(pod_cidr="10.244.7.0/24", data_dir="/x/ipam")
    bridge, portmap = conf["plugins"]
    assert (bridge["type"], bridge["bridge"], bridge["isGateway"], bridge["ipMasq"], bridge["hairpinMode"]) == (
        "bridge", "cni0", True, False, True)
    assert bridge["ipam"] == {"type": "host-local", "ranges": [[{"subnet": "10.244.7.0/24"}]],
                              "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "/x/ipam"}
    assert portmap == {"type": "portmap", "capabilities": {"portMappings": True}}


def test_write_config_and_reload(tmp_path: Path) -> None:
    """write_config leaves the toml, the conflist and node.json, from which the config reloads."""
    cfg = _cfg(tmp_path, cgroup_root="/kltest/n1")
    write_config(cfg)
    assert tomllib.loads(cfg.config_path.read_text())["grpc"]["address"] == cfg.address
    assert (cfg.cni_conf_dir / "10-kubelite.conflist").exists()
    assert NodeConfig.load(cfg.node_dir) == cfg
    assert _cfg(tmp_path).cgroup_root == "/kubelite/n1", "cgroups default under /kubelite/<node>"


def test_socket_path_too_long(tmp_path: Path) -> None:
    """A node dir so deep its socket path cannot be bound is refused up front."""
    cfg = NodeConfig(name="n", node_dir=tmp_path / ("d" * 120), netns="x", pod_cidr="10.244.0.0/24")
    with pytest.raises(NodeRuntimeError, match="too long"):
        write_config(cfg)


def test_render_toml_quotes_dotted_keys() -> None:
    """Plugin names with dots become quoted table keys; values round-trip through tomllib."""
    data = {"a": 1, "plugins": {"io.x.y": {"s": 'q"uote', "b": False, "l": ["x", "y"]}}}
    assert tomllib.loads(render_toml(data)) == data


async def test_start_needs_the_netns(tmp_path: Path) -> None:
    """Starting a node whose network namespace does not exist fails before anything runs."""
    cfg = NodeConfig(name="n", node_dir=tmp_path / "n", netns="kltest-absent-0", pod_cidr="10.244.0.0/24")
    with pytest.raises(NodeRuntimeError, match="does not exist"):
        await containerd.start(cfg)
    assert containerd.read_pid(cfg.node_dir) is None
