"""The columns kubectl prints for each kind, and each object's cells: shared by `kubelite get` and the REST
face's Table format."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from typing import Any

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from api import convert, kinds
from api.pb import apps_pb2, batch_pb2, core_pb2, discovery_pb2, networking_pb2, policy_pb2, scheduling_pb2, storage_pb2

Row = list[str]


def age(ts: Timestamp, now: dt.datetime | None = None) -> str:
    """kubectl's short age (HumanDuration): 5s, 3m2s, 10m, 65m, 3h5m, 10h, 3d4h, 12d, 2y30d."""
    if not ts.seconds:
        return "<unknown>"
    now = now or dt.datetime.now(dt.UTC)
    return duration(max(0, int((now - ts.ToDatetime(tzinfo=dt.UTC)).total_seconds())))


def duration(seconds_: float) -> str:
    """A span of seconds as kubectl's HumanDuration writes it."""
    if seconds_ < 0:
        return "<invalid>"
    secs = int(seconds_)
    if secs < 120:
        return f"{secs}s"
    mins = secs // 60
    if mins < 10:
        rem = secs % 60
        return f"{mins}m{rem}s" if rem else f"{mins}m"
    if mins < 180:
        return f"{mins}m"
    hours = mins // 60
    if hours < 8:
        return f"{hours}h{mins % 60}m" if mins % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    years = days // 365
    if years < 8:
        return f"{years}y{days % 365}d" if days % 365 else f"{years}y"
    return f"{years}y"


# ---------------------------------------------------------------- pods


def pod_status(pod: core_pb2.Pod) -> str:
    """The STATUS column: the most telling reason, as kubectl computes it."""
    reason = pod.status.reason or pod.status.phase or "Pending"
    inits = list(pod.spec.init_containers)
    for i, cs in enumerate(pod.status.init_container_statuses):
        st = cs.state
        if st.HasField("terminated") and st.terminated.exit_code == 0:
            continue
        if st.HasField("terminated"):
            reason = f"Init:{st.terminated.reason or 'Error'}" if st.terminated.reason else \
                f"Init:ExitCode:{st.terminated.exit_code}"
        elif st.HasField("waiting") and st.waiting.reason and st.waiting.reason != "PodInitializing":
            reason = f"Init:{st.waiting.reason}"
        else:
            reason = f"Init:{i}/{len(inits)}"
        break
    else:
        running = False
        for cs in reversed(pod.status.container_statuses):
            st = cs.state
            if st.HasField("waiting") and st.waiting.reason:
                reason = st.waiting.reason
            elif st.HasField("terminated") and st.terminated.reason:
                reason = st.terminated.reason
            elif st.HasField("terminated"):
                reason = f"ExitCode:{st.terminated.exit_code}" if not st.terminated.signal else \
                    f"Signal:{st.terminated.signal}"
            elif st.HasField("running") and cs.ready:
                running = True
        if reason == "Completed" and running:
            reason = "Running"
    if pod.metadata.HasField("deletion_timestamp"):
        reason = "Unknown" if pod.status.reason == "NodeLost" else "Terminating"
    return reason


def pod_restarts(pod: core_pb2.Pod) -> str:
    return str(sum(cs.restart_count for cs in pod.status.container_statuses))


def pod_ready(pod: core_pb2.Pod) -> str:
    ready = sum(1 for cs in pod.status.container_statuses if cs.ready)
    return f"{ready}/{len(pod.spec.containers)}"


def _pods(p: core_pb2.Pod, wide: bool) -> Row:
    row = [p.metadata.name, pod_ready(p), pod_status(p), pod_restarts(p), age(p.metadata.creation_timestamp)]
    if wide:
        row += [p.status.pod_ip or "<none>", p.spec.node_name or "<none>", p.status.nominated_node_name or "<none>"]
    return row


# ---------------------------------------------------------------- others


def service_ports(s: core_pb2.Service) -> str:
    parts = []
    for p in s.spec.ports:
        text = f"{p.port}:{p.node_port}" if p.node_port else str(p.port)
        parts.append(f"{text}/{p.protocol or 'TCP'}")
    return ",".join(parts) or "<none>"


def _services(s: core_pb2.Service, wide: bool) -> Row:
    external = [i.ip or i.hostname for i in s.status.load_balancer.ingress] + list(s.spec.external_ips)
    if s.spec.type == "ExternalName":
        external = [s.spec.external_name]
    ext = ",".join(external) or ("<pending>" if s.spec.type == "LoadBalancer" else "<none>")
    row = [s.metadata.name, s.spec.type, s.spec.cluster_ip or "<none>", ext, service_ports(s),
           age(s.metadata.creation_timestamp)]
    if wide:
        row.append(",".join(f"{k}={v}" for k, v in sorted(s.spec.selector.items())) or "<none>")
    return row


def _containers_images(spec: core_pb2.PodSpec) -> list[str]:
    return [",".join(c.name for c in spec.containers), ",".join(c.image for c in spec.containers)]


def _selector_text(sel: Any) -> str:
    from api import labels

    return str(labels.from_label_selector(sel)) or "<none>"


def _deployments(d: apps_pb2.Deployment, wide: bool) -> Row:
    row = [d.metadata.name, f"{d.status.ready_replicas}/{d.spec.replicas}", str(d.status.updated_replicas),
           str(d.status.available_replicas), age(d.metadata.creation_timestamp)]
    if wide:
        row += [*_containers_images(d.spec.template.spec), _selector_text(d.spec.selector)]
    return row


def _replicasets(r: apps_pb2.ReplicaSet, wide: bool) -> Row:
    row = [r.metadata.name, str(r.spec.replicas), str(r.status.replicas), str(r.status.ready_replicas),
           age(r.metadata.creation_timestamp)]
    if wide:
        row += [*_containers_images(r.spec.template.spec), _selector_text(r.spec.selector)]
    return row


def node_status(n: core_pb2.Node) -> str:
    ready = next((c for c in n.status.conditions if c.type == "Ready"), None)
    status = "Unknown" if ready is None else ("Ready" if ready.status == "True" else "NotReady")
    if n.spec.unschedulable:
        status += ",SchedulingDisabled"
    return status


def _nodes(n: core_pb2.Node, wide: bool) -> Row:
    roles = [k.split("/", 1)[1] for k in n.metadata.labels if k.startswith("node-role.kubernetes.io/")]
    row = [n.metadata.name, node_status(n), ",".join(sorted(roles)) or "<none>", age(n.metadata.creation_timestamp),
           n.status.node_info.kubelet_version or "<none>"]
    if wide:
        addr = {a.type: a.address for a in n.status.addresses}
        info = n.status.node_info
        row += [addr.get("InternalIP", "<none>"), addr.get("ExternalIP", "<none>"), info.os_image or "<unknown>",
                info.kernel_version or "<unknown>", info.container_runtime_version or "<unknown>"]
    return row


def _namespaces(n: core_pb2.Namespace, wide: bool) -> Row:
    return [n.metadata.name, n.status.phase or "Active", age(n.metadata.creation_timestamp)]


def endpoints_text(e: core_pb2.Endpoints, limit: int = 3) -> str:
    out = []
    for subset in e.subsets:
        for a in subset.addresses:
            for p in subset.ports or [core_pb2.EndpointPort()]:
                out.append(f"{a.ip}:{p.port}" if p.port else a.ip)
    if not out:
        return "<none>"
    if len(out) > limit:
        return ",".join(out[:limit]) + f" + {len(out) - limit} more..."
    return ",".join(out)


def _endpoints(e: core_pb2.Endpoints, wide: bool) -> Row:
    return [e.metadata.name, endpoints_text(e), age(e.metadata.creation_timestamp)]


def _events(e: core_pb2.Event, wide: bool) -> Row:
    last = e.last_timestamp if e.last_timestamp.seconds else e.metadata.creation_timestamp
    obj = f"{e.involved_object.kind.lower()}/{e.involved_object.name}"
    seen = age(last)
    if e.count > 1:
        seen = f"{seen} (x{e.count})"
    return [seen, e.type, e.reason, obj, e.message]


def _leases(lease: apps_pb2.Lease, wide: bool) -> Row:
    return [lease.metadata.name, lease.spec.holder_identity or "<none>", age(lease.metadata.creation_timestamp)]


def _priority_classes(pc: scheduling_pb2.PriorityClass, wide: bool) -> Row:
    return [pc.metadata.name, str(pc.value), str(pc.global_default).lower(), age(pc.metadata.creation_timestamp),
            pc.preemption_policy]


def _bootstrap_tokens(t: Any, wide: bool) -> Row:
    exp = t.spec.expiration
    if not exp.seconds:
        ttl, expires = "<forever>", "<never>"
    else:
        when = exp.ToDatetime(tzinfo=dt.UTC)
        left = int((when - dt.datetime.now(dt.UTC)).total_seconds())
        ttl = "<expired>" if left <= 0 else duration(left)
        expires = when.strftime("%Y-%m-%dT%H:%M:%SZ")
    return [t.metadata.name, ttl, expires, t.spec.description or "<none>", age(t.metadata.creation_timestamp)]


def _more(items: Sequence[str], limit: int, sep: str = ",") -> str:
    if len(items) > limit:
        return sep.join(items[:limit]) + f" + {len(items) - limit} more..."
    return sep.join(items)


def _ingresses(ing: networking_pb2.Ingress, wide: bool) -> Row:
    hosts = [r.host or "*" for r in ing.spec.rules]
    address = [i.ip or i.hostname for i in ing.status.load_balancer.ingress]
    ports = "80, 443" if ing.spec.tls else "80"
    cls = ing.spec.ingress_class_name if ing.spec.HasField("ingress_class_name") else "<none>"
    return [ing.metadata.name, cls, _more(hosts, 4) or "*", ",".join(address), ports,
            age(ing.metadata.creation_timestamp)]


def _ingress_classes(ic: networking_pb2.IngressClass, wide: bool) -> Row:
    p = ic.spec.parameters
    params = "/".join(x for x in (p.api_group, p.kind, p.name) if x) if p.name else "<none>"
    return [ic.metadata.name, ic.spec.controller, params, age(ic.metadata.creation_timestamp)]


def _endpoint_slices(es: discovery_pb2.EndpointSlice, wide: bool) -> Row:
    ports = [str(p.port) if p.HasField("port") else "<unset>" for p in es.ports]
    addresses = [a for e in es.endpoints for a in e.addresses]
    return [es.metadata.name, es.address_type, ",".join(ports) or "<unset>", _more(addresses, 3) or "<unset>",
            age(es.metadata.creation_timestamp)]


def _config_maps(c: core_pb2.ConfigMap, wide: bool) -> Row:
    return [c.metadata.name, str(len(c.data) + len(c.binary_data)), age(c.metadata.creation_timestamp)]


def _secrets(s: core_pb2.Secret, wide: bool) -> Row:
    return [s.metadata.name, s.type or "Opaque", str(len(s.data)), age(s.metadata.creation_timestamp)]


def _service_accounts(sa: core_pb2.ServiceAccount, wide: bool) -> Row:
    return [sa.metadata.name, str(len(sa.secrets)), age(sa.metadata.creation_timestamp)]


_MODES = {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX", "ReadWriteOncePod": "RWOP"}


def access_modes(modes: Sequence[str]) -> str:
    return ",".join(_MODES.get(m, m) for m in modes)


def _persistent_volumes(pv: core_pb2.PersistentVolume, wide: bool) -> Row:
    ref = pv.spec.claim_ref
    row = [pv.metadata.name, pv.spec.capacity.get("storage", ""), access_modes(pv.spec.access_modes),
           pv.spec.persistent_volume_reclaim_policy, pv.status.phase, f"{ref.namespace}/{ref.name}" if ref.name else "",
           pv.spec.storage_class_name, pv.status.reason, age(pv.metadata.creation_timestamp)]
    if wide:
        row.append(pv.spec.volume_mode or "Filesystem")
    return row


def _persistent_volume_claims(c: core_pb2.PersistentVolumeClaim, wide: bool) -> Row:
    phase = "Terminating" if c.metadata.HasField("deletion_timestamp") else c.status.phase
    row = [c.metadata.name, phase, c.spec.volume_name, c.status.capacity.get("storage", ""),
           access_modes(c.status.access_modes), c.spec.storage_class_name if c.spec.HasField("storage_class_name")
           else "<unset>", age(c.metadata.creation_timestamp)]
    if wide:
        row.append(c.spec.volume_mode or "Filesystem")
    return row


def _storage_classes(sc: storage_pb2.StorageClass, wide: bool) -> Row:
    default = sc.metadata.annotations.get("storageclass.kubernetes.io/is-default-class") == "true"
    return [sc.metadata.name + (" (default)" if default else ""), sc.provisioner, sc.reclaim_policy or "Delete",
            sc.volume_binding_mode or "Immediate", str(sc.allow_volume_expansion).lower(),
            age(sc.metadata.creation_timestamp)]
# ---------------------------------------------------------------- jobs, daemon sets, stateful sets, budgets


def job_status(j: batch_pb2.Job) -> str:
    """kubectl's STATUS column of a Job: Terminating, Complete, Failed, Suspended, ..., else Running."""
    if j.metadata.HasField("deletion_timestamp"):
        return "Terminating"
    true = {c.type for c in j.status.conditions if c.status == "True"}
    for type_ in ("Complete", "Failed", "Suspended", "FailureTarget", "SuccessCriteriaMet"):
        if type_ in true:
            return type_
    return "Running"


def job_completions(j: batch_pb2.Job) -> str:
    if j.spec.HasField("completions"):
        return f"{j.status.succeeded}/{j.spec.completions}"
    parallelism = j.spec.parallelism if j.spec.HasField("parallelism") else 1
    return f"{j.status.succeeded}/1 of {parallelism}" if parallelism > 1 else f"{j.status.succeeded}/1"


def job_duration(j: batch_pb2.Job, now: dt.datetime | None = None) -> str:
    start = j.status.start_time
    if not start.seconds:
        return ""
    end = j.status.completion_time.ToDatetime(tzinfo=dt.UTC) if j.status.completion_time.seconds else \
        (now or dt.datetime.now(dt.UTC))
    return duration((end - start.ToDatetime(tzinfo=dt.UTC)).total_seconds())


def _jobs(j: batch_pb2.Job, wide: bool) -> Row:
    row = [j.metadata.name, job_status(j), job_completions(j), job_duration(j), age(j.metadata.creation_timestamp)]
    if wide:
        row += [*_containers_images(j.spec.template.spec), _selector_text(j.spec.selector)]
    return row


def _cronjobs(c: batch_pb2.CronJob, wide: bool) -> Row:
    last = age(c.status.last_schedule_time) if c.status.last_schedule_time.seconds else "<none>"
    row = [c.metadata.name, c.spec.schedule, c.spec.time_zone if c.spec.HasField("time_zone") else "<none>",
           str(c.spec.suspend).capitalize(), str(len(c.status.active)), last, age(c.metadata.creation_timestamp)]
    if wide:
        spec = c.spec.job_template.spec
        row += [*_containers_images(spec.template.spec), _selector_text(spec.selector)]
    return row


def _daemonsets(d: apps_pb2.DaemonSet, wide: bool) -> Row:
    st = d.status
    selector = ",".join(f"{k}={v}" for k, v in sorted(d.spec.template.spec.node_selector.items())) or "<none>"
    row = [d.metadata.name, str(st.desired_number_scheduled), str(st.current_number_scheduled), str(st.number_ready),
           str(st.updated_number_scheduled), str(st.number_available), selector, age(d.metadata.creation_timestamp)]
    if wide:
        row += [*_containers_images(d.spec.template.spec), _selector_text(d.spec.selector)]
    return row


def _statefulsets(s: apps_pb2.StatefulSet, wide: bool) -> Row:
    row = [s.metadata.name, f"{s.status.ready_replicas}/{s.spec.replicas}", age(s.metadata.creation_timestamp)]
    if wide:
        row += _containers_images(s.spec.template.spec)
    return row


def _pdbs(p: policy_pb2.PodDisruptionBudget, wide: bool) -> Row:
    return [p.metadata.name, p.spec.min_available or "N/A", p.spec.max_unavailable or "N/A",
            str(p.status.disruptions_allowed), age(p.metadata.creation_timestamp)]


def _revisions(r: apps_pb2.ControllerRevision, wide: bool) -> Row:
    ref = next((o for o in r.metadata.owner_references if o.controller), None)
    owner = f"{ref.kind.lower()}.{ref.api_version.partition('/')[0]}/{ref.name}" if ref is not None else "<none>"
    return [r.metadata.name, owner, str(r.revision), age(r.metadata.creation_timestamp)]


def _created_at(obj: Any, wide: bool) -> Row:
    ts = obj.metadata.creation_timestamp
    return [obj.metadata.name, convert.format_time(ts) if ts.seconds else "<unknown>"]


def _bindings(b: Any, wide: bool) -> Row:
    row = [b.metadata.name, f"{b.role_ref.kind}/{b.role_ref.name}", age(b.metadata.creation_timestamp)]
    if wide:
        for kind in ("User", "Group"):
            row.append(", ".join(s.name for s in b.subjects if s.kind == kind))
        row.append(", ".join(f"{s.namespace}/{s.name}" for s in b.subjects if s.kind == "ServiceAccount"))
    return row


COLUMNS: dict[str, tuple[list[str], list[str], Callable[[Any, bool], Row]]] = {
    "Pod": (["NAME", "READY", "STATUS", "RESTARTS", "AGE"], ["IP", "NODE", "NOMINATED NODE"], _pods),
    "Service": (["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"], ["SELECTOR"], _services),
    "Deployment": (["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"], ["CONTAINERS", "IMAGES", "SELECTOR"],
                   _deployments),
    "ReplicaSet": (["NAME", "DESIRED", "CURRENT", "READY", "AGE"], ["CONTAINERS", "IMAGES", "SELECTOR"],
                   _replicasets),
    "Node": (["NAME", "STATUS", "ROLES", "AGE", "VERSION"],
             ["INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"], _nodes),
    "Namespace": (["NAME", "STATUS", "AGE"], [], _namespaces),
    "Endpoints": (["NAME", "ENDPOINTS", "AGE"], [], _endpoints),
    "Event": (["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"], [], _events),
    "Lease": (["NAME", "HOLDER", "AGE"], [], _leases),
    "PriorityClass": (["NAME", "VALUE", "GLOBAL-DEFAULT", "AGE", "PREEMPTIONPOLICY"], [], _priority_classes),
    "Ingress": (["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS", "AGE"], [], _ingresses),
    "IngressClass": (["NAME", "CONTROLLER", "PARAMETERS", "AGE"], [], _ingress_classes),
    "EndpointSlice": (["NAME", "ADDRESSTYPE", "PORTS", "ENDPOINTS", "AGE"], [], _endpoint_slices),
    "BootstrapToken": (["NAME", "TTL", "EXPIRES", "DESCRIPTION", "AGE"], [], _bootstrap_tokens),
    "ConfigMap": (["NAME", "DATA", "AGE"], [], _config_maps),
    "Secret": (["NAME", "TYPE", "DATA", "AGE"], [], _secrets),
    "ServiceAccount": (["NAME", "SECRETS", "AGE"], [], _service_accounts),
    "PersistentVolume": (["NAME", "CAPACITY", "ACCESS MODES", "RECLAIM POLICY", "STATUS", "CLAIM", "STORAGECLASS",
                          "REASON", "AGE"], ["VOLUMEMODE"], _persistent_volumes),
    "PersistentVolumeClaim": (["NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS MODES", "STORAGECLASS", "AGE"],
                              ["VOLUMEMODE"], _persistent_volume_claims),
    "StorageClass": (["NAME", "PROVISIONER", "RECLAIMPOLICY", "VOLUMEBINDINGMODE", "ALLOWVOLUMEEXPANSION", "AGE"], [],
                     _storage_classes),
    "Job": (["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"], ["CONTAINERS", "IMAGES", "SELECTOR"], _jobs),
    "CronJob": (["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST SCHEDULE", "AGE"],
                ["CONTAINERS", "IMAGES", "SELECTOR"], _cronjobs),
    "DaemonSet": (["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE", "NODE SELECTOR", "AGE"],
                  ["CONTAINERS", "IMAGES", "SELECTOR"], _daemonsets),
    "StatefulSet": (["NAME", "READY", "AGE"], ["CONTAINERS", "IMAGES"], _statefulsets),
    "PodDisruptionBudget": (["NAME", "MIN AVAILABLE", "MAX UNAVAILABLE", "ALLOWED DISRUPTIONS", "AGE"], [], _pdbs),
    "ControllerRevision": (["NAME", "CONTROLLER", "REVISION", "AGE"], [], _revisions),
    "Role": (["NAME", "CREATED AT"], [], _created_at),
    "ClusterRole": (["NAME", "CREATED AT"], [], _created_at),
    "RoleBinding": (["NAME", "ROLE", "AGE"], ["USERS", "GROUPS", "SERVICEACCOUNTS"], _bindings),
    "ClusterRoleBinding": (["NAME", "ROLE", "AGE"], ["USERS", "GROUPS", "SERVICEACCOUNTS"], _bindings),
}


def headers(kind: kinds.Kind, *, wide: bool, namespaced: bool) -> list[str]:
    base, extra, _ = COLUMNS[kind.kind]
    cols = base + (extra if wide else [])
    return (["NAMESPACE", *cols]) if namespaced else cols


def row(obj: Message, *, wide: bool, namespaced: bool) -> Row:
    kind = kinds.of(obj)
    _, _, fn = COLUMNS[kind.kind]
    cells = fn(obj, wide)
    return [obj.metadata.namespace, *cells] if namespaced else cells  # type: ignore[attr-defined]
