"""Runtime configs from a pod spec: pure functions.

`compute_sandbox_config` gives the sandbox its hostname, DNS (ClusterFirst:
the cluster DNS server, `<ns>.svc.<domain> svc.<domain> <domain>` searches,
ndots:5), host port mappings, identifying labels, log directory and cgroup
parent; `compute_container_config` gives a container its command, expanded
environment, mounts, log path (`<name>/<attempt>.log`) and Linux resources
from its requests and limits; `compute_security` gives it its securityContext as the runtime applies it
(refusing runAsNonRoot on a root image).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from api import quantity, securitycontext
from api.pb import core_pb2
from kubelet import identity
from kubelet.config import KubeletConfig
from kubelet.runtime.interface import (
    ContainerConfig,
    DNSConfig,
    Image,
    LinuxSandboxOptions,
    Mount,
    PodSandboxConfig,
    PortMapping,
    Resources,
    Security,
)

CPU_PERIOD = 100_000  # µs, the CFS default
MIN_SHARES = 2
MIN_QUOTA = 1_000
MAX_HOSTNAME = 63


def pod_log_dir(logs_dir: Path, pod: core_pb2.Pod) -> Path:
    """Where a pod's container logs live: <logs>/<ns>_<name>_<uid>, as /var/log/pods."""
    meta = pod.metadata
    return Path(logs_dir) / f"{meta.namespace}_{meta.name}_{meta.uid}"


def pod_cgroup(config: KubeletConfig, uid: str) -> str:
    return f"{config.cgroup_root.rstrip('/')}/pod{uid}" if config.cgroup_root else ""


def hostname(pod: core_pb2.Pod) -> str:
    name = pod.spec.hostname or pod.metadata.name
    return name[:MAX_HOSTNAME].rstrip("-.")


def compute_dns(pod: core_pb2.Pod, *, cluster_dns: tuple[str, ...], domain: str) -> DNSConfig:
    """The pod's resolv.conf. Default (or no cluster DNS) leaves the runtime's, i.e. the node's."""
    spec = pod.spec
    policy = spec.dns_policy or "ClusterFirst"
    servers: list[str] = []
    searches: list[str] = []
    options: list[str] = []
    cluster = policy == "ClusterFirstWithHostNet" or (policy == "ClusterFirst" and not spec.host_network)
    if cluster and cluster_dns:
        ns = pod.metadata.namespace
        servers = list(cluster_dns)
        searches = [f"{ns}.svc.{domain}", f"svc.{domain}", domain]
        options = ["ndots:5"]
    if spec.HasField("dns_config"):
        cfg = spec.dns_config
        servers += [s for s in cfg.nameservers if s not in servers]
        searches += [s for s in cfg.searches if s not in searches]
        names = {o.split(":", 1)[0] for o in options}
        for o in cfg.options:
            text = f"{o.name}:{o.value}" if o.HasField("value") else o.name
            if o.name in names:
                options = [x for x in options if x.split(":", 1)[0] != o.name]
            options.append(text)
    if policy == "None" or servers or searches or options:
        return DNSConfig(tuple(servers), tuple(searches), tuple(options))
    return DNSConfig()


def compute_sandbox_config(pod: core_pb2.Pod, config: KubeletConfig, *, attempt: int) -> PodSandboxConfig:
    meta, spec = pod.metadata, pod.spec
    ports = tuple(
        PortMapping(container_port=p.container_port, host_port=p.host_port, protocol=p.protocol or "TCP",
                    host_ip=p.host_ip)
        for c in spec.containers for p in c.ports if p.host_port
    )
    return PodSandboxConfig(
        name=meta.name, namespace=meta.namespace, uid=meta.uid, attempt=attempt,
        hostname=hostname(pod),
        log_directory=str(pod_log_dir(config.logs_dir, pod)),
        dns=compute_dns(pod, cluster_dns=config.cluster_dns, domain=config.cluster_domain),
        port_mappings=ports,
        labels=identity.pod_labels(pod, config.node_name),
        annotations=identity.pod_annotations(pod),
        cgroup_parent=pod_cgroup(config, meta.uid),
        linux=LinuxSandboxOptions(host_network=spec.host_network,
                                  share_process_namespace=spec.share_process_namespace,
                                  sysctls={s.name: s.value for s in spec.security_context.sysctls},
                                  host_pid=spec.host_pid, host_ipc=spec.host_ipc,
                                  privileged=securitycontext.is_privileged(spec)),
    )


def compute_resources(container: core_pb2.Container) -> Resources:
    """CFS shares from the cpu request, quota from the cpu limit, and the memory limit."""
    limits, requests = container.resources.limits, container.resources.requests
    shares = MIN_SHARES
    request = requests.get("cpu") or limits.get("cpu")
    if request:
        shares = max(MIN_SHARES, quantity.milli(request) * 1024 // 1000)
    quota = period = 0
    if "cpu" in limits:
        period = CPU_PERIOD
        quota = max(MIN_QUOTA, quantity.milli(limits["cpu"]) * CPU_PERIOD // 1000)
    memory = quantity.value(limits["memory"]) if "memory" in limits else 0
    return Resources(cpu_shares=shares, cpu_quota=quota, cpu_period=period, memory_limit_bytes=memory)


def needs_image_user(pod: core_pb2.Pod, container: core_pb2.Container) -> bool:
    """Whether the container's security settings depend on the image's user (no runAsUser, but runAsNonRoot
    to check or a runAsGroup the runtime takes only with a user)."""
    eff = securitycontext.effective(pod.spec, container)
    return eff.run_as_user is None and (eff.run_as_non_root or eff.run_as_group is not None)


def compute_security(pod: core_pb2.Pod, container: core_pb2.Container, image: Image | None = None) -> Security:
    """The container's CRI security settings; `image` (its user) when `needs_image_user`.

    Raises securitycontext.NonRootError when runAsNonRoot cannot hold (the kubelet's CreateContainerConfigError).
    """
    eff = securitycontext.effective(pod.spec, container)
    uid, username = (image.uid, image.username) if image is not None else (None, "")
    if image is not None and uid is None and not username:
        uid = 0  # an image that names no user runs as root
    securitycontext.verify_run_as_non_root(pod, container, eff, image_uid=uid, image_user=username)
    run_as_user, run_as_username = eff.run_as_user, ""
    if run_as_user is None and eff.run_as_group is not None:
        # The runtime takes a group only with a user: the image's, as Kubernetes' kubelet passes it.
        run_as_user, run_as_username = (uid, "") if uid is not None else (None, username)
    groups = [*eff.supplemental_groups]
    if eff.fs_group is not None and eff.fs_group not in groups:
        groups.append(eff.fs_group)  # as Kubernetes: the fsGroup is one of the container's groups
    return Security(
        privileged=eff.privileged, run_as_user=run_as_user, run_as_username=run_as_username,
        run_as_group=eff.run_as_group, supplemental_groups=tuple(groups),
        add_capabilities=eff.add_capabilities, drop_capabilities=eff.drop_capabilities,
        readonly_rootfs=eff.read_only_root_filesystem, no_new_privs=eff.no_new_privs, seccomp=eff.seccomp,
    )


def compute_container_config(
    pod: core_pb2.Pod,
    container: core_pb2.Container,
    *,
    attempt: int,
    env: Mapping[str, str],
    command: tuple[str, ...],
    args: tuple[str, ...],
    mounts: tuple[Mount, ...],
    node: str,
    security: Security = Security(),
) -> ContainerConfig:
    return ContainerConfig(
        name=container.name, image=container.image, attempt=attempt,
        command=command, args=args, working_dir=container.working_dir, env=dict(env), mounts=mounts,
        log_path=f"{container.name}/{attempt}.log",
        labels=identity.container_labels(pod, container, node),
        annotations=identity.container_annotations(pod, container, attempt),
        resources=compute_resources(container),
        tty=container.tty, stdin=container.stdin, security=security,
    )
