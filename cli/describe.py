"""`kubelite describe KIND NAME`: a readable summary of an object and its recent events."""

from __future__ import annotations

import click
from google.protobuf.message import Message

from api import convert, kinds, labels, loadbalancer
from api.errors import NotFoundError
from api.pb import apps_pb2, batch_pb2, core_pb2, discovery_pb2, networking_pb2, policy_pb2, scheduling_pb2, storage_pb2
from cli import printers
from cli.common import connection_options, run
from client.api import Client
from client.config import ClientConfig

Lines = list[str]


def _kv(lines: Lines, key: str, value: object, indent: int = 0) -> None:
    label = key + ":"
    # Values line up in one column; a key as wide as the column still gets a space before its value.
    lines.append(f"{' ' * indent}{label:<{max(len(label) + 1, 22 - indent)}}{value}")


def _map(lines: Lines, key: str, values: dict[str, str], indent: int = 0) -> None:
    items = [f"{k}={v}" for k, v in sorted(values.items())]
    if not items:
        _kv(lines, key, "<none>", indent)
        return
    _kv(lines, key, items[0], indent)
    pad = " " * max(indent + 1, 22)
    lines.extend(f"{pad}{i}" for i in items[1:])


def _meta(lines: Lines, obj: Message) -> None:
    m = obj.metadata  # type: ignore[attr-defined]
    _kv(lines, "Name", m.name)
    if m.namespace:
        _kv(lines, "Namespace", m.namespace)
    _map(lines, "Labels", dict(m.labels))
    shown = {k: (v if len(v) < 80 else v[:77] + "...") for k, v in m.annotations.items()}
    _map(lines, "Annotations", shown)
    _kv(lines, "CreationTimestamp", convert.format_time(m.creation_timestamp) if m.creation_timestamp.seconds else "")
    if m.HasField("deletion_timestamp"):
        _kv(lines, "DeletionTimestamp", convert.format_time(m.deletion_timestamp))
    if m.finalizers:
        _kv(lines, "Finalizers", ", ".join(m.finalizers))
    for ref in m.owner_references:
        if ref.controller:
            _kv(lines, "Controlled By", f"{ref.kind}/{ref.name}")


def _containers(lines: Lines, title: str, specs, statuses) -> None:  # type: ignore[no-untyped-def]
    if not specs:
        return
    lines.append(f"{title}:")
    by_name = {s.name: s for s in statuses}
    for c in specs:
        lines.append(f"  {c.name}:")
        st = by_name.get(c.name)
        if st and st.container_id:
            _kv(lines, "Container ID", st.container_id, 4)
        _kv(lines, "Image", c.image, 4)
        if c.ports:
            _kv(lines, "Ports", ", ".join(f"{p.container_port}/{p.protocol}" for p in c.ports), 4)
        if c.command:
            _kv(lines, "Command", " ".join(c.command), 4)
        if c.args:
            _kv(lines, "Args", " ".join(c.args), 4)
        if st:
            state = st.state
            if state.HasField("running"):
                _kv(lines, "State", "Running", 4)
                _kv(lines, "Started", convert.format_time(state.running.started_at), 6)
            elif state.HasField("waiting"):
                _kv(lines, "State", "Waiting", 4)
                _kv(lines, "Reason", state.waiting.reason, 6)
                if state.waiting.message:
                    _kv(lines, "Message", state.waiting.message, 6)
            elif state.HasField("terminated"):
                t = state.terminated
                _kv(lines, "State", "Terminated", 4)
                _kv(lines, "Reason", t.reason, 6)
                _kv(lines, "Exit Code", t.exit_code, 6)
            last = st.last_state
            if last.HasField("terminated"):
                _kv(lines, "Last State", "Terminated", 4)
                _kv(lines, "Reason", last.terminated.reason, 6)
                _kv(lines, "Exit Code", last.terminated.exit_code, 6)
            _kv(lines, "Ready", str(st.ready), 4)
            _kv(lines, "Restart Count", st.restart_count, 4)
        for attr, name in (("liveness_probe", "Liveness"), ("readiness_probe", "Readiness"),
                           ("startup_probe", "Startup")):
            if c.HasField(attr):
                _kv(lines, name, _probe(getattr(c, attr)), 4)
        if c.resources.limits:
            _map(lines, "Limits", dict(c.resources.limits), 4)
        if c.resources.requests:
            _map(lines, "Requests", dict(c.resources.requests), 4)
        if c.env:
            lines.append("    Environment:")
            for e in c.env:
                src = e.value_from
                value = e.value
                if src.HasField("field_ref"):
                    value = f"({src.field_ref.field_path})"
                elif src.HasField("config_map_key_ref"):
                    value = f"<set to the key '{src.config_map_key_ref.key}' of config map " \
                            f"'{src.config_map_key_ref.name}'>"
                elif src.HasField("secret_key_ref"):
                    value = f"<set to the key '{src.secret_key_ref.key}' in secret '{src.secret_key_ref.name}'>"
                lines.append(f"      {e.name}:  {value}")
        if c.volume_mounts:
            lines.append("    Mounts:")
            for vm in c.volume_mounts:
                lines.append(f"      {vm.mount_path} from {vm.name} ({'ro' if vm.read_only else 'rw'})")


def _probe(p: core_pb2.Probe) -> str:
    if p.HasField("http_get"):
        how = f"http-get http://:{p.http_get.port}{p.http_get.path}"
    elif p.HasField("tcp_socket"):
        how = f"tcp-socket :{p.tcp_socket.port}"
    elif p.HasField("exec"):
        how = f"exec [{' '.join(p.exec.command)}]"
    else:
        how = "grpc"
    return (f"{how} delay={p.initial_delay_seconds}s timeout={p.timeout_seconds}s period={p.period_seconds}s "
            f"#success={p.success_threshold} #failure={p.failure_threshold}")


def _pod(lines: Lines, p: core_pb2.Pod) -> None:
    _kv(lines, "Priority", p.spec.priority)
    _kv(lines, "Node", f"{p.spec.node_name}/{p.status.host_ip}" if p.spec.node_name else "<none>")
    if p.status.start_time.seconds:
        _kv(lines, "Start Time", convert.format_time(p.status.start_time))
    _kv(lines, "Status", printers.pod_status(p))
    if p.status.reason:
        _kv(lines, "Reason", p.status.reason)
    if p.status.message:
        _kv(lines, "Message", p.status.message)
    _kv(lines, "IP", p.status.pod_ip or "")
    if p.status.nominated_node_name:
        _kv(lines, "NominatedNodeName", p.status.nominated_node_name)
    _containers(lines, "Init Containers", p.spec.init_containers, p.status.init_container_statuses)
    _containers(lines, "Containers", p.spec.containers, p.status.container_statuses)
    if p.status.conditions:
        lines.append("Conditions:")
        lines.append("  Type              Status")
        for c in p.status.conditions:
            lines.append(f"  {c.type:<18}{c.status}")
    if p.spec.volumes:
        lines.append("Volumes:")
        for v in p.spec.volumes:
            lines.append(f"  {v.name}:  {_pod_volume(v)}")
    _kv(lines, "QoS Class", p.status.qos_class)
    _map(lines, "Node-Selectors", dict(p.spec.node_selector))
    tols = [f"{t.key or '<all>'}{':' + t.effect if t.effect else ''} op={t.operator or 'Equal'}"
            + (f" for {t.toleration_seconds}s" if t.HasField("toleration_seconds") else "") for t in p.spec.tolerations]
    _kv(lines, "Tolerations", "\n".join(tols[:1]) or "<none>")
    lines.extend(f"{' ' * 22}{t}" for t in tols[1:])


def _pod_volume(v: core_pb2.Volume) -> str:
    if v.HasField("host_path"):
        return f"HostPath ({v.host_path.path})"
    if v.HasField("config_map"):
        return f"ConfigMap ({v.config_map.name})"
    if v.HasField("secret"):
        return f"Secret ({v.secret.secret_name})"
    if v.HasField("persistent_volume_claim"):
        return f"PersistentVolumeClaim ({v.persistent_volume_claim.claim_name})"
    if v.HasField("projected"):
        return "Projected"
    if v.HasField("downward_api"):
        return "DownwardAPI"
    return "EmptyDir"


def _template(lines: Lines, t: core_pb2.PodTemplateSpec) -> None:
    lines.append("Pod Template:")
    _map(lines, "  Labels", dict(t.metadata.labels))
    _containers(lines, "  Containers", t.spec.containers, [])


def _deployment(lines: Lines, d: apps_pb2.Deployment) -> None:
    _kv(lines, "Selector", str(labels.from_label_selector(d.spec.selector)))
    st = d.status
    _kv(lines, "Replicas", f"{d.spec.replicas} desired | {st.updated_replicas} updated | {st.replicas} total | "
                           f"{st.available_replicas} available | {st.unavailable_replicas} unavailable")
    _kv(lines, "StrategyType", d.spec.strategy.type)
    _kv(lines, "MinReadySeconds", d.spec.min_ready_seconds)
    if d.spec.strategy.type == "RollingUpdate":
        ru = d.spec.strategy.rolling_update
        _kv(lines, "RollingUpdateStrategy", f"{ru.max_unavailable} max unavailable, {ru.max_surge} max surge")
    if d.spec.paused:
        _kv(lines, "Paused", "true")
    _template(lines, d.spec.template)
    if st.conditions:
        lines.append("Conditions:")
        lines.append("  Type           Status  Reason")
        for c in st.conditions:
            lines.append(f"  {c.type:<15}{c.status:<8}{c.reason}")


def _replicaset(lines: Lines, r: apps_pb2.ReplicaSet) -> None:
    _kv(lines, "Selector", str(labels.from_label_selector(r.spec.selector)))
    _kv(lines, "Replicas", f"{r.status.replicas} current / {r.spec.replicas} desired")
    _kv(lines, "Pods Status", f"{r.status.ready_replicas} Ready / {r.status.available_replicas} Available")
    _template(lines, r.spec.template)


def _service(lines: Lines, s: core_pb2.Service) -> None:
    _map(lines, "Selector", dict(s.spec.selector))
    _kv(lines, "Type", s.spec.type)
    _kv(lines, "IP", s.spec.cluster_ip or "<none>")
    if s.status.load_balancer.ingress:
        _kv(lines, "LoadBalancer Ingress", ", ".join(i.ip for i in s.status.load_balancer.ingress))
    for p in s.spec.ports:
        _kv(lines, "Port", f"{p.name or '<unset>'}  {p.port}/{p.protocol}")
        _kv(lines, "TargetPort", f"{p.target_port}/{p.protocol}")
        if p.node_port:
            _kv(lines, "NodePort", f"{p.name or '<unset>'}  {p.node_port}/{p.protocol}")
    _kv(lines, "Session Affinity", s.spec.session_affinity)


def _node(lines: Lines, n: core_pb2.Node) -> None:
    taints = [f"{t.key}={t.value}:{t.effect}" if t.value else f"{t.key}:{t.effect}" for t in n.spec.taints]
    _kv(lines, "Taints", "\n".join(taints[:1]) or "<none>")
    lines.extend(f"{' ' * 22}{t}" for t in taints[1:])
    _kv(lines, "Unschedulable", str(n.spec.unschedulable).lower())
    _kv(lines, "PodCIDR", n.spec.pod_cidr or "<none>")
    lines.append("Conditions:")
    for c in n.status.conditions:
        lines.append(f"  {c.type:<16}{c.status:<8}{c.reason:<28}{c.message}")
    lines.append("Addresses:")
    for a in n.status.addresses:
        lines.append(f"  {a.type}:  {a.address}")
    _map(lines, "Capacity", dict(n.status.capacity))
    _map(lines, "Allocatable", dict(n.status.allocatable))
    info = n.status.node_info
    lines.append("System Info:")
    for key, value in (("Kernel Version", info.kernel_version), ("OS Image", info.os_image),
                       ("Container Runtime Version", info.container_runtime_version),
                       ("Kubelet Version", info.kubelet_version)):
        lines.append(f"  {key}:  {value}")


def _endpoints(lines: Lines, e: core_pb2.Endpoints) -> None:
    lines.append("Subsets:")
    for s in e.subsets:
        _kv(lines, "  Addresses", ",".join(a.ip for a in s.addresses) or "<none>")
        _kv(lines, "  NotReadyAddresses", ",".join(a.ip for a in s.not_ready_addresses) or "<none>")
        for p in s.ports:
            lines.append(f"    {p.name or '<unset>'}  {p.port}/{p.protocol}")


def _priority_class(lines: Lines, pc: scheduling_pb2.PriorityClass) -> None:
    _kv(lines, "Value", pc.value)
    _kv(lines, "GlobalDefault", str(pc.global_default).lower())
    _kv(lines, "PreemptionPolicy", pc.preemption_policy)
    _kv(lines, "Description", pc.description)


def _config_map(lines: Lines, c: core_pb2.ConfigMap) -> None:
    lines += ["", "Data", "===="]
    for k in sorted(c.data):
        lines += [f"{k}:", "----", c.data[k], ""]
    lines += ["", "BinaryData", "===="]
    for k in sorted(c.binary_data):
        lines.append(f"{k}: {len(c.binary_data[k])} bytes")
    lines.append("")


def _secret(lines: Lines, s: core_pb2.Secret) -> None:
    """Sizes only, never values (as kubectl)."""
    lines += ["", f"Type:  {s.type or 'Opaque'}", "", "Data", "===="]
    lines.extend(f"{k}:  {len(s.data[k])} bytes" for k in sorted(s.data))
    lines.append("")


def _volume_source(lines: Lines, pv: core_pb2.PersistentVolume) -> None:
    lines.append("Source:")
    if pv.spec.HasField("host_path"):
        _kv(lines, "    Type", "HostPath (bare host directory volume)")
        _kv(lines, "    Path", pv.spec.host_path.path)
        _kv(lines, "    HostPathType", pv.spec.host_path.type)
    elif pv.spec.HasField("local"):
        _kv(lines, "    Type", "LocalVolume (a persistent volume backed by local storage on a node)")
        _kv(lines, "    Path", pv.spec.local.path)


def _persistent_volume(lines: Lines, pv: core_pb2.PersistentVolume) -> None:
    _kv(lines, "StorageClass", pv.spec.storage_class_name)
    _kv(lines, "Status", "Terminating" if pv.metadata.HasField("deletion_timestamp") else pv.status.phase)
    ref = pv.spec.claim_ref
    _kv(lines, "Claim", f"{ref.namespace}/{ref.name}" if ref.name else "")
    _kv(lines, "Reclaim Policy", pv.spec.persistent_volume_reclaim_policy)
    _kv(lines, "Access Modes", printers.access_modes(pv.spec.access_modes))
    _kv(lines, "VolumeMode", pv.spec.volume_mode or "Filesystem")
    _kv(lines, "Capacity", pv.spec.capacity.get("storage", ""))
    terms = pv.spec.node_affinity.required.node_selector_terms
    if terms:
        lines.append("Node Affinity:")
        lines.append("  Required Terms:")
        for t in terms:
            for e in t.match_expressions:
                lines.append(f"    Term 0:        {e.key} {e.operator.lower()} [{', '.join(e.values)}]")
    else:
        _kv(lines, "Node Affinity", "<none>")
    _kv(lines, "Message", pv.status.message)
    _volume_source(lines, pv)


def _persistent_volume_claim(lines: Lines, c: core_pb2.PersistentVolumeClaim) -> None:
    _kv(lines, "StorageClass", c.spec.storage_class_name if c.spec.HasField("storage_class_name") else "")
    _kv(lines, "Status", "Terminating" if c.metadata.HasField("deletion_timestamp") else c.status.phase)
    _kv(lines, "Volume", c.spec.volume_name)
    _kv(lines, "Capacity", c.status.capacity.get("storage", ""))
    _kv(lines, "Access Modes", printers.access_modes(c.status.access_modes))
    _kv(lines, "VolumeMode", c.spec.volume_mode or "Filesystem")


def _storage_class(lines: Lines, sc: storage_pb2.StorageClass) -> None:
    default = sc.metadata.annotations.get("storageclass.kubernetes.io/is-default-class") == "true"
    _kv(lines, "IsDefaultClass", "Yes" if default else "No")
    _kv(lines, "Provisioner", sc.provisioner)
    _map(lines, "Parameters", dict(sc.parameters))
    _kv(lines, "AllowVolumeExpansion", "True" if sc.allow_volume_expansion else "<unset>")
    _kv(lines, "ReclaimPolicy", sc.reclaim_policy or "Delete")
    _kv(lines, "VolumeBindingMode", sc.volume_binding_mode or "Immediate")


def _backend_text(b: networking_pb2.IngressBackend) -> str:
    port = b.service.port
    return f"{b.service.name}:{port.name or port.number}"


def _ingress(lines: Lines, ing: networking_pb2.Ingress) -> None:
    _kv(lines, "Ingress Class", ing.spec.ingress_class_name if ing.spec.HasField("ingress_class_name") else "<none>")
    _kv(lines, "Address", ",".join(i.ip or i.hostname for i in ing.status.load_balancer.ingress))
    default = _backend_text(ing.spec.default_backend) if ing.spec.HasField("default_backend") else "<default>"
    _kv(lines, "Default backend", default)
    if ing.spec.tls:
        lines.append("TLS:")
        for t in ing.spec.tls:
            lines.append(f"  {t.secret_name or '<default>'} terminates {','.join(t.hosts)}")
    lines.append("Rules:")
    lines.append("  Host        Path  Backends")
    lines.append("  ----        ----  --------")
    for rule in ing.spec.rules:
        lines.append(f"  {rule.host or '*'}")
        for p in rule.http.paths:
            lines.append(f"              {p.path or '/'}   {_backend_text(p.backend)} ({p.path_type})")


def _ingress_class(lines: Lines, ic: networking_pb2.IngressClass) -> None:
    _kv(lines, "Controller", ic.spec.controller)
    if ic.spec.HasField("parameters"):
        p = ic.spec.parameters
        lines.append("Parameters:")
        for key, value in (("APIGroup", p.api_group), ("Kind", p.kind), ("Name", p.name), ("Scope", p.scope),
                           ("Namespace", p.namespace)):
            if value:
                lines.append(f"  {key}:  {value}")


def _endpoint_slice(lines: Lines, es: discovery_pb2.EndpointSlice) -> None:
    _kv(lines, "AddressType", es.address_type)
    lines.append("Ports:")
    lines.append("  Name     Port  Protocol")
    lines.append("  ----     ----  --------")
    for p in es.ports:
        lines.append(f"  {p.name or '<unset>':<8} {p.port if p.HasField('port') else '<unset>'}  {p.protocol}")
    lines.append("Endpoints:")
    for e in es.endpoints:
        lines.append(f"  - Addresses:  {','.join(e.addresses)}")
        c = e.conditions
        lines.append("    Conditions:")
        for key, field in (("Ready", "ready"), ("Serving", "serving"), ("Terminating", "terminating")):
            value = str(getattr(c, field)).lower() if c.HasField(field) else "<unset>"
            lines.append(f"      {key + ':':<13}{value}")
        lines.append(f"    Hostname:     {e.hostname if e.HasField('hostname') else '<unset>'}")
        if e.HasField("target_ref"):
            lines.append(f"    TargetRef:    {e.target_ref.kind}/{e.target_ref.name}")
        lines.append(f"    NodeName:     {e.node_name if e.HasField('node_name') else '<unset>'}")


def _conditions(lines: Lines, conds: object) -> None:
    conds = list(conds)  # type: ignore[call-overload]
    if conds:
        lines.append("Conditions:")
        lines.append("  Type             Status  Reason")
        for c in conds:
            lines.append(f"  {c.type:<17}{c.status:<8}{c.reason}")


def _job(lines: Lines, j: batch_pb2.Job) -> None:
    s, st = j.spec, j.status
    _kv(lines, "Selector", str(labels.from_label_selector(s.selector)))
    _kv(lines, "Parallelism", s.parallelism)
    _kv(lines, "Completions", s.completions if s.HasField("completions") else "<unset>")
    _kv(lines, "Completion Mode", s.completion_mode)
    _kv(lines, "Suspend", str(s.suspend).lower())
    _kv(lines, "Backoff Limit", s.backoff_limit)
    if s.HasField("active_deadline_seconds"):
        _kv(lines, "Active Deadline Seconds", f"{s.active_deadline_seconds}s")
    if s.HasField("ttl_seconds_after_finished"):
        _kv(lines, "TTL Seconds After Finished", s.ttl_seconds_after_finished)
    if st.start_time.seconds:
        _kv(lines, "Start Time", convert.format_time(st.start_time))
    if st.completion_time.seconds:
        _kv(lines, "Completed At", convert.format_time(st.completion_time))
        _kv(lines, "Duration", printers.job_duration(j))
    _kv(lines, "Pods Statuses", f"{st.active} Active ({st.ready} Ready) / {st.succeeded} Succeeded / "
                                f"{st.failed} Failed")
    if s.completion_mode == "Indexed":
        _kv(lines, "Completed Indexes", st.completed_indexes or "<none>")
    _template(lines, s.template)
    _conditions(lines, st.conditions)


def _cronjob(lines: Lines, c: batch_pb2.CronJob) -> None:
    s = c.spec
    _kv(lines, "Schedule", s.schedule)
    if s.HasField("time_zone"):
        _kv(lines, "Time Zone", s.time_zone)
    _kv(lines, "Concurrency Policy", s.concurrency_policy)
    _kv(lines, "Suspend", s.suspend)
    _kv(lines, "Successful Job History Limit", s.successful_jobs_history_limit)
    _kv(lines, "Failed Job History Limit", s.failed_jobs_history_limit)
    _kv(lines, "Starting Deadline Seconds", f"{s.starting_deadline_seconds}s" if
        s.HasField("starting_deadline_seconds") else "<unset>")
    _template(lines, s.job_template.spec.template)
    last = c.status.last_schedule_time
    _kv(lines, "Last Schedule Time", convert.format_time(last) if last.seconds else "<unset>")
    _kv(lines, "Active Jobs", ", ".join(r.name for r in c.status.active) or "<none>")


def _daemonset(lines: Lines, d: apps_pb2.DaemonSet) -> None:
    st = d.status
    _kv(lines, "Selector", str(labels.from_label_selector(d.spec.selector)))
    _map(lines, "Node-Selector", dict(d.spec.template.spec.node_selector))
    _kv(lines, "Desired Number of Nodes Scheduled", st.desired_number_scheduled)
    _kv(lines, "Current Number of Nodes Scheduled", st.current_number_scheduled)
    _kv(lines, "Number of Nodes Scheduled with Up-to-date Pods", st.updated_number_scheduled)
    _kv(lines, "Number of Nodes Scheduled with Available Pods", st.number_available)
    _kv(lines, "Number of Nodes Misscheduled", st.number_misscheduled)
    _kv(lines, "Pods Status", f"{st.number_ready} Running / {st.number_unavailable} Unavailable")
    _kv(lines, "Update Strategy", d.spec.update_strategy.type)
    _template(lines, d.spec.template)


def _statefulset(lines: Lines, s: apps_pb2.StatefulSet) -> None:
    st = s.status
    _kv(lines, "Selector", str(labels.from_label_selector(s.spec.selector)))
    _kv(lines, "Replicas", f"{s.spec.replicas} desired | {st.replicas} total")
    _kv(lines, "Update Strategy", s.spec.update_strategy.type)
    if s.spec.update_strategy.type == "RollingUpdate":
        _kv(lines, "  Partition", s.spec.update_strategy.rolling_update.partition)
    _kv(lines, "Pods Status", f"{st.ready_replicas} Ready / {st.replicas - st.ready_replicas} Not Ready")
    _template(lines, s.spec.template)
    if s.spec.volume_claim_templates:
        lines.append("Volume Claims:")
        for t in s.spec.volume_claim_templates:
            _kv(lines, "  Name", t.metadata.name)
            _kv(lines, "  StorageClass", t.spec.storage_class_name or "")
            _kv(lines, "  Capacity", t.spec.resources.requests.get("storage", ""))
            _kv(lines, "  Access Modes", ",".join(t.spec.access_modes))
    else:
        _kv(lines, "Volume Claims", "<none>")


def _pdb(lines: Lines, p: policy_pb2.PodDisruptionBudget) -> None:
    if p.spec.min_available:
        _kv(lines, "Min available", p.spec.min_available)
    if p.spec.max_unavailable:
        _kv(lines, "Max unavailable", p.spec.max_unavailable)
    selector = labels.from_label_selector(p.spec.selector if p.spec.HasField("selector") else None)
    _kv(lines, "Selector", str(selector) or "<unset>")
    st = p.status
    lines.append("Status:")
    _kv(lines, "    Allowed disruptions", st.disruptions_allowed)
    _kv(lines, "    Current", st.current_healthy)
    _kv(lines, "    Desired", st.desired_healthy)
    _kv(lines, "    Total", st.expected_pods)


_DETAIL = {"Pod": _pod, "PriorityClass": _priority_class, "ConfigMap": _config_map, "Secret": _secret,
           "PersistentVolume": _persistent_volume,
           "PersistentVolumeClaim": _persistent_volume_claim, "StorageClass": _storage_class,
           "Deployment": _deployment, "ReplicaSet": _replicaset, "Service": _service, "Node": _node,
           "Endpoints": _endpoints, "Ingress": _ingress, "IngressClass": _ingress_class,
           "EndpointSlice": _endpoint_slice, "Job": _job, "CronJob": _cronjob, "DaemonSet": _daemonset,
           "StatefulSet": _statefulset, "PodDisruptionBudget": _pdb}


async def _announcer(lines: Lines, client: Client, s: core_pb2.Service) -> None:
    """Which node answers for the LoadBalancer address, and since when (the Service's Lease)."""
    ip = loadbalancer.allocated_ip(s)
    _kv(lines, "LoadBalancer Address", ip or "<pending: no address allocated>")
    if not ip:
        return
    try:
        lease = await client.get("leases", loadbalancer.lease_name(s.metadata.name), s.metadata.namespace)
    except NotFoundError:
        lease = None
    holder = lease.spec.holder_identity if lease is not None else ""
    if holder:
        since = lease.spec.acquire_time
        _kv(lines, "Announced By", f"{holder} (since {convert.format_time(since)}, {printers.age(since)} ago)")
    else:
        _kv(lines, "Announced By", "<none> (no Ready node with a ready endpoint)")


async def describe_text(client: Client, obj: Message) -> str:
    lines: Lines = []
    _meta(lines, obj)
    kind = kinds.of(obj)
    detail = _DETAIL.get(kind.kind)
    if detail:
        detail(lines, obj)
    elif kind.kind == "Namespace":
        _kv(lines, "Status", obj.status.phase)  # type: ignore[attr-defined]
    if kind.kind == "Service" and loadbalancer.is_ours(obj):  # type: ignore[arg-type]
        await _announcer(lines, client, obj)  # type: ignore[arg-type]
    m = obj.metadata  # type: ignore[attr-defined]
    field = f"involvedObject.name={m.name},involvedObject.kind={kind.kind}"
    events = (await client.list("events", m.namespace or "default", field_selector=field)).items
    if events:
        events.sort(key=lambda e: (e.last_timestamp.seconds or e.metadata.creation_timestamp.seconds))
        lines.append("Events:")
        rows = [[e.type, e.reason, printers.age(e.last_timestamp) + (f" (x{e.count})" if e.count > 1 else ""),
                 e.source.component, e.message] for e in events[-20:]]
        table = printers.table(rows, ["Type", "Reason", "Age", "From", "Message"])
        lines.extend("  " + line for line in table.splitlines())
    else:
        lines.append("Events:               <none>")
    return "\n".join(lines)


@click.command()
@click.argument("kind")
@click.argument("names", nargs=-1)
@click.option("--namespace", "-n", default="")
@click.option("--selector", "-l", default="")
@connection_options
def describe(kind: str, names: tuple[str, ...], namespace: str, selector: str, conn: ClientConfig) -> None:
    """Show details of objects and their recent events."""
    if "/" in kind and not names:
        kind, _, name = kind.partition("/")
        names = (name,)

    async def go() -> None:
        k = kinds.lookup(kind)
        async with Client(conn) as client:
            if names:
                objs = [await client.get(k.resource, n, namespace or "default") for n in names]
            else:
                objs = (await client.list(k.resource, namespace or "default", label_selector=selector)).items
            for i, obj in enumerate(objs):
                if i:
                    click.echo("\n")
                click.echo(await describe_text(client, obj))

    run(go(), conn)
