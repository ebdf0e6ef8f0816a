"""The node's pod bridge, made before the first pod, with an address that stays.

A Linux bridge whose address nobody set takes the lowest address among its
ports, so it changes whenever the pod holding that address goes away. The
other pods on the node still have the old one for their gateway in their
ARP caches, and as long as their earlier TCP traffic keeps those entries
confirmed they send into nothing, for up to about 45 s (seen: every request
of a client pod through the Ingress timed out once a rollout removed a pod
on its node). The CNI bridge plugin sets the address only when it adds the
gateway address itself, and the lab adds that first (for its service
route), so here the address is set once, to the one the bridge has (as
Kubernetes' kubenet did for cbr0): the kernel then keeps it.
"""

from __future__ import annotations

import json
import subprocess

import structlog

log = structlog.get_logger(__name__)

TIMEOUT = 10.0


class BridgeError(Exception):
    """`ip` failed on the node's bridge; the message carries its error."""


def ensure_pinned(netns_path: str, bridge: str) -> str:
    """Create `bridge` in the namespace if it is missing and fix its address; returns the address."""
    link = _show(netns_path, bridge)
    if link is None:
        _ip(netns_path, "link", "add", "name", bridge, "type", "bridge")
        link = _show(netns_path, bridge)
        if link is None:
            raise BridgeError(f"{bridge} was created in {netns_path} but is not there")
    kind = link.get("linkinfo", {}).get("info_kind", link.get("link_type", "unknown"))
    if kind != "bridge":
        raise BridgeError(f"{netns_path}: {bridge} exists but is a {kind}, not a bridge")
    address = str(link["address"])
    # The same address, set: from now on the kernel never replaces it with a port's.
    _ip(netns_path, "link", "set", "dev", bridge, "address", address)
    log.info("pod_bridge_pinned", netns=netns_path, bridge=bridge, address=address)
    return address


def _show(netns_path: str, bridge: str) -> dict | None:
    try:
        links = json.loads(_ip(netns_path, "-j", "-d", "link", "show", "dev", bridge) or "[]")
    except BridgeError as exc:
        if "does not exist" in str(exc):
            return None
        raise
    return links[0] if links else None


def _ip(netns_path: str, *args: str) -> str:
    argv = ["nsenter", f"--net={netns_path}", "--", "ip", *args]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        raise BridgeError(f"{' '.join(argv)}: no answer in {TIMEOUT:.0f}s") from exc
    if done.returncode != 0:
        raise BridgeError(f"{' '.join(argv)}: {done.stderr.strip() or f'exit {done.returncode}'}")
    return done.stdout
