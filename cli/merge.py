"""`apply`'s three-way merge: the file wins, fields the file stopped setting go away.

The last applied manifest is kept in an annotation, as kubectl does, so a field
removed from the file is removed from the object while fields that others set
(the server's defaults, a controller's changes) stay.
"""

from __future__ import annotations

import copy
import json
from typing import Any

LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def merge(live: dict[str, Any], last: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """live + (new - last): maps merge key by key, lists and scalars are replaced."""
    out = copy.deepcopy(live)
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            prev = last.get(key) if isinstance(last.get(key), dict) else {}
            out[key] = merge(out[key], prev, value)
        else:
            out[key] = copy.deepcopy(value)
    for key in last:
        if key not in new:
            out.pop(key, None)
    return out


def last_applied(manifest: dict[str, Any]) -> dict[str, Any]:
    annotations = (manifest.get("metadata") or {}).get("annotations") or {}
    try:
        data = json.loads(annotations.get(LAST_APPLIED, "{}"))
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def with_last_applied(doc: dict[str, Any]) -> dict[str, Any]:
    """The manifest to send: the file's content plus the annotation recording it (less an older such annotation,
    so it never nests). New maps only along metadata.annotations, the rest shared with `doc`, which is left as it
    was: `apply` of thousands of documents noticed the deep copies this once made. Metadata or annotations that
    are not maps are left for the conversion to refuse, naming the field."""
    meta = doc.get("metadata")
    if meta is not None and not isinstance(meta, dict):
        return doc
    meta = meta or {}
    annotations = meta.get("annotations")
    if annotations is not None and not isinstance(annotations, dict):
        return doc
    record = doc
    if "annotations" in meta and (not annotations or LAST_APPLIED in annotations):
        kept = {k: v for k, v in (annotations or {}).items() if k != LAST_APPLIED}
        record = {**doc, "metadata": {k: v for k, v in meta.items() if k != "annotations"}}
        if kept:
            record["metadata"]["annotations"] = kept
    applied = json.dumps(record, sort_keys=True, separators=(",", ":"))
    return {**doc, "metadata": {**meta, "annotations": {**(annotations or {}), LAST_APPLIED: applied}}}
