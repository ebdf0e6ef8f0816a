"""`kubelite up`, `down`, `status`, and `bootstrap` (what VMs run to join a cluster)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from api import kinds, logs
from cli import printers
from cli.common import local_cluster_option, run
from client import config as client_config
from client.config import ClientConfig


def _progress(line: str) -> None:
    click.echo(line, err=True)


@click.command()
@click.option("--nodes", type=click.IntRange(1, 50), default=3, show_default=True, help="worker nodes")
@click.option("--name", default="kubelite", show_default=True, help="cluster name (several can coexist)")
@click.option("--timeout", type=float, default=120.0, show_default=True, help="seconds to wait for Ready nodes")
@click.option("--log-level", default="info", help="log level of the cluster's components")
@click.option("--proxy-mode", type=click.Choice(["iptables", "nftables"]), default="iptables", show_default=True,
              help="how every node's proxy writes its rules (an added node takes the cluster's)")
@click.option("--ingress-nodes", default="all", show_default=True,
              help="nodes that run the ingress controller: all, none, or names (n1,n2)")
@click.option("--add-node", is_flag=True, help="add one worker node to the running cluster --name instead")
def up(nodes: int, name: str, timeout: float, log_level: str, proxy_mode: str, ingress_nodes: str,
       add_node: bool) -> None:
    """Start a local cluster: every node in its own network namespace (root); or, with --add-node, add a node to
    a running one."""
    from deploy.lab.cluster import AlreadyUpError, LabError
    from deploy.lab.cluster import add_node as lab_add_node
    from deploy.lab.cluster import up as lab_up
    from deploy.lab.plan import LabPlanError

    chosen: set[str] | None = None
    if add_node and ingress_nodes not in ("all", "none"):
        raise click.BadParameter("with --add-node: all or none (whether the new node runs it)",
                                 param_hint="--ingress-nodes")
    if ingress_nodes != "all" and not add_node:
        chosen = {n.strip() for n in ingress_nodes.split(",") if n.strip() and n.strip() != "none"}
        unknown = sorted(chosen - {f"n{i}" for i in range(1, nodes + 1)})
        if unknown:
            raise click.BadParameter(f"no such node(s): {', '.join(unknown)} (nodes are n1..n{nodes})",
                                     param_hint="--ingress-nodes")
    logs.configure("lab", level="warning")
    try:
        if add_node:
            asyncio.run(lab_add_node(name, progress=_progress, timeout=timeout, log_level=log_level,
                                     ingress=ingress_nodes == "all"))
            return
        asyncio.run(lab_up(name, nodes, progress=_progress, timeout=timeout, log_level=log_level,
                           proxy_mode=proxy_mode, ingress_nodes=chosen))
    except AlreadyUpError as e:
        click.echo(str(e), err=True)
        return
    except (LabError, LabPlanError) as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(1)
    except Exception as e:
        click.echo(f"error: {type(e).__name__}: {e}", err=True)
        click.echo(f"  (`kubelite down --name {name}` cleans up what was started)", err=True)
        sys.exit(1)


@click.command()
@local_cluster_option
def down(name: str) -> None:
    """Stop a local cluster and remove everything it made."""
    from deploy.lab.cluster import LabError
    from deploy.lab.cluster import down as lab_down
    from deploy.lab.plan import LabPlanError

    logs.configure("lab", level="warning")
    if sys.platform != "linux" or not Path("/proc/self/ns/net").exists():
        click.echo("error: the lab needs Linux network namespaces", err=True)
        sys.exit(1)
    try:
        click.echo(f"stopping cluster {name!r}", err=True)
        report = asyncio.run(lab_down(name, progress=_progress))
    except (LabError, LabPlanError) as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(1)
    if not report.found:
        click.echo(f"cluster {name!r} is not running; nothing to do", err=True)
        return
    if not report.left:
        click.echo(f"cluster {name!r} removed", err=True)
        return
    click.echo(f"error: cluster {name!r} is partly removed; still there:", err=True)
    for item in report.left:
        click.echo(f"  {item}", err=True)
    for problem in report.errors:
        click.echo(f"  ({problem})", err=True)
    click.echo(f"  (`kubelite down --name {name}` again removes what has been freed since)", err=True)
    sys.exit(1)


@click.command()
@local_cluster_option
def status(name: str) -> None:
    """Show a local cluster's components, their health, and its nodes."""
    from client.api import Client
    from deploy.lab.cluster import client_config_for, find_running
    from deploy.lab.plan import LabPlanError
    from deploy.lab.procs import WATCHDOG, Supervisor, is_alive

    try:
        running = find_running(name)
    except LabPlanError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(1)
    if running is None:
        click.echo(f"cluster {name!r} is not running (`kubelite up --name {name}` starts it)", err=True)
        sys.exit(1)
    sup = Supervisor.for_plan(running.plan)
    records = sorted(sup.records(), key=lambda r: r.name)
    watching = any(r.name == WATCHDOG and is_alive(r) for r in records)
    rows = []
    for rec in records:
        if is_alive(rec):
            state = "running"
        elif rec.failed:
            state = f"failed ({rec.failed})"
        elif watching and rec.name != WATCHDOG:
            state = "restarting"
        else:
            state = "dead"
        rows.append([rec.name, str(rec.pid), state, str(rec.restarts), str(sup.log_path(rec.name))])
    click.echo(printers.table(rows, ["COMPONENT", "PID", "STATE", "RESTARTS", "LOG"]) or "no components recorded")

    async def nodes() -> None:
        async with Client(client_config_for(running.plan)) as c:
            items = (await c.list("nodes")).items
        click.echo("")
        header = printers.headers(kinds.lookup("Node"), wide=False, namespaced=False)
        rows = [printers.row(n, wide=False, namespaced=False) for n in items]
        click.echo(printers.table(rows, header) or "no nodes registered")

    try:
        asyncio.run(nodes())
        click.echo("\napiserver: healthy", err=True)
    except Exception as e:
        click.echo(f"\napiserver: unreachable ({e})", err=True)
        sys.exit(1)


def _need_systemd(systemd: bool) -> None:
    if not systemd:
        raise click.UsageError("outside the lab, daemons run as systemd units (--systemd)")
    if not Path("/run/systemd/system").is_dir():
        click.echo("error: bootstrap runs the daemons as systemd units, and systemd is not running on this machine "
                   "(for a cluster on this machine, use `kubelite up`)", err=True)
        sys.exit(1)


@click.group()
def bootstrap() -> None:
    """Set up this machine as a control plane or a worker (what the Vagrant VMs run)."""


# Bootstrap waits are sized for a real machine; an emulated one (QEMU without
# KVM runs guests 10-18x slower) multiplies them.
timeout_scale_option = click.option(
    "--timeout-scale", type=click.FloatRange(min=1.0), default=1.0, show_default=True, envvar="KUBELITE_TIMEOUT_SCALE",
    help="multiply bootstrap waits (30s), CRI call timeouts and the node grace period by this, for slow or "
         "emulated machines")


@bootstrap.command("control-plane")
@click.option("--address", required=True, help="this machine's address on the cluster network")
@click.option("--data-dir", type=click.Path(path_type=Path), default=Path("/var/lib/kubelite/control-plane"))
@click.option("--token-file", default="", help="require this bearer token from every client")
@click.option("--lb-pool", default="", help="CIDR for LoadBalancer addresses")
@click.option("--node-monitor-grace-period", type=click.FloatRange(min=1.0), default=None,
              help="seconds without a lease renewal before a node is marked not ready  [default: 4 x timeout scale]")
@timeout_scale_option
@click.option("--systemd/--no-systemd", default=True, show_default=True, help="run daemons as systemd units")
def bootstrap_control_plane(address: str, data_dir: Path, token_file: str, lb_pool: str,
                            node_monitor_grace_period: float | None, timeout_scale: float, systemd: bool) -> None:
    """Start etcd, the apiserver, the scheduler, the controller-manager and DNS here."""
    from deploy.node import bootstrap as boot
    from deploy.node.launch import SystemdLauncher

    logs.configure("bootstrap")
    _need_systemd(systemd)
    spec = boot.ControlPlaneSpec(address=address, data_dir=data_dir, token_file=token_file, lb_pool=lb_pool,
                                 socket="/run/kubelite/api.sock", timeout_scale=timeout_scale,
                                 node_monitor_grace_period=node_monitor_grace_period or 4.0 * timeout_scale)
    Path("/run/kubelite").mkdir(parents=True, exist_ok=True)
    run(boot.bootstrap_control_plane(spec, SystemdLauncher(Path("/var/log/kubelite"))))
    # `kubelite get ...` on this machine talks to it over the unix socket.
    token = Path(token_file).read_text().strip() if token_file else ""
    run(boot.apply_addons(ClientConfig(server=f"unix://{spec.socket}", token=token)))
    client_config.set_cluster("local", server=f"unix://{spec.socket}", token=token)
    click.echo(f"control plane up: apiserver at {spec.server}")


@bootstrap.command("node")
@click.option("--name", required=True, help="node name")
@click.option("--address", required=True, help="this node's address on the cluster network (never the NAT one)")
@click.option("--pod-cidr", required=True, help="this node's pod CIDR, e.g. 10.244.1.0/24")
@click.option("--server", required=True, help="apiserver host:port")
@click.option("--token-file", default="")
@click.option("--node-dir", type=click.Path(path_type=Path), default=Path("/var/lib/kubelite/node"))
@timeout_scale_option
@click.option("--systemd/--no-systemd", default=True, show_default=True)
def bootstrap_node(name: str, address: str, pod_cidr: str, server: str, token_file: str, node_dir: Path,
                   timeout_scale: float, systemd: bool) -> None:
    """Start containerd, the kubelet and the proxy here, joining the cluster at --server."""
    from deploy.node import bootstrap as boot
    from deploy.node.launch import SystemdLauncher

    logs.configure("bootstrap")
    _need_systemd(systemd)
    spec = boot.NodeSpec(name=name, address=address, pod_cidr=pod_cidr, server=server, node_dir=node_dir,
                         token_file=token_file, timeout_scale=timeout_scale)
    run(boot.bootstrap_node(spec, SystemdLauncher(Path("/var/log/kubelite"))))
    click.echo(f"node {name} up at {address} with pods in {pod_cidr}")


COMMANDS: list[click.Command] = [up, down, status, bootstrap]
