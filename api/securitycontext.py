"""securityContext: what kubelite enforces, the validation that refuses what it cannot, and the effective settings.

Enforced by the CRI runtime: runAsUser, runAsGroup, runAsNonRoot, supplementalGroups, fsGroup (emptyDir and
local volumes), privileged, capabilities add/drop, readOnlyRootFilesystem, allowPrivilegeEscalation (no_new_privs),
seccompProfile (RuntimeDefault, Unconfined), procMount Default, sysctls (namespaced ones), hostPID and hostIPC.
Refused at validation, naming the field, since nothing here would enforce them: seLinuxOptions (containerd runs
with SELinux off), appArmorProfile (AppArmor off), windowsOptions (Linux containers only), procMount Unmasked
(needs user namespaces) and Localhost seccomp profiles (nodes keep no profile files).

`effective(pod, container)` merges the pod's settings under the container's, as Kubernetes'
DetermineEffectiveSecurityContext does; the kubelet builds its CRI config from it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from api.errors import FieldError
from api.pb import core_pb2

MAX_ID = 2147483647
SECCOMP_TYPES = ("RuntimeDefault", "Unconfined", "Localhost")
PROC_MOUNT_TYPES = ("Default", "Unmasked")
FS_GROUP_CHANGE_POLICIES = ("OnRootMismatch", "Always")
# Linux capabilities by name (capability(7)), without the CAP_ prefix; "ALL" names every one.
CAPABILITIES = frozenset({
    "AUDIT_CONTROL", "AUDIT_READ", "AUDIT_WRITE", "BLOCK_SUSPEND", "BPF", "CHECKPOINT_RESTORE", "CHOWN",
    "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "IPC_LOCK", "IPC_OWNER", "KILL", "LEASE",
    "LINUX_IMMUTABLE", "MAC_ADMIN", "MAC_OVERRIDE", "MKNOD", "NET_ADMIN", "NET_BIND_SERVICE", "NET_BROADCAST",
    "NET_RAW", "PERFMON", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYSLOG", "SYS_ADMIN", "SYS_BOOT",
    "SYS_CHROOT", "SYS_MODULE", "SYS_NICE", "SYS_PACCT", "SYS_PTRACE", "SYS_RAWIO", "SYS_RESOURCE", "SYS_TIME",
    "SYS_TTY_CONFIG", "WAKE_ALARM", "ALL",
})
# Sysctls that live in a pod's own namespaces (what runc can set for one pod), as the kubelet's namespaced list.
_NAMESPACED_SYSCTL = re.compile(r"(kernel\.shm.*|kernel\.msg.*|kernel\.sem|fs\.mqueue\..*|net\..*)")
_SYSCTL_NAME = re.compile(r"([a-z0-9]([-_a-z0-9]*[a-z0-9])?[./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?")
_NOT_ENFORCED = "kubelite does not enforce it"


def capability(name: str) -> str:
    """A capability's name without the CAP_ prefix (Kubernetes accepts both spellings)."""
    return name.upper().removeprefix("CAP_")


def _id(value: int, path: str, errs: list[FieldError]) -> None:
    if not 0 <= value <= MAX_ID:
        errs.append(FieldError(path, "Invalid value", f"must be between 0 and {MAX_ID}, inclusive", value))


def _seccomp(profile: core_pb2.SeccompProfile, path: str, errs: list[FieldError]) -> None:
    if profile.type not in SECCOMP_TYPES:
        errs.append(FieldError(f"{path}.type", "Unsupported value",
                               "supported values: " + ", ".join(f'"{t}"' for t in SECCOMP_TYPES), profile.type))
    if profile.type == "Localhost":
        errs.append(FieldError(f"{path}.type", "Forbidden", f"{_NOT_ENFORCED}: nodes keep no seccomp profile files; "
                                                            f"use RuntimeDefault"))
    elif profile.HasField("localhost_profile"):
        errs.append(FieldError(f"{path}.localhostProfile", "Invalid value", "can only be set when seccomp type is "
                                                                            "Localhost", profile.localhost_profile))


def _refused(msg: core_pb2.SecurityContext | core_pb2.PodSecurityContext, path: str, errs: list[FieldError]) -> None:
    """The settings nothing in kubelite would enforce."""
    if msg.HasField("se_linux_options") and msg.se_linux_options.ListFields():
        errs.append(FieldError(f"{path}.seLinuxOptions", "Forbidden",
                               f"{_NOT_ENFORCED}: containerd runs with SELinux off; leave it unset"))
    if msg.HasField("app_armor_profile"):
        errs.append(FieldError(f"{path}.appArmorProfile", "Forbidden",
                               f"{_NOT_ENFORCED}: containerd runs with AppArmor off; leave it unset"))
    if msg.HasField("windows_options") and msg.windows_options.ListFields():
        errs.append(FieldError(f"{path}.windowsOptions", "Forbidden",
                               f"{_NOT_ENFORCED}: kubelite runs Linux containers only; leave it unset"))


def validate_container(sc: core_pb2.SecurityContext, path: str, errs: list[FieldError]) -> None:
    """A container's securityContext (`path` names it)."""
    _refused(sc, path, errs)
    for attr, json in (("run_as_user", "runAsUser"), ("run_as_group", "runAsGroup")):
        if sc.HasField(attr):
            _id(getattr(sc, attr), f"{path}.{json}", errs)
    for attr, json in (("add", "add"), ("drop", "drop")):
        for i, name in enumerate(getattr(sc.capabilities, attr)):
            if capability(name) not in CAPABILITIES:
                errs.append(FieldError(f"{path}.capabilities.{json}[{i}]", "Unsupported value",
                                       "not a Linux capability (see capabilities(7)), or ALL", name))
    if sc.HasField("proc_mount"):
        if sc.proc_mount not in PROC_MOUNT_TYPES:
            errs.append(FieldError(f"{path}.procMount", "Unsupported value",
                                   'supported values: "Default", "Unmasked"', sc.proc_mount))
        elif sc.proc_mount == "Unmasked":
            errs.append(FieldError(f"{path}.procMount", "Forbidden",
                                   f"{_NOT_ENFORCED}: an unmasked /proc needs a user namespace (hostUsers: false), "
                                   f"which kubelite does not run"))
    if sc.HasField("seccomp_profile"):
        _seccomp(sc.seccomp_profile, f"{path}.seccompProfile", errs)
    if sc.HasField("allow_privilege_escalation") and not sc.allow_privilege_escalation:
        if sc.privileged:
            errs.append(FieldError(path, "Invalid value", "cannot set `allowPrivilegeEscalation` to false and "
                                                          "`privileged` to true"))
        if "SYS_ADMIN" in {capability(c) for c in sc.capabilities.add}:
            errs.append(FieldError(path, "Invalid value", "cannot set `allowPrivilegeEscalation` to false and "
                                                          "`capabilities.Add` CAP_SYS_ADMIN"))


def validate_pod(spec: core_pb2.PodSpec, path: str, errs: list[FieldError]) -> None:
    """The pod's securityContext (at `path`.securityContext) and what depends on the pod's host namespaces."""
    sc = spec.security_context
    p = f"{path}.securityContext"
    _refused(sc, p, errs)
    for attr, json in (("run_as_user", "runAsUser"), ("run_as_group", "runAsGroup"), ("fs_group", "fsGroup")):
        if sc.HasField(attr):
            _id(getattr(sc, attr), f"{p}.{json}", errs)
    for i, g in enumerate(sc.supplemental_groups):
        _id(g, f"{p}.supplementalGroups[{i}]", errs)
    if sc.HasField("fs_group_change_policy") and sc.fs_group_change_policy not in FS_GROUP_CHANGE_POLICIES:
        errs.append(FieldError(f"{p}.fsGroupChangePolicy", "Unsupported value",
                               'supported values: "OnRootMismatch", "Always"', sc.fs_group_change_policy))
    if sc.HasField("seccomp_profile"):
        _seccomp(sc.seccomp_profile, f"{p}.seccompProfile", errs)
    seen: set[str] = set()
    for i, s in enumerate(sc.sysctls):
        sp = f"{p}.sysctls[{i}].name"
        if not s.name:
            errs.append(FieldError(sp, "Required value"))
        elif not _SYSCTL_NAME.fullmatch(s.name) or len(s.name) > 253:
            errs.append(FieldError(sp, "Invalid value", "must have at most 253 characters and match the regex "
                                                        + _SYSCTL_NAME.pattern, s.name))
        elif s.name in seen:
            errs.append(FieldError(sp, "Duplicate value", "", s.name))
        elif not _NAMESPACED_SYSCTL.fullmatch(s.name.replace("/", ".")):
            errs.append(FieldError(sp, "Forbidden", "not a namespaced sysctl: it would change the whole node",
                                   s.name))
        elif spec.host_network and s.name.replace("/", ".").startswith("net."):
            errs.append(FieldError(sp, "Forbidden", "a net.* sysctl is not allowed with hostNetwork: true",
                                   s.name))
        seen.add(s.name)
    for attr, json in (("init_containers", "initContainers"), ("containers", "containers")):
        for i, c in enumerate(getattr(spec, attr)):
            if c.HasField("security_context"):
                validate_container(c.security_context, f"{path}.{json}[{i}].securityContext", errs)


# ---------------------------------------------------------------- the effective settings


@dataclass(frozen=True)
class Effective:
    """One container's security settings, the pod's merged under the container's."""

    run_as_user: int | None = None
    run_as_group: int | None = None
    run_as_non_root: bool = False
    supplemental_groups: tuple[int, ...] = ()
    fs_group: int | None = None
    privileged: bool = False
    add_capabilities: tuple[str, ...] = ()
    drop_capabilities: tuple[str, ...] = ()
    read_only_root_filesystem: bool = False
    no_new_privs: bool = False
    seccomp: str = ""  # "" (the runtime's default: unconfined, as Kubernetes'), RuntimeDefault or Unconfined


def effective(spec: core_pb2.PodSpec, container: core_pb2.Container) -> Effective:
    """The container's settings over the pod's (Kubernetes' DetermineEffectiveSecurityContext)."""
    pod, c = spec.security_context, container.security_context

    def pick(attr: str) -> object | None:
        if c.HasField(attr):
            return getattr(c, attr)
        if pod.HasField(attr):
            return getattr(pod, attr)
        return None

    profile = c.seccomp_profile if c.HasField("seccomp_profile") else (
        pod.seccomp_profile if pod.HasField("seccomp_profile") else None)
    privileged = c.privileged if c.HasField("privileged") else False
    # As Kubernetes' AddNoNewPrivileges: only an explicit false sets no_new_privs; privileged never has it.
    no_new_privs = c.HasField("allow_privilege_escalation") and not c.allow_privilege_escalation and not privileged
    return Effective(
        run_as_user=pick("run_as_user"),  # type: ignore[arg-type]
        run_as_group=pick("run_as_group"),  # type: ignore[arg-type]
        run_as_non_root=bool(pick("run_as_non_root")),
        supplemental_groups=tuple(pod.supplemental_groups),
        fs_group=pod.fs_group if pod.HasField("fs_group") else None,
        privileged=privileged,
        add_capabilities=tuple(capability(x) for x in c.capabilities.add),
        drop_capabilities=tuple(capability(x) for x in c.capabilities.drop),
        read_only_root_filesystem=c.read_only_root_filesystem if c.HasField("read_only_root_filesystem") else False,
        no_new_privs=no_new_privs,
        seccomp=profile.type if profile is not None else "",
    )


def is_privileged(spec: core_pb2.PodSpec) -> bool:
    """Whether any container of the pod is privileged (its sandbox must be too)."""
    return any(c.security_context.privileged for c in (*spec.init_containers, *spec.containers))


class NonRootError(ValueError):
    """runAsNonRoot cannot be honoured; the message is Kubernetes' (the kubelet's CreateContainerConfigError)."""


def verify_run_as_non_root(pod: core_pb2.Pod, container: core_pb2.Container, eff: Effective, *,
                           image_uid: int | None, image_user: str) -> None:
    """Refuse a container that must not run as root but would (Kubernetes' verifyRunAsNonRoot)."""
    if not eff.run_as_non_root:
        return
    who = f'(pod: "{pod.metadata.name}_{pod.metadata.namespace}({pod.metadata.uid})", container: {container.name})'
    if eff.run_as_user is not None:
        if eff.run_as_user == 0:
            raise NonRootError(f"container's runAsUser breaks non-root policy {who}")
        return
    if image_uid is not None:
        if image_uid == 0:
            raise NonRootError(f"container has runAsNonRoot and image will run as root {who}")
        return
    if image_user:
        raise NonRootError(f"container has runAsNonRoot and image has non-numeric user ({image_user}), cannot verify "
                           f"user is non-root {who}")
    # No user in the image at all: it runs as root.
    raise NonRootError(f"container has runAsNonRoot and image will run as root {who}")
