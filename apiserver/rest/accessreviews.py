"""Reviews about the caller over REST, after impersonation (`--as`): a SelfSubjectReview says who it is (`kubectl
auth whoami`, the gRPC WhoAmI); a SelfSubjectAccessReview whether it may do something (`kubectl auth can-i`),
answered by the authorizer every request meets (the gRPC AccessReview); a SelfSubjectRulesReview (`can-i --list`)
lists the rules RBAC grants it in a namespace."""

from __future__ import annotations

from typing import Any

from api.errors import FieldError, InvalidError
from api.pb import rbac_pb2
from apiserver.authn import UserInfo
from apiserver.authz import Attributes, Decision

API_VERSION = "authorization.k8s.io/v1"
WHOAMI_VERSION = "authentication.k8s.io/v1"
ACCESS = f"/apis/{API_VERSION}/selfsubjectaccessreviews"
RULES = f"/apis/{API_VERSION}/selfsubjectrulesreviews"
_RESOURCE_FIELDS = {"namespace", "verb", "group", "version", "resource", "subresource", "name"}
_NON_RESOURCE_FIELDS = {"path", "verb"}


def _object(body: Any, kind: str, api_version: str = API_VERSION, *, spec: bool = True) -> dict[str, Any]:
    """The review's spec, once its kind and top-level fields are checked (`spec` False: it has none)."""
    if not isinstance(body, dict):
        raise InvalidError(f"a {kind} must be a JSON object")
    if body.get("kind", kind) != kind or body.get("apiVersion", api_version) != api_version:
        raise InvalidError([FieldError("kind", "Unsupported value", f"this path takes an {api_version} {kind}",
                                       f"{body.get('apiVersion')} {body.get('kind')}")])
    extra = sorted(set(body) - {"apiVersion", "kind", "metadata", "status", *(["spec"] if spec else [])})
    if extra:
        raise InvalidError([FieldError(extra[0], "unknown field", f"a {kind} has no such field")])
    spec = body.get("spec") or {}
    if not isinstance(spec, dict):
        raise InvalidError([FieldError("spec", "Invalid value", "must be an object", str(spec))])
    return spec


def _fields(section: Any, where: str, known: set[str]) -> dict[str, str]:
    if not isinstance(section, dict):
        raise InvalidError([FieldError(where, "Invalid value", "must be an object", str(section))])
    for key, value in section.items():
        if key not in known:
            raise InvalidError([FieldError(f"{where}.{key}", "unknown field", "not served: the review would "
                                           "ignore it", "")])
        if not isinstance(value, str):
            raise InvalidError([FieldError(f"{where}.{key}", "Invalid value", "must be a string", str(value))])
    return section


def whoami_response(body: Any, user: UserInfo) -> dict[str, Any]:
    """A SelfSubjectReview (it takes no fields) answered with the caller's name, uid and groups."""
    _object(body, "SelfSubjectReview", WHOAMI_VERSION, spec=False)
    return {"kind": "SelfSubjectReview", "apiVersion": WHOAMI_VERSION, "metadata": {"creationTimestamp": None},
            "status": {"userInfo": {"username": user.name, "uid": user.uid, "groups": list(user.groups)}}}


def access_attributes(body: Any, user: UserInfo) -> Attributes:
    """What a SelfSubjectAccessReview asks about: resource attributes or a non-resource path, never both."""
    spec = _object(body, "SelfSubjectAccessReview")
    extra = sorted(set(spec) - {"resourceAttributes", "nonResourceAttributes"})
    if extra:
        raise InvalidError([FieldError(f"spec.{extra[0]}", "unknown field", "not served", "")])
    resource, non_resource = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if resource is not None and non_resource is not None:
        raise InvalidError([FieldError("spec.resourceAttributes", "Invalid value",
                                       "cannot be specified in combination with nonResourceAttributes", "")])
    if resource is not None:
        r = _fields(resource, "spec.resourceAttributes", _RESOURCE_FIELDS)
        return Attributes(user, r.get("verb", ""), r.get("resource", ""), r.get("subresource", ""),
                          r.get("namespace", ""), r.get("name", ""), r.get("group", ""))
    if non_resource is not None:
        n = _fields(non_resource, "spec.nonResourceAttributes", _NON_RESOURCE_FIELDS)
        return Attributes(user, n.get("verb", ""), path=n.get("path", ""))
    raise InvalidError([FieldError("spec", "Invalid value",
                                   "resourceAttributes or nonResourceAttributes must be specified", "")])


def access_response(body: dict[str, Any], decision: Decision) -> dict[str, Any]:
    """The review with its status. As Kubernetes' RBAC, a refusal gives no reason (kubectl prints "no")."""
    status: dict[str, Any] = {"allowed": decision.allowed}
    if decision.allowed:
        status["reason"] = decision.reason
    return {"kind": "SelfSubjectAccessReview", "apiVersion": API_VERSION, "metadata": {"creationTimestamp": None},
            "spec": body.get("spec") or {}, "status": status}


def rules_namespace(body: Any) -> str:
    spec = _object(body, "SelfSubjectRulesReview")
    return _fields(spec, "spec", {"namespace"}).get("namespace", "")


def rules_response(namespace: str, rules: list[rbac_pb2.PolicyRule], *, incomplete: bool) -> dict[str, Any]:
    """The rules as Kubernetes lists them: resource rules and non-resource rules apart, each once. `incomplete`
    when another authorizer (a node's) allows more than rules can say."""
    resource: list[dict[str, Any]] = []
    non_resource: list[dict[str, Any]] = []
    for rule in rules:
        if rule.resources:
            entry = {"verbs": list(rule.verbs), "apiGroups": list(rule.api_groups),
                     "resources": list(rule.resources)}
            if rule.resource_names:
                entry["resourceNames"] = list(rule.resource_names)
            if entry not in resource:
                resource.append(entry)
        if rule.non_resource_urls:
            entry = {"verbs": list(rule.verbs), "nonResourceURLs": list(rule.non_resource_urls)}
            if entry not in non_resource:
                non_resource.append(entry)
    return {"kind": "SelfSubjectRulesReview", "apiVersion": API_VERSION, "metadata": {"creationTimestamp": None},
            "spec": {"namespace": namespace} if namespace else {},
            "status": {"resourceRules": resource, "nonResourceRules": non_resource, "incomplete": incomplete}}
