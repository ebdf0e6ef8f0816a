"""The three patch types Kubernetes accepts: JSON patch, JSON merge patch, strategic merge patch.

Patches apply to an object's JSON shape (api/convert.py). The strategic merge knows Kubernetes' merge keys for
the built-in kinds (containers by name, ports by containerPort, env by name, ...) by the message each list
belongs to, and the directives `kubectl apply` sends ($patch, $retainKeys, $setElementOrder/...,
$deleteFromPrimitiveList/...).
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
from google.protobuf.descriptor import Descriptor

from api.errors import InvalidError

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"

# (message, list field) -> the key its items merge by; lists not named here are replaced whole.
MERGE_KEYS: dict[tuple[str, str], str] = {
    ("kubelite.v1.PodSpec", "containers"): "name",
    ("kubelite.v1.PodSpec", "initContainers"): "name",
    ("kubelite.v1.PodSpec", "ephemeralContainers"): "name",
    ("kubelite.v1.PodSpec", "volumes"): "name",
    ("kubelite.v1.PodSpec", "imagePullSecrets"): "name",
    ("kubelite.v1.PodSpec", "hostAliases"): "ip",
    ("kubelite.v1.PodSpec", "topologySpreadConstraints"): "topologyKey",
    ("kubelite.v1.Container", "ports"): "containerPort",
    ("kubelite.v1.Container", "env"): "name",
    ("kubelite.v1.Container", "volumeMounts"): "mountPath",
    ("kubelite.v1.ServiceSpec", "ports"): "port",
    ("kubelite.v1.ObjectMeta", "ownerReferences"): "uid",
    ("kubelite.v1.NodeStatus", "addresses"): "type",
    ("kubelite.v1.NodeSpec", "taints"): "key",
}
# Lists of scalars that merge as sets.
MERGE_SETS = frozenset({("kubelite.v1.ObjectMeta", "finalizers")})
_PATCH = "$patch"
_RETAIN = "$retainKeys"
_ORDER = "$setElementOrder/"
_DELETE_PRIMITIVE = "$deleteFromPrimitiveList/"


def json_patch(doc: dict[str, Any], ops: Any) -> dict[str, Any]:
    """RFC 6902 operations applied to a copy of `doc`."""
    if not isinstance(ops, list):
        raise InvalidError("json patch: the body must be a JSON array of operations")
    try:
        out = jsonpatch.JsonPatch(ops).apply(doc)
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError, KeyError) as e:
        raise InvalidError(f"json patch: {e}") from None
    if not isinstance(out, dict):
        raise InvalidError("json patch: the result is not an object")
    return out


def merge_patch(doc: Any, patch: Any) -> Any:
    """RFC 7386: objects merge, null deletes, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(doc) if isinstance(doc, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


def strategic_merge_patch(doc: dict[str, Any], patch: Any, desc: Descriptor) -> dict[str, Any]:
    """Kubernetes' strategic merge of `patch` into `doc`, an object of message type `desc`."""
    if not isinstance(patch, dict):
        raise InvalidError("strategic merge patch: the body must be a JSON object")
    return _merge_map(doc, patch, desc)


def _child(desc: Descriptor | None, key: str) -> Descriptor | None:
    if desc is None:
        return None
    for fd in desc.fields:
        if fd.json_name == key:
            mt = fd.message_type
            if mt is not None and mt.GetOptions().map_entry:
                return None
            return mt
    return None


def _merge_map(doc: Any, patch: dict[str, Any], desc: Descriptor | None) -> Any:
    directive = patch.get(_PATCH)
    if directive == "replace":
        return {k: v for k, v in patch.items() if k != _PATCH}
    if directive == "delete":
        return None
    if directive is not None:
        raise InvalidError(f"strategic merge patch: unknown $patch directive {directive!r}")
    out = dict(doc) if isinstance(doc, dict) else {}
    retain = patch.get(_RETAIN)
    for key, value in patch.items():
        if key == _RETAIN or key.startswith(_ORDER):
            continue
        if key.startswith(_DELETE_PRIMITIVE):
            field = key.removeprefix(_DELETE_PRIMITIVE)
            if isinstance(out.get(field), list) and isinstance(value, list):
                out[field] = [v for v in out[field] if v not in value]
            continue
        if value is None:
            out.pop(key, None)
            continue
        child = _child(desc, key)
        if isinstance(value, dict):
            merged = _merge_map(out.get(key), value, child)
            if merged is None:
                out.pop(key, None)
            else:
                out[key] = merged
        elif isinstance(value, list):
            out[key] = _merge_list(out.get(key), value, desc, key, child)
        else:
            out[key] = value
    for key in list(out):
        order = patch.get(f"{_ORDER}{key}")
        if isinstance(order, list) and isinstance(out[key], list):
            out[key] = _ordered(out[key], order, _merge_key(desc, key))
    if isinstance(retain, list):
        out = {k: v for k, v in out.items() if k in retain}
    return out


def _merge_key(desc: Descriptor | None, key: str) -> str | None:
    if desc is None:
        return None
    if key == "conditions":
        return "type"
    return MERGE_KEYS.get((desc.full_name, key))


def _merge_list(current: Any, patch: list[Any], desc: Descriptor | None, key: str,
                child: Descriptor | None) -> list[Any]:
    merge_key = _merge_key(desc, key)
    if desc is not None and (desc.full_name, key) in MERGE_SETS:
        out = list(current) if isinstance(current, list) else []
        return out + [v for v in patch if v not in out]
    if merge_key is None or not isinstance(current, list):
        if merge_key is not None:
            patch = [p for p in patch if not (isinstance(p, dict) and p.get(_PATCH) == "delete")]
        return [_strip(p) for p in patch]
    if any(isinstance(p, dict) and p.get(_PATCH) == "replace" for p in patch):
        return [_strip(p) for p in patch if not (isinstance(p, dict) and p.get(_PATCH) == "replace")]
    out = list(current)
    for item in patch:
        if not isinstance(item, dict) or merge_key not in item:
            raise InvalidError(f"strategic merge patch: every item of {key} must be an object with "
                               f"{merge_key!r}, the key it merges by")
        at = next((i for i, c in enumerate(out) if isinstance(c, dict) and c.get(merge_key) == item[merge_key]), None)
        if item.get(_PATCH) == "delete":
            if at is not None:
                out.pop(at)
            continue
        if at is None:
            out.append(_strip(item))
        else:
            out[at] = _merge_map(out[at], item, child)
    return out


def _strip(value: Any) -> Any:
    """A patch value without directives, as it is stored when nothing merges into it."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items()
                if not (k in (_PATCH, _RETAIN) or k.startswith((_ORDER, _DELETE_PRIMITIVE)))}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def _ordered(items: list[Any], order: list[Any], merge_key: str | None) -> list[Any]:
    """Items in the order $setElementOrder gives; items it does not name keep their place after them."""
    def ident(item: Any) -> Any:
        return item.get(merge_key) if merge_key and isinstance(item, dict) else item

    wanted = [ident(o) if isinstance(o, dict) else o for o in order]
    ranked = sorted(items, key=lambda it: wanted.index(ident(it)) if ident(it) in wanted else len(wanted))
    return ranked
