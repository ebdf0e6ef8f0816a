"""Kubernetes' protobuf encoding (`application/vnd.kubernetes.protobuf`), which kubectl 1.32's typed clients
send and never retry as JSON: `kubectl create namespace|deployment|configmap|secret|token|...`, `kubectl auth
whoami`.

A body is the magic `k8s\\0`, then a runtime.Unknown envelope (its apiVersion and kind, and the object's own
protobuf bytes). The object is read with Kubernetes' own schemas (proto/k8s.io, compiled into kubernetes.desc)
and turned into its JSON form, which the REST API then handles as any JSON body: validated, admitted and
authorized the same way. Answers go back as JSON, which kubectl also accepts.

`declare` builds message classes from field tables, for the OpenAPI v2 document's gnostic protobuf.
"""

from __future__ import annotations

import base64
import datetime
import functools
import json
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, unknown_fields
from google.protobuf.message import DecodeError, Message

from api.errors import FieldError, InvalidError
from apiserver.rest.k8s_fields import INLINE, RENAMED, ZERO_KEPT

MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"
_F = descriptor_pb2.FieldDescriptorProto
STRING, INT64, INT32, BYTES, BOOL, MESSAGE = (_F.TYPE_STRING, _F.TYPE_INT64, _F.TYPE_INT32, _F.TYPE_BYTES,
                                              _F.TYPE_BOOL, _F.TYPE_MESSAGE)

Fields = list[tuple[str, int, int, bool, str]]  # (name, number, type, repeated, message type)


def declare(package: str, messages: dict[str, Fields]) -> dict[str, type[Message]]:
    """Message classes for messages declared by field number (a subset of another project's .proto)."""
    fdp = descriptor_pb2.FileDescriptorProto(name=f"{package.replace('.', '/')}.proto", package=package,
                                             syntax="proto3")
    for name, fields in messages.items():
        msg = fdp.message_type.add(name=name)
        for field, number, type_, repeated, type_name in fields:
            msg.field.add(name=field, number=number, type=type_, json_name=field,
                          label=_F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL,
                          type_name=f".{package}.{type_name}" if type_name else None)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return {name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{package}.{name}"))
            for name in messages}


DESCRIPTORS = Path(__file__).with_name("kubernetes.desc")  # scripts/genproto.py compiles proto/k8s.io into it
_UPSTREAM = "k8s.io.api"
_MACHINERY = "k8s.io.apimachinery.pkg"
_TIME, _MICROTIME, _DURATION = (f"{_MACHINERY}.apis.meta.v1.{n}" for n in ("Time", "MicroTime", "Duration"))
_FIELDS_V1 = f"{_MACHINERY}.apis.meta.v1.FieldsV1"
_QUANTITY = f"{_MACHINERY}.api.resource.Quantity"
_INT_OR_STRING = f"{_MACHINERY}.util.intstr.IntOrString"
_RAW = f"{_MACHINERY}.runtime.RawExtension"
_ZEROS = ("", 0, False, b"")


@functools.cache
def _pool() -> descriptor_pool.DescriptorPool:
    pool = descriptor_pool.DescriptorPool()
    for fd in descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTORS.read_bytes()).file:
        pool.Add(fd)
    return pool


def _message(name: str) -> type[Message] | None:
    try:
        return message_factory.GetMessageClass(_pool().FindMessageTypeByName(name))
    except KeyError:
        return None


def schema(api_version: str, kind: str) -> str:
    """The protobuf message Kubernetes encodes `kind` of `api_version` as: k8s.io.api.<group>.<version>.<kind>,
    the group's first label (the core group is `core`)."""
    group, _, version = api_version.rpartition("/")
    return f"{_UPSTREAM}.{group.split('.')[0] or 'core'}.{version}.{kind}"


def _time(msg: Message, micro: bool) -> str | None:
    seconds, nanos = msg.seconds, msg.nanos  # type: ignore[attr-defined]
    if not seconds and not nanos:
        return None  # Go's zero time, which JSON writes as null
    t = datetime.datetime.fromtimestamp(seconds, datetime.UTC).replace(microsecond=nanos // 1000)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ" if micro else "%Y-%m-%dT%H:%M:%SZ")


def _special(msg: Message, name: str) -> tuple[bool, Any]:
    """Kubernetes' types whose JSON is not their protobuf's shape: (True, the JSON value), else (False, None)."""
    if name in (_TIME, _MICROTIME):
        return True, _time(msg, name == _MICROTIME)
    if name == _QUANTITY:
        return True, msg.string or "0"  # type: ignore[attr-defined]
    if name == _INT_OR_STRING:
        return True, msg.strVal if msg.type == 1 else msg.intVal  # type: ignore[attr-defined]
    if name in (_RAW, _FIELDS_V1):
        raw = msg.raw  # type: ignore[attr-defined]
        return True, json.loads(raw) if raw else None
    if name == _DURATION:
        ns = msg.duration  # type: ignore[attr-defined]
        seconds, nanos = divmod(abs(ns), 1_000_000_000)
        # Decimal seconds, never an exponent: what Go's time.ParseDuration reads.
        return True, ("-" if ns < 0 else "") + f"{seconds}.{nanos:09d}".rstrip("0").rstrip(".") + "s"
    return False, None


def _scalar(value: Any) -> Any:
    return base64.b64encode(value).decode() if isinstance(value, bytes) else value


def _to_dict(msg: Message, path: str) -> dict[str, Any]:
    """`msg` as Go writes it in JSON. Go's protobuf carries every plain field even when it is zero: a zero scalar
    is dropped as JSON's omitempty would, unless JSON writes it too (ZERO_KEPT); a struct is kept, empty or not,
    as JSON keeps it. A field Kubernetes 1.32 does not have (a newer client's) is refused by its number, never
    skipped."""
    unknown = list(unknown_fields.UnknownFieldSet(msg))
    if unknown:
        raise InvalidError([FieldError(f"{path}[field {f.field_number}]".lstrip("."), "unknown field",
                                       "a field Kubernetes 1.32 does not have") for f in unknown])
    owner = msg.DESCRIPTOR.full_name
    out: dict[str, Any] = {}
    for fd, value in msg.ListFields():
        field = f"{owner}.{fd.name}"
        name = RENAMED.get(field, fd.name)
        where = f"{path}.{name}" if path else name
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            value_fd = fd.message_type.fields_by_name["value"]
            out[name] = {k: _value(value_fd, v, f"{where}[{k}]") for k, v in value.items()}
        elif fd.is_repeated:
            out[name] = [_value(fd, v, f"{where}[{i}]") for i, v in enumerate(value)]
        elif field in INLINE:
            out.update(_to_dict(value, path))
        elif fd.message_type is not None or value not in _ZEROS or field in ZERO_KEPT:
            out[name] = _value(fd, value, where)
    return out


def _value(fd: Any, value: Any, path: str) -> Any:
    if fd.message_type is None:
        return _scalar(value)
    special, converted = _special(value, fd.message_type.full_name)
    return converted if special else _to_dict(value, path)


def _envelope(raw: bytes) -> tuple[str, str, bytes]:
    """(apiVersion, kind, the object's own bytes) of a `k8s\\0` runtime.Unknown envelope."""
    if not raw.startswith(MAGIC):
        raise InvalidError("a protobuf body must start with Kubernetes' magic k8s\\0")
    unknown = _message(f"{_MACHINERY}.runtime.Unknown")
    assert unknown is not None
    envelope = unknown.FromString(raw[len(MAGIC):])
    if envelope.contentEncoding:  # type: ignore[attr-defined]
        raise InvalidError([FieldError("contentEncoding", "Unsupported value", "no content encoding is served",
                                       envelope.contentEncoding)])  # type: ignore[attr-defined]
    meta = envelope.typeMeta  # type: ignore[attr-defined]
    return meta.apiVersion, meta.kind, envelope.raw  # type: ignore[attr-defined]


def decode(raw: bytes, want: tuple[str, str] | None = None) -> dict[str, Any]:
    """A protobuf-encoded Kubernetes object (of `want`, (apiVersion, kind), if given) as its JSON form."""
    try:
        api_version, kind, body = _envelope(raw)
        if want is not None and (api_version, kind) != want:
            raise InvalidError([FieldError("kind", "Unsupported value", f"this path takes a {want[0]} {want[1]}",
                                           f"{api_version} {kind}")])
        cls = _message(schema(api_version, kind))
        if cls is None:
            raise InvalidError([FieldError("kind", "Unsupported value", "no protobuf schema is served for it: "
                                           "send it as application/json", f"{api_version} {kind}")])
        out = _to_dict(cls.FromString(body), "")
    except DecodeError as e:
        raise InvalidError(f"the protobuf body does not decode: {e}") from None
    return {"apiVersion": api_version, "kind": kind, **out}
