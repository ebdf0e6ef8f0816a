"""The CNI driver's protocol: env, chained prevResult, runtimeConfig, errors (with stand-in plugins)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kubelet.runtime.cni import CNIError, CNINetwork, PortMap

RESULT = {"cniVersion": "1.0.0", "ips": [{"address": "10.244.3.7/24", "gateway": "10.244.3.1"}]}


def _plugin(bin_dir: Path, name: str, script: str) -> None:
    path = bin_dir / name
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)


def _network(bin_dir: Path) -> CNINetwork:
    conflist = {"cniVersion": "1.0.0", "name": "kubelite", "plugins": [
        {"type": "first"}, {"type": "second", "capabilities": {"portMappings": True}}]}
    return CNINetwork(conflist, bin_dir=str(bin_dir))


async def test_add_chains_results_and_passes_ports(tmp_path: Path) -> None:
    """ADD runs plugins in order with CNI_* env, hands each the previous result, gives
    portMappings to the plugin that asks, and returns the addresses."""
    log = tmp_path / "seen"
    _plugin(tmp_path, "first", f"cat > /dev/null; echo '{json.dumps(RESULT)}'\n")
    _plugin(tmp_path, "second", f'cat > {log}; echo "$CNI_COMMAND $CNI_IFNAME $CNI_NETNS" >> {log}.env; '
                                f"echo '{json.dumps(RESULT)}'\n")
    ips = await _network(tmp_path).add("abc", "/proc/1/ns/net", ports=[PortMap(30080, 80, "TCP")])
    assert ips == ["10.244.3.7"]
    conf = json.loads(log.read_text())
    assert conf["prevResult"] == RESULT and conf["name"] == "kubelite"
    assert conf["runtimeConfig"] == {"portMappings": [
        {"hostPort": 30080, "containerPort": 80, "protocol": "tcp", "hostIP": ""}]}
    assert (tmp_path / "seen.env").read_text() == "ADD eth0 /proc/1/ns/net\n"


async def test_delete_runs_in_reverse(tmp_path: Path) -> None:
    """DEL runs the plugins last to first."""
    order = tmp_path / "order"
    for name in ("first", "second"):
        _plugin(tmp_path, name, f"cat > /dev/null; echo {name} >> {order}\n")
    await _network(tmp_path).delete("abc", "")
    assert order.read_text().split() == ["second", "first"]


async def test_plugin_error(tmp_path: Path) -> None:
    """A plugin's JSON error becomes a CNIError carrying its message and details."""
    error = json.dumps({"code": 11, "msg": "no IPs", "details": "range full"})
    _plugin(tmp_path, "first", f"cat > /dev/null; echo '{error}'; exit 1\n")
    with pytest.raises(CNIError, match="no IPs range full"):
        await _network(tmp_path).add("abc", "/proc/1/ns/net")
