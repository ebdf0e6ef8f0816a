"""Converting our configs to CRI messages."""

from __future__ import annotations

from kubelet.runtime.cri import container_config_pb, sandbox_config_pb
from kubelet.runtime.criapi import api_pb2 as api
from kubelet.runtime.interface import (
    ContainerConfig,
    DNSConfig,
    LinuxSandboxOptions,
    Mount,
    PodSandboxConfig,
    PortMapping,
    Resources,
    Security,
)

POD = PodSandboxConfig(
    name="web", namespace="prod", uid="u-1", attempt=2, hostname="web-0", log_directory="/var/log/pods/x",
    dns=DNSConfig(servers=("10.96.0.10",), searches=("prod.svc.cluster.local",), options=("ndots:5",)),
    port_mappings=(PortMapping(8080, 30080, "udp"),), labels={"app": "web"}, annotations={"a": "b"},
    cgroup_parent="/kubelite/n1/podu-1", linux=LinuxSandboxOptions(sysctls={"net.ipv4.ip_forward": "1"}),
)


def test_sandbox_config() -> None:
    """Pod metadata, DNS, ports, labels and the cgroup parent map onto CRI's fields; pods get
    their own network and a PID namespace per container, as the kubelet asks for."""
    pb = sandbox_config_pb(POD)
    assert (pb.metadata.name, pb.metadata.namespace, pb.metadata.uid, pb.metadata.attempt) == ("web", "prod", "u-1", 2)
    assert (pb.hostname, pb.log_directory) == ("web-0", "/var/log/pods/x")
    assert list(pb.dns_config.options) == ["ndots:5"]
    assert (pb.port_mappings[0].protocol, pb.port_mappings[0].host_port) == (api.UDP, 30080)
    assert pb.linux.cgroup_parent == "/kubelite/n1/podu-1"
    ns = pb.linux.security_context.namespace_options
    assert (ns.network, ns.pid, ns.ipc) == (api.POD, api.CONTAINER, api.POD)
    assert dict(pb.linux.sysctls) == {"net.ipv4.ip_forward": "1"}


def test_host_network_and_shared_pid() -> None:
    """hostNetwork maps to the NODE network namespace, shareProcessNamespace to a POD PID namespace."""
    pod = PodSandboxConfig(name="h", namespace="d", uid="u",
                           linux=LinuxSandboxOptions(host_network=True, share_process_namespace=True))
    ns = sandbox_config_pb(pod).linux.security_context.namespace_options
    assert (ns.network, ns.pid) == (api.NODE, api.POD)


def test_container_config() -> None:
    """Command, args, env (bytes on the wire), mounts, limits and the log path reach CRI unchanged."""
    c = ContainerConfig(
        name="app", image="localhost:5000/kubelite/busybox:1.35", attempt=1, command=("sh", "-c"), args=("echo hi",),
        working_dir="/w", env={"A": "1", "B": "é"}, mounts=(Mount("/host", "/data", readonly=True),),
        log_path="app/1.log", resources=Resources(cpu_shares=512, cpu_quota=50000, cpu_period=100000,
                                                  memory_limit_bytes=64 << 20),
    )
    pb = container_config_pb(c, POD)
    assert (pb.metadata.name, pb.metadata.attempt, pb.image.image) == ("app", 1, c.image)
    assert (list(pb.command), list(pb.args), pb.working_dir) == (["sh", "-c"], ["echo hi"], "/w")
    assert [(kv.key, kv.value) for kv in pb.envs] == [("A", b"1"), ("B", "é".encode())]
    assert (pb.mounts[0].host_path, pb.mounts[0].container_path, pb.mounts[0].readonly) == ("/host", "/data", True)
    r = pb.linux.resources
    assert (r.cpu_shares, r.cpu_quota, r.cpu_period, r.memory_limit_in_bytes) == (512, 50000, 100000, 64 << 20)
    assert pb.linux.security_context.namespace_options.pid == api.CONTAINER
    assert pb.log_path == "app/1.log"


def test_host_pid_ipc_and_privileged_sandbox() -> None:
    """hostPID and hostIPC map to the NODE namespaces; a pod with a privileged container gets a privileged sandbox."""
    pod = PodSandboxConfig(name="agent", namespace="kube-system", uid="u",
                           linux=LinuxSandboxOptions(host_pid=True, host_ipc=True, privileged=True))
    pb = sandbox_config_pb(pod)
    ns = pb.linux.security_context.namespace_options
    assert (ns.network, ns.pid, ns.ipc) == (api.POD, api.NODE, api.NODE)
    assert pb.linux.security_context.privileged


def test_container_security_context() -> None:
    """Users, groups, capabilities, no_new_privs, seccomp and the read-only root reach CRI's fields; unset
    values stay unset (the image's user, no seccomp profile)."""
    sec = Security(run_as_user=1000, run_as_group=3000, supplemental_groups=(2000, 4000),
                   add_capabilities=("NET_BIND_SERVICE",), drop_capabilities=("ALL",), readonly_rootfs=True,
                   no_new_privs=True, seccomp="RuntimeDefault")
    sc = container_config_pb(ContainerConfig(name="c", image="i", security=sec), POD).linux.security_context
    assert (sc.run_as_user.value, sc.run_as_group.value, list(sc.supplemental_groups)) == (1000, 3000, [2000, 4000])
    assert (list(sc.capabilities.add_capabilities), list(sc.capabilities.drop_capabilities)) == \
        (["NET_BIND_SERVICE"], ["ALL"])
    assert (sc.readonly_rootfs, sc.no_new_privs, sc.privileged) == (True, True, False)
    assert sc.HasField("seccomp") and sc.seccomp.profile_type == api.SecurityProfile.RuntimeDefault
    plain = container_config_pb(ContainerConfig(name="c", image="i"), POD).linux.security_context
    assert not plain.HasField("run_as_user") and not plain.HasField("run_as_group")
    assert not plain.HasField("seccomp") and not plain.HasField("capabilities")
    root = container_config_pb(ContainerConfig(name="c", image="i", security=Security(run_as_user=0)),
                               POD).linux.security_context
    assert root.HasField("run_as_user") and root.run_as_user.value == 0
