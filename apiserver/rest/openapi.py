"""The OpenAPI documents clients read, v3 per group version and v2 (JSON) as one: each kind's paths, with the
`x-kubernetes-group-version-kind` and the `fieldValidation` query parameter kubectl checks for (so kubectl leaves
field validation to the server, which refuses unknown fields by name), and each kind's schema generated from its
proto message, with the strategic merge keys (for `kubectl explain` and `kubectl apply`)."""

from __future__ import annotations

import functools
import hashlib
import json
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from api import kinds
from api.pb import meta_pb2
from apiserver.rest import discovery, patch

_TIMESTAMP = "google.protobuf.Timestamp"
_SCALARS = {
    FieldDescriptor.TYPE_STRING: {"type": "string"},
    FieldDescriptor.TYPE_BOOL: {"type": "boolean"},
    FieldDescriptor.TYPE_INT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_SINT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_UINT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_INT64: {"type": "integer", "format": "int64"},
    FieldDescriptor.TYPE_SINT64: {"type": "integer", "format": "int64"},
    FieldDescriptor.TYPE_UINT64: {"type": "integer", "format": "int64"},
    FieldDescriptor.TYPE_DOUBLE: {"type": "number", "format": "double"},
    FieldDescriptor.TYPE_FLOAT: {"type": "number", "format": "double"},
    FieldDescriptor.TYPE_BYTES: {"type": "string", "format": "byte"},
}

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


V3_REFS = "#/components/schemas/"
V2_REFS = "#/definitions/"


def _ref(desc: Descriptor, refs: str) -> dict[str, Any]:
    if refs == V2_REFS:  # v2 readers (kubectl's among them) take a plain reference, as Kubernetes writes it
        return {"$ref": f"{refs}{desc.full_name}"}
    return {"allOf": [{"$ref": f"{refs}{desc.full_name}"}], "default": {}}


def _value(fd: FieldDescriptor, schemas: dict[str, Any], refs: str) -> dict[str, Any]:
    """The schema of one value of a field (an item, for a list)."""
    opts = fd.GetOptions()
    if opts.Extensions[meta_pb2.int_or_string]:
        return {"x-kubernetes-int-or-string": True}
    if opts.Extensions[meta_pb2.quantity]:
        return {"x-kubernetes-int-or-string": True, "format": "quantity"}
    mt = fd.message_type
    if mt is None:
        return dict(_SCALARS.get(fd.type, {"type": "string"}))
    if mt.full_name == _TIMESTAMP:
        return {"type": "string", "format": "date-time"}
    _schema(mt, schemas, refs)
    return _ref(mt, refs)


def _schema(desc: Descriptor, schemas: dict[str, Any], refs: str) -> None:
    """Add `desc`'s schema, and those of every message it holds, to `schemas`."""
    if desc.full_name in schemas:
        return
    out: dict[str, Any] = {"type": "object", "properties": {}}
    schemas[desc.full_name] = out
    for fd in desc.fields:
        mt = fd.message_type
        if mt is not None and mt.GetOptions().map_entry:
            prop: dict[str, Any] = {"type": "object",
                                    "additionalProperties": _value(mt.fields_by_name["value"], schemas, refs)}
        elif fd.is_repeated:
            prop = {"type": "array", "items": _value(fd, schemas, refs)}
            key = patch.MERGE_KEYS.get((desc.full_name, fd.json_name)) or (
                "type" if fd.json_name == "conditions" else None)
            if key:
                prop["x-kubernetes-patch-merge-key"] = key
                prop["x-kubernetes-patch-strategy"] = "merge"
                prop["x-kubernetes-list-type"] = "map"
                prop["x-kubernetes-list-map-keys"] = [key]
            elif (desc.full_name, fd.json_name) in patch.MERGE_SETS:
                prop["x-kubernetes-patch-strategy"] = "merge"
                prop["x-kubernetes-list-type"] = "set"
            else:
                prop["x-kubernetes-list-type"] = "atomic"
        else:
            prop = _value(fd, schemas, refs)
        out["properties"][fd.json_name] = prop


def schemas_of(group: str, version: str, refs: str = V3_REFS, schemas: dict[str, Any] | None = None) -> \
        dict[str, Any]:
    """Every schema the kinds of a group version use (added to `schemas`); each kind's own carries its
    group-version-kind."""
    schemas = {} if schemas is None else schemas
    for k in discovery.kinds_in(group, version):
        _schema(k.cls.DESCRIPTOR, schemas, refs)
        gvks = schemas[k.cls.DESCRIPTOR.full_name].setdefault("x-kubernetes-group-version-kind", [])
        gvks.append({"group": k.group, "version": version, "kind": k.kind})
    return schemas


def _paths(group: str, version: str, operation: Any) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for k in discovery.kinds_in(group, version):
        base = f"/{_path(group, version)}/" + ("namespaces/{namespace}/" if k.namespaced else "") + k.resource
        paths[base] = {"get": operation(k, "list"), "post": operation(k, "post")}
        paths[base + "/{name}"] = {"get": operation(k, "get"), "put": operation(k, "put"),
                                   "patch": operation(k, "patch"), "delete": operation(k, "delete")}
    return paths


@functools.cache
def document(group: str, version: str) -> dict[str, Any]:
    """The OpenAPI v3 document of one group version: paths, operations and schemas."""
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.32.0-kubelite"},
            "paths": _paths(group, version, _operation), "components": {"schemas": schemas_of(group, version)}}


def _operation_v2(k: kinds.Kind, verb: str) -> dict[str, Any]:
    op = _operation(k, verb)
    op["parameters"] = [{"name": p, "in": "query", "type": "string", "uniqueItems": True} for p in _QUERY]
    return op


@functools.cache
def document_v2() -> dict[str, Any]:
    """The OpenAPI v2 (Swagger 2.0) document: every group version's paths and schemas in one, from the same
    proto messages as v3."""
    paths: dict[str, Any] = {}
    definitions: dict[str, Any] = {}
    for g, versions in discovery.group_versions().items():
        for v in versions:
            paths.update(_paths(g, v, _operation_v2))
            schemas_of(g, v, V2_REFS, definitions)
    return {"swagger": "2.0", "info": {"title": "Kubernetes", "version": "v1.32.0-kubelite"},
            "consumes": ["application/json", "application/yaml"], "produces": ["application/json"],
            "paths": paths, "definitions": definitions}


def accepts_json(accept: str) -> bool:
    """Whether an Accept header takes JSON (no header takes anything)."""
    types = [part.split(";")[0].strip() for part in accept.split(",") if part.strip()]
    return not types or any(t in ("application/json", "application/*", "*/*") for t in types)


def _hash(group: str, version: str) -> str:
    return hashlib.sha256(json.dumps(document(group, version), sort_keys=True).encode()).hexdigest()[:32].upper()


@functools.cache
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
