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
@click.option("--control-planes", type=click.IntRange(1, 7), default=1, show_default=True,
              help="control-plane machines, each with an etcd member, an apiserver, a scheduler and a "
                   "controller-manager: 3 survive losing one (an odd number)")
def up(nodes: int, name: str, timeout: float, log_level: str, proxy_mode: str, ingress_nodes: str,
       add_node: bool, control_planes: int) -> None:
    """Start a local cluster: every node in its own network namespace (root); or, with --add-node, add a node to
    a running one."""
    from deploy.lab.cluster import AlreadyUpError, LabError
    from deploy.lab.cluster import add_node as lab_add_node
    from deploy.lab.cluster import up as lab_up
    from deploy.lab.plan import LabPlanError

    chosen: set[str] | None = None
    if control_planes % 2 == 0:
        raise click.BadParameter(f"{control_planes} is even: etcd keeps working while a majority of its members is "
                                 f"up, so {control_planes} tolerate no more losses than {control_planes - 1}",
                                 param_hint="--control-planes")
    if add_node and control_planes != 1:
        raise click.BadParameter("--add-node adds a worker; the control planes stay as the cluster was started",
                                 param_hint="--control-planes")
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
                           proxy_mode=proxy_mode, ingress_nodes=chosen, control_planes=control_planes))
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
    from concurrent.futures import ThreadPoolExecutor

    from deploy.lab import status as lab_status

    # The etcd members are asked from inside a control-plane namespace by a command of their own: started
    # first, so that it runs while the rest is gathered.
    pool = ThreadPoolExecutor(max_workers=1)
    members = pool.submit(lab_status.etcd_members, running.plan)
    pool.shutdown(wait=False)
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

    from cli.daemons import certs

    click.echo("")
    click.echo(certs.table(certs.lab_places(name)))
    _control_plane_status(running.plan, members)
    try:
        asyncio.run(nodes())
        click.echo("\napiserver: healthy", err=True)
    except Exception as e:
        click.echo(f"\napiserver: unreachable ({e})", err=True)
        sys.exit(1)


def _control_plane_status(plan, members) -> None:  # type: ignore[no-untyped-def]
    """The etcd members (health, leader; `members` is the future of their list) and which scheduler and
    controller-manager hold their leases."""
    from deploy.lab import status as lab_status

    click.echo("")
    try:
        found = members.result()
        click.echo(printers.table(_member_rows(found), ["ETCD MEMBER", "CLIENT URL", "HEALTH", "LEADER", "TERM"]))
    except (RuntimeError, OSError, ValueError) as e:
        click.echo(f"etcd members: unknown ({e})")
    holders = asyncio.run(lab_status.lease_holders_or_error(plan))
    click.echo("")
    if isinstance(holders, str):
        click.echo(f"leader leases: unknown ({holders})")
        return
    rows = [[h.component, h.lease, h.holder or "<none>", h.daemon or "-"] for h in holders]
    click.echo(printers.table(rows, ["LEADER", "LEASE", "HOLDER", "DAEMON"]))


def _member_rows(members: list[dict]) -> list[list[str]]:
    # gRPC's "failed to connect to all addresses; last error: ...: Connection refused": its last words say it.
    short = lambda error: error.rsplit(": ", 1)[-1]  # noqa: E731
    return [[m["name"], ",".join(m["client_urls"]) or "-",
             "healthy" if m["healthy"] else f"unhealthy ({short(m['error'])})",
             "*" if m["leader"] else "", str(m["raft_term"] or "-")] for m in members]


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


def _admin_config(name: str, spec) -> None:  # type: ignore[no-untyped-def]
    """Copy a bootstrap host's admin credentials beside the config file, under cluster `name`."""
    from client import pki
    from deploy.node import certs

    store = spec.pki
    target = pki.private_dir(client_config.credentials_dir(name))
    pki.write_public(target / "ca.crt", store.crt(certs.CA).read_bytes())
    pki.write_public(target / "admin.crt", store.crt("admin").read_bytes())
    pki.write_private(target / "admin.key", store.key("admin").read_bytes())
    client_config.set_cluster(name, server=f"unix://{spec.socket}", ca_file=str(target / "ca.crt"),
                              cert_file=str(target / "admin.crt"), key_file=str(target / "admin.key"))


# Bootstrap waits are sized for a real machine; an emulated one (QEMU without
# KVM runs guests 10-18x slower) multiplies them.
timeout_scale_option = click.option(
    "--timeout-scale", type=click.FloatRange(min=1.0), default=1.0, show_default=True, envvar="KUBELITE_TIMEOUT_SCALE",
    help="multiply bootstrap waits (30s), CRI call timeouts and the node grace period by this, for slow or "
         "emulated machines")


@bootstrap.command("control-plane")
@click.option("--address", required=True, help="this machine's address on the cluster network")
@click.option("--data-dir", type=click.Path(path_type=Path), default=Path("/var/lib/kubelite/control-plane"),
              help="etcd's data and the certificates (pki/)")
@click.option("--token-file", default="", help='users\' bearer tokens: token,user,uid,"groups" per line (optional)')
@click.option("--lb-pool", default="",
              help="LoadBalancer addresses: CIDRs or first-last ranges, comma-separated")
@click.option("--node-certificate-lifetime", default="8760h", show_default=True,
              help="lifetime of the certificates nodes are given (they renew at 80%)")
@click.option("--apiserver-cert-extra-sans", default="",
              help="more names and addresses for the apiserver's certificate, comma-separated")
@click.option("--node-monitor-grace-period", type=click.FloatRange(min=1.0), default=None,
              help="seconds without a lease renewal before a node is marked not ready  [default: 2, or 4 x "
                   "timeout scale when that is above 1]")
@timeout_scale_option
@click.option("--ha", is_flag=True,
              help="run etcd as the first member of an etcd cluster (TLS peers on --address), so that more control "
                   "planes can --join")
@click.option("--join", "join_address", default="",
              help="join the highly available control plane running at this address (started with --ha): add this "
                   "machine's etcd member and run its apiserver, scheduler and controller-manager beside the others'; "
                   "copy the cluster's CAs and Secrets key into --data-dir first")
@click.option("--etcd-member-name", default="", help="this machine's etcd member name (default: its host name)")
@click.option("--systemd/--no-systemd", default=True, show_default=True, help="run daemons as systemd units")
def bootstrap_control_plane(address: str, data_dir: Path, token_file: str, lb_pool: str,
                            node_certificate_lifetime: str, apiserver_cert_extra_sans: str,
                            node_monitor_grace_period: float | None, timeout_scale: float, ha: bool,
                            join_address: str, etcd_member_name: str, systemd: bool) -> None:
    """Make the cluster's certificates; start etcd, the apiserver, the scheduler, the controller-manager and DNS
    (or, with --join, add this machine to a running highly available control plane)."""
    import socket

    from deploy.node import bootstrap as boot
    from deploy.node.launch import SystemdLauncher

    if ha and join_address:
        raise click.UsageError("--ha starts a new control plane, --join adds to a running one: give one of them")
    logs.configure("bootstrap")
    _need_systemd(systemd)
    member = etcd_member_name or socket.gethostname()
    clustered = dict(etcd_members=((member, address),), etcd_name=member) if ha or join_address else {}
    spec = boot.ControlPlaneSpec(address=address, data_dir=data_dir, token_file=token_file, lb_pool=lb_pool,
                                 socket="/run/kubelite/api.sock", signing_duration=node_certificate_lifetime,
                                 extra_sans=tuple(s.strip() for s in apiserver_cert_extra_sans.split(",") if s.strip()),
                                 timeout_scale=timeout_scale,
                                 node_monitor_grace_period=(node_monitor_grace_period
                                                            or boot.node_monitor_grace(timeout_scale,
                                                                                       clustered=bool(clustered))),
                                 **clustered)  # type: ignore[arg-type]
    Path("/run/kubelite").mkdir(parents=True, exist_ok=True, mode=0o700)
    launcher = SystemdLauncher(Path("/var/log/kubelite"))
    if join_address:
        try:
            spec = run(boot.join_control_plane(spec, launcher, existing=join_address))
        except boot.JoinFailedError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(1)
        _admin_config("local", spec)
        click.echo(f"control plane joined: apiserver at {spec.server}, etcd member {spec.etcd_name} of "
                   f"{len(spec.etcd_members)}; nodes list every apiserver: --server {spec.servers}")
        return
    run(boot.bootstrap_control_plane(spec, launcher))
    run(boot.apply_addons(spec.admin()))
    # `kubelite get ...` on this machine talks to it over the unix socket, as the admin.
    _admin_config("local", spec)
    click.echo(f"control plane up: apiserver at {spec.server}, join port {spec.join_server}")
    click.echo("nodes join with a token from `kubelite token create`:")
    click.echo(f"  kubelite bootstrap node --server {spec.server} --token-file FILE --name NAME --address ADDRESS "
               f"--pod-cidr CIDR")


@bootstrap.command("node")
@click.option("--name", required=True, help="node name")
@click.option("--address", required=True, help="this node's address on the cluster network (never the NAT one)")
@click.option("--pod-cidr", required=True, help="this node's pod CIDR, e.g. 10.244.1.0/24")
@click.option("--server", required=True, help="apiserver host[:port] (port 6443 if not given)")
@click.option("--token", default=None,
              help="join token (K10...); it shows in `ps` while the join runs, so prefer --token-file")
@click.option("--token-file", default="", help="file holding the join token (0600)")
@click.option("--join-server", default="", help="the apiserver's token port (default: the --server host, port 6444)")
@click.option("--node-dir", type=click.Path(path_type=Path), default=Path("/var/lib/kubelite/node"))
@timeout_scale_option
@click.option("--systemd/--no-systemd", default=True, show_default=True)
def bootstrap_node(name: str, address: str, pod_cidr: str, server: str, token: str | None, token_file: str,
                   join_server: str, node_dir: Path, timeout_scale: float, systemd: bool) -> None:
    """Join the cluster with a join token, then start containerd, the kubelet, the proxy and the speaker here."""
    from client import pki
    from deploy.node import bootstrap as boot
    from deploy.node.launch import SystemdLauncher

    logs.configure("bootstrap")
    _need_systemd(systemd)
    if token is not None and token_file:
        raise click.UsageError("--token and --token-file exclude each other")
    if token is not None:
        # Kept in a file of the node (0600) for the join, so that no daemon's command line carries it.
        token_file = str(node_dir / "join-token")
        pki.private_dir(node_dir)
        pki.write_private(token_file, f"{token.strip()}\n".encode())
    if ":" not in server:
        server = f"{server}:6443"
    spec = boot.NodeSpec(name=name, address=address, pod_cidr=pod_cidr, server=server, node_dir=node_dir,
                         join_server=join_server, join_token_file=token_file, timeout_scale=timeout_scale)
    try:
        run(boot.bootstrap_node(spec, SystemdLauncher(Path("/var/log/kubelite"))))
    except boot.JoinFailedError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(1)
    finally:
        if token is not None:
            Path(token_file).unlink(missing_ok=True)
    click.echo(f"node {name} joined and up at {address} with pods in {pod_cidr}")


@bootstrap.command("join")
@click.option("--join-server", required=True, help="the apiserver's token port, host:port")
@click.option("--token-file", required=True, help="file holding the join token (K10...)")
@click.option("--name", required=True, help="node name")
@click.option("--address", "addresses", multiple=True, required=True, help="the node's address (repeatable)")
@click.option("--pki-dir", type=click.Path(path_type=Path), required=True, help="where the node's certificates go")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=15.0, show_default=True,
              help="seconds one attempt at the control plane may take")
def bootstrap_join(join_server: str, token_file: str, name: str, addresses: tuple[str, ...], pki_dir: Path,
                   timeout: float) -> None:
    """Only the join: check the control plane's CA against the token, get the node's certificates."""
    from deploy.node import join
    from deploy.node.bootstrap import JoinFailedError, read_join_token

    logs.configure("bootstrap", level="warning")
    try:
        token = read_join_token(token_file)
        asyncio.run(join.join(join_server, token, node=name, addresses=list(addresses), directory=pki_dir,
                              timeout=timeout))
    except (JoinFailedError, join.JoinError) as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(1)
    click.echo(f"node {name} holds its certificates in {pki_dir}")


@bootstrap.command("etcd-members")
@click.option("--endpoints", default="https://127.0.0.1:2379", show_default=True,
              help="etcd client URLs to ask (comma-separated)")
@click.option("--cacert", required=True, help="etcd's CA certificate")
@click.option("--cert", required=True, help="a client certificate etcd accepts (the apiserver's etcd client one)")
@click.option("--key", required=True, help="its key")
@click.option("-o", "--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--timeout", type=click.FloatRange(min=0.1), default=2.0, show_default=True,
              help="seconds each member has to answer (longer on slow machines)")
def bootstrap_etcd_members(endpoints: str, cacert: str, cert: str, key: str, output: str, timeout: float) -> None:
    """List the control planes' etcd members with their health and the leader (as `etcdctl endpoint status
    --cluster`)."""
    import dataclasses
    import json

    from deploy.node import etcdadmin

    files = etcdadmin.EtcdFiles(cacert, cert, key)
    urls = [u.strip() for u in endpoints.split(",") if u.strip()]
    try:
        members = asyncio.run(etcdadmin.member_statuses(urls, files, timeout=timeout))
    except etcdadmin.EtcdAdminError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(1)
    found = [dataclasses.asdict(m) for m in members]
    if output == "json":
        click.echo(json.dumps(found))
        return
    click.echo(printers.table(_member_rows(found), ["ETCD MEMBER", "CLIENT URL", "HEALTH", "LEADER", "TERM"]))


COMMANDS: list[click.Command] = [up, down, status, bootstrap]
