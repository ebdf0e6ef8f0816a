"""Bring up a control plane or a worker node: the one bootstrap the lab and the VMs share.

`bootstrap_control_plane` makes the cluster's CAs and certificates (certs.py)
and starts etcd (mutual TLS, client-cert auth, on loopback; or, for a highly
available control plane, one member of an etcd cluster with TLS on peer and
client links, see `etcd_members`), the apiserver
(mutual TLS on its port, TLS for tokens on the token port), the scheduler,
the controller-manager and cluster DNS, each with its own identity. Given a
node's name, address, pod CIDR and a join token, `bootstrap_node` joins
(join.py: the node's certificates), writes and starts its containerd (CNI
bridge on the pod CIDR), imports the images, and starts its kubelet, proxy
and speaker. Every daemon gets its credentials as file paths, never as values on
its command line. In the lab every daemon runs inside the member's network
namespace under a supervisor; on a VM the same commands become systemd
units (see launch.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import structlog
from grpc_health.v1 import health_pb2, health_pb2_grpc

from apiserver import encryption
from apiserver.storage import limits
from client import tls, tokens
from client.api import Client
from client.config import ClientConfig
from deploy.node import certs, containerd, etcdadmin, join, registry
from deploy.node.launch import Launcher

log = structlog.get_logger(component="bootstrap")

# Seconds a bootstrap waits for a daemon on a real machine; a spec's timeout_scale multiplies it.
BOOTSTRAP_WAIT = 30.0

ADDONS = Path(__file__).resolve().parent.parent / "addons"


def kubelite_argv() -> list[str]:
    """How to run this installation's `kubelite` command."""
    script = Path(sys.executable).with_name("kubelite")
    if script.exists():
        return [str(script)]
    found = shutil.which("kubelite")
    return [found] if found else [sys.executable, "-m", "cli.main"]


@dataclass(frozen=True)
class ControlPlaneSpec:
    address: str  # where nodes reach the apiserver and DNS
    data_dir: Path  # etcd data
    netns: str | None = None
    socket: str = ""  # also serve the API on this unix socket (for the host in the lab)
    api_port: int = 6443
    service_cidr: str = "10.96.0.0/16"
    node_port_range: str = "30000-32767"
    lb_pool: str = ""
    token_port: int = 6444  # TLS without client certificates: join tokens, and users' bearer tokens
    token_file: str = ""  # users' bearer tokens (static token file), optional
    rest_port: int = 6445  # Kubernetes' REST API (kubectl), HTTPS under the same certificate
    signing_duration: str = "8760h"  # lifetime of the certificates nodes are given
    extra_sans: Sequence[str] = ()  # more names and addresses users reach the apiserver by
    dns_port: int = 53
    node_monitor_grace_period: float = 2.0  # node_monitor_grace(timeout_scale)
    log_level: str = "info"
    extra_scheduler_args: Sequence[str] = ()
    timeout_scale: float = 1.0  # slow (emulated) machines: waits this many times longer
    # A highly available control plane: every etcd member (this one included) as (name, address), this
    # member's name, and whether it starts a new etcd cluster or joins a running one. None: one etcd on loopback.
    etcd_members: tuple[tuple[str, str], ...] = ()
    etcd_name: str = "kubelite"
    etcd_state: str = "new"  # or "existing"
    peer_servers: Sequence[str] = ()  # the other control planes' apiservers (host:port), for failover
    daemon_suffix: str = ""  # the lab's names for a second control plane's daemons: etcd-cp2, apiserver-cp2, ...

    @property
    def wait_timeout(self) -> float:
        """Seconds for the apiserver to serve."""
        return BOOTSTRAP_WAIT * self.timeout_scale

    @property
    def server(self) -> str:
        return f"{self.address}:{self.api_port}"

    @property
    def rest_server(self) -> str:
        """kubectl's `server`: the REST API's URL."""
        return f"https://{self.address}:{self.rest_port}"

    @property
    def join_server(self) -> str:
        return f"{self.address}:{self.token_port}"

    @property
    def servers(self) -> str:
        """Every apiserver this machine's scheduler, controller-manager and DNS may use: its own first."""
        return ",".join(dict.fromkeys([self.server, *self.peer_servers]))

    def daemon(self, role: str) -> str:
        return f"{role}-{self.daemon_suffix}" if self.daemon_suffix else role

    @property
    def pki(self) -> certs.Pki:
        return certs.Pki(self.data_dir / "pki")

    def admin(self) -> ClientConfig:
        """The admin's credentials, over the unix socket when there is one."""
        store = self.pki
        return ClientConfig(server=f"unix://{self.socket}" if self.socket else self.server,
                            ca_file=str(store.crt(certs.CA)), cert_file=str(store.crt("admin")),
                            key_file=str(store.key("admin")))

    @property
    def encryption_config(self) -> Path:
        """The Secrets' encryption key (apiserver/encryption.py), made with the cluster."""
        return self.data_dir / "encryption-config.yaml"

    @property
    def audit_log(self) -> Path:
        """The apiserver's audit log (`kubelite logs --component apiserver --audit` reads it)."""
        return self.data_dir / "audit" / "audit.log"


@dataclass(frozen=True)
class NodeSpec:
    name: str
    address: str  # the node's own address, published as InternalIP
    pod_cidr: str
    server: str  # apiserver host:port reachable from the node
    node_dir: Path
    join_server: str = ""  # the apiserver's token port (host:port) for the join; default: server's host, 6444
    join_token_file: str = ""  # the join token (K10...), 0600; not needed once the node holds certificates
    netns: str | None = None  # lab: the node's namespace; VM: None (the host's own)
    cgroup_root: str = ""  # pods' cgroups live under this
    cluster_dns: str = "10.96.0.10"
    kubelet_port: int = 10250
    image_dir: Path = Path("/var/lib/kubelite/images")
    log_level: str = "info"
    extra_kubelet_args: Sequence[str] = field(default_factory=tuple)
    timeout_scale: float = 1.0  # slow (emulated) machines: waits and heartbeats this many times longer
    proxy_mode: str = "iptables"  # or nftables
    ingress: bool = False  # run the ingress controller (nginx) on this node

    @property
    def wait_timeout(self) -> float:
        """Seconds for containerd to serve, and for each CRI call."""
        return BOOTSTRAP_WAIT * self.timeout_scale

    @property
    def pki(self) -> join.NodePki:
        return join.NodePki(self.node_dir / "pki")

    def join_target(self) -> str:
        return self.join_server or f"{self.server.split(',')[0].rpartition(':')[0]}:6444"


def slow_kubelet_args(scale: float) -> list[str]:
    """Kubelet timings for a machine `scale` times slower: CRI calls may take that much
    longer, and heartbeats and relists come less often so they do not crowd out the pods."""
    if scale <= 1:
        return []
    return ["--runtime-request-timeout", f"{BOOTSTRAP_WAIT * scale:g}", "--lease-renew", f"{min(scale, 4.0):g}",
            "--lease-duration", f"{4 * scale:g}", "--pleg-period", f"{min(scale, 2.0):g}"]


# With an etcd cluster, pods outlast a node's brief loss (an election's pause) by 2 s, not 1 s: replacing them all
# at once costs the Service more than waiting for the node to come back.
CLUSTERED_TOLERATION_SECONDS = 2


def node_monitor_grace(scale: float, *, clustered: bool = False) -> float:
    """Seconds without a lease renewal before a node is lost: the controller-manager's 2 s on a real machine
    (four of its kubelet's 0.5 s renewals); on a machine `scale` times slower, the kubelet's lease duration
    there (4 s x scale, renewed every min(scale, 4) s), which VMs under emulation need for margin. With an etcd
    cluster (several control planes) 4 s x scale: an election stops every write, renewals too, for up to 3 s,
    and a shorter grace would lose every node at once."""
    return 2.0 if scale <= 1 and not clustered else 4.0 * scale


def _identity(store: certs.Pki, name: str) -> list[str]:
    """A component's credentials: the cluster CA, its certificate and key, as paths."""
    return ["--certificate-authority", str(store.crt(certs.CA)), "--client-certificate", str(store.crt(name)),
            "--client-key", str(store.key(name))]


ETCD_URL = "https://127.0.0.1:2379"
ETCD_CLIENT_PORT, ETCD_PEER_PORT = 2379, 2380


def render_initial_cluster(members: Sequence[tuple[str, str]]) -> str:
    """etcd's --initial-cluster: `cp=https://10.250.0.2:2380,cp2=https://10.250.0.3:2380,...`."""
    names = [name for name, _ in members]
    if len(set(names)) != len(names):
        raise ValueError(f"etcd member names repeat: {names}")
    return ",".join(f"{name}=https://{address}:{ETCD_PEER_PORT}" for name, address in members)


def render_etcd_servers(members: Sequence[tuple[str, str]], own: str) -> str:
    """The apiserver's --etcd-servers: its own member on loopback first, then every other member, so it moves to
    another member by itself when its own goes away."""
    others = [f"https://{address}:{ETCD_CLIENT_PORT}" for _, address in members if address != own]
    return ",".join([ETCD_URL, *others])


def etcd_argv(spec: ControlPlaneSpec) -> list[str]:
    if spec.etcd_members:
        return clustered_etcd_argv(spec)
    # etcd is reached only by apiservers on the same host: loopback of its namespace, mutual TLS with etcd's CA.
    store = spec.pki
    return ["etcd", "--name", "kubelite", "--data-dir", str(spec.data_dir / "etcd"),
            "--listen-client-urls", ETCD_URL, "--advertise-client-urls", ETCD_URL,
            "--listen-peer-urls", "https://127.0.0.1:2380", "--initial-advertise-peer-urls", "https://127.0.0.1:2380",
            "--initial-cluster", "kubelite=https://127.0.0.1:2380", "--log-level", "warn",
            "--cert-file", str(store.crt("etcd/server")), "--key-file", str(store.key("etcd/server")),
            "--trusted-ca-file", str(store.crt(certs.ETCD_CA)), "--client-cert-auth",
            "--peer-cert-file", str(store.crt("etcd/peer")), "--peer-key-file", str(store.key("etcd/peer")),
            "--peer-trusted-ca-file", str(store.crt(certs.ETCD_CA)), "--peer-client-cert-auth",
            "--quota-backend-bytes", str(4 * 1024**3), "--snapshot-count", "50000", *limits.etcd_flags()]


def clustered_etcd_argv(spec: ControlPlaneSpec) -> list[str]:
    """One member of the control planes' etcd cluster: clients (apiservers) on loopback and on the machine's
    address, peers on its address; mutual TLS with etcd's CA on both links."""
    store = spec.pki
    client_url = f"https://{spec.address}:{ETCD_CLIENT_PORT}"
    peer_url = f"https://{spec.address}:{ETCD_PEER_PORT}"
    return ["etcd", "--name", spec.etcd_name, "--data-dir", str(spec.data_dir / "etcd"),
            "--listen-client-urls", f"{ETCD_URL},{client_url}", "--advertise-client-urls", client_url,
            "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
            "--initial-cluster", render_initial_cluster(spec.etcd_members),
            "--initial-cluster-state", spec.etcd_state, "--log-level", "warn",
            "--cert-file", str(store.crt("etcd/server")), "--key-file", str(store.key("etcd/server")),
            "--trusted-ca-file", str(store.crt(certs.ETCD_CA)), "--client-cert-auth",
            "--peer-cert-file", str(store.crt("etcd/peer")), "--peer-key-file", str(store.key("etcd/peer")),
            "--peer-trusted-ca-file", str(store.crt(certs.ETCD_CA)), "--peer-client-cert-auth",
            "--quota-backend-bytes", str(4 * 1024**3), "--snapshot-count", "50000", *limits.etcd_flags(),
            # A member cut off from the others campaigns only once it could win (etcd 3.5's default, off in 3.4):
            # without it its term climbs meanwhile, and when the cut heals the leader steps down for its sake and
            # writes stop for seconds (a 20 s partition of one control plane: API writable again after 28-29 s).
            "--pre-vote",
            *etcd_timing_flags(spec.timeout_scale)]


def etcd_timing_flags(scale: float) -> list[str]:
    """etcd's heartbeat and election timeout on a machine `scale` times slower. With the defaults (100 ms, 1 s)
    emulated members miss heartbeats and elect a new leader every few seconds, failing writes each time; five
    times longer keeps them steady and still elects within seconds when a member is lost."""
    if scale <= 1:
        return []
    factor = min(scale, 5.0)
    return ["--heartbeat-interval", f"{100 * factor:.0f}", "--election-timeout", f"{1000 * factor:.0f}"]


def etcd_servers(spec: ControlPlaneSpec) -> str:
    return render_etcd_servers(spec.etcd_members, spec.address) if spec.etcd_members else ETCD_URL


def apiserver_argv(spec: ControlPlaneSpec) -> list[str]:
    store = spec.pki
    argv = [*kubelite_argv(), "apiserver", "--etcd-servers", etcd_servers(spec),
            "--etcd-cafile", str(store.crt(certs.ETCD_CA)), "--etcd-certfile", str(store.crt("apiserver-etcd-client")),
            "--etcd-keyfile", str(store.key("apiserver-etcd-client")),
            "--listen", spec.server, "--token-listen", spec.join_server,
            "--rest-listen", f"{spec.address}:{spec.rest_port}",
            "--tls-cert-file", str(store.crt("apiserver")), "--tls-private-key-file", str(store.key("apiserver")),
            "--client-ca-file", str(store.crt(certs.CA)),
            "--kubelet-certificate-authority", str(store.crt(certs.CA)),
            "--kubelet-client-certificate", str(store.crt("apiserver-kubelet-client")),
            "--kubelet-client-key", str(store.key("apiserver-kubelet-client")),
            "--cluster-signing-cert-file", str(store.crt(certs.CA)),
            "--cluster-signing-key-file", str(store.key(certs.CA)),
            "--cluster-signing-duration", spec.signing_duration,
            "--service-account-key-file", str(store.sa_pub),
            "--service-account-signing-key-file", str(store.sa_key),
            "--service-cidr", spec.service_cidr, "--node-port-range", spec.node_port_range,
            "--encryption-provider-config", str(spec.encryption_config), "--log-level", spec.log_level,
            "--audit-log-path", str(spec.audit_log)]
    if spec.socket:
        argv += ["--listen", f"unix://{spec.socket}"]
    if spec.lb_pool:
        argv += ["--lb-pool", spec.lb_pool]
    if spec.token_file:
        argv += ["--token-file", spec.token_file]
    if spec.etcd_members:
        argv += ["--default-toleration-seconds", str(CLUSTERED_TOLERATION_SECONDS)]
    return argv


def leader_timings(scale: float) -> tuple[float, float]:
    """(lease duration, renew interval) for leader election on a machine `scale` times slower:
    with the defaults (4 s, 1 s) an emulated leader misses its renewals and drops its work."""
    return 4.0 * scale, min(scale, 2.0)


def scheduler_config_path(spec: ControlPlaneSpec) -> Path:
    return spec.data_dir / "scheduler.yaml"


def render_scheduler_config(spec: ControlPlaneSpec) -> str:
    """The scheduler's configuration on a slow machine: only its leader election timings."""
    duration, renew = leader_timings(spec.timeout_scale)
    return f"leaseDurationSeconds: {duration:g}\nrenewIntervalSeconds: {renew:g}\n"


def scheduler_argv(spec: ControlPlaneSpec) -> list[str]:
    slow = ["--config", str(scheduler_config_path(spec))] if spec.timeout_scale > 1 else []
    return [*kubelite_argv(), "scheduler", "--server", spec.servers, *_identity(spec.pki, "scheduler"),
            *slow, "--log-level", spec.log_level, *spec.extra_scheduler_args]


def controller_manager_argv(spec: ControlPlaneSpec) -> list[str]:
    slow: list[str] = []
    if spec.timeout_scale > 1:
        duration, renew = leader_timings(spec.timeout_scale)
        slow = ["--leader-elect-lease-duration", f"{duration:g}", "--leader-elect-renew-interval", f"{renew:g}"]
    return [*kubelite_argv(), "controller-manager", "--server", spec.servers,
            *_identity(spec.pki, "controller-manager"),
            "--node-monitor-grace-period", str(spec.node_monitor_grace_period), *slow, "--log-level", spec.log_level]


def registry_argv(spec: ControlPlaneSpec) -> list[str]:
    store = spec.pki
    return [*kubelite_argv(), "registry", "--listen", f"{spec.address}:{registry.PORT}",
            "--tls-cert-file", str(store.crt("registry")), "--tls-private-key-file", str(store.key("registry")),
            "--client-ca-file", str(store.crt(certs.CA)), "--log-level", spec.log_level]


def dns_argv(spec: ControlPlaneSpec) -> list[str]:
    return [*kubelite_argv(), "dns", "--server", spec.servers, *_identity(spec.pki, "dns"),
            "--listen", f"{spec.address}:{spec.dns_port}", "--log-level", spec.log_level]


def kubelet_argv(spec: NodeSpec, cri_socket: str) -> list[str]:
    files = spec.pki
    kubelet, serving, proxy = (join.FILES[f] for f in (join.CLIENT, join.SERVING, join.PROXY))
    return [*kubelite_argv(), "kubelet", "--server", spec.server,
            "--certificate-authority", str(files.ca), "--client-certificate", str(files.crt(kubelet)),
            "--client-key", str(files.key(kubelet)),
            "--tls-cert-file", str(files.crt(serving)), "--tls-private-key-file", str(files.key(serving)),
            "--client-ca-file", str(files.ca),
            "--proxy-client-certificate", str(files.crt(proxy)), "--proxy-client-key", str(files.key(proxy)),
            "--node-name", spec.name, "--runtime", "cri", "--cri-socket", f"unix://{cri_socket}",
            "--node-ip", spec.address, "--pod-cidr", spec.pod_cidr,
            "--listen", f"{spec.address}:{spec.kubelet_port}", "--cluster-dns", spec.cluster_dns,
            "--root-dir", str(spec.node_dir / "kubelet"), "--cgroup-root", spec.cgroup_root or f"/kubelite/{spec.name}",
            "--log-level", spec.log_level, *slow_kubelet_args(spec.timeout_scale), *spec.extra_kubelet_args]


def proxy_argv(spec: NodeSpec) -> list[str]:
    # On a VM the node is the machine itself: the proxy programs its own namespace.
    own = ["--allow-root-netns"] if spec.netns is None else []
    mode = ["--mode", spec.proxy_mode] if spec.proxy_mode != "iptables" else []
    files = spec.pki
    proxy = join.FILES[join.PROXY]
    return [*kubelite_argv(), "proxy", "--server", spec.server, "--certificate-authority", str(files.ca),
            "--client-certificate", str(files.crt(proxy)), "--client-key", str(files.key(proxy)),
            "--node-name", spec.name, *mode, *own, "--log-level", spec.log_level]


def ingress_argv(spec: NodeSpec) -> list[str]:
    # nginx listens on the node's ports 80 and 443; its address goes into the served Ingresses' status.
    # The controller speaks for its node: the node's own client certificate (system:node:<name>), which the
    # kubelet renews; the controller's client takes the new pair at its next connection.
    own = ["--allow-root-netns"] if spec.netns is None else []
    files = spec.pki
    kubelet = join.FILES[join.CLIENT]
    return [*kubelite_argv(), "ingress", "--server", spec.server, "--certificate-authority", str(files.ca),
            "--client-certificate", str(files.crt(kubelet)), "--client-key", str(files.key(kubelet)),
            "--node-name", spec.name, "--state-dir", str(spec.node_dir / "ingress"),
            "--publish-address", spec.address, *own, "--log-level", spec.log_level]


def speaker_argv(spec: NodeSpec) -> list[str]:
    # It answers ARP on the interface holding the node's address (the lab's lab0, a VM's private network).
    # It acts for its node (the Leases it holds name the node), so it authenticates as the node: the kubelet's
    # client certificate, which the kubelet renews in place.
    own = ["--allow-root-netns"] if spec.netns is None else []
    files = spec.pki
    kubelet = join.FILES[join.CLIENT]
    return [*kubelite_argv(), "speaker", "--server", spec.server, "--certificate-authority", str(files.ca),
            "--client-certificate", str(files.crt(kubelet)), "--client-key", str(files.key(kubelet)),
            "--node-name", spec.name, "--node-ip", spec.address, *own, "--log-level", spec.log_level]


async def wait_serving(conn: ClientConfig, *, timeout: float = 30.0) -> None:
    """Wait until the apiserver at `conn.server` reports SERVING on gRPC health (over mutual TLS)."""
    deadline = time.monotonic() + timeout
    last = ""
    target = conn.server
    creds = tls.ClientCredentials(conn)
    async with grpc.aio.secure_channel(target, creds.channel_credentials(),
                                       options=tls.server_name_options(conn)) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            try:
                # A slow (emulated) machine gets a longer wait and longer calls alike.
                resp = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=max(1.0, timeout / 30))
                if resp.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.aio.AioRpcError as e:
                last = e.details() or e.code().name
            await asyncio.sleep(0.1)
    raise TimeoutError(f"apiserver at {target} did not become healthy in {timeout:.0f}s ({last})")


def _names(spec_name: str, role: str, launcher: Launcher) -> str:
    # One lab supervisor runs every node's daemons: their names carry the node.
    return role if launcher.systemd else f"{role}-{spec_name}"


async def bootstrap_control_plane(spec: ControlPlaneSpec, launcher: Launcher) -> None:
    """Make the certificates, start etcd and the apiserver, wait until it serves, then the other daemons."""
    await prepare_control_plane(spec)
    start_etcd(spec, launcher)
    await start_control_plane(spec, launcher)


async def prepare_control_plane(spec: ControlPlaneSpec) -> None:
    """The machine's certificates (signed by the CAs in its pki directory: made here for a first control plane,
    copied there beforehand for another one), the Secrets' key and the scheduler's configuration."""
    spec.data_dir.mkdir(parents=True, exist_ok=True)
    await asyncio.to_thread(certs.ensure_control_plane, spec.pki.dir, addresses=[spec.address],
                            service_ip=certs.first_service_ip(spec.service_cidr), extra_sans=spec.extra_sans)
    encryption.ensure_file(spec.encryption_config)
    if spec.timeout_scale > 1:
        scheduler_config_path(spec).write_text(render_scheduler_config(spec))


def start_etcd(spec: ControlPlaneSpec, launcher: Launcher) -> None:
    """Start the machine's etcd (a new etcd cluster serves once a majority of its members runs)."""
    launcher.start(spec.daemon("etcd"), etcd_argv(spec), netns=spec.netns)


async def start_control_plane(spec: ControlPlaneSpec, launcher: Launcher) -> None:
    """The apiserver, once it serves the scheduler, the controller-manager, DNS and the registry."""
    launcher.start(spec.daemon("apiserver"), apiserver_argv(spec), netns=spec.netns, after=spec.daemon("etcd"))
    await wait_serving(spec.admin(), timeout=spec.wait_timeout)
    after = spec.daemon("apiserver")
    launcher.start(spec.daemon("scheduler"), scheduler_argv(spec), netns=spec.netns, after=after)
    launcher.start(spec.daemon("controller-manager"), controller_manager_argv(spec), netns=spec.netns, after=after)
    launcher.start(spec.daemon("dns"), dns_argv(spec), netns=spec.netns, after=after)
    launcher.start(spec.daemon("registry"), registry_argv(spec), netns=spec.netns)
    log.info("control_plane_started", address=spec.address, etcd_member=spec.etcd_name)


# What every control plane of a cluster shares: the CAs (with their keys), the service account key (a token one
# apiserver signs, every other accepts) and the Secrets' encryption key. Another control plane gets copies of these
# (as kubeadm's manual certificate distribution) and makes its own certificates.
SHARED_FILES = ("pki/ca.crt", "pki/ca.key", "pki/etcd/ca.crt", "pki/etcd/ca.key", "pki/sa.key", "pki/sa.pub",
                "encryption-config.yaml")


def members_from_peer_urls(members: Sequence[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """(name, peer URL) as etcd lists its members -> (name, address) for `etcd_members`."""
    from urllib.parse import urlparse

    out = []
    for name, url in members:
        host = urlparse(url).hostname
        if not host:
            raise ValueError(f"etcd member {name}: cannot read an address from peer URL {url!r}")
        out.append((name, host))
    return tuple(out)


async def join_control_plane(spec: ControlPlaneSpec, launcher: Launcher, *, existing: str) -> ControlPlaneSpec:
    """Add this machine to a running highly available control plane: its certificates (signed by the cluster's CAs,
    which must already be in its data directory), its etcd member added through the etcd API of the control plane
    at `existing` and started with `--initial-cluster-state existing`, then its apiserver and the rest, which also
    know every other apiserver. Returns the spec it ran with."""
    missing = [rel for rel in SHARED_FILES if not (spec.data_dir / rel).exists()]
    if missing:
        raise JoinFailedError(f"a joining control plane needs the cluster's CAs and Secrets key in {spec.data_dir}: "
                              f"copy {', '.join(missing)} from a control plane first")
    await prepare_control_plane(spec)
    store = spec.pki
    files = etcdadmin.EtcdFiles(str(store.crt(certs.ETCD_CA)), str(store.crt("apiserver-etcd-client")),
                                str(store.key("apiserver-etcd-client")))
    # A member added just before by another machine that has not started yet leaves etcd without a majority
    # for a moment, and etcd refuses to change its membership then: try again until the wait runs out.
    deadline = time.monotonic() + spec.wait_timeout
    while True:
        try:
            listed = await etcdadmin.add_member([f"https://{existing}:{ETCD_CLIENT_PORT}"], files,
                                                name=spec.etcd_name, peer_url=f"https://{spec.address}:{ETCD_PEER_PORT}")
            break
        except etcdadmin.EtcdAdminError as e:
            if time.monotonic() > deadline:
                raise JoinFailedError(str(e)) from None
            log.info("etcd_member_add_retried", error=str(e))
            await asyncio.sleep(2.0)
    members = members_from_peer_urls(listed)
    joined = dataclasses.replace(spec, etcd_members=members, etcd_state="existing",
                                 peer_servers=tuple(f"{a}:{spec.api_port}" for _, a in members if a != spec.address))
    start_etcd(joined, launcher)
    await start_control_plane(joined, launcher)
    return joined


def containerd_config(spec: NodeSpec) -> containerd.NodeConfig:
    return containerd.NodeConfig(
        name=spec.name, node_dir=spec.node_dir / "containerd",
        netns=spec.netns or "/proc/1/ns/net", pod_cidr=spec.pod_cidr,
        cgroup_root=spec.cgroup_root or f"/kubelite/{spec.name}", image_dir=spec.image_dir,
        # The registry over mutual TLS: containerd presents the kubelet's certificate (renewed in place).
        registry_mirror=f"https://{spec.server.split(',')[0].rsplit(':', 1)[0]}:{registry.PORT}",
        registry_tls=registry.MirrorTLS(str(spec.pki.ca), str(spec.pki.crt(join.FILES[join.CLIENT])),
                                        str(spec.pki.key(join.FILES[join.CLIENT]))),
        start_timeout=spec.wait_timeout,
    )


class JoinFailedError(Exception):
    """The node could not join; the message is the join's own."""


def read_join_token(path: str) -> tokens.JoinToken:
    if not path:
        raise JoinFailedError("no join token given (--token or --token-file)")
    try:
        return tokens.parse(Path(path).read_text())
    except OSError as e:
        raise JoinFailedError(f"join token file {path}: {e.strerror}") from None
    except tokens.TokenFormatError as e:
        raise JoinFailedError(f"join token file {path}: {e}") from None


async def join_node(spec: NodeSpec) -> None:
    """The node's certificates, from a join with its token: inside the node's network namespace in the lab
    (the same command, `kubelite bootstrap join`, run there), here on a VM. A node that holds its certificates
    (a restart) needs no token."""
    if await asyncio.to_thread(join.already_joined, spec.pki):
        return
    if spec.netns is None:
        token = await asyncio.to_thread(read_join_token, spec.join_token_file)
        try:
            await join.join(spec.join_target(), token, node=spec.name, addresses=[spec.address],
                            directory=spec.pki.dir, timeout=join.TIMEOUT * spec.timeout_scale)
        except join.JoinError as e:
            raise JoinFailedError(str(e)) from None
        return
    argv = ["nsenter", f"--net=/run/netns/{spec.netns}", "--", *kubelite_argv(), "bootstrap", "join",
            "--join-server", spec.join_target(), "--token-file", spec.join_token_file, "--name", spec.name,
            "--address", spec.address, "--pki-dir", str(spec.pki.dir),
            "--timeout", f"{join.TIMEOUT * spec.timeout_scale:g}"]
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    if proc.returncode != 0:
        raise JoinFailedError((err or out).decode(errors="replace").strip() or f"join exited {proc.returncode}")


async def bootstrap_node(spec: NodeSpec, launcher: Launcher) -> None:
    """Join (the node's certificates), containerd with our images, then the kubelet, the proxy, the speaker and
    (if asked) the ingress controller."""
    await join_node(spec)
    cfg = containerd_config(spec)
    tarballs = await asyncio.to_thread(containerd.prepare, cfg)
    # containerd enters the node's namespace itself (its argv), so the launcher runs it as it is: supervised
    # like the other daemons, restarted if it dies.
    launcher.start(_names(spec.name, "containerd", launcher), containerd.argv(cfg))
    await containerd.wait_started(cfg, tarballs)
    launcher.start(_names(spec.name, "kubelet", launcher), kubelet_argv(spec, cfg.address), netns=spec.netns,
                   after="containerd")
    launcher.start(_names(spec.name, "proxy", launcher), proxy_argv(spec), netns=spec.netns)
    launcher.start(_names(spec.name, "speaker", launcher), speaker_argv(spec), netns=spec.netns)
    if spec.ingress:
        launcher.start(_names(spec.name, "ingress", launcher), ingress_argv(spec), netns=spec.netns)
    log.info("node_started", node=spec.name, address=spec.address, pod_cidr=spec.pod_cidr)


async def stop_node(spec_node_dir: Path) -> None:
    """Remove a node's containerd, its pods, mounts and cgroups (daemons are stopped by the launcher)."""
    await containerd.stop_and_clean(spec_node_dir / "containerd", keep_logs=False)


async def apply_addons(conn: ClientConfig) -> None:
    """Objects every cluster has (cluster DNS's Service), from deploy/addons/: the lab's and the VMs'."""
    from api import convert, kinds
    from api.errors import AlreadyExistsError

    files = sorted(ADDONS.glob("*.yaml")) if ADDONS.exists() else []
    async with Client(conn) as client:
        for f in files:
            for doc in convert.load_documents(f.read_text(), str(f)):
                envelope = convert.manifest_to_object(doc.data, where=doc.where)
                with contextlib.suppress(AlreadyExistsError):
                    await client.create(kinds.unwrap(envelope))
