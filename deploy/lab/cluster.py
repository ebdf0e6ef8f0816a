"""`kubelite up`, `down` and `status` for a whole cluster on this machine.

`up` checks what it needs, builds the images, makes the network, starts the
control plane and every node through the shared node bootstrap, waits for
every node to be Ready and writes the client config. Its first daemon is the
watchdog (`supervisor`), which starts any other daemon again if it dies.
`down` removes every process, namespace, mount, cgroup and directory `up`
made, and works from the cluster name alone, so it also cleans up after a
crash. Nothing vanishing underneath it stops it: every step runs whatever
the one before it could not do, and it ends by listing what is still there.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import time
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from api.errors import ApiError, NotFoundError
from client import config as client_config
from client import kubeconfig, pki, tokens
from client.api import Client
from client.config import ClientConfig
from deploy.lab import network
from deploy.lab.plan import LabPlan, plan_lab
from deploy.lab.procs import WATCHDOG, Supervisor, cgroup_dirs, cgroup_pids, gone
from deploy.node import bootstrap, certs, containerd, images
from deploy.node.launch import SupervisorLauncher
from kubelet.runtime import mounts

log = structlog.get_logger(component="lab")

Progress = Callable[[str], None]

# Commands and files `up` needs, with the Debian package that provides each.
REQUIREMENTS: tuple[tuple[str, str], ...] = (
    ("etcd", "etcd-server"),
    ("containerd", "containerd"),
    ("runc", "runc"),
    ("ctr", "containerd"),
    ("nsenter", "util-linux"),
    ("ip", "iproute2"),
    ("iptables-restore", "iptables"),
    ("iptables-save", "iptables"),
    ("gcc", "gcc"),
    ("/usr/lib/cni/bridge", "containernetworking-plugins"),
    ("/usr/lib/cni/host-local", "containernetworking-plugins"),
    ("/usr/lib/cni/portmap", "containernetworking-plugins"),
    ("/usr/lib/cni/loopback", "containernetworking-plugins"),
    ("/bin/busybox", "busybox-static"),
    ("nft", "nftables"),
    ("nginx", "nginx"),
)


class LabError(Exception):
    """Something `up`/`down` cannot do; the message says what and what to do about it."""


def missing_requirements() -> list[str]:
    """One line per missing requirement (empty if all is there)."""
    out = []
    if os.geteuid() != 0:
        out.append("must run as root (network namespaces, containerd and iptables need it)")
    for item, package in REQUIREMENTS:
        found = Path(item).exists() if item.startswith("/") else shutil.which(item) is not None
        if not found:
            out.append(f"missing {item} (apt-get install {package})")
    return out


def node_dir(plan: LabPlan, name: str) -> Path:
    return plan.paths.data_dir / "nodes" / name


def socket_path(plan: LabPlan, role: str = "cp") -> Path:
    """The unix socket a control-plane machine's apiserver also serves on, for clients on this host."""
    return plan.paths.run_dir / ("api.sock" if role == "cp" else f"api-{role}.sock")


def control_plane_dir(plan: LabPlan, role: str = "cp") -> Path:
    return plan.paths.data_dir / ("control-plane" if role == "cp" else f"control-plane-{role}")


def daemon_name(role: str, component: str) -> str:
    """The lab's name for a control-plane daemon: `apiserver` on cp (as with one control plane), `apiserver-cp2`."""
    return component if role == "cp" else f"{component}-{role}"


def api_servers(plan: LabPlan, *, first: int = 0) -> str:
    """Every apiserver's host:port, starting with control plane `first` (mod their count): nodes start at
    different ones so that their load spreads while each client stays on one apiserver until it goes away."""
    members = plan.control_planes
    ordered = [members[(first + i) % len(members)] for i in range(len(members))]
    return ",".join(f"{m.address}:6443" for m in ordered)


def local_servers(plan: LabPlan) -> str:
    """Every apiserver's unix socket on this host, the first control plane's first."""
    return ",".join(f"unix://{socket_path(plan, m.role)}" for m in plan.control_planes)


def join_token_path(plan: LabPlan) -> Path:
    """The join token nodes use while `up` starts them (0600; deleted, with the token, once they have joined)."""
    return plan.paths.run_dir / "join-token"


def proxy_mode_path(plan: LabPlan) -> Path:
    return plan.paths.run_dir / "proxy-mode"


def recorded_proxy_mode(plan: LabPlan) -> str:
    """The proxy mode `up` started the cluster with: a node added or restarted later uses the same."""
    path = proxy_mode_path(plan)
    return path.read_text().strip() if path.exists() else "iptables"


def runs_ingress(plan: LabPlan, role: str) -> bool:
    """Whether the node was started with an ingress controller (its state directory exists once it ran)."""
    return (node_dir(plan, role) / "ingress").is_dir()


def control_plane_spec(plan: LabPlan, *, log_level: str = "info", role: str = "cp",
                       etcd_state: str = "new") -> bootstrap.ControlPlaneSpec:
    """Control-plane machine `role`'s bootstrap; with several, each runs one member of one etcd cluster."""
    member = plan.control_plane_member(role)
    ha: dict[str, object] = {}
    if len(plan.control_planes) > 1:
        ha = dict(etcd_members=tuple((m.role, str(m.address)) for m in plan.control_planes), etcd_name=role,
                  etcd_state=etcd_state, daemon_suffix="" if role == "cp" else role,
                  peer_servers=tuple(f"{m.address}:6443" for m in plan.control_planes if m.role != role),
                  node_monitor_grace_period=bootstrap.node_monitor_grace(1.0, clustered=True))
    return bootstrap.ControlPlaneSpec(
        address=str(member.address), data_dir=control_plane_dir(plan, role),
        netns=member.netns, socket=str(socket_path(plan, role)), service_cidr=str(plan.service_cidr),
        lb_pool="10.250.0.128/25", log_level=log_level, **ha,  # type: ignore[arg-type]
    )


def node_spec(plan: LabPlan, index: int, *, log_level: str = "info", proxy_mode: str = "iptables",
              ingress: bool = True) -> bootstrap.NodeSpec:
    node = plan.nodes[index]
    return bootstrap.NodeSpec(
        name=node.role, address=str(node.address), pod_cidr=str(node.pod_cidr),
        server=api_servers(plan, first=index), join_server=f"{plan.control_plane.address}:6444",
        join_token_file=str(join_token_path(plan)), node_dir=node_dir(plan, node.role), netns=node.netns,
        cgroup_root=node.cgroup_parent, cluster_dns=str(plan.dns_service_ip), log_level=log_level,
        proxy_mode=proxy_mode, ingress=ingress,
    )


def pki_dir(plan: LabPlan) -> Path:
    return control_plane_spec(plan).pki.dir


def client_config_for(plan: LabPlan) -> ClientConfig:
    """The admin's credentials for the cluster, over its unix socket (each apiserver's, with several)."""
    return dataclasses.replace(control_plane_spec(plan).admin(), server=local_servers(plan), cluster=plan.cluster)


def write_user_config(plan: LabPlan) -> None:
    """Copy the admin's certificate, key and the cluster CA beside the config file; make the cluster current."""
    store = control_plane_spec(plan).pki
    target = pki.private_dir(client_config.credentials_dir(plan.cluster))
    pki.write_public(target / "ca.crt", store.crt(certs.CA).read_bytes())
    pki.write_public(target / "admin.crt", store.crt("admin").read_bytes())
    pki.write_private(target / "admin.key", store.key("admin").read_bytes())
    spec = control_plane_spec(plan)
    client_config.set_cluster(plan.cluster, server=local_servers(plan), ca_file=str(target / "ca.crt"),
                              cert_file=str(target / "admin.crt"), key_file=str(target / "admin.key"),
                              log_dir=str(plan.paths.log_dir), rest_server=spec.rest_server)
    # kubectl's credentials: the REST API in the control plane's namespace (`ip netns exec` reaches it).
    pki.write_private(client_config.config_path().parent / "kubeconfig",
                      kubeconfig.render(spec.rest_server, store.crt(certs.CA).read_bytes(),
                                        store.crt("admin").read_bytes(), store.key("admin").read_bytes(),
                                        cluster=plan.cluster).encode())


async def create_join_token(conn: ClientConfig, path: Path, *, ttl: float = 600.0) -> tokens.JoinToken:
    """A join token for the nodes `up` starts, written to `path` (0600)."""
    import datetime

    ca = await asyncio.to_thread(pki.read_cert, conn.ca_file)
    token = tokens.generate(pki.ca_hash(ca))
    async with Client(conn) as client:
        await client.create(tokens.token_object(token, ttl=datetime.timedelta(seconds=ttl),
                                                description="nodes started by kubelite up"))
    await asyncio.to_thread(pki.write_private, path, f"{token}\n".encode())
    return token


async def delete_join_token(conn: ClientConfig, token: tokens.JoinToken, path: Path) -> None:
    await asyncio.to_thread(path.unlink, missing_ok=True)
    async with Client(conn) as client:
        with contextlib.suppress(NotFoundError):
            await client.delete("bootstraptokens", token.id)


@dataclass
class Running:
    plan: LabPlan
    healthy: bool
    nodes: int
    control_planes: int = 1


def find_running(name: str) -> Running | None:
    """The cluster if any of it exists on this machine (healthy or not)."""
    namespaces = network.lab_namespaces(name)
    plan = plan_lab(name, 0)
    sup = Supervisor.for_plan(plan)
    if not namespaces and not sup.records() and not plan.paths.run_dir.exists():
        return None
    nodes = sum(1 for ns in namespaces if ns.rsplit("-", 1)[-1].startswith("n"))
    control_planes = max(1, sum(1 for ns in namespaces if ns.rsplit("-", 1)[-1].startswith("cp")))
    if control_planes % 2 == 0:
        control_planes += 1  # a namespace half made or half removed; the plan names them all
    plan = plan_lab(name, nodes, control_planes=control_planes)
    # With several control planes, one apiserver serving is enough: the others may be stopped (chaos).
    healthy = any(sup.get(daemon_name(m.role, "apiserver")) is not None and socket_path(plan, m.role).exists()
                  for m in plan.control_planes)
    return Running(plan, healthy, nodes, control_planes)


async def up(name: str, nodes: int, *, progress: Progress, timeout: float = 120.0,
             log_level: str = "info", proxy_mode: str = "iptables",
             ingress_nodes: Collection[str] | None = None, control_planes: int = 1) -> LabPlan:
    """Start cluster `name`; `ingress_nodes` names the nodes that run the ingress controller (None: all);
    `control_planes` machines (1, or 3 for a control plane that survives losing one) run the control plane."""
    plan = plan_lab(name, nodes, control_planes=control_planes)
    problems = missing_requirements()
    if problems:
        raise LabError("cannot start the lab:\n  " + "\n  ".join(problems))
    existing = await asyncio.to_thread(find_running, name)
    if existing is not None:
        if existing.healthy:
            raise AlreadyUpError(existing)
        progress(f"found leftovers of an earlier run of cluster {name!r}; cleaning them up")
        cleaned = await down(name, progress=lambda _: None)
        if cleaned.left:
            raise LabError(f"cannot clean up the leftovers of cluster {name!r}: "
                           + "; ".join(cleaned.left + cleaned.errors))
    start = time.monotonic()

    async def step(label: str, coro) -> None:  # type: ignore[no-untyped-def]
        t0 = time.monotonic()
        await coro
        progress(f"  {label} ({time.monotonic() - t0:.1f}s)")

    ha = f" and {control_planes} control planes" if control_planes > 1 else ""
    progress(f"starting cluster {name!r} with {nodes} node(s){ha}")
    try:
        await step("images built", asyncio.to_thread(images.build_all, images.DEFAULT_CACHE_DIR))
        await step("network ready", asyncio.to_thread(network.apply_topology, plan))
        pki.private_dir(plan.paths.run_dir)
        proxy_mode_path(plan).write_text(proxy_mode + "\n")  # what a node added later runs
        supervisor = Supervisor.for_plan(plan)
        await asyncio.to_thread(start_watchdog, plan, supervisor, log_level=log_level)
        launcher = SupervisorLauncher(supervisor)
        if control_planes == 1:
            await step("control plane started", bootstrap.bootstrap_control_plane(control_plane_spec(
                plan, log_level=log_level), launcher))
        else:
            await step(f"{control_planes} control planes started", start_control_planes(plan, launcher,
                                                                                     log_level=log_level))
        conn = client_config_for(plan)
        # Before anything else can take the add-ons' fixed addresses (cluster DNS's 10.96.0.10).
        await step("add-ons applied", bootstrap.apply_addons(conn))
        specs = [node_spec(plan, i, log_level=log_level, proxy_mode=proxy_mode,
                           ingress=ingress_nodes is None or plan.nodes[i].role in ingress_nodes) for i in range(nodes)]
        token = await create_join_token(conn, join_token_path(plan))

        async def one(spec: bootstrap.NodeSpec) -> None:
            await bootstrap.bootstrap_node(spec, launcher)
            node = plan.node(spec.name)
            await asyncio.to_thread(network.apply_service_route, plan, node)

        await step(f"{nodes} node(s) joined and started", _gather(*(one(s) for s in specs)))
        await delete_join_token(conn, token, join_token_path(plan))
        await step("nodes Ready", wait_nodes_ready(conn, [s.name for s in specs], timeout=timeout))
    except BaseException:
        progress("start failed; component logs are in " + str(plan.paths.log_dir))
        raise
    await asyncio.to_thread(write_user_config, plan)
    progress(f"cluster {name!r} is up in {time.monotonic() - start:.1f}s; try: kubelite get nodes -o wide")
    return plan


async def start_control_planes(plan: LabPlan, launcher: SupervisorLauncher, *, log_level: str = "info") -> None:
    """Every control-plane machine of a new cluster: the first makes the CAs, the others get copies (and sign their
    own certificates with them); every etcd member starts before any apiserver, since a new etcd cluster serves
    only once a majority of its members runs."""
    specs = [control_plane_spec(plan, log_level=log_level, role=m.role) for m in plan.control_planes]
    await bootstrap.prepare_control_plane(specs[0])
    for spec in specs[1:]:
        await asyncio.to_thread(copy_cluster_secrets, specs[0], spec)
        await bootstrap.prepare_control_plane(spec)
    for spec in specs:
        bootstrap.start_etcd(spec, launcher)
    for spec in specs:
        await bootstrap.start_control_plane(spec, launcher)


def copy_cluster_secrets(source: bootstrap.ControlPlaneSpec, target: bootstrap.ControlPlaneSpec) -> None:
    """Give another control-plane machine the cluster's CAs and Secrets' key (0600 in 0700 directories)."""
    pki.private_dir(target.data_dir)
    pki.private_dir(target.pki.dir)
    pki.private_dir(target.pki.dir / "etcd")
    for rel in bootstrap.SHARED_FILES:
        data = (source.data_dir / rel).read_bytes()
        if rel.endswith((".crt", ".pub")):
            pki.write_public(target.data_dir / rel, data)
        else:
            pki.write_private(target.data_dir / rel, data)


CONTROL_PLANE_DAEMONS = ("registry", "dns", "controller-manager", "scheduler", "apiserver", "etcd")


async def stop_control_plane_machine(name: str, role: str) -> None:
    """Control-plane machine `role` goes down: every daemon on it stops (the watchdog leaves them stopped)."""
    plan = _running_plan(name)
    plan.control_plane_member(role)
    sup = Supervisor.for_plan(plan)
    # Each under its lock (Supervisor.stop), all at once: the watchdog must not start one again between its death
    # and the removal of its pid file, which would leave it running untracked.
    await _gather(*(asyncio.to_thread(sup.stop, daemon_name(role, d)) for d in CONTROL_PLANE_DAEMONS))
    log.info("control_plane_stopped", cluster=name, machine=role)


async def start_control_plane_machine(name: str, role: str, *, log_level: str = "info") -> None:
    """Control-plane machine `role` comes back: its etcd rejoins the cluster with its data, then the rest."""
    plan = _running_plan(name)
    spec = control_plane_spec(plan, log_level=log_level, role=role, etcd_state="existing")
    launcher = SupervisorLauncher(Supervisor.for_plan(plan))
    bootstrap.start_etcd(spec, launcher)
    await bootstrap.start_control_plane(spec, launcher)
    log.info("control_plane_started", cluster=name, machine=role)


def _running_plan(name: str) -> LabPlan:
    running = find_running(name)
    if running is None:
        raise LabError(f"cluster {name!r} is not up (`kubelite up --name {name}` starts it)")
    return running.plan


async def add_node(name: str, *, progress: Progress, timeout: float = 120.0, log_level: str = "info",
                   ingress: bool = True) -> str:
    """Add one worker node to running cluster `name` (the next n<k>), through the same node bootstrap `up` uses,
    with the cluster's proxy mode; returns its name once it is Ready."""
    running = await asyncio.to_thread(find_running, name)
    if running is None or not running.healthy:
        raise LabError(f"cluster {name!r} is not up (`kubelite up --name {name}` starts it)")
    plan = plan_lab(name, running.nodes + 1, control_planes=running.control_planes)
    node = plan.nodes[-1]
    progress(f"adding node {node.role} to cluster {name!r}")
    start = time.monotonic()
    await asyncio.to_thread(network.apply_topology, plan)
    launcher = SupervisorLauncher(Supervisor.for_plan(plan))
    mode = recorded_proxy_mode(plan)
    conn = client_config_for(plan)
    # The new node joins as `up`'s do: with a join token of its own, deleted once it holds its certificates.
    token = await create_join_token(conn, join_token_path(plan))
    try:
        await bootstrap.bootstrap_node(node_spec(plan, len(plan.nodes) - 1, log_level=log_level, proxy_mode=mode,
                                                 ingress=ingress), launcher)
    finally:
        await delete_join_token(conn, token, join_token_path(plan))
    await asyncio.to_thread(network.apply_service_route, plan, node)
    await wait_nodes_ready(conn, [node.role], timeout=timeout)
    progress(f"node {node.role} is Ready in {time.monotonic() - start:.1f}s")
    return node.role


class AlreadyUpError(LabError):
    def __init__(self, running: Running) -> None:
        super().__init__(f"cluster {running.plan.cluster!r} is already up with {running.nodes} node(s); "
                         f"`kubelite down --name {running.plan.cluster}` removes it")
        self.running = running


async def _gather(*coros) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.TaskGroup() as tg:
        for c in coros:
            tg.create_task(c)


async def wait_nodes_ready(conn: ClientConfig, names: list[str], *, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    waiting = set(names)
    async with Client(conn) as client:
        while waiting:
            try:
                for node in (await client.list("nodes")).items:
                    ready = any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)
                    if ready:
                        waiting.discard(node.metadata.name)
            except ApiError as e:
                log.info("nodes_not_listed", error=e.message)
            if not waiting:
                return
            if time.monotonic() > deadline:
                raise LabError(f"node(s) not Ready after {timeout:.0f}s: {', '.join(sorted(waiting))}")
            await asyncio.sleep(0.2)


def start_watchdog(plan: LabPlan, supervisor: Supervisor, *, log_level: str = "info") -> None:
    """The daemon that starts the cluster's other daemons again when they die (deploy/lab/watchdog.py)."""
    from deploy.node.bootstrap import kubelite_argv

    argv = [*kubelite_argv(), "supervise", "--pid-dir", str(supervisor.pid_dir), "--log-dir", str(supervisor.log_dir),
            "--cgroup", supervisor.cgroup or "", "--log-level", log_level]
    if supervisor.get(WATCHDOG) is None:
        supervisor.start(WATCHDOG, argv)


@dataclass
class DownReport:
    """What `down` did: whether there was anything, what failed on the way, what is still there."""

    found: bool
    errors: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)


async def down(name: str, *, progress: Progress) -> DownReport:
    """Remove everything of cluster `name`, whatever disappears meanwhile; say what could not be removed.

    Order matters only for a clean teardown: the watchdog first (nothing is revived), then the
    daemons that use containerd, then each node's pods through its still running containerd,
    then whatever else runs in the cluster's cgroup, the namespaces, the files. A failed step is
    recorded and the next one runs: it may well remove what the failed one could not.
    """
    plan = plan_lab(name, 0)
    sup = Supervisor.for_plan(plan)
    namespaces = await asyncio.to_thread(network.lab_namespaces, name)
    nodes_root = plan.paths.data_dir / "nodes"
    node_dirs = sorted(nodes_root.glob("*")) if nodes_root.exists() else []
    report = DownReport(found=bool(namespaces or sup.records() or node_dirs or plan.paths.run_dir.exists()
                                   or plan.paths.data_dir.exists()))
    if not report.found:
        return report

    async def step(what: str, action: Awaitable[object]) -> object:
        try:
            return await action
        except Exception as exc:  # recorded; the teardown goes on
            log.warning("down_step_failed", step=what, error=str(exc) or type(exc).__name__)
            report.errors.append(f"{what}: {exc}" if str(exc) else f"{what}: {type(exc).__name__}")
            return None

    await step("stop the watchdog", asyncio.to_thread(sup.stop, WATCHDOG))
    users = [r.name for r in sup.records() if not r.name.startswith("containerd-")]
    stopped = await step("stop the daemons", asyncio.to_thread(sup.stop_all, names=users))
    progress(f"  stopped {len(stopped or [])} daemon(s)")
    for d in node_dirs:
        await step(f"remove node runtime {d.name}", containerd.stop_and_clean(d / "containerd", keep_logs=False))
        # Pods' secret and projected volumes are tmpfs mounts the stopped kubelet left.
        await step(f"unmount pod volumes of {d.name}", asyncio.to_thread(mounts.unmount_all, d.absolute()))
    progress(f"  removed {len(node_dirs)} node runtime(s)")
    await step("stop what is left in the cluster's cgroup", asyncio.to_thread(sup.stop_all))
    removed = await step("remove the network namespaces", asyncio.to_thread(network.destroy_topology, name))
    progress(f"  removed {len(removed or [])} network namespace(s)")
    for d in (plan.paths.run_dir, plan.paths.data_dir):
        await step(f"remove {d}", asyncio.to_thread(_rmtree, d))
    await step("forget the cluster in the client config", asyncio.to_thread(forget_user_config, name))
    report.left = await asyncio.to_thread(leftovers, plan)
    return report


def forget_user_config(name: str) -> None:
    """The cluster's entry in the config file and its credentials beside it."""
    client_config.remove_cluster(name)
    shutil.rmtree(client_config.credentials_dir(name), ignore_errors=True)


def _rmtree(path: Path) -> None:
    """Remove a directory tree; what vanished meanwhile is fine, a mount inside is not crossed."""
    mounted = mounts.points_under(path)
    if mounted:
        raise LabError(f"still mounted: {', '.join(mounted)}")

    def unless_gone(func, failed: str, exc_info) -> None:  # type: ignore[no-untyped-def]
        exc = exc_info[1]
        if not (isinstance(exc, OSError) and gone(exc)):
            raise exc

    shutil.rmtree(path, onerror=unless_gone)


def leftovers(plan: LabPlan) -> list[str]:
    """Everything of the cluster still on this machine: namespaces, processes, cgroups, mounts, directories."""
    found = [f"network namespace {ns}" for ns in network.lab_namespaces(plan.cluster)]
    found += [f"process {pid}" for pid in sorted(cgroup_pids(plan.cgroup))]
    found += [f"cgroup {d}" for d in cgroup_dirs(plan.cgroup)]
    for root in (plan.paths.run_dir, plan.paths.data_dir):
        found += [f"mount {m}" for m in mounts.points_under(root)]
        if root.exists():
            found.append(f"directory {root}")
    return found
