"""The kubelet's configuration: one dataclass the CLI flags and hollow nodes fill in."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_PORT = 10250
DEFAULT_MAX_PODS = 110


@dataclass(frozen=True)
class KubeletConfig:
    """How one kubelet runs.

    capacity_* of 0 mean "measure the machine". cgroup_root "" gives pods no
    cgroup parent of ours (the runtime's default). probe_netns is the network
    namespace probes connect from ("" = the kubelet's own, which is right when
    the kubelet runs in the node's namespace as deployed).
    """

    node_name: str
    node_ip: str = "127.0.0.1"
    pod_cidr: str = ""
    listen: str = ""  # host:port of the Kubelet gRPC service; "" serves nothing
    cluster_dns: tuple[str, ...] = ()
    cluster_domain: str = "cluster.local"
    root_dir: Path = Path("/var/lib/kubelite/kubelet")
    cgroup_root: str = ""
    node_labels: Mapping[str, str] = field(default_factory=dict)
    # Node capacity and what is held back from pods.
    capacity_cpu_milli: int = 0
    capacity_memory: int = 0
    max_pods: int = DEFAULT_MAX_PODS
    reserved_cpu_milli: int = 0
    reserved_memory: int = 0
    # Heartbeats: the Lease is renewed every lease_renew seconds; the Node's
    # status (and its Ready heartbeat) every node_status_period or on change.
    lease_renew: float = 0.5
    lease_duration: int = 4
    node_status_period: float = 10.0
    # Container restart and image pull back-off: initial, doubling to max.
    backoff_initial: float = 10.0
    backoff_max: float = 300.0
    # How often the runtime is relisted for container changes (PLEG), each pod
    # resynced regardless, and orphans looked for.
    pleg_period: float = 1.0
    resync_period: float = 10.0
    housekeeping_period: float = 2.0
    probe_netns: str = ""
    # Sandboxes created at once (0: no limit); containerd slows down past a few in parallel.
    max_parallel_sandboxes: int = 0
    # Events are Kubernetes-like but cost an apiserver write each; hollow nodes skip them.
    events: bool = True
    hollow: bool = False
    # The Kubelet service's TLS: its serving certificate, and the CA the apiserver's client certificate is
    # signed by. Without them it serves plaintext, which only tests ask for (insecure_plaintext).
    serving_cert_file: str = ""
    serving_key_file: str = ""
    client_ca_file: str = ""
    insecure_plaintext: bool = False
    # Certificates kept renewed (kubelet.certificates.Rotated); empty: none.
    rotate: tuple[Any, ...] = ()
    # Local-path volumes: their directories live under local_path_dir (default <root-dir>/local-path), and
    # together they may claim local_path_capacity bytes (0: none reported, the provisioner does not count).
    local_path_dir: Path | None = None
    local_path_capacity: int = 0

    @property
    def local_path_root(self) -> Path:
        return Path(self.local_path_dir) if self.local_path_dir else Path(self.root_dir) / "local-path"

    @property
    def pods_dir(self) -> Path:
        return Path(self.root_dir) / "pods"

    @property
    def logs_dir(self) -> Path:
        return Path(self.root_dir) / "logs"

    @property
    def listen_port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1]) if self.listen else 0
