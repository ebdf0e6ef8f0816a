"""Small constructors for the objects the controllers' pure planners take."""

from __future__ import annotations

from api.pb import apps_pb2, core_pb2, meta_pb2
from api.timestamps import timestamp

T0 = 1_700_000_000.0


def pod(name: str, *, labels: dict[str, str] | None = None, node: str = "", phase: str = "Running",
        ready: bool | None = None, ready_since: float = T0, created: float = T0, restarts: int = 0,
        deleting: float | None = None, owner: str = "", ip: str = "", namespace: str = "default",
        ports: list[tuple[str, int, str]] | None = None, uid: str = "") -> core_pb2.Pod:
    p = core_pb2.Pod(metadata={"name": name, "namespace": namespace, "uid": uid or f"uid-{name}"})
    p.metadata.labels.update(labels or {})
    p.metadata.creation_timestamp.CopyFrom(timestamp(created))
    if deleting is not None:
        p.metadata.deletion_timestamp.CopyFrom(timestamp(deleting))
    if owner:
        p.metadata.owner_references.add(api_version="apps/v1", kind="ReplicaSet", name=owner, uid=f"uid-{owner}",
                                        controller=True, block_owner_deletion=True)
    p.spec.node_name = node
    c = p.spec.containers.add(name="c", image="busybox")
    for port_name, number, protocol in ports or []:
        c.ports.add(name=port_name, container_port=number, protocol=protocol)
    p.status.phase = phase
    p.status.pod_ip = ip
    if ready is not None:
        cond = p.status.conditions.add(type="Ready", status="True" if ready else "False")
        cond.last_transition_time.CopyFrom(timestamp(ready_since))
    p.status.container_statuses.add(name="c", ready=bool(ready), restart_count=restarts)
    return p


def selector(**match: str) -> meta_pb2.LabelSelector:
    return meta_pb2.LabelSelector(match_labels=match)


def replicaset(name: str, replicas: int, *, labels: dict[str, str] | None = None, min_ready: int = 0,
               created: float = T0, revision: int = 0, generation: int = 1,
               annotations: dict[str, str] | None = None) -> apps_pb2.ReplicaSet:
    lab = labels or {"app": "web"}
    rs = apps_pb2.ReplicaSet(metadata={"name": name, "namespace": "default", "uid": f"uid-{name}",
                                       "generation": generation})
    rs.metadata.creation_timestamp.CopyFrom(timestamp(created))
    rs.metadata.labels.update(lab)
    rs.metadata.annotations.update(annotations or {})
    if revision:
        rs.metadata.annotations["deployment.kubernetes.io/revision"] = str(revision)
    rs.spec.replicas = replicas
    rs.spec.min_ready_seconds = min_ready
    rs.spec.selector.CopyFrom(selector(**lab))
    rs.spec.template.metadata.labels.update(lab)
    rs.spec.template.spec.containers.add(name="c", image="busybox")
    return rs


def deployment(name: str = "web", replicas: int = 3, *, surge: str = "25%", unavailable: str = "25%",
               strategy: str = "RollingUpdate", image: str = "busybox", generation: int = 1,
               progress_deadline: int | None = 600, history: int | None = 10) -> apps_pb2.Deployment:
    d = apps_pb2.Deployment(metadata={"name": name, "namespace": "default", "uid": f"uid-{name}",
                                      "generation": generation})
    d.spec.replicas = replicas
    d.spec.selector.CopyFrom(selector(app=name))
    d.spec.template.metadata.labels["app"] = name
    d.spec.template.spec.containers.add(name="c", image=image)
    d.spec.strategy.type = strategy
    if strategy == "RollingUpdate":
        d.spec.strategy.rolling_update.max_surge = surge
        d.spec.strategy.rolling_update.max_unavailable = unavailable
    if progress_deadline is not None:
        d.spec.progress_deadline_seconds = progress_deadline
    if history is not None:
        d.spec.revision_history_limit = history
    return d
