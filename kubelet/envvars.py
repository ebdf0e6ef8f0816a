"""A container's environment, as Kubernetes builds it.

Service links: for every Service with a cluster IP in the pod's namespace
(when enableServiceLinks, the default) plus `kubernetes` in default,
`<NAME>_SERVICE_HOST`, `_SERVICE_PORT`, `_SERVICE_PORT_<PORT NAME>` and the
docker-link style `<NAME>_PORT`, `<NAME>_PORT_<port>_<PROTO>[_PROTO|_PORT|_ADDR]`.
Then the container's own variables in order, `$(VAR)` references expanded
against those declared before them and the service variables, fieldRef and
resourceFieldRef, configMapKeyRef and secretKeyRef resolved (envFrom first); the
service variables the container did not override come last. Command and args expand `$(VAR)` against the result.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from api import quantity
from api.pb import core_pb2

MASTER_NAMESPACE = "default"
MASTER_SERVICE = "kubernetes"
_LABEL_REF = re.compile(r"^metadata\.(labels|annotations)\['(.*)'\]$")


class EnvError(Exception):
    """A variable cannot be resolved; the container gets CreateContainerConfigError."""


# Kubernetes' rule for names envFrom may bring in (C identifiers plus '-' and '.').
ENV_NAME = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")


@dataclass(frozen=True)
class PodObjects:
    """The API objects a pod refers to, as the kubelet fetched them: ConfigMaps and Secrets of its namespace by
    name (absent: not found), its claims by name and their volumes by name."""

    config_maps: Mapping[str, core_pb2.ConfigMap] = field(default_factory=dict)
    secrets: Mapping[str, core_pb2.Secret] = field(default_factory=dict)
    claims: Mapping[str, core_pb2.PersistentVolumeClaim] = field(default_factory=dict)
    volumes: Mapping[str, core_pb2.PersistentVolume] = field(default_factory=dict)
    # The pod's ServiceAccount token files (token, ca.crt, namespace) when it mounts one; or why it has none.
    service_account: Mapping[str, bytes] | None = None
    service_account_error: str = ""


def env_name(name: str) -> str:
    return name.upper().replace("-", "_")


def _ip_set(svc: core_pb2.Service) -> bool:
    return svc.spec.cluster_ip not in ("", "None") and bool(svc.spec.ports)


def service_env(services: Iterable[core_pb2.Service]) -> dict[str, str]:
    """The service-link variables of these services (Kubernetes' envvars.FromServices)."""
    env: dict[str, str] = {}
    for svc in sorted(services, key=lambda s: s.metadata.name):
        if not _ip_set(svc):
            continue
        prefix, ip = env_name(svc.metadata.name), svc.spec.cluster_ip
        env[f"{prefix}_SERVICE_HOST"] = ip
        env[f"{prefix}_SERVICE_PORT"] = str(svc.spec.ports[0].port)
        for p in svc.spec.ports:
            if p.name:
                env[f"{prefix}_SERVICE_PORT_{env_name(p.name)}"] = str(p.port)
        for i, p in enumerate(svc.spec.ports):
            proto = (p.protocol or "TCP").upper()
            host_port = f"[{ip}]:{p.port}" if ":" in ip else f"{ip}:{p.port}"
            url = f"{proto.lower()}://{host_port}"
            if i == 0:
                env[f"{prefix}_PORT"] = url
            port_prefix = f"{prefix}_PORT_{p.port}_{proto}"
            env[port_prefix] = url
            env[f"{port_prefix}_PROTO"] = proto.lower()
            env[f"{port_prefix}_PORT"] = str(p.port)
            env[f"{port_prefix}_ADDR"] = ip
    return env


def pod_service_env(pod: core_pb2.Pod, services: Iterable[core_pb2.Service]) -> dict[str, str]:
    """Services visible to a pod: its namespace's (if service links are on) and the master service."""
    links = not pod.spec.HasField("enable_service_links") or pod.spec.enable_service_links
    chosen: dict[str, core_pb2.Service] = {}
    for svc in services:
        ns, name = svc.metadata.namespace, svc.metadata.name
        if ns == MASTER_NAMESPACE and name == MASTER_SERVICE and name not in chosen:
            chosen[name] = svc
        if links and ns == pod.metadata.namespace:
            chosen[name] = svc  # the pod's own namespace wins a name clash
    return service_env(chosen.values())


def expand(text: str, lookup: Callable[[str], str | None]) -> str:
    """Kubernetes' $(VAR) expansion: $$ escapes, unknown references stay as written."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == "$" and i + 1 < n:
            nxt = text[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            if nxt == "(":
                end = text.find(")", i + 2)
                if end != -1:
                    value = lookup(text[i + 2:end])
                    out.append(value if value is not None else text[i:end + 1])
                    i = end + 1
                    continue
        out.append(ch)
        i += 1
    return "".join(out)


@dataclass(frozen=True)
class PodContext:
    """What fieldRef and resourceFieldRef may read besides the pod itself."""

    node_name: str
    host_ip: str
    pod_ip: str
    allocatable_cpu_milli: int = 0
    allocatable_memory: int = 0


def _field_value(pod: core_pb2.Pod, path: str, ctx: PodContext) -> str:
    meta = pod.metadata
    simple = {
        "metadata.name": meta.name,
        "metadata.namespace": meta.namespace,
        "metadata.uid": meta.uid,
        "spec.nodeName": pod.spec.node_name or ctx.node_name,
        "spec.serviceAccountName": pod.spec.service_account_name,
        "status.hostIP": ctx.host_ip,
        "status.hostIPs": ctx.host_ip,
        "status.podIP": ctx.pod_ip,
        "status.podIPs": ctx.pod_ip,
    }
    if path in simple:
        return simple[path]
    if path in ("metadata.labels", "metadata.annotations"):
        values = meta.labels if path == "metadata.labels" else meta.annotations
        return "\n".join(f'{k}="{v}"' for k, v in sorted(values.items()))
    m = _LABEL_REF.fullmatch(path)
    if m:
        values = meta.labels if m.group(1) == "labels" else meta.annotations
        return values.get(m.group(2), "")
    raise EnvError(f"unsupported fieldRef fieldPath {path!r}")


def _resource_value(pod: core_pb2.Pod, container: core_pb2.Container, ref: core_pb2.ResourceFieldSelector,
                    ctx: PodContext) -> str:
    target = container
    if ref.container_name:
        target = next((c for c in (*pod.spec.containers, *pod.spec.init_containers)
                       if c.name == ref.container_name), None)  # type: ignore[assignment]
        if target is None:
            raise EnvError(f"resourceFieldRef names unknown container {ref.container_name!r}")
    part, _, resource = ref.resource.partition(".")
    if part not in ("limits", "requests") or resource not in ("cpu", "memory", "ephemeral-storage"):
        raise EnvError(f"unsupported resourceFieldRef resource {ref.resource!r}")
    values = target.resources.limits if part == "limits" else target.resources.requests
    divisor = ref.divisor or "1"
    if resource == "cpu":
        milli = quantity.milli(values[resource]) if resource in values else (
            ctx.allocatable_cpu_milli if part == "limits" else 0)
        return str(math.ceil(milli / quantity.milli(divisor)))
    amount = quantity.value(values[resource]) if resource in values else (
        ctx.allocatable_memory if part == "limits" and resource == "memory" else 0)
    return str(math.ceil(amount / quantity.parse(divisor)))


def field_value(pod: core_pb2.Pod, path: str, ctx: PodContext) -> str:
    """A fieldRef's value (env and downwardAPI volumes)."""
    return _field_value(pod, path, ctx)


def resource_value(pod: core_pb2.Pod, container: core_pb2.Container, ref: core_pb2.ResourceFieldSelector,
                   ctx: PodContext) -> str:
    """A resourceFieldRef's value (env and downwardAPI volumes)."""
    return _resource_value(pod, container, ref, ctx)


def _key_ref(ref: core_pb2.KeySelector, what: str, namespace: str, objects: PodObjects) -> str | None:
    """A configMapKeyRef's or secretKeyRef's value; None when it is optional and missing."""
    optional = ref.HasField("optional") and ref.optional
    obj = objects.config_maps.get(ref.name) if what == "ConfigMap" else objects.secrets.get(ref.name)
    if obj is None:
        if optional:
            return None
        raise EnvError(f'{what.lower()} "{ref.name}" not found')
    if what == "ConfigMap":
        if ref.key in obj.data:
            return obj.data[ref.key]
        if ref.key in obj.binary_data:
            return obj.binary_data[ref.key].decode(errors="replace")
    elif ref.key in obj.data:
        return obj.data[ref.key].decode(errors="replace")
    if optional:
        return None
    raise EnvError(f"couldn't find key {ref.key} in {what} {namespace}/{ref.name}")


def _env_from(src: core_pb2.EnvFromSource, objects: PodObjects) -> dict[str, str]:
    """The variables one envFrom source brings (invalid names are left out, as Kubernetes does)."""
    if src.HasField("config_map_ref"):
        ref, what = src.config_map_ref, "configmap"
        obj = objects.config_maps.get(ref.name)
    else:
        ref, what = src.secret_ref, "secret"
        obj = objects.secrets.get(ref.name)
    if obj is None:
        if ref.HasField("optional") and ref.optional:
            return {}
        raise EnvError(f'{what} "{ref.name}" not found')
    values = {k: v if isinstance(v, str) else v.decode(errors="replace") for k, v in obj.data.items()}
    out = {}
    for k in sorted(values):
        name = src.prefix + k
        if ENV_NAME.fullmatch(name):
            out[name] = values[k]
    return out


def container_env(pod: core_pb2.Pod, container: core_pb2.Container, *, services: Mapping[str, str],
                  ctx: PodContext, objects: PodObjects | None = None) -> dict[str, str]:
    """The container's environment: envFrom, then its own variables in order, then the service links it did
    not set. ConfigMaps and Secrets come from `objects` (what the kubelet fetched for the pod)."""
    objects = objects or PodObjects()
    env: dict[str, str] = {}

    def lookup(name: str) -> str | None:
        return env[name] if name in env else services.get(name)

    for src in container.env_from:
        env.update(_env_from(src, objects))
    for var in container.env:
        if var.HasField("value_from"):
            src = var.value_from
            value: str | None
            if src.HasField("field_ref"):
                value = _field_value(pod, src.field_ref.field_path, ctx)
            elif src.HasField("resource_field_ref"):
                value = _resource_value(pod, container, src.resource_field_ref, ctx)
            elif src.HasField("config_map_key_ref"):
                value = _key_ref(src.config_map_key_ref, "ConfigMap", pod.metadata.namespace, objects)
            else:
                value = _key_ref(src.secret_key_ref, "Secret", pod.metadata.namespace, objects)
            if value is not None:
                env[var.name] = value
        else:
            env[var.name] = expand(var.value, lookup)
    for name, value in services.items():
        env.setdefault(name, value)
    return env


def expand_command(container: core_pb2.Container, env: Mapping[str, str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Command and args with $(VAR) expanded against the container's environment."""
    return (tuple(expand(a, env.get) for a in container.command), tuple(expand(a, env.get) for a in container.args))
