"""A container's environment, as Kubernetes builds it.

Service links: for every Service with a cluster IP in the pod's namespace
(when enableServiceLinks, the default) plus `kubernetes` in default,
`<NAME>_SERVICE_HOST`, `_SERVICE_PORT`, `_SERVICE_PORT_<PORT NAME>` and the
docker-link style `<NAME>_PORT`, `<NAME>_PORT_<port>_<PROTO>[_PROTO|_PORT|_ADDR]`.
Then the container's own variables in order, `$(VAR)` references expanded
against those declared before them and the service variables, fieldRef and
resourceFieldRef resolved; the service variables the container did not
override come last. Command and args expand `$(VAR)` against the result.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from api import quantity
from api.pb import core_pb2

MASTER_NAMESPACE = "default"
MASTER_SERVICE = "kubernetes"
_LABEL_REF = re.compile(r"^metadata\.(labels|annotations)\['(.*)'\]$")


class EnvError(Exception):
    """A variable cannot be resolved; the container gets CreateContainerConfigError."""


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


def container_env(pod: core_pb2.Pod, container: core_pb2.Container, *, services: Mapping[str, str],
                  ctx: PodContext) -> dict[str, str]:
    """The container's environment: its own variables in order, then the service links it did not set."""
    env: dict[str, str] = {}

    def lookup(name: str) -> str | None:
        return env[name] if name in env else services.get(name)

    for var in container.env:
        if var.HasField("value_from"):
            src = var.value_from
            if src.HasField("field_ref"):
                env[var.name] = _field_value(pod, src.field_ref.field_path, ctx)
            elif src.HasField("resource_field_ref"):
                env[var.name] = _resource_value(pod, container, src.resource_field_ref, ctx)
            else:
                raise EnvError(f"variable {var.name}: only fieldRef and resourceFieldRef sources are supported")
        else:
            env[var.name] = expand(var.value, lookup)
    for name, value in services.items():
        env.setdefault(name, value)
    return env


def expand_command(container: core_pb2.Container, env: Mapping[str, str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Command and args with $(VAR) expanded against the container's environment."""
    return (tuple(expand(a, env.get) for a in container.command), tuple(expand(a, env.get) for a in container.args))
