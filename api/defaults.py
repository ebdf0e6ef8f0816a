"""Defaults the apiserver fills in on create, as Kubernetes' defaulting does.

Each function mutates the object in place and is idempotent, so applying the
same manifest twice yields the same stored object.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.protobuf.message import Message

from api import kinds
from api.memo import Memo
from api.pb import apps_pb2, batch_pb2, core_pb2, discovery_pb2, scheduling_pb2, storage_pb2

# Pods tolerate an unreachable or not-ready node this long before eviction.
# Kubernetes' DefaultTolerationSeconds admission uses 300 s; kubelite aims at
# replacing a lost node's pods within 5 s, so the apiserver's flag defaults it
# to 1 s (the node grace period already rides out missed heartbeats).
DEFAULT_TOLERATION_SECONDS = 1

# Files of configMap, secret, downwardAPI and projected volumes: 0644, as in Kubernetes.
DEFAULT_MODE = 0o644

NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"


def _image_pull_policy(image: str) -> str:
    name = image.rsplit("/", 1)[-1]
    if "@" in name:
        return "IfNotPresent"
    tag = name.split(":", 1)[1] if ":" in name else "latest"
    return "Always" if tag == "latest" else "IfNotPresent"


def _probe(p: core_pb2.Probe) -> None:
    if p.timeout_seconds == 0:
        p.timeout_seconds = 1
    if p.period_seconds == 0:
        p.period_seconds = 10
    if p.success_threshold == 0:
        p.success_threshold = 1
    if p.failure_threshold == 0:
        p.failure_threshold = 3
    _handler(p)


def _handler(h: Any) -> None:
    if h.HasField("http_get"):
        if not h.http_get.path:
            h.http_get.path = "/"
        if not h.http_get.scheme:
            h.http_get.scheme = "HTTP"


def _container(c: core_pb2.Container) -> None:
    if not c.image_pull_policy and c.image:
        c.image_pull_policy = _image_pull_policy(c.image)
    if not c.termination_message_path:
        c.termination_message_path = "/dev/termination-log"
    if not c.termination_message_policy:
        c.termination_message_policy = "File"
    for port in c.ports:
        if not port.protocol:
            port.protocol = "TCP"
    for attr in ("liveness_probe", "readiness_probe", "startup_probe"):
        if c.HasField(attr):
            _probe(getattr(c, attr))
    for attr in ("post_start", "pre_stop"):
        if c.lifecycle.HasField(attr):
            _handler(getattr(c.lifecycle, attr))
    for env in c.env:
        if env.value_from.HasField("field_ref") and not env.value_from.field_ref.api_version:
            env.value_from.field_ref.api_version = "v1"
    # Requests default to limits, as in Kubernetes.
    for name, value in c.resources.limits.items():
        if name not in c.resources.requests:
            c.resources.requests[name] = value


def pod_spec(spec: core_pb2.PodSpec, *, toleration_seconds: int | None) -> None:
    if not spec.restart_policy:
        spec.restart_policy = "Always"
    if not spec.dns_policy:
        spec.dns_policy = "ClusterFirst"
    if not spec.HasField("termination_grace_period_seconds"):
        spec.termination_grace_period_seconds = 30
    if not spec.scheduler_name:
        spec.scheduler_name = "default-scheduler"
    if not spec.HasField("enable_service_links"):
        spec.enable_service_links = True
    if spec.service_account and not spec.service_account_name:
        spec.service_account_name = spec.service_account
    for v in spec.volumes:
        if not any(f.name != "name" for f, _ in v.ListFields()):
            v.empty_dir.SetInParent()
        for field in ("config_map", "secret", "downward_api", "projected"):
            if v.HasField(field) and not getattr(v, field).HasField("default_mode"):
                getattr(v, field).default_mode = DEFAULT_MODE
    for c in (*spec.init_containers, *spec.containers):
        _container(c)
    if toleration_seconds is not None:
        for key in (NOT_READY_TAINT, UNREACHABLE_TAINT):
            if not any(t.key == key and t.effect in ("NoExecute", "") for t in spec.tolerations) and \
                    not any(t.operator == "Exists" and not t.key for t in spec.tolerations):
                spec.tolerations.add(key=key, operator="Exists", effect="NoExecute",
                                     toleration_seconds=toleration_seconds)


def qos_class(spec: core_pb2.PodSpec) -> str:
    """Guaranteed, Burstable or BestEffort, from the containers' requests and limits."""
    containers = list(spec.containers) + list(spec.init_containers)
    any_set = any(c.resources.requests or c.resources.limits for c in containers)
    if not any_set:
        return "BestEffort"
    guaranteed = all(
        all(r in c.resources.limits and c.resources.requests.get(r, c.resources.limits[r]) == c.resources.limits[r]
            for r in ("cpu", "memory"))
        for c in containers
    )
    return "Guaranteed" if guaranteed else "Burstable"


def pod(p: core_pb2.Pod, *, toleration_seconds: int | None = DEFAULT_TOLERATION_SECONDS) -> None:
    p.spec.ParseFromString(_DEFAULTED_SPECS.get(toleration_seconds, p.spec.SerializeToString(deterministic=True),
                                                lambda: _defaulted(p.spec, toleration_seconds)))
    if not p.status.phase:
        p.status.phase = "Pending"
    if not p.status.qos_class:
        p.status.qos_class = qos_class(p.spec)


def _defaulted(spec: core_pb2.PodSpec, toleration_seconds: int | None) -> bytes:
    """A pod spec with its defaults, encoded: a pure function of the spec, worked out once per template (the pods
    of one differ in their names) and memoized by its encoding (api/memo.py)."""
    pod_spec(spec, toleration_seconds=toleration_seconds)
    return spec.SerializeToString(deterministic=True)


_DEFAULTED_SPECS: Memo[bytes] = Memo()


def _template(t: core_pb2.PodTemplateSpec) -> None:
    # Template tolerations are left for pod creation, so a template equals the manifest.
    pod_spec(t.spec, toleration_seconds=None)


def service(s: core_pb2.Service) -> None:
    spec = s.spec
    if not spec.type:
        spec.type = "ClusterIP"
    if not spec.session_affinity:
        spec.session_affinity = "None"
    if spec.session_affinity == "ClientIP" and not spec.session_affinity_config.client_ip.HasField("timeout_seconds"):
        spec.session_affinity_config.client_ip.timeout_seconds = 10800
    for port in spec.ports:
        if not port.protocol:
            port.protocol = "TCP"
        if not port.target_port:
            port.target_port = str(port.port)
    if (spec.type in ("NodePort", "LoadBalancer") or (spec.type == "ClusterIP" and spec.external_ips)) \
            and not spec.external_traffic_policy:
        spec.external_traffic_policy = "Cluster"
    if spec.type != "ExternalName" and not spec.HasField("internal_traffic_policy"):
        spec.internal_traffic_policy = "Cluster"


def replicaset(rs: apps_pb2.ReplicaSet) -> None:
    if not rs.spec.HasField("replicas"):
        rs.spec.replicas = 1
    _template(rs.spec.template)


def deployment(d: apps_pb2.Deployment) -> None:
    s = d.spec
    if not s.HasField("replicas"):
        s.replicas = 1
    if not s.strategy.type:
        s.strategy.type = "RollingUpdate"
    if s.strategy.type == "RollingUpdate":
        if not s.strategy.rolling_update.max_surge:
            s.strategy.rolling_update.max_surge = "25%"
        if not s.strategy.rolling_update.max_unavailable:
            s.strategy.rolling_update.max_unavailable = "25%"
    if not s.HasField("revision_history_limit"):
        s.revision_history_limit = 10
    if not s.HasField("progress_deadline_seconds"):
        s.progress_deadline_seconds = 600
    _template(s.template)


def namespace(ns: core_pb2.Namespace) -> None:
    # The `kubernetes` finalizer is added by the apiserver on create only (registry), so that an
    # update emptying spec.finalizers can finish a namespace's deletion.
    if not ns.status.phase:
        ns.status.phase = "Active"


def node(n: core_pb2.Node) -> None:
    if "kubernetes.io/hostname" not in n.metadata.labels:
        n.metadata.labels["kubernetes.io/hostname"] = n.metadata.name
    n.metadata.labels.setdefault("kubernetes.io/os", "linux")


def event(ev: core_pb2.Event) -> None:
    if not ev.type:
        ev.type = "Normal"
    if ev.count == 0:
        ev.count = 1


def priority_class(pc: scheduling_pb2.PriorityClass) -> None:
    if not pc.HasField("preemption_policy"):
        pc.preemption_policy = "PreemptLowerPriority"


def secret(s: core_pb2.Secret) -> None:
    """Type Opaque by default; stringData is merged into data (its keys win) and never stored."""
    if not s.type:
        s.type = "Opaque"
    for k, v in s.string_data.items():
        s.data[k] = v.encode()
    s.ClearField("string_data")


def persistent_volume(pv: core_pb2.PersistentVolume) -> None:
    if not pv.spec.persistent_volume_reclaim_policy:
        pv.spec.persistent_volume_reclaim_policy = "Retain"
    if not pv.spec.HasField("volume_mode"):
        pv.spec.volume_mode = "Filesystem"
    if not pv.status.phase:
        pv.status.phase = "Pending"


def persistent_volume_claim(pvc: core_pb2.PersistentVolumeClaim) -> None:
    if not pvc.spec.HasField("volume_mode"):
        pvc.spec.volume_mode = "Filesystem"
    if not pvc.status.phase:
        pvc.status.phase = "Pending"


def storage_class(sc: storage_pb2.StorageClass) -> None:
    if not sc.HasField("reclaim_policy"):
        sc.reclaim_policy = "Delete"
    if not sc.HasField("volume_binding_mode"):
        sc.volume_binding_mode = "Immediate"
def job_spec(s: batch_pb2.JobSpec) -> None:
    if not s.HasField("completions") and not s.HasField("parallelism"):
        s.completions = 1
    if not s.HasField("parallelism"):
        s.parallelism = 1
    if not s.HasField("backoff_limit"):
        s.backoff_limit = 6
    if not s.HasField("completion_mode"):
        s.completion_mode = "NonIndexed"
    if not s.HasField("suspend"):
        s.suspend = False
    _template(s.template)


def job(j: batch_pb2.Job) -> None:
    job_spec(j.spec)


def cronjob(c: batch_pb2.CronJob) -> None:
    s = c.spec
    if not s.concurrency_policy:
        s.concurrency_policy = "Allow"
    if not s.HasField("suspend"):
        s.suspend = False
    if not s.HasField("successful_jobs_history_limit"):
        s.successful_jobs_history_limit = 3
    if not s.HasField("failed_jobs_history_limit"):
        s.failed_jobs_history_limit = 1
    # As Kubernetes: the Job template's pod template is defaulted, its Job fields are left to the Jobs made.
    _template(s.job_template.spec.template)


def daemonset(d: apps_pb2.DaemonSet) -> None:
    s = d.spec
    if not s.update_strategy.type:
        s.update_strategy.type = "RollingUpdate"
    if s.update_strategy.type == "RollingUpdate":
        ru = s.update_strategy.rolling_update
        if not ru.max_unavailable:
            ru.max_unavailable = "1"
        if not ru.max_surge:
            ru.max_surge = "0"
    if not s.HasField("revision_history_limit"):
        s.revision_history_limit = 10
    _template(s.template)


def statefulset(st: apps_pb2.StatefulSet) -> None:
    s = st.spec
    if not s.HasField("replicas"):
        s.replicas = 1
    if not s.pod_management_policy:
        s.pod_management_policy = "OrderedReady"
    if not s.update_strategy.type:
        s.update_strategy.type = "RollingUpdate"
    if s.update_strategy.type == "RollingUpdate" and not s.update_strategy.rolling_update.HasField("partition"):
        s.update_strategy.rolling_update.partition = 0
    if not s.HasField("revision_history_limit"):
        s.revision_history_limit = 10
    for claim in s.volume_claim_templates:
        if not claim.spec.HasField("volume_mode"):
            claim.spec.volume_mode = "Filesystem"
    policy = s.persistent_volume_claim_retention_policy
    if not policy.when_deleted:
        policy.when_deleted = "Retain"
    if not policy.when_scaled:
        policy.when_scaled = "Retain"
    _template(s.template)


def endpoint_slice(es: discovery_pb2.EndpointSlice) -> None:
    for port in es.ports:
        if not port.HasField("name"):
            port.name = ""
        if not port.HasField("protocol"):
            port.protocol = "TCP"


_DEFAULTS: dict[str, Callable[[Any], None]] = {
    "Pod": pod,
    "Service": service,
    "ReplicaSet": replicaset,
    "Deployment": deployment,
    "Namespace": namespace,
    "Node": node,
    "Event": event,
    "PriorityClass": priority_class,
    "Secret": secret,
    "PersistentVolume": persistent_volume,
    "PersistentVolumeClaim": persistent_volume_claim,
    "StorageClass": storage_class,
    "EndpointSlice": endpoint_slice,
    "Job": job,
    "CronJob": cronjob,
    "DaemonSet": daemonset,
    "StatefulSet": statefulset,
}


def apply(obj: Message, *, toleration_seconds: int | None = DEFAULT_TOLERATION_SECONDS) -> None:
    """Fill every default of an object in place."""
    kind = kinds.of(obj)
    if kind.kind == "Pod":
        pod(obj, toleration_seconds=toleration_seconds)  # type: ignore[arg-type]
        return
    fn = _DEFAULTS.get(kind.kind)
    if fn:
        fn(obj)
