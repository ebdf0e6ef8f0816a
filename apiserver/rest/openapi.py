"""The OpenAPI v3 documents clients read before writing: per group version, each kind's paths, with the
`x-kubernetes-group-version-kind` and the `fieldValidation` query parameter kubectl checks for, so that kubectl
leaves field validation to the server (which refuses unknown fields by name). Schemas are not published yet."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from api import kinds
from apiserver.rest import discovery

_QUERY = ("fieldValidation", "dryRun", "fieldManager", "force", "pretty")


def _path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _operation(k: kinds.Kind, verb: str) -> dict[str, Any]:
    version = k.api_version.rpartition("/")[2]
    return {"operationId": f"{verb}{k.kind}", "x-kubernetes-action": verb,
            "x-kubernetes-group-version-kind": {"group": k.group, "version": version, "kind": k.kind},
            "parameters": [{"name": p, "in": "query", "schema": {"type": "string", "uniqueItems": True}}
                           for p in _QUERY],
            "responses": {"200": {"description": "OK"}}}


def document(group: str, version: str) -> dict[str, Any]:
    """The OpenAPI v3 document of one group version (paths and operations; no schemas)."""
    paths: dict[str, Any] = {}
    for k in discovery.kinds_in(group, version):
        base = f"/{_path(group, version)}/" + ("namespaces/{namespace}/" if k.namespaced else "") + k.resource
        paths[base] = {"get": _operation(k, "list"), "post": _operation(k, "post")}
        paths[base + "/{name}"] = {"get": _operation(k, "get"), "put": _operation(k, "put"),
                                   "patch": _operation(k, "patch"), "delete": _operation(k, "delete")}
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.32.0-kubelite"}, "paths": paths,
            "components": {"schemas": {}}}


def _hash(group: str, version: str) -> str:
    return hashlib.sha256(json.dumps(document(group, version), sort_keys=True).encode()).hexdigest()[:32].upper()


def root() -> dict[str, Any]:
    """/openapi/v3: where each group version's document is."""
    return {"paths": {_path(g, v): {"serverRelativeURL": f"/openapi/v3/{_path(g, v)}?hash={_hash(g, v)}"}
                      for g, versions in discovery.group_versions().items() for v in versions}}


def lookup(path: str) -> tuple[str, str] | None:
    """The group version an /openapi/v3/... path names."""
    for g, versions in discovery.group_versions().items():
        for v in versions:
            if path == f"/openapi/v3/{_path(g, v)}":
                return g, v
    return None
