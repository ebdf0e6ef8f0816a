"""The kinds kubelite serves: names, short names, scope and protobuf class.

Every other module looks kinds up here, so adding a kind is one entry.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.message import Message

from api.errors import InvalidError, UnsupportedError
from api.pb import (
    api_pb2,
    apps_pb2,
    batch_pb2,
    bootstrap_pb2,
    core_pb2,
    discovery_pb2,
    networking_pb2,
    policy_pb2,
    rbac_pb2,
    scheduling_pb2,
    storage_pb2,
)


@dataclass(frozen=True)
class Kind:
    kind: str  # Pod
    resource: str  # pods
    short_names: tuple[str, ...]
    namespaced: bool
    api_version: str  # v1, apps/v1, coordination.k8s.io/v1
    cls: type[Message]
    field: str  # the api_pb2.Object oneof field
    has_status: bool = True

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]


KINDS: tuple[Kind, ...] = (
    Kind("Namespace", "namespaces", ("ns",), False, "v1", core_pb2.Namespace, "namespace"),
    Kind("Node", "nodes", ("no",), False, "v1", core_pb2.Node, "node"),
    Kind("Pod", "pods", ("po",), True, "v1", core_pb2.Pod, "pod"),
    Kind("Service", "services", ("svc",), True, "v1", core_pb2.Service, "service"),
    Kind("Endpoints", "endpoints", ("ep",), True, "v1", core_pb2.Endpoints, "endpoints", False),
    Kind("Event", "events", ("ev",), True, "v1", core_pb2.Event, "event", False),
    Kind("ReplicaSet", "replicasets", ("rs",), True, "apps/v1", apps_pb2.ReplicaSet, "replica_set"),
    Kind("Deployment", "deployments", ("deploy",), True, "apps/v1", apps_pb2.Deployment, "deployment"),
    Kind("Lease", "leases", (), True, "coordination.k8s.io/v1", apps_pb2.Lease, "lease", False),
    Kind("PriorityClass", "priorityclasses", ("pc",), False, "scheduling.k8s.io/v1", scheduling_pb2.PriorityClass,
         "priority_class", False),
    Kind("BootstrapToken", "bootstraptokens", (), False, "bootstrap.kubelite.io/v1", bootstrap_pb2.BootstrapToken,
         "bootstrap_token", False),
    Kind("ConfigMap", "configmaps", ("cm",), True, "v1", core_pb2.ConfigMap, "config_map", False),
    Kind("Secret", "secrets", (), True, "v1", core_pb2.Secret, "secret", False),
    Kind("ServiceAccount", "serviceaccounts", ("sa",), True, "v1", core_pb2.ServiceAccount, "service_account", False),
    Kind("PersistentVolume", "persistentvolumes", ("pv",), False, "v1", core_pb2.PersistentVolume,
         "persistent_volume"),
    Kind("PersistentVolumeClaim", "persistentvolumeclaims", ("pvc",), True, "v1", core_pb2.PersistentVolumeClaim,
         "persistent_volume_claim"),
    Kind("StorageClass", "storageclasses", ("sc",), False, "storage.k8s.io/v1", storage_pb2.StorageClass,
         "storage_class", False),
    Kind("Ingress", "ingresses", ("ing",), True, "networking.k8s.io/v1", networking_pb2.Ingress, "ingress"),
    Kind("IngressClass", "ingressclasses", (), False, "networking.k8s.io/v1", networking_pb2.IngressClass,
         "ingress_class", False),
    Kind("EndpointSlice", "endpointslices", (), True, "discovery.k8s.io/v1", discovery_pb2.EndpointSlice,
         "endpoint_slice", False),
    Kind("Job", "jobs", (), True, "batch/v1", batch_pb2.Job, "job"),
    Kind("CronJob", "cronjobs", ("cj",), True, "batch/v1", batch_pb2.CronJob, "cron_job"),
    Kind("DaemonSet", "daemonsets", ("ds",), True, "apps/v1", apps_pb2.DaemonSet, "daemon_set"),
    Kind("StatefulSet", "statefulsets", ("sts",), True, "apps/v1", apps_pb2.StatefulSet, "stateful_set"),
    Kind("PodDisruptionBudget", "poddisruptionbudgets", ("pdb",), True, "policy/v1", policy_pb2.PodDisruptionBudget,
         "pod_disruption_budget"),
    Kind("ControllerRevision", "controllerrevisions", (), True, "apps/v1", apps_pb2.ControllerRevision,
         "controller_revision", False),
    Kind("Role", "roles", (), True, "rbac.authorization.k8s.io/v1", rbac_pb2.Role, "role", False),
    Kind("ClusterRole", "clusterroles", (), False, "rbac.authorization.k8s.io/v1", rbac_pb2.ClusterRole,
         "cluster_role", False),
    Kind("RoleBinding", "rolebindings", (), True, "rbac.authorization.k8s.io/v1", rbac_pb2.RoleBinding,
         "role_binding", False),
    Kind("ClusterRoleBinding", "clusterrolebindings", (), False, "rbac.authorization.k8s.io/v1",
         rbac_pb2.ClusterRoleBinding, "cluster_role_binding", False),
)

_BY_NAME: dict[str, Kind] = {}
for _k in KINDS:
    for _name in (_k.kind, _k.kind.lower(), _k.resource, _k.resource.rstrip("s"), *_k.short_names):
        _BY_NAME.setdefault(_name, _k)
_BY_FIELD = {k.field: k for k in KINDS}
_BY_CLS = {k.cls: k for k in KINDS}

# Kinds a Kubernetes user may bring that kubelite does not serve: refused by name.
SUPPORTED_TEXT = ", ".join(k.kind for k in KINDS)


def lookup(name: str) -> Kind:
    """Find a kind by kind name, resource, singular or short name ("po", "Pod", "pods")."""
    kind = _BY_NAME.get(name) or _BY_NAME.get(name.lower())
    if kind is None:
        raise UnsupportedError(f'the server doesn\'t have a resource type "{name}"; supported: {SUPPORTED_TEXT}')
    return kind


def by_field(field: str) -> Kind:
    return _BY_FIELD[field]


def of(obj: Message) -> Kind:
    """The kind of a typed object (Pod, Service, ...)."""
    return _BY_CLS[type(obj)]


def wrap(obj: Message) -> api_pb2.Object:
    """Put a typed object into the Object envelope."""
    return api_pb2.Object(**{of(obj).field: obj})


def unwrap(envelope: api_pb2.Object) -> Message:
    """The typed object inside an Object envelope."""
    field = envelope.WhichOneof("kind")
    if field is None:
        raise InvalidError("object: Required value: no kind set")
    return getattr(envelope, field)


def kind_of_envelope(envelope: api_pb2.Object) -> Kind:
    field = envelope.WhichOneof("kind")
    if field is None:
        raise InvalidError("object: Required value: no kind set")
    return _BY_FIELD[field]
