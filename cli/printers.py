"""Tables as kubectl prints them; the columns and cells of each kind are api/columns.py's."""

from __future__ import annotations

import json
from collections.abc import Sequence

import tabulate as _tabulate
from google.protobuf.message import Message

from api import convert, kinds
from api.columns import (
    Row,
    access_modes,
    age,
    headers,
    job_duration,
    pod_ready,
    pod_restarts,
    pod_status,
    row,
    service_ports,
)

__all__ = ["Row", "access_modes", "age", "as_json", "as_yaml", "headers", "job_duration", "name_of", "pod_ready",
           "pod_restarts", "pod_status", "row", "service_ports", "table"]

# kubectl separates columns by three spaces and pads nothing else.
_tabulate.MIN_PADDING = 0
_FORMAT = _tabulate.simple_separated_format("   ")


def table(rows: Sequence[Row], header: Sequence[str] | None) -> str:
    if not rows:
        return ""
    return _tabulate.tabulate(rows, headers=list(header) if header else (), tablefmt=_FORMAT,
                              disable_numparse=True, stralign="left")


def name_of(obj: Message) -> str:
    kind = kinds.of(obj)
    group = kind.group
    prefix = f"{kind.kind.lower()}.{group}" if group else kind.kind.lower()
    return f"{prefix}/{obj.metadata.name}"  # type: ignore[attr-defined]


def as_json(objs: Sequence[Message], *, single: bool) -> str:
    if single:
        return json.dumps(convert.object_to_manifest(objs[0]), indent=4)
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": [convert.object_to_manifest(o) for o in objs]},
                      indent=4)


def as_yaml(objs: Sequence[Message], *, single: bool) -> str:
    if single:
        return convert.dump_yaml(convert.object_to_manifest(objs[0]))
    return convert.dump_yaml({"apiVersion": "v1", "kind": "List",
                              "items": [convert.object_to_manifest(o) for o in objs]})
