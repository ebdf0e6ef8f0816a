"""Pod Security admission: the Pod Security Standards (privileged, baseline, restricted) per namespace.

The checks, their order, reasons and details are Kubernetes' (pod-security-admission's policy/check_*.go, as of
its latest version); `evaluate` is pure and table-tested. A namespace chooses its levels with the labels
`pod-security.kubernetes.io/enforce|warn|audit` (and `-version`: `latest` or `v1.N`; kubelite evaluates every
version with the latest checks). Without a label the enforce level is `baseline`, stricter than Kubernetes'
default; `kube-system` is `privileged`.

Pods that violate the enforce level are refused; those that violate the warn level are admitted with a warning;
those that violate the audit level are admitted and logged (`pod_security_audit`). Workloads (their pod
templates) are never refused here, as in Kubernetes: their violations of the enforce and warn levels come back
as warnings, and the pods they make are refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import structlog
from google.protobuf.message import Message

from api import kinds
from api.errors import FieldError, ForbiddenError, InvalidError
from api.memo import Memo
from api.pb import core_pb2, meta_pb2
from apiserver import warning
from apiserver.cache import object_key

log = structlog.get_logger(component="apiserver")

PRIVILEGED, BASELINE, RESTRICTED = "privileged", "baseline", "restricted"
LEVELS = (PRIVILEGED, BASELINE, RESTRICTED)
LATEST = "latest"
LABEL_PREFIX = "pod-security.kubernetes.io/"
MODES = ("enforce", "warn", "audit")
DEFAULT_ENFORCE = BASELINE
# Namespaces whose pods may be anything, whatever their labels say: the system's own.
PRIVILEGED_NAMESPACES = frozenset({"kube-system"})
_VERSION = re.compile(r"v1\.(0|[1-9][0-9]*)")


# ---------------------------------------------------------------- the checks


@dataclass(frozen=True)
class Violation:
    reason: str
    detail: str

    def __str__(self) -> str:
        return f"{self.reason} ({self.detail})" if self.detail else self.reason


def _pluralize(one: str, many: str, n: int) -> str:
    return one if n == 1 else many


def _quote(values: list[str] | tuple[str, ...] | set[str]) -> str:
    return ", ".join(f'"{v}"' for v in values)


def _containers(spec: core_pb2.PodSpec) -> Iterator[core_pb2.Container]:
    yield from spec.init_containers
    yield from spec.containers


def _setters(pod_bad: bool, containers: list[str]) -> list[str]:
    out = ["pod"] if pod_bad else []
    if containers:
        out.append(f"{_pluralize('container', 'containers', len(containers))} {_quote(containers)}")
    return out


def _sc(c: core_pb2.Container) -> core_pb2.SecurityContext | None:
    return c.security_context if c.HasField("security_context") else None


def _psc(spec: core_pb2.PodSpec) -> core_pb2.PodSecurityContext | None:
    return spec.security_context if spec.HasField("security_context") else None


Check = Callable[[meta_pb2.ObjectMeta, core_pb2.PodSpec], Violation | None]

# -- baseline

_BASELINE_CAPABILITIES = frozenset({"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                                    "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"})
_SAFE_SYSCTLS = frozenset({
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range",
    "net.ipv4.ip_unprivileged_port_start", "net.ipv4.ip_local_reserved_ports", "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem",
})
_SELINUX_TYPES = frozenset({"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"})
_APPARMOR_ANNOTATION = "container.apparmor.security.beta.kubernetes.io/"
_SECCOMP_POD_ANNOTATION = "seccomp.security.alpha.kubernetes.io/pod"
_SECCOMP_CONTAINER_ANNOTATION = "container.seccomp.security.alpha.kubernetes.io/"


def check_app_armor(meta: meta_pb2.ObjectMeta, spec: core_pb2.PodSpec) -> Violation | None:
    bad = sorted(f'{k}="{v}"' for k, v in meta.annotations.items()
                 if k.startswith(_APPARMOR_ANNOTATION) and v and v != "runtime/default"
                 and not v.startswith("localhost/"))
    profiles = []
    psc = _psc(spec)
    if psc is not None and psc.HasField("app_armor_profile") and psc.app_armor_profile.type == "Unconfined":
        profiles.append("pod")
    containers = [c.name for c in _containers(spec) if (sc := _sc(c)) is not None
                  and sc.HasField("app_armor_profile") and sc.app_armor_profile.type == "Unconfined"]
    setters = _setters(bool(profiles), containers)
    if setters:
        bad.append(f'{" and ".join(setters)} must not set securityContext.appArmorProfile.type to "Unconfined"')
    if bad:
        return Violation(_pluralize("forbidden AppArmor profile", "forbidden AppArmor profiles", len(bad)),
                         ", ".join(bad))
    return None


def check_capabilities_baseline(meta: meta_pb2.ObjectMeta, spec: core_pb2.PodSpec) -> Violation | None:
    bad, caps = [], set()
    for c in _containers(spec):
        sc = _sc(c)
        if sc is None:
            continue
        added = [a for a in sc.capabilities.add if a not in _BASELINE_CAPABILITIES]
        if added:
            bad.append(c.name)
            caps.update(added)
    if bad:
        return Violation("non-default capabilities",
                         f"{_pluralize('container', 'containers', len(bad))} {_quote(bad)} must not include "
                         f"{_quote(sorted(caps))} in securityContext.capabilities.add")
    return None


def check_host_namespaces(meta: meta_pb2.ObjectMeta, spec: core_pb2.PodSpec) -> Violation | None:
    used = [name for name, on in (("hostIPC", spec.host_ipc), ("hostNetwork", spec.host_network),
                                  ("hostPID", spec.host_pid)) if on]
    return Violation("host namespaces", ", ".join(used)) if used else None


def check_host_path_volumes(meta: meta_pb2.ObjectMeta, spec: core_pb2.PodSpec) -> Violation | None:
    names = [v.name for v in spec.volumes if v.HasField("host_path")]
    if names:
        return Violation("hostPath volumes", f"{_pluralize('volume', 'volumes', len(names))} {_quote(names)}")
    return None


def check_host_ports(meta: meta_pb2.ObjectMeta, spec: core_pb2.PodSpec) -> Violation | None:
    bad, ports = [], set()
    for c in _containers(spec):
        used = [p.host_port for p in c.ports if p.host_port]
        if used:
            bad.append(c.name)
            ports.update(used)
    if bad:
        listed = ", ".join(str(p) for p in sorted(ports, key=str))
        return Violation("hostPort", f"{_pluralize('container', 'containers', len(bad))} {_quote(bad)} "
                                     f"{_pluralize('uses', 'use', len(bad))} "
                                     f"{_pluralize('hostPort', 'hostPorts', len(ports))} {listed}")
    return None


def check_host_probes(meta: meta_pb2.ObjectMeta, spec: core_pb2.PodSpec) -> Violation | None:
    bad: list[str] = []
    hosts: set[str] = set()
    for c in _containers(spec):
        found = set()
        for probe in (c.liveness_probe, c.readiness_probe, c.startup_probe, c.lifecycle.post_start,
                      c.lifecycle.pre_stop):
            found.update(h for h in (probe.http_get.host, probe.tcp_socket.host) if h)
        if found:
            bad.append(c.name)
            hosts |= found
    if bad:
        return Violation("probe or lifecycle host",
                         f"{_pluralize('container', 'containers', len(bad))} {_quote(bad)} "
                         f"{_pluralize('uses', 'use', len(bad))} "
                         f"{_pluralize('probe or lifecycle host', 'probe or lifecycle hosts', len(hosts))} "
                         f"{_quote(sorted(hosts))}")
    return None


def check_privileged(meta: meta_pb2.ObjectMeta, spec: core_pb2.PodSpec) -> Violation | None:
    bad = [c.name for c in _containers(spec) if (sc := _sc(c)) is not None and sc.privileged]
    if bad:
        return Violation("privileged", f"{_pluralize('container', 'containers', len(bad))} {_quote(bad)} must not "
                                       f"set securityContext.privileged=true")
    return None


def check_proc_mount(meta: meta_pb2.ObjectMeta, spec: core_pb2.PodSpec) -> Violation | None:
    bad, kinds_ = [], set()
    for c in _containers(spec):
        sc = _sc(c)
        if sc is not None and sc.HasField("proc_mount") and sc.proc_mount != "Default":
            bad.append(c.name)
            kinds_.add(sc.proc_mount)
    if bad:
        return Violation("procMount", f"{_pluralize('container', 'containers', len(bad))} {_quote(bad)} must not "
                                      f"set securityContext.procMount to {_quote(sorted(kinds_))}")
    return None


def _valid_seccomp(t: str) -> bool:
    return t in ("RuntimeDefault", "Localhost")


def check_seccomp_baseline(meta: meta_pb2.ObjectMeta, spec: core_pb2.PodSpec) -> Violation | None:
    values: set[str] = set()
    psc = _psc(spec)
    pod_bad = psc is not None and psc.HasField("seccomp_profile") and not _valid_seccomp(psc.seccomp_profile.type)
    if pod_bad:
        values.add(psc.seccomp_profile.type)  # type: ignore[union-attr]
    bad = []
    for c in _containers(spec):
        sc = _sc(c)
        if sc is not None and sc.HasField("seccomp_profile") and not _valid_seccomp(sc.seccomp_profile.type):
            bad.append(c.name)
            values.add(sc.seccomp_profile.type)
    setters = _setters(pod_bad, bad)
    if setters:
        return Violation("seccompProfile", f"{' and '.join(setters)} must not set securityContext.seccompProfile.type "
                                           f"to {_quote(sorted(values))}")
    annotations = sorted(f'{k}="{v}"' for k, v in meta.annotations.items()
                         if (k == _SECCOMP_POD_ANNOTATION or k.startswith(_SECCOMP_CONTAINER_ANNOTATION))
                         and v not in ("runtime/default", "docker/default") and not v.startswith("localhost/"))
    if annotations:
        return Violation("seccompProfile", f"forbidden {_pluralize('annotation', 'annotations', len(annotations))} "
                                           f"{', '.join(annotations)}")
    return None


def check_se_linux(meta: meta_pb2.ObjectMeta, spec: core_pb2.PodSpec) -> Violation | None:
    types: set[str] = set()
    flags = {"user": False, "role": False}

    def valid(opts: core_pb2.SELinuxOptions) -> bool:
        ok = True
        if opts.type not in _SELINUX_TYPES:
            ok = False
            types.add(opts.type)
        for attr in ("user", "role"):
            if getattr(opts, attr):
                ok = False
                flags[attr] = True
        return ok

    psc = _psc(spec)
    pod_bad = psc is not None and psc.HasField("se_linux_options") and not valid(psc.se_linux_options)
    bad = [c.name for c in _containers(spec)
           if (sc := _sc(c)) is not None and sc.HasField("se_linux_options") and not valid(sc.se_linux_options)]
    setters = _setters(pod_bad, bad)
    if not setters:
        return None
    data = []
    if types:
        data.append(f"{_pluralize('type', 'types', len(types))} {_quote(sorted(types))}")
    data += [f"{attr} may not be set" for attr in ("user", "role") if flags[attr]]
    return Violation("seLinuxOptions", f"{' and '.join(setters)} set forbidden securityContext.seLinuxOptions: "
                                       f"{'; '.join(data)}")


def check_sysctls(meta: meta_pb2.ObjectMeta, spec: core_pb2.PodSpec) -> Violation | None:
    psc = _psc(spec)
    bad = [s.name for s in psc.sysctls if s.name not in _SAFE_SYSCTLS] if psc is not None else []
    return Violation("forbidden sysctls", ", ".join(bad)) if bad else None


def check_windows_host_process(meta: meta_pb2.ObjectMeta, spec: core_pb2.PodSpec) -> Violation | None:
    psc = _psc(spec)
    pod_bad = psc is not None and psc.windows_options.host_process
    bad = [c.name for c in _containers(spec) if (sc := _sc(c)) is not None and sc.windows_options.host_process]
    setters = _setters(pod_bad, bad)
    if setters:
        return Violation("hostProcess", f"{' and '.join(setters)} must not set "
                                        f"securityContext.windowsOptions.hostProcess=true")
    return None


# -- restricted

_ALLOWED_VOLUMES = ("config_map", "downward_api", "empty_dir", "persistent_volume_claim", "projected", "secret")


def check_allow_privilege_escalation(meta: meta_pb2.ObjectMeta, spec: core_pb2.PodSpec) -> Violation | None:
    bad = [c.name for c in _containers(spec) if (sc := _sc(c)) is None or not sc.HasField("allow_privilege_escalation")
           or sc.allow_privilege_escalation]
    if bad:
        return Violation("allowPrivilegeEscalation != false",
                         f"{_pluralize('container', 'containers', len(bad))} {_quote(bad)} must set "
                         f"securityContext.allowPrivilegeEscalation=false")
    return None


def check_capabilities_restricted(meta: meta_pb2.ObjectMeta, spec: core_pb2.PodSpec) -> Violation | None:
    missing, adding, caps = [], [], set()
    for c in _containers(spec):
        sc = _sc(c)
        if sc is None or not sc.HasField("capabilities"):
            missing.append(c.name)
            continue
        if "ALL" not in sc.capabilities.drop:
            missing.append(c.name)
        extra = [a for a in sc.capabilities.add if a != "NET_BIND_SERVICE"]
        if extra:
            adding.append(c.name)
            caps.update(extra)
    details = []
    if missing:
        details.append(f"{_pluralize('container', 'containers', len(missing))} {_quote(missing)} must set "
                       f'securityContext.capabilities.drop=["ALL"]')
    if adding:
        details.append(f"{_pluralize('container', 'containers', len(adding))} {_quote(adding)} must not include "
                       f"{_quote(sorted(caps))} in securityContext.capabilities.add")
    return Violation("unrestricted capabilities", "; ".join(details)) if details else None


def check_restricted_volumes(meta: meta_pb2.ObjectMeta, spec: core_pb2.PodSpec) -> Violation | None:
    bad, types = [], set()
    for v in spec.volumes:
        if any(v.HasField(a) for a in _ALLOWED_VOLUMES):
            continue
        bad.append(v.name)
        types.add("hostPath" if v.HasField("host_path") else "unknown")
    if bad:
        return Violation("restricted volume types",
                         f"{_pluralize('volume', 'volumes', len(bad))} {_quote(bad)} "
                         f"{_pluralize('uses', 'use', len(bad))} "
                         f"{_pluralize('restricted volume type', 'restricted volume types', len(types))} "
                         f"{_quote(sorted(types))}")
    return None


def check_run_as_non_root(meta: meta_pb2.ObjectMeta, spec: core_pb2.PodSpec) -> Violation | None:
    psc = _psc(spec)
    pod_set = psc is not None and psc.HasField("run_as_non_root")
    pod_bad = pod_set and not psc.run_as_non_root  # type: ignore[union-attr]
    pod_true = pod_set and psc.run_as_non_root  # type: ignore[union-attr]
    explicit, implicit = [], []
    for c in _containers(spec):
        sc = _sc(c)
        if sc is not None and sc.HasField("run_as_non_root"):
            if not sc.run_as_non_root:
                explicit.append(c.name)
        elif not pod_true:
            implicit.append(c.name)
    setters = _setters(pod_bad, explicit)
    if setters:
        return Violation("runAsNonRoot != true", f"{' and '.join(setters)} must not set "
                                                 f"securityContext.runAsNonRoot=false")
    if implicit:
        return Violation("runAsNonRoot != true",
                         f"pod or {_pluralize('container', 'containers', len(implicit))} {_quote(implicit)} must set "
                         f"securityContext.runAsNonRoot=true")
    return None


def check_run_as_user(meta: meta_pb2.ObjectMeta, spec: core_pb2.PodSpec) -> Violation | None:
    psc = _psc(spec)
    pod_bad = psc is not None and psc.HasField("run_as_user") and psc.run_as_user == 0
    bad = [c.name for c in _containers(spec)
           if (sc := _sc(c)) is not None and sc.HasField("run_as_user") and sc.run_as_user == 0]
    setters = _setters(pod_bad, bad)
    if setters:
        return Violation("runAsUser=0", f"{' and '.join(setters)} must not set runAsUser=0")
    return None


def check_seccomp_restricted(meta: meta_pb2.ObjectMeta, spec: core_pb2.PodSpec) -> Violation | None:
    values: set[str] = set()
    psc = _psc(spec)
    pod_set = psc is not None and psc.HasField("seccomp_profile")
    pod_bad = pod_set and not _valid_seccomp(psc.seccomp_profile.type)  # type: ignore[union-attr]
    if pod_bad:
        values.add(psc.seccomp_profile.type)  # type: ignore[union-attr]
    pod_good = pod_set and not pod_bad
    explicit, implicit = [], []
    for c in _containers(spec):
        sc = _sc(c)
        if sc is not None and sc.HasField("seccomp_profile"):
            if not _valid_seccomp(sc.seccomp_profile.type):
                explicit.append(c.name)
                values.add(sc.seccomp_profile.type)
        elif not pod_good:
            implicit.append(c.name)
    setters = _setters(pod_bad, explicit)
    if setters:
        return Violation("seccompProfile", f"{' and '.join(setters)} must not set securityContext.seccompProfile.type "
                                           f"to {_quote(sorted(values))}")
    if implicit:
        return Violation("seccompProfile",
                         f"pod or {_pluralize('container', 'containers', len(implicit))} {_quote(implicit)} must set "
                         f'securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost"')
    return None


# Kubernetes' check IDs, its order (sorted by ID), and which baseline checks a restricted one replaces.
BASELINE_CHECKS: dict[str, Check] = {
    "appArmorProfile": check_app_armor,
    "capabilities_baseline": check_capabilities_baseline,
    "hostNamespaces": check_host_namespaces,
    "hostPathVolumes": check_host_path_volumes,
    "hostPorts": check_host_ports,
    "hostProbesAndHostLifecycle": check_host_probes,
    "privileged": check_privileged,
    "procMount": check_proc_mount,
    "seLinuxOptions": check_se_linux,
    "seccompProfile_baseline": check_seccomp_baseline,
    "sysctls": check_sysctls,
    "windowsHostProcess": check_windows_host_process,
}
RESTRICTED_CHECKS: dict[str, Check] = {
    "allowPrivilegeEscalation": check_allow_privilege_escalation,
    "capabilities_restricted": check_capabilities_restricted,
    "restrictedVolumes": check_restricted_volumes,
    "runAsNonRoot": check_run_as_non_root,
    "runAsUser": check_run_as_user,
    "seccompProfile_restricted": check_seccomp_restricted,
}
_OVERRIDDEN = {"capabilities_baseline", "hostPathVolumes", "seccompProfile_baseline"}


def checks_for(level: str) -> list[Check]:
    """The checks of a level, in Kubernetes' order."""
    if level == PRIVILEGED:
        return []
    if level == BASELINE:
        return [BASELINE_CHECKS[k] for k in sorted(BASELINE_CHECKS)]
    table = {k: v for k, v in BASELINE_CHECKS.items() if k not in _OVERRIDDEN} | RESTRICTED_CHECKS
    return [table[k] for k in sorted(table)]


def evaluate(level: str, meta: meta_pb2.ObjectMeta, spec: core_pb2.PodSpec) -> list[Violation]:
    """What a pod (its metadata and spec) violates of a level; empty: it meets the level.

    Memoized by the spec's encoding and the annotations the checks read: the checks see only those
    annotations, so a check that read anything else of the metadata would fail the tests, not the memo."""
    read = tuple(sorted((k, v) for k, v in meta.annotations.items() if k.startswith(_READ)))

    def compute() -> tuple[Violation, ...]:
        seen = meta_pb2.ObjectMeta(annotations=dict(read))
        return tuple(v for check in checks_for(level) if (v := check(seen, spec)) is not None)

    return list(_EVALUATED.get((level, read), spec.SerializeToString(deterministic=True), compute))


# The annotations checks read: AppArmor's and seccomp's (pod and per container).
_READ = (_APPARMOR_ANNOTATION, _SECCOMP_POD_ANNOTATION, _SECCOMP_CONTAINER_ANNOTATION)
_EVALUATED: Memo[tuple[Violation, ...]] = Memo()


# ---------------------------------------------------------------- namespace levels


@dataclass(frozen=True)
class Policy:
    """A namespace's level and version per mode ("" level: the mode is off)."""

    enforce: tuple[str, str] = (DEFAULT_ENFORCE, LATEST)
    warn: tuple[str, str] = ("", LATEST)
    audit: tuple[str, str] = ("", LATEST)


def label_errors(labels: Any) -> list[FieldError]:
    """Pod Security labels with values Kubernetes would not understand."""
    errs = []
    for mode in MODES:
        key = LABEL_PREFIX + mode
        if key in labels and labels[key] not in LEVELS:
            errs.append(FieldError(f"metadata.labels[{key}]", "Unsupported value",
                                   "supported values: " + ", ".join(f'"{x}"' for x in LEVELS), labels[key]))
        vkey = f"{key}-version"
        if vkey in labels and labels[vkey] != LATEST and not _VERSION.fullmatch(labels[vkey]):
            errs.append(FieldError(f"metadata.labels[{vkey}]", "Invalid value",
                                   'must be "latest" or "v1.<minor>"', labels[vkey]))
    return errs


def policy_of(namespace: str, labels: Any) -> Policy:
    """The levels a namespace's labels choose (labels already validated)."""
    if namespace in PRIVILEGED_NAMESPACES:
        return Policy(enforce=(PRIVILEGED, LATEST))

    def mode(m: str, default: str) -> tuple[str, str]:
        return labels.get(LABEL_PREFIX + m, default), labels.get(f"{LABEL_PREFIX}{m}-version", LATEST)

    return Policy(enforce=mode("enforce", DEFAULT_ENFORCE), warn=mode("warn", ""), audit=mode("audit", ""))


def message(level: tuple[str, str], violations: list[Violation]) -> str:
    return f'violates PodSecurity "{level[0]}:{level[1]}": ' + ", ".join(str(v) for v in violations)


@dataclass(frozen=True)
class Decision:
    """What admission does with one object: refuse (`denied`), and what it warns of and audits."""

    denied: str = ""
    warnings: tuple[str, ...] = ()
    audit: tuple[str, ...] = ()


def decide(policy: Policy, meta: meta_pb2.ObjectMeta, spec: core_pb2.PodSpec, *, is_pod: bool) -> Decision:
    """The decision for a pod (`is_pod`) or a workload's pod template under a namespace's policy."""
    denied = ""
    warnings: list[str] = []
    audit: list[str] = []
    enforced = evaluate(policy.enforce[0], meta, spec)
    if enforced:
        if is_pod:
            denied = message(policy.enforce, enforced)
        else:
            warnings.append("would " + message(policy.enforce, enforced).replace("violates", "violate", 1))
    if policy.warn[0] and not denied:
        found = evaluate(policy.warn[0], meta, spec)
        text = "would " + message(policy.warn, found).replace("violates", "violate", 1)
        if found and text not in warnings:
            warnings.append(text)
    if policy.audit[0]:
        found = evaluate(policy.audit[0], meta, spec)
        if found:
            audit.append(message(policy.audit, found))
    return Decision(denied, tuple(warnings), tuple(audit))


# Kubernetes evaluates at most this many of a namespace's pods when its enforce level changes.
MAX_PODS_EVALUATED = 3000


def existing_pod_warnings(namespace: str, level: tuple[str, str], pods: list[core_pb2.Pod]) -> list[str]:
    """The warnings for a namespace whose enforce level became `level`: which of its pods break it, grouped by
    what they break, as Kubernetes words them."""
    groups: dict[str, list[str]] = {}
    for p in sorted(pods, key=lambda p: p.metadata.name)[:MAX_PODS_EVALUATED]:
        found = evaluate(level[0], p.metadata, p.spec)
        if found:
            groups.setdefault(", ".join(v.reason for v in found), []).append(p.metadata.name)
    if not groups:
        return []
    out = [f'existing pods in namespace "{namespace}" violate the new PodSecurity enforce level '
           f'"{level[0]}:{level[1]}"']
    for reasons, names in groups.items():
        who = names[0] if len(names) == 1 else f"{names[0]} (and {len(names) - 1} other pods)"
        out.append(f"{who}: {reasons}")
    return out


# ---------------------------------------------------------------- the admission plugin


def pod_template(obj: Message) -> tuple[meta_pb2.ObjectMeta, core_pb2.PodSpec] | None:
    """The pod template of a workload (a CronJob's through its Job template); None for other kinds."""
    spec = getattr(obj, "spec", None)
    if spec is None:
        return None
    if spec.DESCRIPTOR.fields_by_name.get("job_template") is not None:
        spec = spec.job_template.spec
    if spec.DESCRIPTOR.fields_by_name.get("template") is None:
        return None
    template = spec.template
    if template.DESCRIPTOR.fields_by_name.get("spec") is None or \
            template.spec.DESCRIPTOR.full_name != core_pb2.PodSpec.DESCRIPTOR.full_name:
        return None
    return template.metadata, template.spec


WORKLOADS = frozenset({"Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job", "CronJob"})


class PodSecurity:
    """Pods must meet their namespace's enforce level; workloads get warnings (Kubernetes' PodSecurity)."""

    name = "PodSecurity"
    kinds: ClassVar[frozenset[str] | None] = frozenset({"Pod", "Namespace", *WORKLOADS})
    operations = frozenset({"CREATE", "UPDATE"})

    def __init__(self, cache: Any, written: Callable[[str], int]) -> None:
        self.cache = cache
        self.written = written
        self.namespaces = kinds.lookup("namespaces")

    async def admit(self, a: Any) -> None:
        pass

    async def validate(self, a: Any) -> None:
        obj = a.obj
        if isinstance(obj, core_pb2.Namespace):
            errs = label_errors(obj.metadata.labels)
            if errs:
                raise InvalidError(errs, prefix=f'Namespace "{obj.metadata.name}" is invalid: ')
            if a.old is not None:
                await self._check_existing_pods(obj, a.old)
            return
        is_pod = isinstance(obj, core_pb2.Pod)
        if is_pod:
            meta, spec = obj.metadata, obj.spec
            old_spec = a.old.spec if a.old is not None else None
        else:
            found = pod_template(obj)
            if found is None:
                return
            meta, spec = found
            old = pod_template(a.old) if a.old is not None else None
            old_spec = old[1] if old is not None else None
        if old_spec is not None and old_spec == spec:
            return  # as Kubernetes: an update that leaves the pod spec alone is not re-evaluated
        namespace = obj.metadata.namespace
        await self.cache.wait_for(self.written(self.namespaces.resource))
        entry = self.cache.get(self.namespaces, "", namespace)
        labels = entry.obj.metadata.labels if entry is not None else {}
        decision = decide(policy_of(namespace, labels), meta, spec, is_pod=is_pod)
        for text in decision.audit:
            log.info("pod_security_audit", kind=a.kind.kind, namespace=namespace, name=obj.metadata.name,
                     violation=text)
        if decision.denied:
            raise ForbiddenError(f'{a.kind.resource} "{obj.metadata.name}" is forbidden: {decision.denied}')
        for text in decision.warnings:
            warning.add(text)

    async def _check_existing_pods(self, ns: core_pb2.Namespace, old: core_pb2.Namespace) -> None:
        """A stricter enforce level warns of the namespace's pods that break it (they keep running)."""
        name = ns.metadata.name
        policy = policy_of(name, ns.metadata.labels)
        if policy.enforce == policy_of(name, old.metadata.labels).enforce:
            return
        pods_kind = kinds.lookup("pods")
        await self.cache.wait_for(self.written(pods_kind.resource))
        prefix = object_key(pods_kind, name, "")
        pods = [e.obj for key, e in self.cache.store(pods_kind).objects.items() if key.startswith(prefix)]
        for text in existing_pod_warnings(name, policy.enforce, pods):
            warning.add(text)
