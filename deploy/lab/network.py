"""Build, converge and tear down a cluster's lab network with iproute2.

Everything is created inside the cluster's namespaces (`ip -n`, veth peers created directly in
their target namespace); the root namespace only gains the netns files under /run/netns.
`apply_topology` reads what exists and fixes only what differs, so it both repeats safely and
completes a topology a crash left half made, without replacing a namespace that daemons may
still be running in.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import structlog

from deploy.lab.plan import LabPlan, Member, Node, parse_netns, validate_cluster_name
from deploy.node import pod_bridge

log = structlog.get_logger("deploy.lab.network")

NETNS_DIR = Path("/run/netns")
COMMAND_TIMEOUT = 15.0


class NetworkError(RuntimeError):
    """An external command failed or the lab is in a state it cannot converge from."""


def run(argv: Sequence[str], *, timeout: float = COMMAND_TIMEOUT) -> str:
    """Run a command and return its stdout; raise NetworkError naming it and its stderr."""
    command = shlex.join(argv)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise NetworkError(f"`{command}` timed out after {timeout}s") from exc
    except OSError as exc:
        raise NetworkError(f"`{command}` could not start: {exc}") from exc
    if done.returncode != 0:
        raise NetworkError(f"`{command}` failed (exit {done.returncode}): {done.stderr.strip()}")
    return done.stdout


def netns_path(netns: str) -> Path:
    return NETNS_DIR / netns


def all_lab_namespaces() -> dict[str, list[str]]:
    """Every lab namespace on this machine, by cluster name."""
    try:
        names = sorted(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return {}
    clusters: dict[str, list[str]] = {}
    for name in names:
        parsed = parse_netns(name)
        if parsed is not None:
            clusters.setdefault(parsed[0], []).append(name)
    return clusters


def lab_namespaces(cluster: str) -> list[str]:
    """The namespaces of `cluster` that exist now (a non-empty answer before `up` means stale)."""
    validate_cluster_name(cluster)
    return all_lab_namespaces().get(cluster, [])


def apply_topology(plan: LabPlan) -> None:
    """Make the cluster's lab network match the plan, creating or repairing what differs.

    Namespaces of the cluster that the plan does not name (nodes beyond its count) are deleted.
    """
    for stale in sorted(set(lab_namespaces(plan.cluster)) - set(plan.netns_names)):
        _delete_netns(stale)
    for netns in plan.netns_names:
        _ensure_netns(netns)
    _set_sysctls(plan.lab_netns, plan.lab_sysctls)
    _ip(plan.lab_netns, "link", "set", "lo", "up")
    _ensure_bridge(plan)
    lab_links = _links(plan.lab_netns)
    for member in plan.members:
        _set_sysctls(member.netns, member.sysctls)
        _ip(member.netns, "link", "set", "lo", "up")
        _ensure_veth(plan, member, lab_links)
        _ensure_address(member, plan.lab_subnet.prefixlen)
        _sync_routes(member)
    log.info("lab_topology_applied", cluster=plan.cluster, nodes=len(plan.nodes))


def destroy_topology(cluster: str) -> list[str]:
    """Delete every lab namespace of `cluster`, whatever state it is in; return their names.

    Deleting a namespace destroys its veth ends and with them their peers. Stop the cluster's
    processes first: a process still inside keeps its namespace alive, unnamed.
    """
    names = lab_namespaces(cluster)
    failed = []
    # Members before the lab namespace, so the bridge loses its ports first.
    for netns in sorted(names, key=lambda n: n.endswith("-lab")):
        try:
            _delete_netns(netns)
        except NetworkError as exc:
            failed.append(str(exc))  # the others still go
    log.info("lab_topology_destroyed", cluster=cluster, namespaces=names)
    if failed:
        raise NetworkError("; ".join(failed))
    return names


def apply_service_route(plan: LabPlan, node: Node) -> None:
    """Route the service CIDR via the node's CNI bridge, creating (and pinning) the bridge if missing.

    Nodes have no default route, so a node-local process (kubelet, proxy health checks; not a
    pod) sending to a service IP needs a route before iptables' OUTPUT DNAT can rewrite the
    destination. The route goes via the CNI bridge with the pod gateway as source, so replies
    from any endpoint (a pod on any node, or the control plane, which routes pod CIDRs) find
    their way back. The bridge is pre-created with exactly the gateway address the CNI bridge
    plugin (isGateway) would give it: the plugin adopts an existing bridge carrying that address,
    so this works before or after the runtime's first pod.
    """
    try:
        pod_bridge.ensure_pinned(str(NETNS_DIR / node.netns), node.cni_bridge)
    except pod_bridge.BridgeError as exc:
        raise NetworkError(str(exc)) from exc
    gateway = f"{node.pod_gateway}/{node.pod_cidr.prefixlen}"
    have = _ipv4_addresses(node.netns, node.cni_bridge)
    others = have - {gateway}
    if others:
        # The CNI plugin refuses a bridge with a different IPv4 address, so would pods.
        raise NetworkError(f"{node.netns}: {node.cni_bridge} has {sorted(others)}, expected only {gateway}")
    if gateway not in have:
        _ip(node.netns, "addr", "add", gateway, "dev", node.cni_bridge)
    _ip(node.netns, "link", "set", node.cni_bridge, "up")
    route = [str(plan.service_cidr), "dev", node.cni_bridge, "src", str(node.pod_gateway)]
    _ip(node.netns, "route", "replace", *route)
    log.info("service_route_applied", netns=node.netns, service_cidr=str(plan.service_cidr))


def apply_link_state(plan: LabPlan, member: Member, *, up: bool) -> None:
    """Connect or cut off a member at the lab bridge (for chaos); apply_topology reconnects it."""
    _ip(plan.lab_netns, "link", "set", member.lab_port, "up" if up else "down")
    log.info("lab_link_set", cluster=plan.cluster, member=member.role, up=up)


def _ip(netns: str, *args: str) -> str:
    return run(["ip", "-n", netns, *args])


def _ip_json(netns: str, *args: str) -> list[dict[str, Any]]:
    out = run(["ip", "-j", "-n", netns, *args]).strip()
    return json.loads(out) if out else []


def _links(netns: str) -> dict[str, dict[str, Any]]:
    return {link["ifname"]: link for link in _ip_json(netns, "-d", "link", "show")}


def _kind(link: dict[str, Any]) -> str:
    return link.get("linkinfo", {}).get("info_kind", link.get("link_type", "unknown"))


def _ipv4_addresses(netns: str, iface: str) -> set[str]:
    return {
        f"{a['local']}/{a['prefixlen']}"
        for link in _ip_json(netns, "-4", "addr", "show", "dev", iface)
        for a in link.get("addr_info", [])
        if a.get("family") == "inet"
    }


def _ensure_netns(netns: str) -> None:
    path = netns_path(netns)
    if path.exists() and not os.path.ismount(path):
        # `ip netns add` creates the file, then bind-mounts the namespace onto it; a crash in
        # between leaves a plain file that `ip netns add` would refuse.
        path.unlink()
        log.warning("stale_netns_file_removed", netns=netns)
    if not path.exists():
        run(["ip", "netns", "add", netns])
        log.info("netns_created", netns=netns)


def _delete_netns(netns: str) -> None:
    """Delete a namespace; one that vanished meanwhile (someone else deleted it) counts as deleted."""
    path = netns_path(netns)
    if os.path.ismount(path):
        try:
            pids = run(["ip", "netns", "pids", netns]).split()
        except NetworkError:
            pids = []  # only for the warning below
        if pids:
            log.warning("netns_still_in_use", netns=netns, pids=pids)
        try:
            run(["ip", "netns", "delete", netns])
        except NetworkError:
            if os.path.ismount(path):
                raise
            path.unlink(missing_ok=True)
    else:
        path.unlink(missing_ok=True)
    log.info("netns_deleted", netns=netns)


def _set_sysctls(netns: str, sysctls: Iterable[tuple[str, str]]) -> None:
    # /proc/sys/net shows the reader's network namespace, so write from inside it.
    settings = [f"{key}={value}" for key, value in sysctls]
    if not settings:
        return
    try:
        run(["nsenter", f"--net={netns_path(netns)}", "--", "sysctl", "-q", "-w", *settings])
    except NetworkError as exc:
        if "net.bridge" in str(exc) and not Path("/proc/sys/net/bridge").exists():
            raise NetworkError(f"{exc} (the br_netfilter module is not loaded)") from exc
        raise


def _ensure_bridge(plan: LabPlan) -> None:
    link = _links(plan.lab_netns).get(plan.bridge)
    if link is not None and _kind(link) != "bridge":
        _delete_link(plan.lab_netns, plan.bridge)
        link = None
    if link is None:
        # STP stays off (the default): a star has no loops, and ports forward at once.
        _ip(plan.lab_netns, "link", "add", plan.bridge, "type", "bridge")
        log.info("lab_bridge_created", netns=plan.lab_netns, bridge=plan.bridge)
    _ip(plan.lab_netns, "link", "set", plan.bridge, "up")


def _ensure_veth(plan: LabPlan, member: Member, lab_links: dict[str, dict[str, Any]]) -> None:
    port = lab_links.get(member.lab_port)
    iface = _links(member.netns).get(member.iface)
    # Deleting either end of a veth deletes both; an end without its peer here is left over
    # from a member namespace that was deleted while a process kept it alive.
    paired = port is not None and iface is not None and _kind(port) == _kind(iface) == "veth"
    if not paired:
        if port is not None:
            _delete_link(plan.lab_netns, member.lab_port)
        if iface is not None:
            _delete_link(member.netns, member.iface)
        veth = ["type", "veth", "peer", "name", member.iface, "netns", member.netns]
        _ip(plan.lab_netns, "link", "add", member.lab_port, *veth)
        log.info("veth_created", netns=member.netns, lab_port=member.lab_port)
    _ip(plan.lab_netns, "link", "set", member.lab_port, "master", plan.bridge, "up")
    _ip(member.netns, "link", "set", member.iface, "up")


def _delete_link(netns: str, name: str) -> None:
    try:
        _ip(netns, "link", "delete", name)
    except NetworkError as exc:
        # A deleted namespace takes its veth ends with it asynchronously; gone is what we want.
        if "Cannot find device" not in str(exc):
            raise


def _ensure_address(member: Member, prefixlen: int) -> None:
    want = f"{member.address}/{prefixlen}"
    have = _ipv4_addresses(member.netns, member.iface)
    for stale in sorted(have - {want}):
        _ip(member.netns, "addr", "delete", stale, "dev", member.iface)
    if want not in have:
        _ip(member.netns, "addr", "add", want, "dev", member.iface)


def _sync_routes(member: Member) -> None:
    want = {(str(r.dest), str(r.via)) for r in member.routes}
    for route in _ip_json(member.netns, "-4", "route", "show", "dev", member.iface):
        if route.get("protocol") == "kernel":
            continue  # the lab subnet's connected route
        key = (route["dst"], route.get("gateway", ""))
        if key not in want:
            _ip(member.netns, "route", "delete", route["dst"], "dev", member.iface)
    for dest, via in sorted(want):
        _ip(member.netns, "route", "replace", dest, "via", via, "dev", member.iface)
