import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from api.pb import apps_pb2 as _apps_pb2
from api.pb import bootstrap_pb2 as _bootstrap_pb2
from api.pb import batch_pb2 as _batch_pb2
from api.pb import core_pb2 as _core_pb2
from api.pb import discovery_pb2 as _discovery_pb2
from api.pb import networking_pb2 as _networking_pb2
from api.pb import policy_pb2 as _policy_pb2
from api.pb import rbac_pb2 as _rbac_pb2
from api.pb import scheduling_pb2 as _scheduling_pb2
from api.pb import storage_pb2 as _storage_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Object(_message.Message):
    __slots__ = ("namespace", "pod", "node", "service", "endpoints", "event", "replica_set", "deployment", "lease", "priority_class", "bootstrap_token", "config_map", "secret", "persistent_volume", "persistent_volume_claim", "storage_class", "ingress", "ingress_class", "endpoint_slice", "job", "cron_job", "daemon_set", "stateful_set", "pod_disruption_budget", "controller_revision", "role", "cluster_role", "role_binding", "cluster_role_binding", "service_account")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    POD_FIELD_NUMBER: _ClassVar[int]
    NODE_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    REPLICA_SET_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_FIELD_NUMBER: _ClassVar[int]
    LEASE_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_CLASS_FIELD_NUMBER: _ClassVar[int]
    BOOTSTRAP_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CONFIG_MAP_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    PERSISTENT_VOLUME_FIELD_NUMBER: _ClassVar[int]
    PERSISTENT_VOLUME_CLAIM_FIELD_NUMBER: _ClassVar[int]
    STORAGE_CLASS_FIELD_NUMBER: _ClassVar[int]
    INGRESS_FIELD_NUMBER: _ClassVar[int]
    INGRESS_CLASS_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_SLICE_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    CRON_JOB_FIELD_NUMBER: _ClassVar[int]
    DAEMON_SET_FIELD_NUMBER: _ClassVar[int]
    STATEFUL_SET_FIELD_NUMBER: _ClassVar[int]
    POD_DISRUPTION_BUDGET_FIELD_NUMBER: _ClassVar[int]
    CONTROLLER_REVISION_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_ROLE_FIELD_NUMBER: _ClassVar[int]
    ROLE_BINDING_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_ROLE_BINDING_FIELD_NUMBER: _ClassVar[int]
    SERVICE_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    namespace: _core_pb2.Namespace
    pod: _core_pb2.Pod
    node: _core_pb2.Node
    service: _core_pb2.Service
    endpoints: _core_pb2.Endpoints
    event: _core_pb2.Event
    replica_set: _apps_pb2.ReplicaSet
    deployment: _apps_pb2.Deployment
    lease: _apps_pb2.Lease
    priority_class: _scheduling_pb2.PriorityClass
    bootstrap_token: _bootstrap_pb2.BootstrapToken
    config_map: _core_pb2.ConfigMap
    secret: _core_pb2.Secret
    persistent_volume: _core_pb2.PersistentVolume
    persistent_volume_claim: _core_pb2.PersistentVolumeClaim
    storage_class: _storage_pb2.StorageClass
    ingress: _networking_pb2.Ingress
    ingress_class: _networking_pb2.IngressClass
    endpoint_slice: _discovery_pb2.EndpointSlice
    job: _batch_pb2.Job
    cron_job: _batch_pb2.CronJob
    daemon_set: _apps_pb2.DaemonSet
    stateful_set: _apps_pb2.StatefulSet
    pod_disruption_budget: _policy_pb2.PodDisruptionBudget
    controller_revision: _apps_pb2.ControllerRevision
    role: _rbac_pb2.Role
    cluster_role: _rbac_pb2.ClusterRole
    role_binding: _rbac_pb2.RoleBinding
    cluster_role_binding: _rbac_pb2.ClusterRoleBinding
    service_account: _core_pb2.ServiceAccount
    def __init__(self, namespace: _Optional[_Union[_core_pb2.Namespace, _Mapping]] = ..., pod: _Optional[_Union[_core_pb2.Pod, _Mapping]] = ..., node: _Optional[_Union[_core_pb2.Node, _Mapping]] = ..., service: _Optional[_Union[_core_pb2.Service, _Mapping]] = ..., endpoints: _Optional[_Union[_core_pb2.Endpoints, _Mapping]] = ..., event: _Optional[_Union[_core_pb2.Event, _Mapping]] = ..., replica_set: _Optional[_Union[_apps_pb2.ReplicaSet, _Mapping]] = ..., deployment: _Optional[_Union[_apps_pb2.Deployment, _Mapping]] = ..., lease: _Optional[_Union[_apps_pb2.Lease, _Mapping]] = ..., priority_class: _Optional[_Union[_scheduling_pb2.PriorityClass, _Mapping]] = ..., bootstrap_token: _Optional[_Union[_bootstrap_pb2.BootstrapToken, _Mapping]] = ..., config_map: _Optional[_Union[_core_pb2.ConfigMap, _Mapping]] = ..., secret: _Optional[_Union[_core_pb2.Secret, _Mapping]] = ..., persistent_volume: _Optional[_Union[_core_pb2.PersistentVolume, _Mapping]] = ..., persistent_volume_claim: _Optional[_Union[_core_pb2.PersistentVolumeClaim, _Mapping]] = ..., storage_class: _Optional[_Union[_storage_pb2.StorageClass, _Mapping]] = ..., ingress: _Optional[_Union[_networking_pb2.Ingress, _Mapping]] = ..., ingress_class: _Optional[_Union[_networking_pb2.IngressClass, _Mapping]] = ..., endpoint_slice: _Optional[_Union[_discovery_pb2.EndpointSlice, _Mapping]] = ..., job: _Optional[_Union[_batch_pb2.Job, _Mapping]] = ..., cron_job: _Optional[_Union[_batch_pb2.CronJob, _Mapping]] = ..., daemon_set: _Optional[_Union[_apps_pb2.DaemonSet, _Mapping]] = ..., stateful_set: _Optional[_Union[_apps_pb2.StatefulSet, _Mapping]] = ..., pod_disruption_budget: _Optional[_Union[_policy_pb2.PodDisruptionBudget, _Mapping]] = ..., controller_revision: _Optional[_Union[_apps_pb2.ControllerRevision, _Mapping]] = ..., role: _Optional[_Union[_rbac_pb2.Role, _Mapping]] = ..., cluster_role: _Optional[_Union[_rbac_pb2.ClusterRole, _Mapping]] = ..., role_binding: _Optional[_Union[_rbac_pb2.RoleBinding, _Mapping]] = ..., cluster_role_binding: _Optional[_Union[_rbac_pb2.ClusterRoleBinding, _Mapping]] = ..., service_account: _Optional[_Union[_core_pb2.ServiceAccount, _Mapping]] = ...) -> None: ...

class CreateRequest(_message.Message):
    __slots__ = ("object", "dry_run")
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    object: Object
    dry_run: bool
    def __init__(self, object: _Optional[_Union[Object, _Mapping]] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class CreateManyRequest(_message.Message):
    __slots__ = ("objects", "dry_run")
    OBJECTS_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    objects: _containers.RepeatedCompositeFieldContainer[Object]
    dry_run: bool
    def __init__(self, objects: _Optional[_Iterable[_Union[Object, _Mapping]]] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class CreateResult(_message.Message):
    __slots__ = ("object", "code", "message", "warnings")
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    object: Object
    code: int
    message: str
    warnings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, object: _Optional[_Union[Object, _Mapping]] = ..., code: _Optional[int] = ..., message: _Optional[str] = ..., warnings: _Optional[_Iterable[str]] = ...) -> None: ...

class CreateManyResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[CreateResult]
    def __init__(self, results: _Optional[_Iterable[_Union[CreateResult, _Mapping]]] = ...) -> None: ...

class GetRequest(_message.Message):
    __slots__ = ("resource", "namespace", "name")
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    resource: str
    namespace: str
    name: str
    def __init__(self, resource: _Optional[str] = ..., namespace: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class ListRequest(_message.Message):
    __slots__ = ("resource", "namespace", "label_selector", "field_selector", "limit")
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    LABEL_SELECTOR_FIELD_NUMBER: _ClassVar[int]
    FIELD_SELECTOR_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    CONTINUE_FIELD_NUMBER: _ClassVar[int]
    resource: str
    namespace: str
    label_selector: str
    field_selector: str
    limit: int
    def __init__(self, resource: _Optional[str] = ..., namespace: _Optional[str] = ..., label_selector: _Optional[str] = ..., field_selector: _Optional[str] = ..., limit: _Optional[int] = ..., **kwargs) -> None: ...

class ListResponse(_message.Message):
    __slots__ = ("items", "resource_version", "remaining_item_count")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_VERSION_FIELD_NUMBER: _ClassVar[int]
    CONTINUE_FIELD_NUMBER: _ClassVar[int]
    REMAINING_ITEM_COUNT_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Object]
    resource_version: str
    remaining_item_count: int
    def __init__(self, items: _Optional[_Iterable[_Union[Object, _Mapping]]] = ..., resource_version: _Optional[str] = ..., remaining_item_count: _Optional[int] = ..., **kwargs) -> None: ...

class UpdateRequest(_message.Message):
    __slots__ = ("object", "dry_run")
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    object: Object
    dry_run: bool
    def __init__(self, object: _Optional[_Union[Object, _Mapping]] = ..., dry_run: _Optional[bool] = ...) -> None: ...

class Preconditions(_message.Message):
    __slots__ = ("uid", "resource_version")
    UID_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_VERSION_FIELD_NUMBER: _ClassVar[int]
    uid: str
    resource_version: str
    def __init__(self, uid: _Optional[str] = ..., resource_version: _Optional[str] = ...) -> None: ...

class DeleteRequest(_message.Message):
    __slots__ = ("resource", "namespace", "name", "grace_period_seconds", "propagation_policy", "preconditions")
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    GRACE_PERIOD_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PROPAGATION_POLICY_FIELD_NUMBER: _ClassVar[int]
    PRECONDITIONS_FIELD_NUMBER: _ClassVar[int]
    resource: str
    namespace: str
    name: str
    grace_period_seconds: int
    propagation_policy: str
    preconditions: Preconditions
    def __init__(self, resource: _Optional[str] = ..., namespace: _Optional[str] = ..., name: _Optional[str] = ..., grace_period_seconds: _Optional[int] = ..., propagation_policy: _Optional[str] = ..., preconditions: _Optional[_Union[Preconditions, _Mapping]] = ...) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ("resource", "namespace", "label_selector", "field_selector", "resource_version", "allow_bookmarks")
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    LABEL_SELECTOR_FIELD_NUMBER: _ClassVar[int]
    FIELD_SELECTOR_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_VERSION_FIELD_NUMBER: _ClassVar[int]
    ALLOW_BOOKMARKS_FIELD_NUMBER: _ClassVar[int]
    resource: str
    namespace: str
    label_selector: str
    field_selector: str
    resource_version: str
    allow_bookmarks: bool
    def __init__(self, resource: _Optional[str] = ..., namespace: _Optional[str] = ..., label_selector: _Optional[str] = ..., field_selector: _Optional[str] = ..., resource_version: _Optional[str] = ..., allow_bookmarks: _Optional[bool] = ...) -> None: ...

class WatchEvent(_message.Message):
    __slots__ = ("type", "object", "resource_version")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_VERSION_FIELD_NUMBER: _ClassVar[int]
    type: str
    object: Object
    resource_version: str
    def __init__(self, type: _Optional[str] = ..., object: _Optional[_Union[Object, _Mapping]] = ..., resource_version: _Optional[str] = ...) -> None: ...

class WatchEvents(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[WatchEvent]
    def __init__(self, events: _Optional[_Iterable[_Union[WatchEvent, _Mapping]]] = ...) -> None: ...

class WatchManyRequest(_message.Message):
    __slots__ = ("id", "start")
    ID_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    id: int
    start: WatchRequest
    def __init__(self, id: _Optional[int] = ..., start: _Optional[_Union[WatchRequest, _Mapping]] = ...) -> None: ...

class WatchManyEvents(_message.Message):
    __slots__ = ("events", "id", "code", "message")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[WatchEvent]
    id: int
    code: int
    message: str
    def __init__(self, events: _Optional[_Iterable[_Union[WatchEvent, _Mapping]]] = ..., id: _Optional[int] = ..., code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class WatchManyResponse(_message.Message):
    __slots__ = ("watches",)
    WATCHES_FIELD_NUMBER: _ClassVar[int]
    watches: _containers.RepeatedCompositeFieldContainer[WatchManyEvents]
    def __init__(self, watches: _Optional[_Iterable[_Union[WatchManyEvents, _Mapping]]] = ...) -> None: ...

class BindRequest(_message.Message):
    __slots__ = ("namespace", "name", "node_name", "uid")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    NODE_NAME_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    name: str
    node_name: str
    uid: str
    def __init__(self, namespace: _Optional[str] = ..., name: _Optional[str] = ..., node_name: _Optional[str] = ..., uid: _Optional[str] = ...) -> None: ...

class BindManyRequest(_message.Message):
    __slots__ = ("bindings",)
    BINDINGS_FIELD_NUMBER: _ClassVar[int]
    bindings: _containers.RepeatedCompositeFieldContainer[BindRequest]
    def __init__(self, bindings: _Optional[_Iterable[_Union[BindRequest, _Mapping]]] = ...) -> None: ...

class BindResult(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class BindManyResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[BindResult]
    def __init__(self, results: _Optional[_Iterable[_Union[BindResult, _Mapping]]] = ...) -> None: ...

class ScaleRequest(_message.Message):
    __slots__ = ("resource", "namespace", "name", "replicas")
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    resource: str
    namespace: str
    name: str
    replicas: int
    def __init__(self, resource: _Optional[str] = ..., namespace: _Optional[str] = ..., name: _Optional[str] = ..., replicas: _Optional[int] = ...) -> None: ...

class PodStatusUpdate(_message.Message):
    __slots__ = ("namespace", "name", "uid", "sequence", "status")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    name: str
    uid: str
    sequence: int
    status: _core_pb2.PodStatus
    def __init__(self, namespace: _Optional[str] = ..., name: _Optional[str] = ..., uid: _Optional[str] = ..., sequence: _Optional[int] = ..., status: _Optional[_Union[_core_pb2.PodStatus, _Mapping]] = ...) -> None: ...

class PodStatusAck(_message.Message):
    __slots__ = ("namespace", "name", "sequence", "error", "code")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    name: str
    sequence: int
    error: str
    code: str
    def __init__(self, namespace: _Optional[str] = ..., name: _Optional[str] = ..., sequence: _Optional[int] = ..., error: _Optional[str] = ..., code: _Optional[str] = ...) -> None: ...

class LogsRequest(_message.Message):
    __slots__ = ("namespace", "name", "container", "follow", "tail_lines", "previous", "timestamps", "since_seconds")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    TAIL_LINES_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMPS_FIELD_NUMBER: _ClassVar[int]
    SINCE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    name: str
    container: str
    follow: bool
    tail_lines: int
    previous: bool
    timestamps: bool
    since_seconds: int
    def __init__(self, namespace: _Optional[str] = ..., name: _Optional[str] = ..., container: _Optional[str] = ..., follow: _Optional[bool] = ..., tail_lines: _Optional[int] = ..., previous: _Optional[bool] = ..., timestamps: _Optional[bool] = ..., since_seconds: _Optional[int] = ...) -> None: ...

class LogChunk(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class ExecRequest(_message.Message):
    __slots__ = ("namespace", "name", "container", "command", "stdin", "timeout_seconds")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    STDIN_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    name: str
    container: str
    command: _containers.RepeatedScalarFieldContainer[str]
    stdin: bytes
    timeout_seconds: int
    def __init__(self, namespace: _Optional[str] = ..., name: _Optional[str] = ..., container: _Optional[str] = ..., command: _Optional[_Iterable[str]] = ..., stdin: _Optional[bytes] = ..., timeout_seconds: _Optional[int] = ...) -> None: ...

class ExecResponse(_message.Message):
    __slots__ = ("stdout", "stderr", "exit_code")
    STDOUT_FIELD_NUMBER: _ClassVar[int]
    STDERR_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    stdout: bytes
    stderr: bytes
    exit_code: int
    def __init__(self, stdout: _Optional[bytes] = ..., stderr: _Optional[bytes] = ..., exit_code: _Optional[int] = ...) -> None: ...

class StreamRequest(_message.Message):
    __slots__ = ("start", "stdin", "resize", "stdin_closed")
    START_FIELD_NUMBER: _ClassVar[int]
    STDIN_FIELD_NUMBER: _ClassVar[int]
    RESIZE_FIELD_NUMBER: _ClassVar[int]
    STDIN_CLOSED_FIELD_NUMBER: _ClassVar[int]
    start: StreamStart
    stdin: bytes
    resize: TerminalSize
    stdin_closed: bool
    def __init__(self, start: _Optional[_Union[StreamStart, _Mapping]] = ..., stdin: _Optional[bytes] = ..., resize: _Optional[_Union[TerminalSize, _Mapping]] = ..., stdin_closed: _Optional[bool] = ...) -> None: ...

class StreamStart(_message.Message):
    __slots__ = ("namespace", "name", "container", "command", "tty", "stdin")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    TTY_FIELD_NUMBER: _ClassVar[int]
    STDIN_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    name: str
    container: str
    command: _containers.RepeatedScalarFieldContainer[str]
    tty: bool
    stdin: bool
    def __init__(self, namespace: _Optional[str] = ..., name: _Optional[str] = ..., container: _Optional[str] = ..., command: _Optional[_Iterable[str]] = ..., tty: _Optional[bool] = ..., stdin: _Optional[bool] = ...) -> None: ...

class TerminalSize(_message.Message):
    __slots__ = ("width", "height")
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    width: int
    height: int
    def __init__(self, width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class StreamResponse(_message.Message):
    __slots__ = ("stdout", "stderr", "exit_code", "error")
    STDOUT_FIELD_NUMBER: _ClassVar[int]
    STDERR_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    stdout: bytes
    stderr: bytes
    exit_code: int
    error: str
    def __init__(self, stdout: _Optional[bytes] = ..., stderr: _Optional[bytes] = ..., exit_code: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class APIResource(_message.Message):
    __slots__ = ("name", "short_names", "kind", "namespaced", "api_version", "verbs")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SHORT_NAMES_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    NAMESPACED_FIELD_NUMBER: _ClassVar[int]
    API_VERSION_FIELD_NUMBER: _ClassVar[int]
    VERBS_FIELD_NUMBER: _ClassVar[int]
    name: str
    short_names: _containers.RepeatedScalarFieldContainer[str]
    kind: str
    namespaced: bool
    api_version: str
    verbs: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., short_names: _Optional[_Iterable[str]] = ..., kind: _Optional[str] = ..., namespaced: _Optional[bool] = ..., api_version: _Optional[str] = ..., verbs: _Optional[_Iterable[str]] = ...) -> None: ...

class APIResourcesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class NodeCertificatesRequest(_message.Message):
    __slots__ = ("node_name", "client_csr", "serving_csr", "proxy_csr")
    NODE_NAME_FIELD_NUMBER: _ClassVar[int]
    CLIENT_CSR_FIELD_NUMBER: _ClassVar[int]
    SERVING_CSR_FIELD_NUMBER: _ClassVar[int]
    PROXY_CSR_FIELD_NUMBER: _ClassVar[int]
    node_name: str
    client_csr: bytes
    serving_csr: bytes
    proxy_csr: bytes
    def __init__(self, node_name: _Optional[str] = ..., client_csr: _Optional[bytes] = ..., serving_csr: _Optional[bytes] = ..., proxy_csr: _Optional[bytes] = ...) -> None: ...

class NodeCertificatesResponse(_message.Message):
    __slots__ = ("client_certificate", "serving_certificate", "proxy_certificate", "ca_certificate")
    CLIENT_CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    SERVING_CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    PROXY_CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    CA_CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    client_certificate: bytes
    serving_certificate: bytes
    proxy_certificate: bytes
    ca_certificate: bytes
    def __init__(self, client_certificate: _Optional[bytes] = ..., serving_certificate: _Optional[bytes] = ..., proxy_certificate: _Optional[bytes] = ..., ca_certificate: _Optional[bytes] = ...) -> None: ...

class APIResourcesResponse(_message.Message):
    __slots__ = ("resources",)
    RESOURCES_FIELD_NUMBER: _ClassVar[int]
    resources: _containers.RepeatedCompositeFieldContainer[APIResource]
    def __init__(self, resources: _Optional[_Iterable[_Union[APIResource, _Mapping]]] = ...) -> None: ...

class AccessReviewRequest(_message.Message):
    __slots__ = ("verb", "resource", "subresource", "namespace", "name")
    VERB_FIELD_NUMBER: _ClassVar[int]
    RESOURCE_FIELD_NUMBER: _ClassVar[int]
    SUBRESOURCE_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    verb: str
    resource: str
    subresource: str
    namespace: str
    name: str
    def __init__(self, verb: _Optional[str] = ..., resource: _Optional[str] = ..., subresource: _Optional[str] = ..., namespace: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class AccessReviewResponse(_message.Message):
    __slots__ = ("allowed", "reason")
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    allowed: bool
    reason: str
    def __init__(self, allowed: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class TokenRequest(_message.Message):
    __slots__ = ("namespace", "service_account", "audiences", "expiration_seconds", "pod_name", "pod_uid")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    SERVICE_ACCOUNT_FIELD_NUMBER: _ClassVar[int]
    AUDIENCES_FIELD_NUMBER: _ClassVar[int]
    EXPIRATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    POD_NAME_FIELD_NUMBER: _ClassVar[int]
    POD_UID_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    service_account: str
    audiences: _containers.RepeatedScalarFieldContainer[str]
    expiration_seconds: int
    pod_name: str
    pod_uid: str
    def __init__(self, namespace: _Optional[str] = ..., service_account: _Optional[str] = ..., audiences: _Optional[_Iterable[str]] = ..., expiration_seconds: _Optional[int] = ..., pod_name: _Optional[str] = ..., pod_uid: _Optional[str] = ...) -> None: ...

class TokenResponse(_message.Message):
    __slots__ = ("token", "expiration_timestamp")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXPIRATION_TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    token: str
    expiration_timestamp: _timestamp_pb2.Timestamp
    def __init__(self, token: _Optional[str] = ..., expiration_timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class TokenManyRequest(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[TokenRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[TokenRequest, _Mapping]]] = ...) -> None: ...

class TokenResult(_message.Message):
    __slots__ = ("code", "message", "token")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    token: TokenResponse
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ..., token: _Optional[_Union[TokenResponse, _Mapping]] = ...) -> None: ...

class TokenManyResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[TokenResult]
    def __init__(self, results: _Optional[_Iterable[_Union[TokenResult, _Mapping]]] = ...) -> None: ...

class WhoAmIRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WhoAmIResponse(_message.Message):
    __slots__ = ("username", "uid", "groups")
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    username: str
    uid: str
    groups: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, username: _Optional[str] = ..., uid: _Optional[str] = ..., groups: _Optional[_Iterable[str]] = ...) -> None: ...
