"""`kubelite kubelet`: the node agent's entry point (flags into a KubeletConfig, then run until SIGTERM)."""

from __future__ import annotations

import dataclasses
import os
import socket
import sys
from pathlib import Path

import click

from api import logs as logging_setup
from api import quantity
from cli.common import connection_options
from cli.daemons import serve
from client.api import Client
from client.config import ClientConfig


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


def _loopback(address: str) -> bool:
    import ipaddress

    host = address.rpartition(":")[0].strip("[]")
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
@click.option("--lease-renew", type=float, default=0.5, show_default=True, help="seconds between Lease renewals")
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
@click.option("--max-parallel-sandboxes", type=click.IntRange(min=0), default=lambda: 2 * (os.cpu_count() or 1),
              show_default="2 per CPU", help="pod sandboxes created at once (0: no limit); a node handed a hundred "
                                            "pods at once otherwise runs a hundred network setups at once")
@click.option("--events/--no-events", default=True, show_default=True, help="record Events for pods")
@click.option("--tls-cert-file", default="", help="the kubelet API's serving certificate (signed by the cluster CA)")
@click.option("--tls-private-key-file", default="", help="its key")
@click.option("--client-ca-file", default="", help="the CA of the apiserver's kubelet-client certificate")
@click.option("--rotate-certificates/--no-rotate-certificates", default=True, show_default=True,
              help="renew the client and serving certificates before they expire")
@click.option("--proxy-client-certificate", default="", help="the node proxy's certificate, renewed with the kubelet's")
@click.option("--proxy-client-key", default="", help="its key")
@click.option("--insecure-plaintext", is_flag=True,
              help="TESTS ONLY: serve the kubelet API without TLS to anyone, on loopback only")
@click.option("--local-path-dir", type=click.Path(path_type=Path), default=None,
              help="where local-path volumes' directories go (default <root-dir>/local-path)")
@click.option("--local-path-capacity", default="",
              help="storage local-path volumes may claim on this node, e.g. 20Gi (default: the size of the "
                   "filesystem holding --local-path-dir)")
@click.option("--runtime-request-timeout", type=click.FloatRange(min=1.0), default=30.0, show_default=True,
              help="seconds each CRI call may take (image pulls excepted); longer on emulated machines")
@click.option("--log-level", default="info")
def kubelet(conn: ClientConfig, node_name: str, runtime_kind: str, cri_socket: str, node_ip: str | None,
            pod_cidr: str, listen: str | None, cluster_dns: str, cluster_domain: str, root_dir: Path,
            cgroup_root: str | None, lease_renew: float, lease_duration: int, node_status_update_period: float,
            cpu: str, memory: str, max_pods: int, reserved_cpu: str, reserved_memory: str, node_labels: str,
            backoff_initial: float, backoff_max: float, pleg_period: float, probe_netns: str,
            max_parallel_sandboxes: int, events: bool, tls_cert_file: str, tls_private_key_file: str,
            client_ca_file: str, rotate_certificates: bool, proxy_client_certificate: str, proxy_client_key: str,
            insecure_plaintext: bool, local_path_dir: Path | None, local_path_capacity: str,
            runtime_request_timeout: float, log_level: str) -> None:
    """Run the kubelet: register the node and run the pods bound to it."""
    from kubelet.certificates import CLIENT, PROXY, SERVING, Rotated
    from kubelet.config import KubeletConfig

    logging_setup.configure("kubelet", level=log_level, node=node_name)
    ip = node_ip or _default_ip()
    if cgroup_root is None:
        cgroup_root = "" if runtime_kind == "fake" else f"/kubelite/{node_name}"
    serve_at = listen if listen is not None else f"{ip}:10250"
    serving = [tls_cert_file, tls_private_key_file, client_ca_file]
    if serve_at and not insecure_plaintext and not all(serving):
        raise click.UsageError("the kubelet API is served over mutual TLS: --tls-cert-file, --tls-private-key-file "
                               "and --client-ca-file are required (or --listen '' to serve nothing)")
    if insecure_plaintext and serve_at and not _loopback(serve_at):
        raise click.UsageError(f"--insecure-plaintext serves anyone who reaches {serve_at}: loopback only")
    if bool(proxy_client_certificate) != bool(proxy_client_key):
        raise click.UsageError("--proxy-client-certificate and --proxy-client-key go together")
    rotate: list[Rotated] = []
    if rotate_certificates and conn.cert_file:
        rotate.append(Rotated(CLIENT, conn.cert_file, conn.key_file))
    if rotate_certificates and tls_cert_file and not insecure_plaintext:
        rotate.append(Rotated(SERVING, tls_cert_file, tls_private_key_file))
    if rotate_certificates and proxy_client_certificate:
        rotate.append(Rotated(PROXY, proxy_client_certificate, proxy_client_key))
    config = KubeletConfig(
        node_name=node_name, node_ip=ip, pod_cidr=pod_cidr, listen=serve_at,
        cluster_dns=tuple(s.strip() for s in cluster_dns.split(",") if s.strip()), cluster_domain=cluster_domain,
        root_dir=root_dir.absolute(), cgroup_root=cgroup_root, node_labels=_labels(node_labels),
        capacity_cpu_milli=_quantity(cpu, "--cpu", milli=True),
        capacity_memory=_quantity(memory, "--memory", milli=False), max_pods=max_pods,
        reserved_cpu_milli=_quantity(reserved_cpu, "--reserved-cpu", milli=True),
        reserved_memory=_quantity(reserved_memory, "--reserved-memory", milli=False),
        lease_renew=lease_renew, lease_duration=lease_duration, node_status_period=node_status_update_period,
        backoff_initial=backoff_initial, backoff_max=backoff_max, pleg_period=pleg_period,
        probe_netns=probe_netns, max_parallel_sandboxes=max_parallel_sandboxes, events=events,
        serving_cert_file=tls_cert_file, serving_key_file=tls_private_key_file, client_ca_file=client_ca_file,
        insecure_plaintext=insecure_plaintext, rotate=tuple(rotate),
        local_path_dir=local_path_dir.absolute() if local_path_dir else None,
    )
    capacity = _quantity(local_path_capacity, "--local-path-capacity", milli=False)
    if not capacity and runtime_kind != "fake":
        capacity = _filesystem_size(config.local_path_root)
    config = dataclasses.replace(config, local_path_capacity=capacity)
    serve(_run_kubelet(conn, config, runtime_kind, cri_socket, runtime_request_timeout))


def _filesystem_size(path: Path) -> int:
    """The size of the filesystem that holds `path` (or its nearest existing parent)."""
    import os

    while not path.exists() and path != path.parent:
        path = path.parent
    st = os.statvfs(path)
    return st.f_blocks * st.f_frsize


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


COMMANDS: list[click.Command] = [kubelet]
