"""The node's pod bridge in a kltest-* network namespace: its address stays whatever its ports are."""

from __future__ import annotations

import json
import subprocess

import pytest

from deploy.node import pod_bridge

from .crihelp import network_namespace

pytestmark = pytest.mark.cri


def ip(ns: str, *args: str) -> str:
    return subprocess.run(["ip", "-n", ns, *args], capture_output=True, text=True, check=True, timeout=10).stdout


def address(ns: str, link: str) -> str:
    return json.loads(ip(ns, "-j", "link", "show", "dev", link))[0]["address"]


def test_a_port_with_a_lower_address_leaves_the_bridge_as_it_was() -> None:
    with network_namespace() as ns:
        path = f"/run/netns/{ns}"
        pinned = pod_bridge.ensure_pinned(path, "cni0")
        assert address(ns, "cni0") == pinned
        # The lowest address there is: a bridge left to the kernel would take it at once, and lose it with the port.
        ip(ns, "link", "add", "va", "address", "02:00:00:00:00:01", "type", "veth", "peer", "name", "vb")
        ip(ns, "link", "set", "va", "master", "cni0")
        assert address(ns, "cni0") == pinned
        ip(ns, "link", "del", "va")
        assert address(ns, "cni0") == pinned
        assert pod_bridge.ensure_pinned(path, "cni0") == pinned, "a node started again keeps its gateway address"


def test_a_link_of_that_name_that_is_not_a_bridge_is_an_error() -> None:
    with network_namespace() as ns:
        ip(ns, "link", "add", "cni0", "type", "veth", "peer", "name", "other")
        with pytest.raises(pod_bridge.BridgeError, match="cni0 exists but is a veth, not a bridge"):
            pod_bridge.ensure_pinned(f"/run/netns/{ns}", "cni0")
