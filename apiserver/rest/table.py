"""The `Table` format (meta.k8s.io/v1): the columns `kubelite get` prints (api/columns.py), for kubectl get."""

from __future__ import annotations

from typing import Any

from google.protobuf.message import Message

from api import columns, convert, kinds


def wants_table(accept: str) -> bool:
    """Whether the client asked for a Table (`application/json;as=Table;v=v1;g=meta.k8s.io`) first."""
    for part in accept.split(","):
        params = {p.split("=", 1)[0].strip(): p.split("=", 1)[1].strip() for p in part.split(";")[1:] if "=" in p}
        if params.get("as") == "Table" and params.get("g", "meta.k8s.io") == "meta.k8s.io":
            return True
        if part.strip():
            return False
    return False


def _metadata(obj: Message) -> dict[str, Any]:
    return convert.to_dict(obj.metadata)  # type: ignore[attr-defined]


def table(kind: kinds.Kind, objs: list[Message], list_meta: dict[str, Any], *, include: str = "Metadata",
          headers: bool = True) -> dict[str, Any]:
    """A Table of `objs`: the standard columns at priority 0, `-o wide`'s extra ones at priority 1."""
    base, extra, _ = columns.COLUMNS[kind.kind]
    definitions = [{"name": name.title() if name == "NAME" else name, "type": "string",
                    "format": "name" if name == "NAME" else "", "description": "", "priority": 0} for name in base]
    definitions += [{"name": name, "type": "string", "format": "", "description": "", "priority": 1}
                    for name in extra]
    rows = []
    for obj in objs:
        if include == "Object":
            embedded: Any = convert.object_to_manifest(obj)
        elif include == "None":
            embedded = None
        else:
            embedded = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": _metadata(obj)}
        row: dict[str, Any] = {"cells": columns.row(obj, wide=True, namespaced=False)}
        if embedded is not None:
            row["object"] = embedded
        rows.append(row)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta,
            "columnDefinitions": definitions if headers else [], "rows": rows}
