"""Validation as Kubernetes validates: every error names its field.

`validate(obj)` checks a new object, `validate_update(new, old)` adds the
rules about what may change. Both return a list of FieldError; the apiserver
refuses the write if it is not empty, so nothing half-valid reaches etcd.
"""

from __future__ import annotations

import ipaddress
import json as _json
import re
from collections.abc import Callable, Iterable
from typing import Any

from google.protobuf.message import Message

from api import intstr, kinds, labels, names, quantity, rbac, securitycontext, text, volumes
from api.errors import FieldError
from api.memo import Memo
from api.pb import (
    apps_pb2,
    batch_pb2,
    bootstrap_pb2,
    core_pb2,
    discovery_pb2,
    meta_pb2,
    networking_pb2,
    policy_pb2,
    scheduling_pb2,
    storage_pb2,
)

Errs = list[FieldError]

RESTART_POLICIES = ("Always", "OnFailure", "Never")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
PROTOCOLS = ("TCP", "UDP", "SCTP")
DNS_POLICIES = ("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")
NODE_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt")
PREEMPTION_POLICIES = ("PreemptLowerPriority", "Never")
# Priority classes: users' values stay at or below this; names with the prefix are the system's own.
HIGHEST_USER_DEFINABLE_PRIORITY = 1_000_000_000
SYSTEM_PRIORITY_CLASS_PREFIX = "system-"
SYSTEM_PRIORITY_CLASSES = {"system-cluster-critical": 2_000_000_000, "system-node-critical": 2_000_001_000}
HOST_PATH_TYPES = ("", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket", "CharDevice",
                   "BlockDevice")
FIELD_REF_PATHS = ("metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName",
                   "spec.serviceAccountName", "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs")
MAX_ANNOTATIONS_BYTES = 256 * 1024


def _unsupported(path: str, value: str, allowed: Iterable[str]) -> FieldError:
    choices = ", ".join(f'"{a}"' for a in allowed)
    return FieldError(path, "Unsupported value", f"supported values: {choices}", value)


# ---------------------------------------------------------------- metadata


def validate_meta(meta: meta_pb2.ObjectMeta, kind: kinds.Kind, errs: Errs, path: str = "metadata",
                  name_rule: Callable[[str], str | None] = names.dns1123_subdomain) -> None:
    if not meta.name and not meta.generate_name:
        errs.append(FieldError(f"{path}.name", "Required value", "name or generateName is required"))
    elif meta.name and (why := name_rule(meta.name)):
        errs.append(FieldError(f"{path}.name", "Invalid value", why, meta.name))
    if meta.generate_name and (why := name_rule(meta.generate_name.rstrip("-") or "x")):
        errs.append(FieldError(f"{path}.generateName", "Invalid value", why, meta.generate_name))
    if kind.namespaced and meta.namespace and (why := names.dns1123_label(meta.namespace)):
        errs.append(FieldError(f"{path}.namespace", "Invalid value", why, meta.namespace))
    if not kind.namespaced and meta.namespace:
        errs.append(FieldError(f"{path}.namespace", "Forbidden", "not allowed on this type"))
    validate_labels(meta.labels, f"{path}.labels", errs)
    size = 0
    for k, v in meta.annotations.items():
        for why in labels.key_errors(k):
            errs.append(FieldError(f"{path}.annotations", "Invalid value", why, k))
        size += len(k) + len(v)
    if size > MAX_ANNOTATIONS_BYTES:
        errs.append(FieldError(f"{path}.annotations", "Too long", f"must have at most {MAX_ANNOTATIONS_BYTES} bytes"))
    for i, ref in enumerate(meta.owner_references):
        p = f"{path}.ownerReferences[{i}]"
        for field in ("api_version", "kind", "name", "uid"):
            if not getattr(ref, field):
                json = {"api_version": "apiVersion"}.get(field, field)
                errs.append(FieldError(f"{p}.{json}", "Required value"))
    if sum(1 for r in meta.owner_references if r.controller) > 1:
        errs.append(FieldError(f"{path}.ownerReferences", "Invalid value",
                               "only one reference can have Controller set to true"))
    for i, f in enumerate(meta.finalizers):
        if labels.key_errors(f):
            errs.append(FieldError(f"{path}.finalizers[{i}]", "Invalid value", "must be a qualified name", f))


def validate_labels(values: Any, path: str, errs: Errs) -> None:
    for k, v in values.items():
        for why in labels.key_errors(k):
            errs.append(FieldError(path, "Invalid value", why, k))
        for why in labels.value_errors(v):
            errs.append(FieldError(f"{path}[{k}]", "Invalid value", why, v))


# ---------------------------------------------------------------- pods


def _port_errs(value: str, path: str, errs: Errs, *, allow_name: bool = True) -> None:
    if value == "":
        errs.append(FieldError(path, "Required value"))
    elif intstr.is_int(value):
        if not 1 <= int(value) <= 65535:
            errs.append(FieldError(path, "Invalid value", "must be between 1 and 65535, inclusive", int(value)))
    elif not allow_name:
        errs.append(FieldError(path, "Invalid value", "must be a number", value))
    elif why := names.iana_svc_name(value):
        errs.append(FieldError(path, "Invalid value", why, value))


def _resources(res: core_pb2.ResourceRequirements, path: str, errs: Errs) -> None:
    for part, values in (("limits", res.limits), ("requests", res.requests)):
        for name, q in values.items():
            p = f"{path}.{part}[{name}]"
            try:
                v = quantity.parse(q)
            except quantity.QuantityError as e:
                errs.append(FieldError(p, "Invalid value", str(e), q))
                continue
            if v < 0:
                errs.append(FieldError(p, "Invalid value", "must be greater than or equal to 0", q))
    for name, q in res.requests.items():
        if name in res.limits and quantity.is_valid(q) and quantity.is_valid(res.limits[name]):
            if quantity.parse(q) > quantity.parse(res.limits[name]):
                errs.append(FieldError(f"{path}.requests", "Invalid value",
                                       f"must be less than or equal to {name} limit of {res.limits[name]}", q))


def _handler(h: Message, path: str, errs: Errs, *, allow_grpc: bool) -> None:
    set_ = [f.name for f, _ in h.ListFields() if f.name in ("exec", "http_get", "tcp_socket", "grpc")]
    if not set_:
        errs.append(FieldError(path, "Required value", "must specify a handler type"))
    elif len(set_) > 1:
        errs.append(FieldError(path, "Forbidden", "may not specify more than 1 handler type"))
    if h.HasField("exec") and not h.exec.command:
        errs.append(FieldError(f"{path}.exec.command", "Required value"))
    if h.HasField("http_get"):
        _port_errs(h.http_get.port, f"{path}.httpGet.port", errs)
        if h.http_get.scheme not in ("", "HTTP", "HTTPS"):
            errs.append(_unsupported(f"{path}.httpGet.scheme", h.http_get.scheme, ("HTTP", "HTTPS")))
    if h.HasField("tcp_socket"):
        _port_errs(h.tcp_socket.port, f"{path}.tcpSocket.port", errs)
    if allow_grpc and h.HasField("grpc") and not 1 <= h.grpc.port <= 65535:
        errs.append(FieldError(f"{path}.grpc.port", "Invalid value", "must be between 1 and 65535, inclusive",
                               h.grpc.port))


def _probe(probe: core_pb2.Probe, path: str, errs: Errs, *, one_success: bool) -> None:
    _handler(probe, path, errs, allow_grpc=True)
    for field, json in (("initial_delay_seconds", "initialDelaySeconds"), ("timeout_seconds", "timeoutSeconds"),
                        ("period_seconds", "periodSeconds"), ("success_threshold", "successThreshold"),
                        ("failure_threshold", "failureThreshold")):
        if getattr(probe, field) < 0:
            errs.append(FieldError(f"{path}.{json}", "Invalid value", "must be greater than or equal to 0",
                                   getattr(probe, field)))
    if one_success and probe.success_threshold > 1:
        errs.append(FieldError(f"{path}.successThreshold", "Invalid value", "must be 1", probe.success_threshold))


def _container(c: core_pb2.Container, path: str, volumes: set[str], errs: Errs, *, init: bool) -> None:
    if not c.name:
        errs.append(FieldError(f"{path}.name", "Required value"))
    elif why := names.dns1123_label(c.name):
        errs.append(FieldError(f"{path}.name", "Invalid value", why, c.name))
    if not c.image.strip():
        errs.append(FieldError(f"{path}.image", "Required value"))
    if c.image_pull_policy and c.image_pull_policy not in PULL_POLICIES:
        errs.append(_unsupported(f"{path}.imagePullPolicy", c.image_pull_policy, PULL_POLICIES))
    port_names: set[str] = set()
    port_keys: set[tuple[int, str]] = set()
    for i, port in enumerate(c.ports):
        p = f"{path}.ports[{i}]"
        if port.name:
            if why := names.iana_svc_name(port.name):
                errs.append(FieldError(f"{p}.name", "Invalid value", why, port.name))
            elif port.name in port_names:
                errs.append(FieldError(f"{p}.name", "Duplicate value", "", port.name))
            port_names.add(port.name)
        if port.container_port == 0:
            errs.append(FieldError(f"{p}.containerPort", "Required value"))
        elif not 1 <= port.container_port <= 65535:
            errs.append(FieldError(f"{p}.containerPort", "Invalid value", "must be between 1 and 65535, inclusive",
                                   port.container_port))
        if not 0 <= port.host_port <= 65535:
            errs.append(FieldError(f"{p}.hostPort", "Invalid value", "must be between 1 and 65535, inclusive",
                                   port.host_port))
        if port.protocol and port.protocol not in PROTOCOLS:
            errs.append(_unsupported(f"{p}.protocol", port.protocol, PROTOCOLS))
        key = (port.container_port, port.protocol or "TCP")
        if port.container_port and key in port_keys:
            errs.append(FieldError(f"{p}.containerPort", "Duplicate value", "", port.container_port))
        port_keys.add(key)
        if port.host_ip:
            _ip(port.host_ip, f"{p}.hostIP", errs)
    for i, env in enumerate(c.env):
        p = f"{path}.env[{i}]"
        if not env.name:
            errs.append(FieldError(f"{p}.name", "Required value"))
        elif not names.ENV_VAR_NAME.fullmatch(env.name):
            errs.append(FieldError(f"{p}.name", "Invalid value", "a valid environment variable name must consist "
                                   "of alphabetic characters, digits, '_', '-', or '.', and must not start with a "
                                   "digit", env.name))
        if env.HasField("value_from"):
            src = env.value_from
            if env.value:
                errs.append(FieldError(f"{p}.valueFrom", "Invalid value", "may not be specified when `value` is "
                                       "not empty"))
            set_ = [f.name for f, _ in src.ListFields()]
            if len(set_) != 1:
                errs.append(FieldError(f"{p}.valueFrom", "Invalid value", "must specify exactly one source"))
            if src.HasField("field_ref"):
                fp = src.field_ref.field_path
                if fp not in FIELD_REF_PATHS and not (fp.startswith("metadata.labels[")
                                                      or fp.startswith("metadata.annotations[")):
                    errs.append(_unsupported(f"{p}.valueFrom.fieldRef.fieldPath", fp, FIELD_REF_PATHS))
            for attr, json in (("config_map_key_ref", "configMapKeyRef"), ("secret_key_ref", "secretKeyRef")):
                if src.HasField(attr):
                    ref = getattr(src, attr)
                    if not ref.name:
                        errs.append(FieldError(f"{p}.valueFrom.{json}.name", "Required value"))
                    if not ref.key:
                        errs.append(FieldError(f"{p}.valueFrom.{json}.key", "Required value"))
                    elif why := config_key_error(ref.key):
                        errs.append(FieldError(f"{p}.valueFrom.{json}.key", "Invalid value", why, ref.key))
    for i, ef in enumerate(c.env_from):
        p = f"{path}.envFrom[{i}]"
        sources = [f.name for f, _ in ef.ListFields() if f.name != "prefix"]
        if len(sources) != 1:
            errs.append(FieldError(p, "Invalid value", "must specify exactly one of: `configMapRef` or `secretRef`"))
        for attr, json in (("config_map_ref", "configMapRef"), ("secret_ref", "secretRef")):
            if ef.HasField(attr) and not getattr(ef, attr).name:
                errs.append(FieldError(f"{p}.{json}.name", "Required value"))
        if ef.prefix and not names.ENV_VAR_NAME.fullmatch(ef.prefix):
            errs.append(FieldError(f"{p}.prefix", "Invalid value", "a valid environment variable name must "
                                   "consist of alphabetic characters, digits, '_', '-', or '.', and must not start "
                                   "with a digit", ef.prefix))
    _resources(c.resources, f"{path}.resources", errs)
    mounts: set[str] = set()
    for i, m in enumerate(c.volume_mounts):
        p = f"{path}.volumeMounts[{i}]"
        if not m.name:
            errs.append(FieldError(f"{p}.name", "Required value"))
        elif m.name not in volumes:
            errs.append(FieldError(f"{p}.name", "Not found", "", m.name))
        if not m.mount_path:
            errs.append(FieldError(f"{p}.mountPath", "Required value"))
        elif not m.mount_path.startswith("/"):
            errs.append(FieldError(f"{p}.mountPath", "Invalid value", "must be an absolute path", m.mount_path))
        elif m.mount_path in mounts:
            errs.append(FieldError(f"{p}.mountPath", "Invalid value", "must be unique", m.mount_path))
        mounts.add(m.mount_path)
        if ".." in m.sub_path.split("/") or m.sub_path.startswith("/"):
            errs.append(FieldError(f"{p}.subPath", "Invalid value", "must be a relative path without '..'",
                                   m.sub_path))
    for attr, json, one in (("liveness_probe", "livenessProbe", True), ("readiness_probe", "readinessProbe", False),
                            ("startup_probe", "startupProbe", True)):
        if c.HasField(attr):
            if init:
                errs.append(FieldError(f"{path}.{json}", "Forbidden", "may not be set for init containers"))
            else:
                _probe(getattr(c, attr), f"{path}.{json}", errs, one_success=one)
    for attr, json in (("post_start", "postStart"), ("pre_stop", "preStop")):
        if c.lifecycle.HasField(attr):
            _handler(getattr(c.lifecycle, attr), f"{path}.lifecycle.{json}", errs, allow_grpc=False)
    if c.termination_message_policy not in ("", "File", "FallbackToLogsOnError"):
        errs.append(_unsupported(f"{path}.terminationMessagePolicy", c.termination_message_policy,
                                 ("File", "FallbackToLogsOnError")))


def _ip(value: str, path: str, errs: Errs) -> None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        errs.append(FieldError(path, "Invalid value", "must be a valid IP address", value))


def _node_selector_term(term: core_pb2.NodeSelectorTerm, path: str, errs: Errs) -> None:
    for part, json in ((term.match_expressions, "matchExpressions"), (term.match_fields, "matchFields")):
        for i, req in enumerate(part):
            p = f"{path}.{json}[{i}]"
            if req.operator not in NODE_OPERATORS:
                errs.append(_unsupported(f"{p}.operator", req.operator, NODE_OPERATORS))
                continue
            if req.operator in ("In", "NotIn") and not req.values:
                errs.append(FieldError(f"{p}.values", "Required value",
                                       "must be specified when `operator` is 'In' or 'NotIn'"))
            if req.operator in ("Exists", "DoesNotExist") and req.values:
                errs.append(FieldError(f"{p}.values", "Forbidden",
                                       "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
            if req.operator in ("Gt", "Lt") and (len(req.values) != 1 or not intstr.is_int(req.values[0])):
                errs.append(FieldError(f"{p}.values", "Required value",
                                       "must be specified single value when `operator` is 'Lt' or 'Gt'"))
            for why in labels.key_errors(req.key):
                errs.append(FieldError(f"{p}.key", "Invalid value", why, req.key))


def _affinity(a: core_pb2.Affinity, path: str, errs: Errs) -> None:
    na = a.node_affinity
    req = na.required_during_scheduling_ignored_during_execution
    if na.HasField("required_during_scheduling_ignored_during_execution") and not req.node_selector_terms:
        errs.append(FieldError(f"{path}.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
                               ".nodeSelectorTerms", "Required value", "must have at least one node selector term"))
    for i, term in enumerate(req.node_selector_terms):
        _node_selector_term(term, f"{path}.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
                                  f".nodeSelectorTerms[{i}]", errs)
    for i, pref in enumerate(na.preferred_during_scheduling_ignored_during_execution):
        p = f"{path}.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[{i}]"
        if not 1 <= pref.weight <= 100:
            errs.append(FieldError(f"{p}.weight", "Invalid value", "must be in the range 1-100", pref.weight))
        _node_selector_term(pref.preference, f"{p}.preference", errs)
    for attr, json in (("pod_affinity", "podAffinity"), ("pod_anti_affinity", "podAntiAffinity")):
        pa = getattr(a, attr)
        for i, term in enumerate(pa.required_during_scheduling_ignored_during_execution):
            p = f"{path}.{json}.requiredDuringSchedulingIgnoredDuringExecution[{i}]"
            if not term.topology_key:
                errs.append(FieldError(f"{p}.topologyKey", "Required value", "can not be empty"))
            errs.extend(labels.label_selector_errors(term.label_selector, f"{p}.labelSelector"))
        for i, w in enumerate(pa.preferred_during_scheduling_ignored_during_execution):
            p = f"{path}.{json}.preferredDuringSchedulingIgnoredDuringExecution[{i}]"
            if not 1 <= w.weight <= 100:
                errs.append(FieldError(f"{p}.weight", "Invalid value", "must be in the range 1-100", w.weight))
            if not w.pod_affinity_term.topology_key:
                errs.append(FieldError(f"{p}.podAffinityTerm.topologyKey", "Required value", "can not be empty"))


def _tolerations(tols: Iterable[core_pb2.Toleration], path: str, errs: Errs) -> None:
    for i, t in enumerate(tols):
        p = f"{path}[{i}]"
        if t.key:
            for why in labels.key_errors(t.key):
                errs.append(FieldError(f"{p}.key", "Invalid value", why, t.key))
        if t.operator not in ("", "Equal", "Exists"):
            errs.append(_unsupported(f"{p}.operator", t.operator, ("Equal", "Exists")))
        if t.operator == "Exists" and t.value:
            errs.append(FieldError(f"{p}.operator", "Invalid value",
                                   "value must be empty when `operator` is 'Exists'", t.value))
        if not t.key and t.operator != "Exists":
            errs.append(FieldError(f"{p}.operator", "Invalid value",
                                   "operator must be Exists when `key` is empty", t.operator))
        if t.effect and t.effect not in TAINT_EFFECTS:
            errs.append(_unsupported(f"{p}.effect", t.effect, TAINT_EFFECTS))
        if t.HasField("toleration_seconds") and t.effect != "NoExecute":
            errs.append(FieldError(f"{p}.effect", "Invalid value",
                                   "effect must be 'NoExecute' when `tolerationSeconds` is set", t.effect))


CONFIG_KEY = re.compile(r"[-._a-zA-Z0-9]+")
MAX_CONFIG_BYTES = 1024 * 1024
SECRET_TYPES = ("Opaque", "kubernetes.io/tls", "kubernetes.io/dockerconfigjson", "kubernetes.io/dockercfg",
                "kubernetes.io/basic-auth", "kubernetes.io/ssh-auth", "kubernetes.io/service-account-token",
                "bootstrap.kubernetes.io/token")


def config_key_error(key: str) -> str | None:
    """Kubernetes' rule for ConfigMap and Secret keys (and the keys volumes and env refer to)."""
    if len(key) > 253:
        return "must be no more than 253 characters"
    if not CONFIG_KEY.fullmatch(key):
        return "a valid config key must consist of alphanumeric characters, '-', '_' or '.'"
    if key in (".", ".."):
        return f"must not be '{key}'"
    if key.startswith(".."):
        return "must not start with '..'"
    return None


def _relative_path(value: str, path: str, errs: Errs) -> None:
    if not value:
        errs.append(FieldError(path, "Required value"))
    elif value.startswith("/"):
        errs.append(FieldError(path, "Invalid value", "must be a relative path", value))
    elif ".." in value.split("/"):
        errs.append(FieldError(path, "Invalid value", "must not contain '..'", value))
    elif value.startswith(".."):
        errs.append(FieldError(path, "Invalid value", "must not start with '..'", value))


def _mode(msg: Message, field: str, path: str, errs: Errs) -> None:
    if msg.HasField(field) and not 0 <= getattr(msg, field) <= 0o777:
        errs.append(FieldError(path, "Invalid value", "must be a number between 0 and 0777 (octal), both inclusive",
                               getattr(msg, field)))


def _items(items: Iterable[core_pb2.KeyToPath], path: str, errs: Errs) -> None:
    for i, item in enumerate(items):
        p = f"{path}[{i}]"
        if not item.key:
            errs.append(FieldError(f"{p}.key", "Required value"))
        _relative_path(item.path, f"{p}.path", errs)
        _mode(item, "mode", f"{p}.mode", errs)


def _downward_files(files: Iterable[core_pb2.DownwardAPIVolumeFile], path: str, errs: Errs) -> None:
    for i, f in enumerate(files):
        p = f"{path}[{i}]"
        _relative_path(f.path, f"{p}.path", errs)
        _mode(f, "mode", f"{p}.mode", errs)
        if f.HasField("field_ref") == f.HasField("resource_field_ref"):
            errs.append(FieldError(p, "Invalid value", "must specify exactly one of: `fieldRef` or "
                                   "`resourceFieldRef`"))
        if f.HasField("field_ref"):
            fp = f.field_ref.field_path
            allowed = ("metadata.name", "metadata.namespace", "metadata.uid", "metadata.labels",
                       "metadata.annotations")
            if fp not in allowed and not (fp.startswith("metadata.labels[") or fp.startswith("metadata.annotations[")):
                errs.append(_unsupported(f"{p}.fieldRef.fieldPath", fp, allowed))


def _volume_sources(v: core_pb2.Volume, path: str, errs: Errs) -> None:
    """The checks of configMap, secret, projected, downwardAPI and persistentVolumeClaim volumes."""
    if v.HasField("config_map"):
        if not v.config_map.name:
            errs.append(FieldError(f"{path}.configMap.name", "Required value"))
        _items(v.config_map.items, f"{path}.configMap.items", errs)
        _mode(v.config_map, "default_mode", f"{path}.configMap.defaultMode", errs)
    if v.HasField("secret"):
        if not v.secret.secret_name:
            errs.append(FieldError(f"{path}.secret.secretName", "Required value"))
        _items(v.secret.items, f"{path}.secret.items", errs)
        _mode(v.secret, "default_mode", f"{path}.secret.defaultMode", errs)
    if v.HasField("downward_api"):
        _downward_files(v.downward_api.items, f"{path}.downwardAPI.items", errs)
        _mode(v.downward_api, "default_mode", f"{path}.downwardAPI.defaultMode", errs)
    if v.HasField("persistent_volume_claim") and not v.persistent_volume_claim.claim_name:
        errs.append(FieldError(f"{path}.persistentVolumeClaim.claimName", "Required value"))
    if v.HasField("projected"):
        _mode(v.projected, "default_mode", f"{path}.projected.defaultMode", errs)
        for i, src in enumerate(v.projected.sources):
            p = f"{path}.projected.sources[{i}]"
            set_ = [f.name for f, _ in src.ListFields()]
            if len(set_) != 1:
                errs.append(FieldError(p, "Forbidden", "may not specify more than 1 volume type per source"
                                       if set_ else "must specify one volume type"))
            if src.HasField("config_map"):
                if not src.config_map.name:
                    errs.append(FieldError(f"{p}.configMap.name", "Required value"))
                _items(src.config_map.items, f"{p}.configMap.items", errs)
            if src.HasField("secret"):
                if not src.secret.name:
                    errs.append(FieldError(f"{p}.secret.name", "Required value"))
                _items(src.secret.items, f"{p}.secret.items", errs)
            if src.HasField("downward_api"):
                _downward_files(src.downward_api.items, f"{p}.downwardAPI.items", errs)
            if src.HasField("service_account_token"):
                # Refused rather than mounted empty: kubelite has no ServiceAccounts and issues no tokens.
                errs.append(FieldError(f"{p}.serviceAccountToken", "Forbidden",
                                       "service account tokens are not issued by this cluster"))


def validate_pod_spec(spec: core_pb2.PodSpec, path: str, errs: Errs) -> None:
    """A pure function of the spec and path: memoized by the spec's encoding (api/memo.py)."""
    errs.extend(_POD_SPECS.get(path, spec.SerializeToString(deterministic=True),
                               lambda: tuple(_pod_spec_errors(spec, path))))


_POD_SPECS: Memo[tuple[FieldError, ...]] = Memo()


def _pod_spec_errors(spec: core_pb2.PodSpec, path: str) -> Errs:
    errs: Errs = []
    volumes: set[str] = set()
    for i, v in enumerate(spec.volumes):
        p = f"{path}.volumes[{i}]"
        if not v.name:
            errs.append(FieldError(f"{p}.name", "Required value"))
        elif why := names.dns1123_label(v.name):
            errs.append(FieldError(f"{p}.name", "Invalid value", why, v.name))
        elif v.name in volumes:
            errs.append(FieldError(f"{p}.name", "Duplicate value", "", v.name))
        volumes.add(v.name)
        sources = [f.name for f, _ in v.ListFields() if f.name != "name"]
        if len(sources) > 1:
            errs.append(FieldError(p, "Forbidden", "may not specify more than 1 volume type"))
        if v.HasField("host_path"):
            hp = v.host_path
            if not hp.path:
                errs.append(FieldError(f"{p}.hostPath.path", "Required value"))
            elif not hp.path.startswith("/") or ".." in hp.path.split("/"):
                errs.append(FieldError(f"{p}.hostPath.path", "Invalid value", "must be an absolute path without "
                                       "'..'", hp.path))
            if hp.type not in HOST_PATH_TYPES:
                errs.append(_unsupported(f"{p}.hostPath.type", hp.type, HOST_PATH_TYPES[1:]))
        _volume_sources(v, p, errs)
        if v.HasField("empty_dir"):
            if v.empty_dir.medium not in ("", "Memory"):
                errs.append(_unsupported(f"{p}.emptyDir.medium", v.empty_dir.medium, ("", "Memory")))
            if v.empty_dir.size_limit and not quantity.is_valid(v.empty_dir.size_limit):
                errs.append(FieldError(f"{p}.emptyDir.sizeLimit", "Invalid value", "must be a quantity",
                                       v.empty_dir.size_limit))
    if not spec.containers:
        errs.append(FieldError(f"{path}.containers", "Required value"))
    seen: set[str] = set()
    for attr, json, init in (("init_containers", "initContainers", True), ("containers", "containers", False)):
        for i, c in enumerate(getattr(spec, attr)):
            _container(c, f"{path}.{json}[{i}]", volumes, errs, init=init)
            if c.name and c.name in seen:
                errs.append(FieldError(f"{path}.{json}[{i}].name", "Duplicate value", "", c.name))
            seen.add(c.name)
    if spec.restart_policy and spec.restart_policy not in RESTART_POLICIES:
        errs.append(_unsupported(f"{path}.restartPolicy", spec.restart_policy, RESTART_POLICIES))
    if spec.dns_policy and spec.dns_policy not in DNS_POLICIES:
        errs.append(_unsupported(f"{path}.dnsPolicy", spec.dns_policy, DNS_POLICIES))
    if spec.HasField("termination_grace_period_seconds") and spec.termination_grace_period_seconds < 0:
        errs.append(FieldError(f"{path}.terminationGracePeriodSeconds", "Invalid value",
                               "must be greater than or equal to 0", spec.termination_grace_period_seconds))
    if spec.HasField("active_deadline_seconds") and spec.active_deadline_seconds <= 0:
        errs.append(FieldError(f"{path}.activeDeadlineSeconds", "Invalid value", "must be greater than 0",
                               spec.active_deadline_seconds))
    validate_labels(spec.node_selector, f"{path}.nodeSelector", errs)
    for attr, json in (("hostname", "hostname"), ("subdomain", "subdomain")):
        value = getattr(spec, attr)
        if value and (why := names.dns1123_label(value)):
            errs.append(FieldError(f"{path}.{json}", "Invalid value", why, value))
    if spec.node_name and (why := names.dns1123_subdomain(spec.node_name)):
        errs.append(FieldError(f"{path}.nodeName", "Invalid value", why, spec.node_name))
    _affinity(spec.affinity, f"{path}.affinity", errs)
    _tolerations(spec.tolerations, f"{path}.tolerations", errs)
    for i, tsc in enumerate(spec.topology_spread_constraints):
        p = f"{path}.topologySpreadConstraints[{i}]"
        if tsc.max_skew <= 0:
            errs.append(FieldError(f"{p}.maxSkew", "Invalid value", "must be greater than zero", tsc.max_skew))
        if not tsc.topology_key:
            errs.append(FieldError(f"{p}.topologyKey", "Required value", "can not be empty"))
        if tsc.when_unsatisfiable not in ("DoNotSchedule", "ScheduleAnyway"):
            errs.append(_unsupported(f"{p}.whenUnsatisfiable", tsc.when_unsatisfiable,
                                     ("DoNotSchedule", "ScheduleAnyway")))
    if spec.HasField("preemption_policy") and spec.preemption_policy not in PREEMPTION_POLICIES:
        errs.append(_unsupported(f"{path}.preemptionPolicy", spec.preemption_policy, PREEMPTION_POLICIES))
    for i, ha in enumerate(spec.host_aliases):
        _ip(ha.ip, f"{path}.hostAliases[{i}].ip", errs)
    securitycontext.validate_pod(spec, path, errs)
    return errs


def validate_pod(pod: core_pb2.Pod, errs: Errs) -> None:
    validate_pod_spec(pod.spec, "spec", errs)


def validate_pod_update(new: core_pb2.Pod, old: core_pb2.Pod, errs: Errs) -> None:
    """A pod's spec is immutable except images, activeDeadlineSeconds and added tolerations."""
    a, b = core_pb2.PodSpec(), core_pb2.PodSpec()
    a.CopyFrom(new.spec)
    b.CopyFrom(old.spec)
    for spec in (a, b):
        for c in (*spec.containers, *spec.init_containers):
            c.image = ""
        spec.ClearField("active_deadline_seconds")
        spec.ClearField("tolerations")
    old_tols = [t.SerializeToString(deterministic=True) for t in old.spec.tolerations]
    new_tols = [t.SerializeToString(deterministic=True) for t in new.spec.tolerations]
    removed = [t for t in old_tols if t not in new_tols]
    if a != b or removed:
        errs.append(FieldError("spec", "Forbidden",
                               "pod updates may not change fields other than `spec.containers[*].image`, "
                               "`spec.initContainers[*].image`, `spec.activeDeadlineSeconds` or "
                               "`spec.tolerations` (only additions to existing tolerations)"))


# ---------------------------------------------------------------- services


def validate_service(svc: core_pb2.Service, errs: Errs) -> None:
    s = svc.spec
    if s.type and s.type not in SERVICE_TYPES:
        errs.append(_unsupported("spec.type", s.type, SERVICE_TYPES))
    headless = s.cluster_ip == "None"
    if s.type == "ExternalName":
        if not s.external_name:
            errs.append(FieldError("spec.externalName", "Required value"))
        elif why := names.dns1123_subdomain(s.external_name):
            errs.append(FieldError("spec.externalName", "Invalid value", why, s.external_name))
    elif not s.ports and not headless:
        errs.append(FieldError("spec.ports", "Required value"))
    if headless and s.type in ("NodePort", "LoadBalancer"):
        errs.append(FieldError("spec.clusterIP", "Invalid value", f"may not be set to 'None' for {s.type} services",
                               s.cluster_ip))
    if s.cluster_ip and not headless:
        _ip(s.cluster_ip, "spec.clusterIP", errs)
    for i, ip in enumerate(s.external_ips):
        _ip(ip, f"spec.externalIPs[{i}]", errs)
    if s.load_balancer_ip:
        _ip(s.load_balancer_ip, "spec.loadBalancerIP", errs)
    port_names: set[str] = set()
    port_keys: set[tuple[int, str]] = set()
    for i, port in enumerate(s.ports):
        p = f"spec.ports[{i}]"
        if len(s.ports) > 1 and not port.name:
            errs.append(FieldError(f"{p}.name", "Required value"))
        if port.name:
            if why := names.dns1123_label(port.name):
                errs.append(FieldError(f"{p}.name", "Invalid value", why, port.name))
            elif port.name in port_names:
                errs.append(FieldError(f"{p}.name", "Duplicate value", "", port.name))
            port_names.add(port.name)
        if port.port == 0:
            errs.append(FieldError(f"{p}.port", "Required value"))
        elif not 1 <= port.port <= 65535:
            errs.append(FieldError(f"{p}.port", "Invalid value", "must be between 1 and 65535, inclusive", port.port))
        if port.protocol and port.protocol not in PROTOCOLS:
            errs.append(_unsupported(f"{p}.protocol", port.protocol, PROTOCOLS))
        if port.target_port:
            _port_errs(port.target_port, f"{p}.targetPort", errs)
        if port.node_port and not 1 <= port.node_port <= 65535:
            errs.append(FieldError(f"{p}.nodePort", "Invalid value", "must be between 1 and 65535, inclusive",
                                   port.node_port))
        if port.node_port and s.type in ("", "ClusterIP", "ExternalName"):
            errs.append(FieldError(f"{p}.nodePort", "Forbidden", "may not be used when `type` is 'ClusterIP'"))
        key = (port.port, port.protocol or "TCP")
        if port.port and key in port_keys:
            errs.append(FieldError(f"{p}", "Duplicate value", "", {"port": port.port, "protocol": key[1]}))
        port_keys.add(key)
    validate_labels(s.selector, "spec.selector", errs)
    if s.session_affinity and s.session_affinity not in ("None", "ClientIP"):
        errs.append(_unsupported("spec.sessionAffinity", s.session_affinity, ("ClientIP", "None")))
    cfg = s.session_affinity_config.client_ip
    if cfg.HasField("timeout_seconds") and not 0 < cfg.timeout_seconds <= 86400:
        errs.append(FieldError("spec.sessionAffinityConfig.clientIP.timeoutSeconds", "Invalid value",
                               "must be greater than 0 and less than 86400", cfg.timeout_seconds))
    if s.HasField("session_affinity_config") and s.session_affinity not in ("ClientIP",):
        if cfg.HasField("timeout_seconds"):
            errs.append(FieldError("spec.sessionAffinityConfig", "Invalid value",
                                   "must not be set when `sessionAffinity` is None"))
    if s.external_traffic_policy not in ("", "Cluster", "Local"):
        errs.append(_unsupported("spec.externalTrafficPolicy", s.external_traffic_policy, ("Cluster", "Local")))
    _service_networking(svc, errs)


def externally_accessible(svc: core_pb2.Service) -> bool:
    """Kubernetes' ExternallyAccessible: reachable from outside the cluster, so externalTrafficPolicy applies."""
    return svc.spec.type in ("NodePort", "LoadBalancer") or (svc.spec.type in ("", "ClusterIP")
                                                             and bool(svc.spec.external_ips))


def _service_networking(svc: core_pb2.Service, errs: Errs) -> None:
    """Traffic policies, source ranges and address families: each either honoured by the proxy or refused."""
    s = svc.spec
    if s.external_traffic_policy and not externally_accessible(svc):
        errs.append(FieldError("spec.externalTrafficPolicy", "Invalid value",
                               "may only be set for externally-accessible services", s.external_traffic_policy))
    if s.health_check_node_port:
        if s.type != "LoadBalancer" or s.external_traffic_policy != "Local":
            errs.append(FieldError("spec.healthCheckNodePort", "Invalid value", "may only be set when `type` is "
                                   "'LoadBalancer' and `externalTrafficPolicy` is 'Local'", s.health_check_node_port))
        elif not 1 <= s.health_check_node_port <= 65535:
            errs.append(FieldError("spec.healthCheckNodePort", "Invalid value",
                                   "must be between 1 and 65535, inclusive", s.health_check_node_port))
        elif any(p.node_port == s.health_check_node_port for p in s.ports):
            errs.append(FieldError("spec.healthCheckNodePort", "Duplicate value", "used by a node port",
                                   s.health_check_node_port))
    if s.HasField("internal_traffic_policy"):
        if s.type == "ExternalName":
            errs.append(FieldError("spec.internalTrafficPolicy", "Forbidden",
                                   "may not be set when `type` is 'ExternalName'"))
        elif s.internal_traffic_policy not in ("Cluster", "Local"):
            errs.append(_unsupported("spec.internalTrafficPolicy", s.internal_traffic_policy, ("Cluster", "Local")))
    if s.load_balancer_source_ranges and s.type != "LoadBalancer":
        errs.append(FieldError("spec.loadBalancerSourceRanges", "Forbidden",
                               "may only be used when `type` is 'LoadBalancer'"))
    for i, cidr in enumerate(s.load_balancer_source_ranges):
        try:
            ipaddress.IPv4Network(cidr.strip(), strict=False)
        except ValueError:
            errs.append(FieldError(f"spec.loadBalancerSourceRanges[{i}]", "Invalid value",
                                   "must be an IPv4 CIDR (kubelite's service proxy is IPv4 only)", cidr))
    # The proxy and the cluster are IPv4 only: any other family would be accepted and never served.
    for i, family in enumerate(s.ip_families):
        if family != "IPv4":
            errs.append(_unsupported(f"spec.ipFamilies[{i}]", family, ("IPv4",)))
    if s.HasField("ip_family_policy") and s.ip_family_policy not in ("SingleStack", "PreferDualStack"):
        why = ("this cluster is IPv4 only" if s.ip_family_policy == "RequireDualStack"
               else 'supported values: "SingleStack", "PreferDualStack"')
        errs.append(FieldError("spec.ipFamilyPolicy", "Unsupported value", why, s.ip_family_policy))


def validate_service_update(new: core_pb2.Service, old: core_pb2.Service, errs: Errs) -> None:
    if old.spec.cluster_ip and new.spec.cluster_ip and new.spec.cluster_ip != old.spec.cluster_ip \
            and new.spec.type != "ExternalName":
        errs.append(FieldError("spec.clusterIP", "Invalid value", "field is immutable", new.spec.cluster_ip))


def validate_endpoints(ep: core_pb2.Endpoints, errs: Errs) -> None:
    for i, subset in enumerate(ep.subsets):
        for part, json in ((subset.addresses, "addresses"), (subset.not_ready_addresses, "notReadyAddresses")):
            for j, addr in enumerate(part):
                _ip(addr.ip, f"subsets[{i}].{json}[{j}].ip", errs)
        for j, port in enumerate(subset.ports):
            if not 1 <= port.port <= 65535:
                errs.append(FieldError(f"subsets[{i}].ports[{j}].port", "Invalid value",
                                       "must be between 1 and 65535, inclusive", port.port))
            if port.protocol and port.protocol not in PROTOCOLS:
                errs.append(_unsupported(f"subsets[{i}].ports[{j}].protocol", port.protocol, PROTOCOLS))


# ---------------------------------------------------------------- workloads


def _selector_and_template(selector: meta_pb2.LabelSelector, has_selector: bool,
                           template: core_pb2.PodTemplateSpec, errs: Errs, *, path: str = "spec",
                           restart_policies: tuple[str, ...] = ("Always",)) -> None:
    if not has_selector or (not selector.match_labels and not selector.match_expressions):
        errs.append(FieldError(f"{path}.selector", "Required value"))
    else:
        selector_errs = labels.label_selector_errors(selector, f"{path}.selector")
        errs.extend(selector_errs)
        # An invalid selector is reported once, not again as "does not match".
        if not selector_errs and not labels.from_label_selector(selector).matches(template.metadata.labels):
            shown = dict(sorted(template.metadata.labels.items()))
            errs.append(FieldError(f"{path}.template.metadata.labels", "Invalid value",
                                   "`selector` does not match template `labels`", shown))
    _template(template, errs, path=path, restart_policies=restart_policies)


def _template(template: core_pb2.PodTemplateSpec, errs: Errs, *, path: str,
              restart_policies: tuple[str, ...]) -> None:
    validate_labels(template.metadata.labels, f"{path}.template.metadata.labels", errs)
    validate_pod_spec(template.spec, f"{path}.template.spec", errs)
    policy = template.spec.restart_policy
    if policy not in restart_policies and (policy or "Always" not in restart_policies):
        errs.append(_unsupported(f"{path}.template.spec.restartPolicy", policy, restart_policies))


def validate_replicaset(rs: apps_pb2.ReplicaSet, errs: Errs) -> None:
    if rs.spec.replicas < 0:
        errs.append(FieldError("spec.replicas", "Invalid value", "must be greater than or equal to 0",
                               rs.spec.replicas))
    if rs.spec.min_ready_seconds < 0:
        errs.append(FieldError("spec.minReadySeconds", "Invalid value", "must be greater than or equal to 0",
                               rs.spec.min_ready_seconds))
    _selector_and_template(rs.spec.selector, rs.spec.HasField("selector"), rs.spec.template, errs)


def validate_deployment(d: apps_pb2.Deployment, errs: Errs) -> None:
    s = d.spec
    if s.replicas < 0:
        errs.append(FieldError("spec.replicas", "Invalid value", "must be greater than or equal to 0", s.replicas))
    _selector_and_template(s.selector, s.HasField("selector"), s.template, errs)
    st = s.strategy
    if st.type and st.type not in ("RollingUpdate", "Recreate"):
        errs.append(_unsupported("spec.strategy.type", st.type, ("Recreate", "RollingUpdate")))
    if st.type == "Recreate" and st.HasField("rolling_update"):
        errs.append(FieldError("spec.strategy.rollingUpdate", "Forbidden",
                               "may not be specified when strategy `type` is 'Recreate'"))
    ru = st.rolling_update
    for value, json in ((ru.max_surge, "maxSurge"), (ru.max_unavailable, "maxUnavailable")):
        if value and not intstr.is_valid_percent_or_int(value):
            errs.append(FieldError(f"spec.strategy.rollingUpdate.{json}", "Invalid value",
                                   "must be an integer or percentage (e.g '5%')", value))
        elif value and intstr.scaled(value, 100, round_up=True) < 0:
            errs.append(FieldError(f"spec.strategy.rollingUpdate.{json}", "Invalid value",
                                   "must be greater than or equal to 0", value))
        elif value.endswith("%") and int(value[:-1]) > 100 and json == "maxUnavailable":
            errs.append(FieldError(f"spec.strategy.rollingUpdate.{json}", "Invalid value",
                                   "must not be greater than 100%", value))
    if st.type in ("", "RollingUpdate") and ru.max_surge and ru.max_unavailable:
        if intstr.scaled(ru.max_surge, 100, round_up=True) == 0 and \
                intstr.scaled(ru.max_unavailable, 100, round_up=True) == 0:
            errs.append(FieldError("spec.strategy.rollingUpdate.maxUnavailable", "Invalid value",
                                   "may not be 0 when `maxSurge` is 0", ru.max_unavailable))
    if s.HasField("revision_history_limit") and s.revision_history_limit < 0:
        errs.append(FieldError("spec.revisionHistoryLimit", "Invalid value", "must be greater than or equal to 0",
                               s.revision_history_limit))
    if s.HasField("progress_deadline_seconds") and s.progress_deadline_seconds <= s.min_ready_seconds:
        errs.append(FieldError("spec.progressDeadlineSeconds", "Invalid value",
                               "must be greater than minReadySeconds", s.progress_deadline_seconds))


def _selector_immutable(new: Message, old: Message, errs: Errs) -> None:
    if new.spec.selector != old.spec.selector:  # type: ignore[attr-defined]
        errs.append(FieldError("spec.selector", "Invalid value", "field is immutable"))


# ---------------------------------------------------------------- nodes and the rest


def validate_node(node: core_pb2.Node, errs: Errs) -> None:
    for i, t in enumerate(node.spec.taints):
        p = f"spec.taints[{i}]"
        if not t.key:
            errs.append(FieldError(f"{p}.key", "Required value"))
        for why in labels.key_errors(t.key) if t.key else []:
            errs.append(FieldError(f"{p}.key", "Invalid value", why, t.key))
        for why in labels.value_errors(t.value):
            errs.append(FieldError(f"{p}.value", "Invalid value", why, t.value))
        if t.effect not in TAINT_EFFECTS:
            errs.append(_unsupported(f"{p}.effect", t.effect, TAINT_EFFECTS))
    seen: set[tuple[str, str]] = set()
    for i, t in enumerate(node.spec.taints):
        if (t.key, t.effect) in seen:
            errs.append(FieldError(f"spec.taints[{i}]", "Duplicate value", "taints must be unique by key and effect",
                                   f"{t.key}:{t.effect}"))
        seen.add((t.key, t.effect))
    for cidr, json in ((node.spec.pod_cidr, "podCIDR"),):
        if cidr:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                errs.append(FieldError(f"spec.{json}", "Invalid value", "must be a valid CIDR", cidr))
    validate_node_status(node, errs)


def validate_node_status(node: core_pb2.Node, errs: Errs) -> None:
    for part, values in (("capacity", node.status.capacity), ("allocatable", node.status.allocatable)):
        for name, q in values.items():
            if not quantity.is_valid(q):
                errs.append(FieldError(f"status.{part}[{name}]", "Invalid value", "must be a quantity", q))


def validate_node_update(new: core_pb2.Node, old: core_pb2.Node, errs: Errs) -> None:
    if old.spec.pod_cidr and new.spec.pod_cidr != old.spec.pod_cidr:
        errs.append(FieldError("spec.podCIDR", "Forbidden", "may not be changed once set", new.spec.pod_cidr))


def validate_event(ev: core_pb2.Event, errs: Errs) -> None:
    if not ev.involved_object.name and not ev.involved_object.kind:
        errs.append(FieldError("involvedObject", "Required value"))
    if ev.type and ev.type not in ("Normal", "Warning"):
        errs.append(_unsupported("type", ev.type, ("Normal", "Warning")))


def validate_lease(lease: apps_pb2.Lease, errs: Errs) -> None:
    if lease.spec.HasField("lease_duration_seconds") and lease.spec.lease_duration_seconds <= 0:
        errs.append(FieldError("spec.leaseDurationSeconds", "Invalid value", "must be greater than 0",
                               lease.spec.lease_duration_seconds))


# ---------------------------------------------------------------- priority classes


def validate_priority_class(pc: scheduling_pb2.PriorityClass, errs: Errs) -> None:
    """The `system-` prefix is reserved for the system's classes, with their values; users' values are bounded."""
    name = pc.metadata.name
    if name.startswith(SYSTEM_PRIORITY_CLASS_PREFIX):
        why = ""
        if name not in SYSTEM_PRIORITY_CLASSES:
            why = f"{name} is not a known system priority class"
        elif pc.value != SYSTEM_PRIORITY_CLASSES[name]:
            why = f"value of {name} PriorityClass must be {SYSTEM_PRIORITY_CLASSES[name]}"
        elif pc.global_default:
            why = f"globalDefault of {name} PriorityClass must be false"
        if why:
            errs.append(FieldError("metadata.name", "Forbidden",
                                   f"priority class names with '{SYSTEM_PRIORITY_CLASS_PREFIX}' prefix are reserved "
                                   f"for system use only. error: {why}"))
    elif pc.value > HIGHEST_USER_DEFINABLE_PRIORITY:
        errs.append(FieldError("value", "Forbidden", f"maximum allowed value of a user defined priority is "
                                                     f"{HIGHEST_USER_DEFINABLE_PRIORITY}"))
    if pc.HasField("preemption_policy") and pc.preemption_policy not in PREEMPTION_POLICIES:
        errs.append(_unsupported("preemptionPolicy", pc.preemption_policy, PREEMPTION_POLICIES))


def validate_priority_class_update(new: scheduling_pb2.PriorityClass, old: scheduling_pb2.PriorityClass,
                                   errs: Errs) -> None:
    """A class's value and preemptionPolicy are fixed: pods already carry them."""
    if new.value != old.value:
        errs.append(FieldError("value", "Forbidden", "may not be changed in an update."))
    if new.preemption_policy != old.preemption_policy or \
            new.HasField("preemption_policy") != old.HasField("preemption_policy"):
        errs.append(FieldError("preemptionPolicy", "Invalid value", "field is immutable", new.preemption_policy))
def validate_bootstrap_token(token: bootstrap_pb2.BootstrapToken, errs: Errs) -> None:
    if len(token.spec.secret_hash) != 64 or any(c not in "0123456789abcdef" for c in token.spec.secret_hash):
        errs.append(FieldError("spec.secretHash", "Invalid value", "must be a sha256 digest: 64 lowercase hex digits",
                               token.spec.secret_hash))


def _token_id(name: str) -> str | None:
    if len(name) != 6 or any(c not in "abcdefghijklmnopqrstuvwxyz0123456789" for c in name):
        return "a join token's id is 6 characters from a-z and 0-9"
    return None


# ---------------------------------------------------------------- configuration and storage


def _config_keys(keys: Iterable[str], path: str, errs: Errs) -> None:
    for key in keys:
        if why := config_key_error(key):
            errs.append(FieldError(f"{path}[{key}]", "Invalid value", why, key))


def validate_config_map(cm: core_pb2.ConfigMap, errs: Errs) -> None:
    _config_keys(cm.data, "data", errs)
    _config_keys(cm.binary_data, "binaryData", errs)
    for key in cm.data:
        if key in cm.binary_data:
            errs.append(FieldError(f"data[{key}]", "Invalid value", "duplicate of key present in binaryData", key))
    size = sum(len(k) + len(v.encode()) for k, v in cm.data.items()) + \
        sum(len(k) + len(v) for k, v in cm.binary_data.items())
    if size > MAX_CONFIG_BYTES:
        errs.append(FieldError("", "Too long", f"must have at most {MAX_CONFIG_BYTES} bytes"))


def validate_secret(s: core_pb2.Secret, errs: Errs) -> None:
    """Keys, size and the keys each Secret type requires (data already holds stringData, merged on write)."""
    _config_keys(s.data, "data", errs)
    _config_keys(s.string_data, "stringData", errs)
    size = sum(len(k) + len(v) for k, v in s.data.items())
    if size > MAX_CONFIG_BYTES:
        errs.append(FieldError("data", "Too long", f"must have at most {MAX_CONFIG_BYTES} bytes"))
    keys = set(s.data) | set(s.string_data)
    t = s.type or "Opaque"
    if t not in SECRET_TYPES and (why := labels.key_errors(t)):
        errs.append(FieldError("type", "Invalid value", why[0], t))
    required = {"kubernetes.io/tls": ("tls.crt", "tls.key"), "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
                "kubernetes.io/dockercfg": (".dockercfg",), "kubernetes.io/ssh-auth": ("ssh-privatekey",)}
    for key in required.get(t, ()):
        if key not in keys:
            errs.append(FieldError(f"data[{key}]", "Required value"))
    if t == "kubernetes.io/basic-auth" and not {"username", "password"} & keys:
        errs.append(FieldError("data[username]", "Required value",
                               "must have at least one of: `username` or `password`"))
    if t == "kubernetes.io/service-account-token" and \
            not s.metadata.annotations.get("kubernetes.io/service-account.name"):
        errs.append(FieldError("metadata.annotations[kubernetes.io/service-account.name]", "Required value"))
    for key in (".dockerconfigjson", ".dockercfg"):
        if t.endswith(key.lstrip(".")) and key in s.data:
            try:
                _json.loads(s.data[key])
            except ValueError as e:
                errs.append(FieldError(f"data[{key}]", "Invalid value", f"invalid JSON: {e}", "<secret contents>"))


def _immutable_config(new: Any, old: Any, errs: Errs, data_fields: tuple[str, ...]) -> None:
    if old.HasField("immutable") and old.immutable:
        if not (new.HasField("immutable") and new.immutable):
            errs.append(FieldError("immutable", "Forbidden", "field is immutable when `immutable` is set"))
        for field, json_name in data_fields:
            if getattr(new, field) != getattr(old, field):
                errs.append(FieldError(json_name, "Forbidden", "field is immutable when `immutable` is set"))


def validate_config_map_update(new: core_pb2.ConfigMap, old: core_pb2.ConfigMap, errs: Errs) -> None:
    _immutable_config(new, old, errs, (("data", "data"), ("binary_data", "binaryData")))


def validate_secret_update(new: core_pb2.Secret, old: core_pb2.Secret, errs: Errs) -> None:
    if (new.type or "Opaque") != (old.type or "Opaque"):
        errs.append(FieldError("type", "Invalid value", "field is immutable", new.type))
    _immutable_config(new, old, errs, (("data", "data"),))


def _access_modes(modes: Iterable[str], path: str, errs: Errs) -> None:
    modes = list(modes)
    if not modes:
        errs.append(FieldError(path, "Required value"))
    for m in modes:
        if m not in volumes.ACCESS_MODES:
            errs.append(_unsupported(path, m, volumes.ACCESS_MODES))
    if volumes.RWOP in modes and len(modes) > 1:
        errs.append(FieldError(path, "Forbidden", "may not use ReadWriteOncePod with other access modes"))


def _storage_quantity(values: Any, path: str, errs: Errs) -> None:
    q = values.get("storage", "")
    if not q:
        errs.append(FieldError(f"{path}[storage]", "Required value"))
    elif not quantity.is_valid(q):
        errs.append(FieldError(f"{path}[storage]", "Invalid value", "must be a quantity", q))
    elif quantity.parse(q) <= 0:
        errs.append(FieldError(f"{path}[storage]", "Invalid value", "must be greater than zero", q))
    for name in values:
        if name != "storage":
            errs.append(_unsupported(f"{path}[{name}]", name, ("storage",)))


def _volume_mode(msg: Any, path: str, errs: Errs) -> None:
    if msg.HasField("volume_mode") and msg.volume_mode not in volumes.VOLUME_MODES:
        errs.append(_unsupported(path, msg.volume_mode, volumes.VOLUME_MODES))
    elif msg.HasField("volume_mode") and msg.volume_mode == "Block":
        errs.append(FieldError(path, "Forbidden", "raw block volumes are not supported; use Filesystem"))


def validate_persistent_volume(pv: core_pb2.PersistentVolume, errs: Errs) -> None:
    s = pv.spec
    _storage_quantity(s.capacity, "spec.capacity", errs)
    _access_modes(s.access_modes, "spec.accessModes", errs)
    sources = [f for f in ("host_path", "local") if s.HasField(f)]
    if not sources:
        errs.append(FieldError("spec", "Required value", "must specify a volume type (hostPath or local)"))
    elif len(sources) > 1:
        errs.append(FieldError("spec", "Forbidden", "may not specify more than 1 volume type"))
    if s.HasField("host_path"):
        hp = s.host_path
        if not hp.path.startswith("/") or ".." in hp.path.split("/"):
            errs.append(FieldError("spec.hostPath.path", "Invalid value", "must be an absolute path without '..'",
                                   hp.path))
        if hp.type not in HOST_PATH_TYPES:
            errs.append(_unsupported("spec.hostPath.type", hp.type, HOST_PATH_TYPES[1:]))
    if s.HasField("local"):
        if not s.local.path.startswith("/") or ".." in s.local.path.split("/"):
            errs.append(FieldError("spec.local.path", "Invalid value", "must be an absolute path without '..'",
                                   s.local.path))
        if not s.node_affinity.HasField("required"):
            errs.append(FieldError("spec.nodeAffinity", "Required value", "Local volume requires node affinity"))
    if s.HasField("node_affinity"):
        req = s.node_affinity.required
        if not req.node_selector_terms:
            errs.append(FieldError("spec.nodeAffinity.required.nodeSelectorTerms", "Required value",
                                   "must have at least one node selector term"))
        for i, term in enumerate(req.node_selector_terms):
            _node_selector_term(term, f"spec.nodeAffinity.required.nodeSelectorTerms[{i}]", errs)
    if s.persistent_volume_reclaim_policy and s.persistent_volume_reclaim_policy not in ("Retain", "Delete"):
        errs.append(_unsupported("spec.persistentVolumeReclaimPolicy", s.persistent_volume_reclaim_policy,
                                 ("Delete", "Retain")))
    if s.storage_class_name and (why := names.dns1123_subdomain(s.storage_class_name)):
        errs.append(FieldError("spec.storageClassName", "Invalid value", why, s.storage_class_name))
    _volume_mode(s, "spec.volumeMode", errs)


def validate_persistent_volume_update(new: core_pb2.PersistentVolume, old: core_pb2.PersistentVolume,
                                      errs: Errs) -> None:
    for field, json_name in (("host_path", "hostPath"), ("local", "local"), ("node_affinity", "nodeAffinity"),
                             ("volume_mode", "volumeMode")):
        if getattr(new.spec, field) != getattr(old.spec, field):
            errs.append(FieldError(f"spec.{json_name}", "Invalid value", "field is immutable"))


def validate_persistent_volume_claim(pvc: core_pb2.PersistentVolumeClaim, errs: Errs) -> None:
    s = pvc.spec
    _access_modes(s.access_modes, "spec.accessModes", errs)
    _storage_quantity(s.resources.requests, "spec.resources.requests", errs)
    if s.resources.limits:
        _storage_quantity(s.resources.limits, "spec.resources.limits", errs)
    if s.HasField("selector"):
        errs.extend(labels.label_selector_errors(s.selector, "spec.selector"))
    if s.storage_class_name and (why := names.dns1123_subdomain(s.storage_class_name)):
        errs.append(FieldError("spec.storageClassName", "Invalid value", why, s.storage_class_name))
    _volume_mode(s, "spec.volumeMode", errs)


def validate_persistent_volume_claim_update(new: core_pb2.PersistentVolumeClaim,
                                            old: core_pb2.PersistentVolumeClaim, errs: Errs) -> None:
    """A claim's spec is immutable, except that an unbound claim gets its volumeName once."""
    a, b = core_pb2.PersistentVolumeClaimSpec(), core_pb2.PersistentVolumeClaimSpec()
    a.CopyFrom(new.spec)
    b.CopyFrom(old.spec)
    if not old.spec.volume_name:
        a.volume_name = ""
    if a != b:
        errs.append(FieldError("spec", "Forbidden", "spec is immutable after creation except `volumeName` of an "
                               "unbound claim"))


def validate_storage_class(sc: storage_pb2.StorageClass, errs: Errs) -> None:
    if not sc.provisioner:
        errs.append(FieldError("provisioner", "Required value"))
    elif why := names.dns1123_subdomain(sc.provisioner.replace("/", ".").lower()):
        errs.append(FieldError("provisioner", "Invalid value", why, sc.provisioner))
    if sc.HasField("reclaim_policy") and sc.reclaim_policy not in ("Retain", "Delete"):
        errs.append(_unsupported("reclaimPolicy", sc.reclaim_policy, ("Delete", "Retain")))
    if sc.HasField("volume_binding_mode") and sc.volume_binding_mode not in volumes.BINDING_MODES:
        errs.append(_unsupported("volumeBindingMode", sc.volume_binding_mode, volumes.BINDING_MODES))


def validate_storage_class_update(new: storage_pb2.StorageClass, old: storage_pb2.StorageClass, errs: Errs) -> None:
    for field, json_name in (("provisioner", "provisioner"), ("parameters", "parameters"),
                             ("reclaim_policy", "reclaimPolicy"), ("volume_binding_mode", "volumeBindingMode")):
        if getattr(new, field) != getattr(old, field):
            errs.append(FieldError(json_name, "Forbidden", "updates to " + json_name + " are forbidden."))


# ---------------------------------------------------------------- networking.k8s.io and discovery.k8s.io

PATH_TYPES = ("Exact", "Prefix", "ImplementationSpecific")
ADDRESS_TYPES = ("IPv4", "IPv6", "FQDN")
DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
# Kubernetes' invalid path sequences for Exact and Prefix paths.
_BAD_PATH_PARTS = ("//", "/./", "/../", "%2f", "%2F")
_BAD_PATH_ENDS = ("/..", "/.")
MAX_SLICE_ENDPOINTS = 1000
MAX_SLICE_PORTS = 100


def _host(value: str, path: str, errs: Errs) -> None:
    """A rule or TLS host: a DNS subdomain, optionally with a leading "*." wildcard, never an IP address."""
    try:
        ipaddress.ip_address(value)
        errs.append(FieldError(path, "Invalid value", "must be a DNS name, not an IP address", value))
        return
    except ValueError:
        pass
    name = value[2:] if value.startswith("*.") else value
    if why := names.dns1123_subdomain(name):
        if value.startswith("*."):
            why = "a wildcard DNS-1123 subdomain must start with '*.', followed by a valid DNS subdomain"
        errs.append(FieldError(path, "Invalid value", why, value))


def _ingress_backend(b: networking_pb2.IngressBackend, path: str, errs: Errs) -> None:
    if b.HasField("resource"):
        # Kubernetes allows any object here; kubelite's controller routes to Services only.
        errs.append(FieldError(f"{path}.resource", "Unsupported value",
                               "kubelite's ingress controller routes to Services only: use `service`",
                               f"{b.resource.kind}/{b.resource.name}"))
        return
    if not b.HasField("service"):
        errs.append(FieldError(path, "Invalid value", "one backend (service) must be specified"))
        return
    svc = b.service
    if not svc.name:
        errs.append(FieldError(f"{path}.service.name", "Required value"))
    elif why := names.dns1035_label(svc.name):
        errs.append(FieldError(f"{path}.service.name", "Invalid value", why, svc.name))
    port = svc.port
    if port.name and port.number:
        errs.append(FieldError(f"{path}.service.port", "Invalid value", "cannot set both port name & port number"))
    elif port.name:
        if why := names.iana_svc_name(port.name):
            errs.append(FieldError(f"{path}.service.port.name", "Invalid value", why, port.name))
    elif port.number:
        if not 1 <= port.number <= 65535:
            errs.append(FieldError(f"{path}.service.port.number", "Invalid value",
                                   "must be between 1 and 65535, inclusive", port.number))
    else:
        errs.append(FieldError(f"{path}.service.port", "Invalid value", "port name or number is required"))


def _ingress_path(p: networking_pb2.HTTPIngressPath, path: str, errs: Errs) -> None:
    if not p.path_type:
        errs.append(FieldError(f"{path}.pathType", "Required value", "pathType must be specified"))
    elif p.path_type not in PATH_TYPES:
        errs.append(_unsupported(f"{path}.pathType", p.path_type, PATH_TYPES))
    if p.path_type in ("Exact", "Prefix") or p.path:
        if not p.path.startswith("/"):
            errs.append(FieldError(f"{path}.path", "Invalid value", "must be an absolute path", p.path))
        elif p.path_type in ("Exact", "Prefix"):
            for bad in _BAD_PATH_PARTS:
                if bad in p.path:
                    errs.append(FieldError(f"{path}.path", "Invalid value", f"must not contain '{bad}'", p.path))
            for bad in _BAD_PATH_ENDS:
                if p.path.endswith(bad):
                    errs.append(FieldError(f"{path}.path", "Invalid value", f"cannot end with '{bad}'", p.path))
    _ingress_backend(p.backend, f"{path}.backend", errs)


def validate_ingress(ing: networking_pb2.Ingress, errs: Errs) -> None:
    s = ing.spec
    if s.HasField("ingress_class_name") and (why := names.dns1123_subdomain(s.ingress_class_name)):
        errs.append(FieldError("spec.ingressClassName", "Invalid value", why, s.ingress_class_name))
    if not s.rules and not s.HasField("default_backend"):
        errs.append(FieldError("spec.rules", "Invalid value", "either `defaultBackend` or `rules` must be specified"))
    if s.HasField("default_backend"):
        _ingress_backend(s.default_backend, "spec.defaultBackend", errs)
    for i, rule in enumerate(s.rules):
        p = f"spec.rules[{i}]"
        if rule.host:
            _host(rule.host, f"{p}.host", errs)
        if not rule.HasField("http"):
            errs.append(FieldError(f"{p}.http", "Required value", "kubelite's ingress controller serves HTTP rules"))
            continue
        if not rule.http.paths:
            errs.append(FieldError(f"{p}.http.paths", "Required value"))
        for j, hp in enumerate(rule.http.paths):
            _ingress_path(hp, f"{p}.http.paths[{j}]", errs)
    for i, tls in enumerate(s.tls):
        for j, host in enumerate(tls.hosts):
            _host(host, f"spec.tls[{i}].hosts[{j}]", errs)
        if tls.secret_name and (why := names.dns1123_subdomain(tls.secret_name)):
            errs.append(FieldError(f"spec.tls[{i}].secretName", "Invalid value", why, tls.secret_name))
    validate_ingress_status(ing, errs)


def validate_ingress_status(ing: networking_pb2.Ingress, errs: Errs) -> None:
    for i, lb in enumerate(ing.status.load_balancer.ingress):
        if lb.ip:
            _ip(lb.ip, f"status.loadBalancer.ingress[{i}].ip", errs)
        if lb.hostname and (why := names.dns1123_subdomain(lb.hostname)):
            errs.append(FieldError(f"status.loadBalancer.ingress[{i}].hostname", "Invalid value", why, lb.hostname))


def _domain_prefixed_path(value: str) -> str | None:
    """Why `value` is not a domain-prefixed path (`acme.io/foo`), or None."""
    domain, sep, rest = value.partition("/")
    if not sep or not rest:
        return 'must be a domain-prefixed path (such as "acme.io/foo")'
    return names.dns1123_subdomain(domain)


def validate_ingress_class(ic: networking_pb2.IngressClass, errs: Errs) -> None:
    c = ic.spec.controller
    if not c:
        errs.append(FieldError("spec.controller", "Required value"))
    elif len(c) > 250:
        errs.append(FieldError("spec.controller", "Too long", "must have at most 250 bytes"))
    elif why := _domain_prefixed_path(c):
        errs.append(FieldError("spec.controller", "Invalid value", why, c))
    value = ic.metadata.annotations.get(DEFAULT_CLASS_ANNOTATION)
    if value is not None and value not in ("true", "false"):
        errs.append(FieldError(f"metadata.annotations[{DEFAULT_CLASS_ANNOTATION}]", "Invalid value",
                               'must be "true" or "false"', value))
    if ic.spec.HasField("parameters"):
        p = ic.spec.parameters
        for field, json in (("kind", "kind"), ("name", "name")):
            if not getattr(p, field):
                errs.append(FieldError(f"spec.parameters.{json}", "Required value"))
        scope = p.scope if p.HasField("scope") else "Cluster"
        if scope not in ("Cluster", "Namespace"):
            errs.append(_unsupported("spec.parameters.scope", scope, ("Cluster", "Namespace")))
        elif scope == "Namespace" and not p.namespace:
            errs.append(FieldError("spec.parameters.namespace", "Required value",
                                   "`parameters.scope` is set to 'Namespace'"))
        elif scope == "Cluster" and p.HasField("namespace"):
            errs.append(FieldError("spec.parameters.namespace", "Forbidden",
                                   "`parameters.scope` is set to 'Cluster'"))


def validate_ingress_class_update(new: networking_pb2.IngressClass, old: networking_pb2.IngressClass,
                                  errs: Errs) -> None:
    if new.spec.controller != old.spec.controller:
        errs.append(FieldError("spec.controller", "Invalid value", "field is immutable", new.spec.controller))


def validate_endpoint_slice(es: discovery_pb2.EndpointSlice, errs: Errs) -> None:
    if not es.address_type:
        errs.append(FieldError("addressType", "Required value"))
    elif es.address_type not in ADDRESS_TYPES:
        errs.append(_unsupported("addressType", es.address_type, ADDRESS_TYPES))
    if len(es.endpoints) > MAX_SLICE_ENDPOINTS:
        errs.append(FieldError("endpoints", "Too many", f"must have at most {MAX_SLICE_ENDPOINTS} items",
                               len(es.endpoints)))
    for i, ep in enumerate(es.endpoints):
        p = f"endpoints[{i}]"
        if not ep.addresses:
            errs.append(FieldError(f"{p}.addresses", "Required value", "must contain at least 1 address"))
        elif len(ep.addresses) > 100:
            errs.append(FieldError(f"{p}.addresses", "Too many", "must have at most 100 items", len(ep.addresses)))
        for j, address in enumerate(ep.addresses):
            ap = f"{p}.addresses[{j}]"
            if es.address_type not in ADDRESS_TYPES:
                continue
            if es.address_type == "FQDN":
                if why := names.dns1123_subdomain(address):
                    errs.append(FieldError(ap, "Invalid value", why, address))
                continue
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                errs.append(FieldError(ap, "Invalid value", "must be a valid IP address", address))
                continue
            if (ip.version == 4) != (es.address_type == "IPv4"):
                errs.append(FieldError(ap, "Invalid value", f"must be an {es.address_type} address", address))
        if ep.HasField("hostname") and (why := names.dns1123_label(ep.hostname)):
            errs.append(FieldError(f"{p}.hostname", "Invalid value", why, ep.hostname))
        if ep.HasField("node_name") and (why := names.dns1123_subdomain(ep.node_name)):
            errs.append(FieldError(f"{p}.nodeName", "Invalid value", why, ep.node_name))
    if len(es.ports) > MAX_SLICE_PORTS:
        errs.append(FieldError("ports", "Too many", f"must have at most {MAX_SLICE_PORTS} items", len(es.ports)))
    seen: set[str] = set()
    for i, port in enumerate(es.ports):
        p = f"ports[{i}]"
        if port.name:
            if why := names.dns1123_label(port.name):
                errs.append(FieldError(f"{p}.name", "Invalid value", why, port.name))
            elif port.name in seen:
                errs.append(FieldError(f"{p}.name", "Duplicate value", "", port.name))
            seen.add(port.name)
        if port.HasField("protocol") and port.protocol not in PROTOCOLS:
            errs.append(_unsupported(f"{p}.protocol", port.protocol, PROTOCOLS))
        if port.HasField("port") and not 1 <= port.port <= 65535:
            errs.append(FieldError(f"{p}.port", "Invalid value", "must be between 1 and 65535, inclusive", port.port))


def validate_endpoint_slice_update(new: discovery_pb2.EndpointSlice, old: discovery_pb2.EndpointSlice,
                                   errs: Errs) -> None:
    if new.address_type != old.address_type:
        errs.append(FieldError("addressType", "Invalid value", "field is immutable", new.address_type))


# ---------------------------------------------------------------- jobs, cron jobs, daemon sets, stateful sets, budgets

COMPLETION_MODES = ("NonIndexed", "Indexed")
CONCURRENCY_POLICIES = ("Allow", "Forbid", "Replace")
UPDATE_STRATEGIES = ("RollingUpdate", "OnDelete")
POD_MANAGEMENT_POLICIES = ("OrderedReady", "Parallel")
RETENTION_POLICIES = ("Retain", "Delete")
POD_FAILURE_ACTIONS = ("FailJob", "Ignore", "Count")
UNHEALTHY_POD_EVICTION_POLICIES = ("IfHealthyBudget", "AlwaysAllow")
# Indexed Jobs: at most this many completions (and pods in parallel), as Kubernetes.
MAX_INDEXED_COMPLETIONS = 100_000
# A CronJob's Jobs are named <cronjob>-<11 characters>.
MAX_CRONJOB_NAME = 52


def _non_negative(value: int, path: str, errs: Errs) -> None:
    if value < 0:
        errs.append(FieldError(path, "Invalid value", "must be greater than or equal to 0", value))


def _int_or_percent(value: str, path: str, errs: Errs) -> None:
    """A count or a percentage of at most 100%."""
    if not value:
        return
    if not intstr.is_valid_percent_or_int(value):
        errs.append(FieldError(path, "Invalid value", "must be an integer or percentage (e.g '5%')", value))
    elif intstr.scaled(value, 100, round_up=True) < 0:
        errs.append(FieldError(path, "Invalid value", "must be greater than or equal to 0", value))
    elif value.endswith("%") and int(value[:-1]) > 100:
        errs.append(FieldError(path, "Invalid value", "must not be greater than 100%", value))


def _pod_failure_policy(policy: batch_pb2.PodFailurePolicy, restart_policy: str, path: str, errs: Errs) -> None:
    if restart_policy != "Never":
        errs.append(FieldError(f"{path}.template.spec.restartPolicy", "Invalid value",
                               "only \"Never\" is supported when podFailurePolicy is specified", restart_policy))
    for i, rule in enumerate(policy.rules):
        p = f"{path}.podFailurePolicy.rules[{i}]"
        if rule.action not in POD_FAILURE_ACTIONS:
            errs.append(_unsupported(f"{p}.action", rule.action, POD_FAILURE_ACTIONS))
        has_codes, has_conditions = rule.HasField("on_exit_codes"), bool(rule.on_pod_conditions)
        if has_codes == has_conditions:
            errs.append(FieldError(p, "Invalid value", "specifying one of OnExitCodes and OnPodConditions is "
                                                       "required"))
        if has_codes:
            codes = rule.on_exit_codes
            if codes.operator not in ("In", "NotIn"):
                errs.append(_unsupported(f"{p}.onExitCodes.operator", codes.operator, ("In", "NotIn")))
            if not codes.values:
                errs.append(FieldError(f"{p}.onExitCodes.values", "Required value", "at least one value is required"))
            if len(set(codes.values)) != len(codes.values):
                errs.append(FieldError(f"{p}.onExitCodes.values", "Duplicate value", "", list(codes.values)))
            elif list(codes.values) != sorted(codes.values):
                errs.append(FieldError(f"{p}.onExitCodes.values", "Invalid value", "must be ordered",
                                       list(codes.values)))
            if codes.operator == "In" and 0 in codes.values:
                errs.append(FieldError(f"{p}.onExitCodes.values", "Invalid value",
                                       "must not be 0 for the In operator", 0))
        for j, pattern in enumerate(rule.on_pod_conditions):
            q = f"{p}.onPodConditions[{j}]"
            if not pattern.type:
                errs.append(FieldError(f"{q}.type", "Required value"))
            if pattern.status not in ("True", "False", "Unknown"):
                errs.append(_unsupported(f"{q}.status", pattern.status, ("True", "False", "Unknown")))


def validate_job_spec(s: batch_pb2.JobSpec, errs: Errs, *, path: str = "spec", needs_selector: bool = True) -> None:
    for field, json in (("parallelism", "parallelism"), ("completions", "completions"),
                        ("backoff_limit", "backoffLimit"), ("ttl_seconds_after_finished", "ttlSecondsAfterFinished")):
        if s.HasField(field):
            _non_negative(getattr(s, field), f"{path}.{json}", errs)
    if s.HasField("active_deadline_seconds") and s.active_deadline_seconds <= 0:
        errs.append(FieldError(f"{path}.activeDeadlineSeconds", "Invalid value", "must be greater than 0",
                               s.active_deadline_seconds))
    if s.HasField("completion_mode") and s.completion_mode not in COMPLETION_MODES:
        errs.append(_unsupported(f"{path}.completionMode", s.completion_mode, COMPLETION_MODES))
    if s.completion_mode == "Indexed":
        if not s.HasField("completions"):
            errs.append(FieldError(f"{path}.completions", "Required value",
                                   "when completion mode is Indexed"))
        elif s.completions > MAX_INDEXED_COMPLETIONS:
            errs.append(FieldError(f"{path}.completions", "Invalid value",
                                   f"must be less than or equal to {MAX_INDEXED_COMPLETIONS} when completion mode "
                                   f"is Indexed", s.completions))
        if s.parallelism > MAX_INDEXED_COMPLETIONS:
            errs.append(FieldError(f"{path}.parallelism", "Invalid value",
                                   f"must be less than or equal to {MAX_INDEXED_COMPLETIONS} when completion mode "
                                   f"is Indexed", s.parallelism))
    policies = ("OnFailure", "Never")
    if needs_selector or s.HasField("selector"):
        _selector_and_template(s.selector, s.HasField("selector"), s.template, errs, path=path,
                               restart_policies=policies)
    else:
        _template(s.template, errs, path=path, restart_policies=policies)
    if s.HasField("pod_failure_policy"):
        _pod_failure_policy(s.pod_failure_policy, s.template.spec.restart_policy, path, errs)


def validate_job(j: batch_pb2.Job, errs: Errs) -> None:
    # Without manualSelector the apiserver makes the selector from the Job's uid (and checks it: rules/job.py).
    validate_job_spec(j.spec, errs, needs_selector=bool(j.spec.manual_selector))


def validate_job_update(new: batch_pb2.Job, old: batch_pb2.Job, errs: Errs) -> None:
    """What a running Job may not change: its selector, pod template, completions and mode, failure policy."""
    a, b = new.spec, old.spec
    for field, json in (("selector", "selector"), ("template", "template"), ("completions", "completions"),
                        ("completion_mode", "completionMode"), ("pod_failure_policy", "podFailurePolicy"),
                        ("manual_selector", "manualSelector")):
        if getattr(a, field) != getattr(b, field) or \
                (a.HasField(field) != b.HasField(field) and field != "template"):
            errs.append(FieldError(f"spec.{json}", "Invalid value", "field is immutable"))


def _cron_schedule(schedule: str, path: str, errs: Errs) -> None:
    from croniter import croniter  # the schedule's grammar is the library's, as robfig/cron's is Kubernetes'

    if not schedule.strip():
        errs.append(FieldError(path, "Required value"))
    elif "TZ=" in schedule:
        errs.append(FieldError(path, "Invalid value", "cannot use TZ or CRON_TZ in schedule, use timeZone field "
                                                      "instead", schedule))
    elif not croniter.is_valid(schedule) or len(schedule.split()) not in (1, 5):
        errs.append(FieldError(path, "Invalid value", "must be a standard cron schedule (five fields: minute hour "
                                                      "day-of-month month day-of-week, or @hourly, @daily, ...)",
                               schedule))


def _time_zone(value: str, path: str, errs: Errs) -> None:
    import zoneinfo

    try:
        if value in ("", "Local") or value != value.strip():
            raise ValueError
        zoneinfo.ZoneInfo(value)
    except (ValueError, zoneinfo.ZoneInfoNotFoundError):
        errs.append(FieldError(path, "Invalid value", "unknown time zone", value))


def validate_cronjob(c: batch_pb2.CronJob, errs: Errs) -> None:
    if len(c.metadata.name) > MAX_CRONJOB_NAME:
        errs.append(FieldError("metadata.name", "Invalid value", f"must be no more than {MAX_CRONJOB_NAME} "
                                                                f"characters", c.metadata.name))
    s = c.spec
    _cron_schedule(s.schedule, "spec.schedule", errs)
    if s.HasField("time_zone"):
        _time_zone(s.time_zone, "spec.timeZone", errs)
    if s.concurrency_policy and s.concurrency_policy not in CONCURRENCY_POLICIES:
        errs.append(_unsupported("spec.concurrencyPolicy", s.concurrency_policy, CONCURRENCY_POLICIES))
    for field, json in (("starting_deadline_seconds", "startingDeadlineSeconds"),
                        ("successful_jobs_history_limit", "successfulJobsHistoryLimit"),
                        ("failed_jobs_history_limit", "failedJobsHistoryLimit")):
        if s.HasField(field):
            _non_negative(getattr(s, field), f"spec.{json}", errs)
    validate_labels(s.job_template.metadata.labels, "spec.jobTemplate.metadata.labels", errs)
    validate_job_spec(s.job_template.spec, errs, path="spec.jobTemplate.spec", needs_selector=False)


def validate_daemonset(d: apps_pb2.DaemonSet, errs: Errs) -> None:
    s = d.spec
    _selector_and_template(s.selector, s.HasField("selector"), s.template, errs)
    if s.template.spec.HasField("active_deadline_seconds"):
        errs.append(FieldError("spec.template.spec.activeDeadlineSeconds", "Forbidden",
                               "activeDeadlineSeconds in DaemonSet is not Supported"))
    _non_negative(s.min_ready_seconds, "spec.minReadySeconds", errs)
    if s.HasField("revision_history_limit"):
        _non_negative(s.revision_history_limit, "spec.revisionHistoryLimit", errs)
    st = s.update_strategy
    if st.type not in UPDATE_STRATEGIES:
        errs.append(_unsupported("spec.updateStrategy.type", st.type, UPDATE_STRATEGIES))
    if st.type == "OnDelete" and st.HasField("rolling_update"):
        errs.append(FieldError("spec.updateStrategy.rollingUpdate", "Forbidden",
                               "may not be specified when strategy `type` is 'OnDelete'"))
    ru = st.rolling_update
    base = "spec.updateStrategy.rollingUpdate"
    _int_or_percent(ru.max_unavailable, f"{base}.maxUnavailable", errs)
    _int_or_percent(ru.max_surge, f"{base}.maxSurge", errs)
    if st.type == "RollingUpdate" and intstr.is_valid_percent_or_int(ru.max_unavailable or "0") and \
            intstr.is_valid_percent_or_int(ru.max_surge or "0") and \
            intstr.scaled(ru.max_unavailable or "0", 100, round_up=True) == 0 and \
            intstr.scaled(ru.max_surge or "0", 100, round_up=True) == 0:
        errs.append(FieldError(f"{base}.maxUnavailable", "Invalid value", "may not be 0 when `maxSurge` is 0",
                               ru.max_unavailable or "0"))


def with_claim_volumes(sts: apps_pb2.StatefulSet) -> core_pb2.PodTemplateSpec:
    """The pod template as the set's pods get it: a persistentVolumeClaim volume for each claim template (replacing
    a template volume of the same name)."""
    t = core_pb2.PodTemplateSpec()
    t.CopyFrom(sts.spec.template)
    claims = {c.metadata.name for c in sts.spec.volume_claim_templates}
    kept = [v for v in t.spec.volumes if v.name not in claims]
    del t.spec.volumes[:]
    t.spec.volumes.extend(kept)
    for c in sts.spec.volume_claim_templates:
        t.spec.volumes.add(name=c.metadata.name).persistent_volume_claim.claim_name = c.metadata.name
    return t


def validate_statefulset(st: apps_pb2.StatefulSet, errs: Errs) -> None:
    s = st.spec
    _non_negative(s.replicas, "spec.replicas", errs)
    # The claim templates' volumes are the pods' too: mounts may name them.
    _selector_and_template(s.selector, s.HasField("selector"), with_claim_volumes(st), errs)
    seen: set[str] = set()
    for i, claim in enumerate(s.volume_claim_templates):
        p = f"spec.volumeClaimTemplates[{i}]"
        name = claim.metadata.name
        if not name:
            errs.append(FieldError(f"{p}.metadata.name", "Required value"))
        elif why := names.dns1123_label(name):
            errs.append(FieldError(f"{p}.metadata.name", "Invalid value", why, name))
        elif name in seen:
            errs.append(FieldError(f"{p}.metadata.name", "Duplicate value", "", name))
        seen.add(name)
        validate_labels(claim.metadata.labels, f"{p}.metadata.labels", errs)
        claim_errs: Errs = []
        validate_persistent_volume_claim(claim, claim_errs)
        errs.extend(FieldError(f"{p}.{e.path}", e.kind, e.detail, e.value) for e in claim_errs)
    if s.template.spec.HasField("active_deadline_seconds"):
        errs.append(FieldError("spec.template.spec.activeDeadlineSeconds", "Forbidden",
                               "activeDeadlineSeconds in StatefulSet is not Supported"))
    if s.service_name and (why := names.dns1123_label(s.service_name)):
        errs.append(FieldError("spec.serviceName", "Invalid value", why, s.service_name))
    if s.pod_management_policy not in POD_MANAGEMENT_POLICIES:
        errs.append(_unsupported("spec.podManagementPolicy", s.pod_management_policy, POD_MANAGEMENT_POLICIES))
    strategy = s.update_strategy
    if strategy.type not in UPDATE_STRATEGIES:
        errs.append(_unsupported("spec.updateStrategy.type", strategy.type, UPDATE_STRATEGIES))
    if strategy.type == "OnDelete" and strategy.HasField("rolling_update"):
        errs.append(FieldError("spec.updateStrategy.rollingUpdate", "Invalid value",
                               "only allowed for updateStrategy 'RollingUpdate'"))
    if strategy.rolling_update.HasField("partition"):
        _non_negative(strategy.rolling_update.partition, "spec.updateStrategy.rollingUpdate.partition", errs)
    _non_negative(s.min_ready_seconds, "spec.minReadySeconds", errs)
    if s.HasField("revision_history_limit"):
        _non_negative(s.revision_history_limit, "spec.revisionHistoryLimit", errs)
    policy = s.persistent_volume_claim_retention_policy
    for value, json in ((policy.when_deleted, "whenDeleted"), (policy.when_scaled, "whenScaled")):
        if value not in RETENTION_POLICIES:
            errs.append(_unsupported(f"spec.persistentVolumeClaimRetentionPolicy.{json}", value, RETENTION_POLICIES))


def validate_statefulset_update(new: apps_pb2.StatefulSet, old: apps_pb2.StatefulSet, errs: Errs) -> None:
    """Only replicas, template, updateStrategy, persistentVolumeClaimRetentionPolicy and minReadySeconds change."""
    a, b = apps_pb2.StatefulSetSpec(), apps_pb2.StatefulSetSpec()
    a.CopyFrom(new.spec)
    b.CopyFrom(old.spec)
    for spec in (a, b):
        for field in ("replicas", "template", "update_strategy", "persistent_volume_claim_retention_policy",
                      "min_ready_seconds", "revision_history_limit"):
            spec.ClearField(field)
    if a != b:
        errs.append(FieldError("spec", "Forbidden", "updates to statefulset spec for fields other than 'replicas', "
                                                    "'template', 'updateStrategy', "
                                                    "'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' "
                                                    "are forbidden"))


def validate_pdb(pdb: policy_pb2.PodDisruptionBudget, errs: Errs) -> None:
    s = pdb.spec
    if s.min_available and s.max_unavailable:
        errs.append(FieldError("spec", "Invalid value", "minAvailable and maxUnavailable cannot be both set"))
    _int_or_percent(s.min_available, "spec.minAvailable", errs)
    _int_or_percent(s.max_unavailable, "spec.maxUnavailable", errs)
    errs.extend(labels.label_selector_errors(s.selector, "spec.selector"))
    if s.HasField("unhealthy_pod_eviction_policy") and \
            s.unhealthy_pod_eviction_policy not in UNHEALTHY_POD_EVICTION_POLICIES:
        errs.append(_unsupported("spec.unhealthyPodEvictionPolicy", s.unhealthy_pod_eviction_policy,
                                 UNHEALTHY_POD_EVICTION_POLICIES))


def validate_controller_revision(r: apps_pb2.ControllerRevision, errs: Errs) -> None:
    _non_negative(r.revision, "revision", errs)
    if not r.HasField("data"):
        errs.append(FieldError("data", "Required value"))


def validate_controller_revision_update(new: apps_pb2.ControllerRevision, old: apps_pb2.ControllerRevision,
                                        errs: Errs) -> None:
    if new.data != old.data:
        errs.append(FieldError("data", "Invalid value", "field is immutable"))


_CREATE: dict[str, Callable[[Any, Errs], None]] = {
    "Pod": validate_pod,
    "Service": validate_service,
    "Endpoints": validate_endpoints,
    "ReplicaSet": validate_replicaset,
    "Deployment": validate_deployment,
    "Node": validate_node,
    "Event": validate_event,
    "Lease": validate_lease,
    "PriorityClass": validate_priority_class,
    "BootstrapToken": validate_bootstrap_token,
    "ConfigMap": validate_config_map,
    "Secret": validate_secret,
    "PersistentVolume": validate_persistent_volume,
    "PersistentVolumeClaim": validate_persistent_volume_claim,
    "StorageClass": validate_storage_class,
    "Ingress": validate_ingress,
    "IngressClass": validate_ingress_class,
    "EndpointSlice": validate_endpoint_slice,
    "Job": validate_job,
    "CronJob": validate_cronjob,
    "DaemonSet": validate_daemonset,
    "StatefulSet": validate_statefulset,
    "PodDisruptionBudget": validate_pdb,
    "ControllerRevision": validate_controller_revision,
    "Role": rbac.validate_role,
    "ClusterRole": rbac.validate_cluster_role,
    "RoleBinding": rbac.validate_role_binding,
    "ClusterRoleBinding": rbac.validate_cluster_role_binding,
}

_NAME_RULES: dict[str, Callable[[str], str | None]] = {
    "Namespace": names.dns1123_label,
    "Service": names.dns1035_label,
    "BootstrapToken": _token_id,
    # Its pods are named <name>-<ordinal> and use that as their hostname.
    "StatefulSet": names.dns1123_label,
    "Role": rbac.name_error,
    "ClusterRole": rbac.name_error,
    "RoleBinding": rbac.name_error,
    "ClusterRoleBinding": rbac.name_error,
}

_UPDATE: dict[str, Callable[[Any, Any, Errs], None]] = {
    "Pod": validate_pod_update,
    "Service": validate_service_update,
    "ReplicaSet": _selector_immutable,
    "Deployment": _selector_immutable,
    "Node": validate_node_update,
    "PriorityClass": validate_priority_class_update,
    "ConfigMap": validate_config_map_update,
    "Secret": validate_secret_update,
    "PersistentVolume": validate_persistent_volume_update,
    "PersistentVolumeClaim": validate_persistent_volume_claim_update,
    "StorageClass": validate_storage_class_update,
    "IngressClass": validate_ingress_class_update,
    "EndpointSlice": validate_endpoint_slice_update,
    "Job": validate_job_update,
    "DaemonSet": _selector_immutable,
    "StatefulSet": validate_statefulset_update,
    "ControllerRevision": validate_controller_revision_update,
    "RoleBinding": rbac.validate_binding_update,
    "ClusterRoleBinding": rbac.validate_binding_update,
}


def validate(obj: Message) -> Errs:
    """All field errors of a new object."""
    kind = kinds.of(obj)
    errs: Errs = []
    validate_meta(obj.metadata, kind, errs, name_rule=_NAME_RULES.get(kind.kind, names.dns1123_subdomain))  # type: ignore[attr-defined]
    check = _CREATE.get(kind.kind)
    if check:
        check(obj, errs)
    # Control characters anywhere else (a field already refused is not named twice).
    named = {e.path for e in errs}
    errs.extend(e for e in _control_errors(obj) if e.path not in named)
    return errs


def _control_errors(obj: Message) -> list[FieldError]:
    """text.control_errors of an object, its spec checked once per encoding (api/memo.py): the pods of one
    template differ in their metadata, and walking every string of the spec cost more than the rest of
    validation together."""
    if "spec" not in obj.DESCRIPTOR.fields_by_name or not obj.HasField("spec"):  # type: ignore[attr-defined]
        return text.control_errors(obj)
    spec = obj.spec  # type: ignore[attr-defined]
    errs = text.control_errors(obj, skip=_SPEC)
    errs.extend(_CLEAN_SPECS.get(spec.DESCRIPTOR.full_name, spec.SerializeToString(deterministic=True),
                                 lambda: tuple(text.control_errors(spec, "spec"))))
    return errs


_SPEC = frozenset({"spec"})
_CLEAN_SPECS: Memo[tuple[FieldError, ...]] = Memo()


def validate_update(new: Message, old: Message) -> Errs:
    """Field errors of an update: the object's own rules plus what may not change."""
    errs = validate(new)
    kind = kinds.of(new)
    for field in ("name", "namespace"):
        if getattr(new.metadata, field) != getattr(old.metadata, field):  # type: ignore[attr-defined]
            errs.append(FieldError(f"metadata.{field}", "Invalid value", "field is immutable",
                                   getattr(new.metadata, field)))  # type: ignore[attr-defined]
    check = _UPDATE.get(kind.kind)
    if check:
        check(new, old, errs)
    return errs
