"""CNI: the pod network conflist every node uses, and a small plugin driver.

containerd reads the conflist itself; the process runtime drives the same
plugins through `CNINetwork` (ADD in order with each result chained as
`prevResult`, DEL in reverse), so both runtimes give pods the same kind of
address from the same per-node range. Loopback is left to the caller:
containerd runs the loopback plugin, procinit brings `lo` up itself.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

log = structlog.get_logger(__name__)

CNI_VERSION = "1.0.0"
DEFAULT_BIN_DIR = "/usr/lib/cni"


class CNIError(Exception):
    """A CNI plugin failed; the message carries the plugin's own error."""


def render_conflist(*, pod_cidr: str, data_dir: str, bridge: str = "cni0", name: str = "kubelite") -> dict[str, Any]:
    """The node's pod network: a bridge with host-local IPAM over the pod CIDR, plus portmap.

    The bridge is the pods' gateway, hairpin lets a pod reach itself through a
    service, and there is no masquerade: pod addresses are routed between
    nodes as they are. A per-node dataDir keeps nodes sharing one machine
    from handing out each other's addresses.
    """
    net = ipaddress.ip_network(pod_cidr)
    return {
        "cniVersion": CNI_VERSION,
        "name": name,
        "plugins": [
            {
                "type": "bridge",
                "bridge": bridge,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": str(net)}]],
                    "routes": [{"dst": "0.0.0.0/0" if net.version == 4 else "::/0"}],
                    "dataDir": data_dir,
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


@dataclass(frozen=True)
class PortMap:
    host_port: int
    container_port: int
    protocol: str = "tcp"
    host_ip: str = ""


@dataclass(frozen=True)
class CNINetwork:
    """Drives one conflist's plugins for pods.

    `netns` is the network namespace the plugins run in (the node's, where
    the bridge lives); None means this process's own.
    """

    conflist: Mapping[str, Any]
    bin_dir: str = DEFAULT_BIN_DIR
    netns: str | None = None
    timeout: float = 30.0

    async def add(self, container_id: str, netns_path: str, *, ports: Sequence[PortMap] = ()) -> list[str]:
        """Attach a pod's netns as eth0 (its loopback is the caller's); returns its IPs."""
        result = await self._run_list("ADD", container_id, netns_path, ports)
        return [str(ipaddress.ip_interface(ip["address"]).ip) for ip in result.get("ips", [])]

    async def delete(self, container_id: str, netns_path: str, *, ports: Sequence[PortMap] = ()) -> None:
        """Release a pod's address and port mappings; safe to repeat, safe once the netns is gone."""
        await self._run_list("DEL", container_id, netns_path, ports)

    async def _run_list(
        self, command: str, container_id: str, netns_path: str, ports: Sequence[PortMap]
    ) -> dict[str, Any]:
        plugins = list(self.conflist["plugins"])
        if command == "DEL":
            plugins.reverse()
        result: dict[str, Any] = {}
        for plugin in plugins:
            conf = {"cniVersion": self.conflist["cniVersion"], "name": self.conflist["name"], **plugin}
            if plugin.get("capabilities", {}).get("portMappings"):
                conf["runtimeConfig"] = {"portMappings": [
                    {"hostPort": p.host_port, "containerPort": p.container_port,
                     "protocol": p.protocol.lower(), "hostIP": p.host_ip} for p in ports
                ]}
            if command == "ADD" and result:
                conf["prevResult"] = result
            out = await self._exec(plugin["type"], command, conf, container_id, netns_path)
            if command == "ADD" and out:
                result = out
        return result

    async def _exec(
        self, plugin: str, command: str, conf: Mapping[str, Any], container_id: str, netns_path: str
    ) -> dict[str, Any]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": container_id,
            "CNI_NETNS": netns_path,
            "CNI_IFNAME": "eth0",
            "CNI_PATH": self.bin_dir,
        }
        argv = [os.path.join(self.bin_dir, plugin)]
        if self.netns:
            argv = ["nsenter", f"--net={self.netns}", "--", *argv]
        proc = await asyncio.create_subprocess_exec(
            *argv, env=env, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(self.timeout):
                out, err = await proc.communicate(json.dumps(conf).encode())
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise CNIError(f"CNI {plugin} {command} timed out after {self.timeout}s") from None
        if proc.returncode != 0:
            raise CNIError(f"CNI {plugin} {command} failed: {_plugin_error(out, err)}")
        log.debug("cni_plugin_ran", plugin=plugin, command=command, container_id=container_id)
        return json.loads(out) if out.strip() else {}


def _plugin_error(out: bytes, err: bytes) -> str:
    """A CNI error is JSON on stdout ({code, msg, details}); fall back to stderr."""
    try:
        body = json.loads(out)
        return f"{body.get('msg', '')} {body.get('details', '')}".strip()
    except ValueError:
        return (err or out).decode(errors="replace").strip()
