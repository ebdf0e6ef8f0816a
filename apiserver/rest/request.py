"""What a REST request asks for, from its method, path and query: verb, kind, namespace, name, subresource."""

from __future__ import annotations

from dataclasses import dataclass

from api import kinds
from api.errors import NotFoundError
from apiserver.rest.status import HttpError


@dataclass(frozen=True)
class RequestInfo:
    """One resource request, with the attributes authorization decides on."""

    verb: str  # get, list, watch, create, update, patch, delete, deletecollection
    kind: kinds.Kind
    namespace: str
    name: str
    subresource: str

    @property
    def resource(self) -> str:
        return self.kind.resource


def _kind(group: str, version: str, resource: str) -> kinds.Kind:
    for k in kinds.KINDS:
        if k.resource == resource and k.group == group and k.api_version.rpartition("/")[2] == version:
            return k
    where = f"{group}/{version}" if group else version
    raise NotFoundError(f'the server could not find the requested resource ({resource} in {where})')


def _verb(method: str, name: str, watch: bool) -> str:
    if method in ("GET", "HEAD"):
        if watch:
            return "watch"
        return "get" if name else "list"
    verbs = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}
    if method not in verbs:
        raise HttpError(405, "MethodNotAllowed", f"the server does not allow this method on the requested resource: "
                                                 f"{method}")
    if method == "DELETE" and not name:
        return "deletecollection"
    if method in ("PUT", "PATCH", "DELETE") and not name:
        raise HttpError(405, "MethodNotAllowed", f"{method} needs an object's name in the path")
    if method == "POST" and name:
        raise HttpError(405, "MethodNotAllowed", "POST creates in a collection; the path names an object")
    return verbs[method]


def parse(method: str, path: str, watch: bool) -> RequestInfo | None:
    """The resource request a path names (None for a path that is not a resource: discovery, version, ...)."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 3 and parts[0] == "api" and parts[1] == "v1":
        group, version, rest = "", "v1", parts[2:]
    elif len(parts) >= 4 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    namespace = ""
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    if len(rest) > 3:
        raise NotFoundError(f"the server could not find the requested resource ({path})")
    resource, name, sub = rest[0], rest[1] if len(rest) > 1 else "", rest[2] if len(rest) > 2 else ""
    kind = _kind(group, version, resource)
    if namespace and not kind.namespaced:
        raise NotFoundError(f"{resource} are not namespaced; the path names namespace {namespace}")
    if watch and name:
        raise HttpError(405, "MethodNotAllowed", "watch a single object with fieldSelector=metadata.name=NAME")
    if sub:
        # A subresource is one object's: GET reads it, POST creates it (binding, eviction), PUT and PATCH change it.
        # exec is "create" whichever method carries its WebSocket, as in Kubernetes.
        verbs = {"GET": "get", "HEAD": "get", "POST": "create", "PUT": "update", "PATCH": "patch"}
        if method not in verbs:
            raise HttpError(405, "MethodNotAllowed", f"{method} on the {sub} subresource")
        verb = "create" if sub in ("exec", "attach") else verbs[method]
    else:
        verb = _verb(method, name, watch)
    return RequestInfo(verb, kind, namespace, name, sub)
