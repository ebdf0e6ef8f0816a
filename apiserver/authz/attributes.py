"""What a request asks to do, in Kubernetes' authorization attributes: (user, verb, resource, subresource,
namespace, name), or a non-resource path.

`of_request` maps every method of the Api service in one place; any other front end (a REST API) builds the
same `Attributes` from its own requests and asks the same authorizer.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.message import Message

from api import kinds
from api.pb import api_pb2, policy_pb2
from apiserver.authn import UserInfo

# Verbs that change state (the audit log records these, and every denial).
MUTATING = frozenset({"create", "update", "patch", "delete", "deletecollection"})


@dataclass(frozen=True, slots=True)
class Attributes:
    """One request as the authorizer sees it."""

    user: UserInfo
    verb: str
    resource: str = ""  # plural: pods; "" for a non-resource request
    subresource: str = ""  # status, exec, log, binding, eviction, scale
    namespace: str = ""  # "" for cluster-scoped objects, or a list/watch over every namespace
    name: str = ""
    api_group: str = ""
    path: str = ""  # a non-resource request: /apis
    field_selector: str = ""  # list/watch: the node authorizer allows a kubelet its own pods by it
    obj: Message | None = None  # create/update: the object to be written
    uid: str = ""  # a precondition: the request applies to this incarnation only (a delete, a status report)

    @property
    def is_resource(self) -> bool:
        return not self.path

    @property
    def full_resource(self) -> str:
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


def _kind_attrs(kind: kinds.Kind, namespace: str, *, listing: bool = False) -> dict[str, str]:
    ns = "" if not kind.namespaced else (namespace if listing else namespace or "default")
    return {"resource": kind.resource, "api_group": kind.group, "namespace": ns}


def of_request(user: UserInfo, method: str, req: Message) -> Attributes | None:
    """The attributes of one call of the Api service (`method` is its short name: Create, Get, ...); None for a
    method authorization does not decide (node certificates: the signer checks the caller itself). Raises
    UnsupportedError for an unknown resource, as the call itself would."""
    match method:
        case "Create" | "Update" | "UpdateStatus":
            assert isinstance(req, api_pb2.CreateRequest | api_pb2.UpdateRequest)
            kind = kinds.kind_of_envelope(req.object)
            obj = kinds.unwrap(req.object)
            meta = obj.metadata  # type: ignore[attr-defined]
            verb = "create" if method == "Create" else "update"
            return Attributes(user, verb, name=meta.name, obj=obj,
                              subresource="status" if method == "UpdateStatus" else "",
                              **_kind_attrs(kind, meta.namespace))
        case "Get":
            kind = kinds.lookup(req.resource)  # type: ignore[attr-defined]
            return Attributes(user, "get", name=req.name,  # type: ignore[attr-defined]
                              **_kind_attrs(kind, req.namespace))  # type: ignore[attr-defined]
        case "Delete":
            assert isinstance(req, api_pb2.DeleteRequest)
            kind = kinds.lookup(req.resource)
            return Attributes(user, "delete", name=req.name, uid=req.preconditions.uid,
                              **_kind_attrs(kind, req.namespace))
        case "List" | "Watch":
            kind = kinds.lookup(req.resource)  # type: ignore[attr-defined]
            return Attributes(user, method.lower(), field_selector=req.field_selector,  # type: ignore[attr-defined]
                              **_kind_attrs(kind, req.namespace, listing=True))  # type: ignore[attr-defined]
        case "Bind":
            assert isinstance(req, api_pb2.BindRequest)
            return Attributes(user, "create", "pods", "binding", req.namespace or "default", req.name)
        case "Scale":
            assert isinstance(req, api_pb2.ScaleRequest)
            kind = kinds.lookup(req.resource)
            return Attributes(user, "update", subresource="scale", name=req.name, **_kind_attrs(kind, req.namespace))
        case "Evict":
            assert isinstance(req, policy_pb2.Eviction)
            return Attributes(user, "create", "pods", "eviction", req.metadata.namespace or "default",
                              req.metadata.name)
        case "Exec":
            assert isinstance(req, api_pb2.ExecRequest)
            return Attributes(user, "create", "pods", "exec", req.namespace or "default", req.name)
        case "Logs":
            assert isinstance(req, api_pb2.LogsRequest)
            return Attributes(user, "get", "pods", "log", req.namespace or "default", req.name)
        case "StreamPodStatus":
            # The stream itself; every update on it is checked as `update pods/status` of its pod.
            return Attributes(user, "update", "pods", "status")
        case "APIResources":
            return Attributes(user, "get", path="/apis")
        case "AccessReview":
            return Attributes(user, "create", "selfsubjectaccessreviews", api_group="authorization.k8s.io")
        case "WhoAmI":
            return Attributes(user, "create", "selfsubjectreviews", api_group="authentication.k8s.io")
        case "CreateToken":
            assert isinstance(req, api_pb2.TokenRequest)
            return Attributes(user, "create", "serviceaccounts", "token", req.namespace or "default",
                              req.service_account, obj=req)
        case "RequestNodeCertificates" | "CreateMany" | "BindMany" | "CreateTokenMany" | "WatchMany":
            # CreateMany, BindMany, CreateTokenMany, WatchMany: every object, binding, token request or watch in
            # it is authorized as the Create, Bind, CreateToken or Watch it stands for.
            return None
    raise ValueError(f"no authorization attributes for method {method}")


def pod_status(user: UserInfo, namespace: str, name: str, uid: str = "") -> Attributes:
    """One update on the kubelets' status stream (for the pod incarnation `uid`)."""
    return Attributes(user, "update", "pods", "status", namespace or "default", name, uid=uid)
