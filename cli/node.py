"""Node commands: the kubelet daemon, hollow nodes for benchmarks, and `logs` / `exec` for users."""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import sys
from pathlib import Path

import click

from api import kinds, labels, quantity
from api import logs as logging_setup
from api.pb import api_pb2
from cli.common import CliError, connection_options, namespace_option, with_client
from cli.daemons import serve
from client.api import Client
from client.config import ClientConfig

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(text: str) -> int:
    """Seconds in a kubectl-style duration: 30s, 5m, 1h30m (a bare number is seconds)."""
    if text.isdigit():
        return int(text)
    m = _DURATION.match(text)
    if not m or not any(m.groups()):
        raise click.BadParameter(f"invalid duration {text!r} (use e.g. 30s, 5m, 1h)")
    h, mi, s = (int(g or 0) for g in m.groups())
    return h * 3600 + mi * 60 + s


def _quantity(text: str, what: str, *, milli: bool) -> int:
    if not text:
        return 0
    try:
        return quantity.milli(text) if milli else quantity.value(text)
    except quantity.QuantityError as exc:
        raise click.BadParameter(f"{what}: {exc}") from None


def _labels(text: str) -> dict[str, str]:
    out = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"node label {item!r}: use key=value")
        out[key] = value
    return out


def _default_ip() -> str:
    try:
        ip = socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"
    return ip


@click.command()
@connection_options
@click.option("--node-name", required=True, help="this node's name (also its kubernetes.io/hostname label)")
@click.option("--runtime", "runtime_kind", type=click.Choice(["cri", "process", "fake"]), default="cri",
              show_default=True, help="container runtime: containerd over CRI, host processes, or none (hollow)")
@click.option("--cri-socket", default="unix:///run/containerd/containerd.sock", show_default=True,
              help="the CRI endpoint (--runtime cri)")
@click.option("--node-ip", default=None, help="the node's InternalIP (default: this host's address)")
@click.option("--pod-cidr", default="", help="this node's pod CIDR (spec.podCIDR)")
@click.option("--listen", default=None, help="serve logs/exec on host:port (default <node-ip>:10250)")
@click.option("--cluster-dns", default="", help="comma-separated cluster DNS server IPs for ClusterFirst pods")
@click.option("--cluster-domain", default="cluster.local", show_default=True)
@click.option("--root-dir", type=click.Path(path_type=Path), default=Path("/var/lib/kubelite/kubelet"),
              show_default=True, help="pod volumes and logs live under it")
@click.option("--cgroup-root", default=None, help="pod cgroups go under it (default /kubelite/<node-name>)")
@click.option("--lease-renew", type=float, default=1.0, show_default=True, help="seconds between Lease renewals")
@click.option("--lease-duration", type=int, default=4, show_default=True, help="the Lease's leaseDurationSeconds")
@click.option("--node-status-update-period", type=float, default=10.0, show_default=True,
              help="seconds between node status posts (also posted on readiness changes)")
@click.option("--cpu", default="", help="cpu capacity (default: this machine's), e.g. 4 or 3500m")
@click.option("--memory", default="", help="memory capacity (default: this machine's), e.g. 8Gi")
@click.option("--max-pods", type=int, default=110, show_default=True)
@click.option("--reserved-cpu", default="", help="cpu held back from pods, e.g. 200m")
@click.option("--reserved-memory", default="", help="memory held back from pods, e.g. 256Mi")
@click.option("--node-labels", default="", help="extra node labels: k=v,k2=v2")
@click.option("--backoff-initial", type=float, default=10.0, show_default=True,
              help="first crash-loop / image-pull back-off in seconds (doubles each time)")
@click.option("--backoff-max", type=float, default=300.0, show_default=True, help="back-off cap in seconds")
@click.option("--pleg-period", type=float, default=1.0, show_default=True,
              help="seconds between runtime relists that notice container exits")
@click.option("--probe-netns", default="", help="network namespace path probes connect from (default: the "
                                                "kubelet's own, which is the node's when deployed)")
@click.option("--max-parallel-sandboxes", type=int, default=0, show_default=True,
              help="pod sandboxes created at once (0: no limit)")
@click.option("--events/--no-events", default=True, show_default=True, help="record Events for pods")
@click.option("--runtime-request-timeout", type=click.FloatRange(min=1.0), default=30.0, show_default=True,
              help="seconds each CRI call may take (image pulls excepted); longer on emulated machines")
@click.option("--log-level", default="info")
def kubelet(conn: ClientConfig, node_name: str, runtime_kind: str, cri_socket: str, node_ip: str | None,
            pod_cidr: str, listen: str | None, cluster_dns: str, cluster_domain: str, root_dir: Path,
            cgroup_root: str | None, lease_renew: float, lease_duration: int, node_status_update_period: float,
            cpu: str, memory: str, max_pods: int, reserved_cpu: str, reserved_memory: str, node_labels: str,
            backoff_initial: float, backoff_max: float, pleg_period: float, probe_netns: str,
            max_parallel_sandboxes: int, events: bool, runtime_request_timeout: float, log_level: str) -> None:
    """Run the kubelet: register the node and run the pods bound to it."""
    from kubelet.config import KubeletConfig

    logging_setup.configure("kubelet", level=log_level, node=node_name)
    ip = node_ip or _default_ip()
    if cgroup_root is None:
        cgroup_root = "" if runtime_kind == "fake" else f"/kubelite/{node_name}"
    config = KubeletConfig(
        node_name=node_name, node_ip=ip, pod_cidr=pod_cidr, listen=listen if listen is not None else f"{ip}:10250",
        cluster_dns=tuple(s.strip() for s in cluster_dns.split(",") if s.strip()), cluster_domain=cluster_domain,
        root_dir=root_dir.absolute(), cgroup_root=cgroup_root, node_labels=_labels(node_labels),
        capacity_cpu_milli=_quantity(cpu, "--cpu", milli=True),
        capacity_memory=_quantity(memory, "--memory", milli=False), max_pods=max_pods,
        reserved_cpu_milli=_quantity(reserved_cpu, "--reserved-cpu", milli=True),
        reserved_memory=_quantity(reserved_memory, "--reserved-memory", milli=False),
        lease_renew=lease_renew, lease_duration=lease_duration, node_status_period=node_status_update_period,
        backoff_initial=backoff_initial, backoff_max=backoff_max, pleg_period=pleg_period,
        probe_netns=probe_netns, max_parallel_sandboxes=max_parallel_sandboxes, events=events,
    )
    serve(_run_kubelet(conn, config, runtime_kind, cri_socket, runtime_request_timeout))


async def _run_kubelet(conn: ClientConfig, config, runtime_kind: str, cri_socket: str,  # type: ignore[no-untyped-def]
                       request_timeout: float) -> None:
    from kubelet.kubelet import Kubelet
    from kubelet.runtime.instrumented import InstrumentedRuntime

    runtime = _make_runtime(runtime_kind, cri_socket, config, request_timeout)
    client = Client(conn)
    try:
        await Kubelet(config, client, InstrumentedRuntime(runtime, node=config.node_name)).run()
    except OSError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    finally:
        await runtime.close()
        await client.close()


def _make_runtime(kind: str, cri_socket: str, config, request_timeout: float = 30.0):  # type: ignore[no-untyped-def]
    if kind == "cri":
        from kubelet.runtime.cri import CRIRuntime

        return CRIRuntime(cri_socket, timeout=request_timeout)
    if kind == "process":
        from kubelet.runtime.cni import render_conflist
        from kubelet.runtime.process import ProcessRuntime, ProcessRuntimeConfig

        conflist = None
        if config.pod_cidr:
            conflist = render_conflist(pod_cidr=config.pod_cidr, data_dir=str(config.root_dir / "cni"))
        return ProcessRuntime(ProcessRuntimeConfig(cni_conflist=conflist))
    from kubelet.runtime import images
    from kubelet.runtime.fake import FakeRuntime

    return FakeRuntime(images=(images.PAUSE_IMAGE, images.BUSYBOX_IMAGE), pod_cidr=config.pod_cidr or "10.88.0.0/16",
                       node_ip=config.node_ip)


@click.command("hollow-nodes")
@connection_options
@click.option("--count", type=int, required=True, help="how many hollow nodes")
@click.option("--prefix", default="hollow-", show_default=True, help="node names are <prefix><index>")
@click.option("--start-index", type=int, default=0, show_default=True)
@click.option("--pods-per-node", "max_pods", type=int, default=110, show_default=True, help="each node's pod capacity")
@click.option("--cpu", default="4", show_default=True, help="each node's cpu capacity")
@click.option("--memory", default="16Gi", show_default=True, help="each node's memory capacity")
@click.option("--lease-renew", type=float, default=1.0, show_default=True)
@click.option("--node-labels", default="", help="extra labels on every hollow node: k=v,k2=v2")
@click.option("--control-dir", type=click.Path(path_type=Path), default=None,
              help="create <dir>/<node>.stop to stop a node (node loss), remove it to start the node again")
@click.option("--log-level", default="info")
def hollow_nodes(conn: ClientConfig, count: int, prefix: str, start_index: int, max_pods: int, cpu: str, memory: str,
                 lease_renew: float, node_labels: str, control_dir: Path | None, log_level: str) -> None:
    """Run COUNT kubelets with the fake runtime in this one process (benchmarks)."""
    from kubelet.hollow import HollowCluster, HollowConfig

    logging_setup.configure("hollow-nodes", level=log_level)
    config = HollowConfig(count=count, prefix=prefix, start_index=start_index, max_pods=max_pods,
                          cpu_milli=_quantity(cpu, "--cpu", milli=True),
                          memory=_quantity(memory, "--memory", milli=False), lease_renew=lease_renew,
                          control_dir=control_dir, labels=_labels(node_labels))

    async def go() -> None:
        client = Client(conn)
        try:
            await HollowCluster(client, config).run()
        finally:
            await client.close()

    serve(go())


@click.command()
@click.argument("pod", required=False)
@click.option("--container", "-c", default="", help="container name (required if the pod has several)")
@click.option("--follow", "-f", is_flag=True, help="keep streaming until the container exits")
@click.option("--tail", type=int, default=-1, help="only the last N lines (-1: all)")
@click.option("--previous", "-p", is_flag=True, help="the previous instance of the container")
@click.option("--timestamps", is_flag=True, help="prefix each line with its RFC3339 time")
@click.option("--since", default=None, help="only lines newer than this duration, e.g. 5m")
@click.option("--component", default=None,
              help="a local cluster's component log instead (apiserver, scheduler, kubelet-n1, ...)")
@namespace_option
@connection_options
def logs(pod: str | None, container: str, follow: bool, tail: int, previous: bool, timestamps: bool,
         since: str | None, component: str | None, namespace: str, conn: ClientConfig) -> None:
    """Print a container's logs: POD, deploy/NAME or rs/NAME (one of its pods); or --component."""
    if component:
        _component_logs(conn.cluster or "kubelite", component, follow=follow, tail=tail)
        return
    if not pod:
        raise click.UsageError("give a POD (or deploy/NAME, rs/NAME), or --component NAME")

    async def go(c: Client) -> None:
        name = await _pod_for(c, pod, namespace or "default")
        req = api_pb2.LogsRequest(namespace=namespace or "default", name=name, container=container, follow=follow,
                                  previous=previous, timestamps=timestamps)
        if tail >= 0:
            req.tail_lines = tail
        if since:
            req.since_seconds = parse_duration(since)
        out = sys.stdout.buffer
        async for data in c.logs(req):
            out.write(data)
            out.flush()

    with_client(conn, go)


async def _pod_for(c: Client, target: str, namespace: str) -> str:
    """A pod name for `pod`, `pod/NAME`, or a workload (`deploy/NAME`, `rs/NAME`): its oldest running pod."""
    kind_name, _, name = target.rpartition("/")
    if not kind_name:
        return target
    kind = kinds.lookup(kind_name)
    if kind.kind == "Pod":
        return name
    if kind.kind not in ("Deployment", "ReplicaSet"):
        raise CliError(f"cannot read logs of a {kind.kind}; use a pod, deploy/NAME or rs/NAME")
    owner = await c.get(kind.resource, name, namespace)
    selector = str(labels.from_label_selector(owner.spec.selector))
    candidates = (await c.list("pods", namespace, label_selector=selector)).items
    candidates.sort(key=lambda p: (p.status.phase != "Running", p.metadata.creation_timestamp.ToNanoseconds()))
    if not candidates:
        raise CliError(f"{kind.kind.lower()} {name} has no pods")
    return candidates[0].metadata.name


def _component_logs(cluster: str, component: str, *, follow: bool, tail: int) -> None:
    from deploy.lab.plan import plan_lab

    log_dir = plan_lab(cluster, 0).paths.log_dir
    path = log_dir / f"{component}.log"
    if not path.exists():
        known = sorted(p.stem for p in log_dir.glob("*.log")) if log_dir.exists() else []
        raise click.ClickException(f"no log for component {component!r} in cluster {cluster!r}"
                                   + (f" (components: {', '.join(known)})" if known else " (is it up?)"))
    argv = ["tail", "-n", str(tail) if tail >= 0 else "+1", *(["-F"] if follow else []), str(path)]
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(subprocess.call(argv))


@click.command("exec")
@click.argument("pod")
@click.argument("command", nargs=-1, required=True)
@click.option("--container", "-c", default="", help="container name (required if the pod has several)")
@click.option("--stdin", "-i", "use_stdin", is_flag=True, help="pass this command's stdin to the command")
@click.option("--timeout", type=int, default=60, show_default=True, help="seconds the command may run")
@namespace_option
@connection_options
def exec_(pod: str, command: tuple[str, ...], container: str, use_stdin: bool, timeout: int, namespace: str,
          conn: ClientConfig) -> None:
    """Run a command in a container: kubelite exec POD [-c C] -- CMD ARGS...

    Prints its stdout and stderr and exits with its exit code.
    """
    data = sys.stdin.buffer.read() if use_stdin else b""

    async def go(c: Client) -> api_pb2.ExecResponse:
        return await c.exec(namespace or "default", pod, list(command), container=container, stdin=data,
                            timeout_seconds=timeout)

    resp = with_client(conn, go)
    sys.stdout.buffer.write(resp.stdout)
    sys.stdout.buffer.flush()
    sys.stderr.buffer.write(resp.stderr)
    sys.stderr.buffer.flush()
    sys.exit(resp.exit_code)


COMMANDS: list[click.Command] = [kubelet, hollow_nodes, logs, exec_]
