"""Kubernetes' protobuf encoding (`application/vnd.kubernetes.protobuf`) for the bodies kubectl 1.32 sends only
that way, and does not retry as JSON when refused: the TokenRequest of `kubectl create token` and the
SelfSubjectReview of `kubectl auth whoami`.

A body is the magic `k8s\\0`, then a runtime.Unknown envelope (its apiVersion and kind, and the object's own
protobuf bytes). The messages are declared here with Kubernetes' field numbers (k8s.io/api/authentication/v1
generated.proto) and decoded by the protobuf library. Go writes every field, empty ones too: a zero value is
dropped as JSON's omitempty would, and a field set that the TokenRequest does not take is refused by name (or, not
declared here at all, by number). Answers go back as JSON, which kubectl also accepts.
"""

from __future__ import annotations

import functools
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, unknown_fields
from google.protobuf.message import DecodeError, Message

from api.errors import FieldError, InvalidError

MEDIA_TYPE = "application/vnd.kubernetes.protobuf"
MAGIC = b"k8s\x00"
_F = descriptor_pb2.FieldDescriptorProto
STRING, INT64, INT32, BYTES, BOOL, MESSAGE = (_F.TYPE_STRING, _F.TYPE_INT64, _F.TYPE_INT32, _F.TYPE_BYTES,
                                              _F.TYPE_BOOL, _F.TYPE_MESSAGE)
_STRING, _INT64, _INT32, _BYTES, _MESSAGE = STRING, INT64, INT32, BYTES, MESSAGE
_PACKAGE = "kubelite.k8swire"

Fields = list[tuple[str, int, int, bool, str]]  # (name, number, type, repeated, message type)

_MESSAGES: dict[str, Fields] = {
    "TypeMeta": [("apiVersion", 1, _STRING, False, ""), ("kind", 2, _STRING, False, "")],
    "Unknown": [("typeMeta", 1, _MESSAGE, False, "TypeMeta"), ("raw", 2, _BYTES, False, ""),
                ("contentEncoding", 3, _STRING, False, ""), ("contentType", 4, _STRING, False, "")],
    "ObjectMeta": [("name", 1, _STRING, False, ""), ("generateName", 2, _STRING, False, ""),
                   ("namespace", 3, _STRING, False, ""), ("selfLink", 4, _STRING, False, ""),
                   ("uid", 5, _STRING, False, ""), ("resourceVersion", 6, _STRING, False, ""),
                   ("generation", 7, _INT64, False, ""), ("creationTimestamp", 8, _MESSAGE, False, "Time")],
    "BoundObjectReference": [("kind", 1, _STRING, False, ""), ("apiVersion", 2, _STRING, False, ""),
                             ("name", 3, _STRING, False, ""), ("uid", 4, _STRING, False, "")],
    "TokenRequestSpec": [("audiences", 1, _STRING, True, ""), ("boundObjectRef", 3, _MESSAGE, False,
                                                                "BoundObjectReference"),
                         ("expirationSeconds", 4, _INT64, False, "")],
    "Time": [("seconds", 1, _INT64, False, ""), ("nanos", 2, _INT32, False, "")],
    "TokenRequestStatus": [("token", 1, _STRING, False, ""), ("expirationTimestamp", 2, _MESSAGE, False, "Time")],
    "TokenRequest": [("metadata", 1, _MESSAGE, False, "ObjectMeta"), ("spec", 2, _MESSAGE, False,
                                                                       "TokenRequestSpec"),
                     ("status", 3, _MESSAGE, False, "TokenRequestStatus")],
    "UserInfo": [("username", 1, _STRING, False, ""), ("uid", 2, _STRING, False, ""),
                 ("groups", 3, _STRING, True, "")],
    "SelfSubjectReviewStatus": [("userInfo", 1, _MESSAGE, False, "UserInfo")],
    "SelfSubjectReview": [("metadata", 1, _MESSAGE, False, "ObjectMeta"),
                          ("status", 2, _MESSAGE, False, "SelfSubjectReviewStatus")],
}


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


@functools.cache
def _classes() -> dict[str, type[Message]]:
    return declare(_PACKAGE, _MESSAGES)


def _to_dict(msg: Message, path: str) -> dict[str, Any]:
    """The fields set to a value other than their zero, as Kubernetes JSON; a field this module does not declare is
    refused by its number."""
    unknown = list(unknown_fields.UnknownFieldSet(msg))
    if unknown:
        raise InvalidError([FieldError(f"{path}[field {f.field_number}]".lstrip("."), "unknown field",
                                       "a field this server does not take") for f in unknown])
    out: dict[str, Any] = {}
    for fd, value in msg.ListFields():
        where = f"{path}.{fd.name}" if path else fd.name
        if fd.message_type is not None:
            value = _to_dict(value, where)
        elif fd.is_repeated:
            value = list(value)
        if value not in ("", 0, {}, []):
            out[fd.name] = value
    return out


def decode(raw: bytes, kind: str = "TokenRequest") -> dict[str, Any]:
    """A protobuf-encoded authentication.k8s.io/v1 object of `kind` (TokenRequest, SelfSubjectReview) as its JSON
    form."""
    if not raw.startswith(MAGIC):
        raise InvalidError("a protobuf body must start with Kubernetes' magic k8s\\0")
    classes = _classes()
    try:
        envelope = classes["Unknown"].FromString(raw[len(MAGIC):])
        meta = envelope.typeMeta  # type: ignore[attr-defined]
        if (meta.apiVersion, meta.kind) != ("authentication.k8s.io/v1", kind):
            raise InvalidError([FieldError("kind", "Unsupported value", f"this path takes an "
                                           f"authentication.k8s.io/v1 {kind} as protobuf",
                                           f"{meta.apiVersion} {meta.kind}")])
        if envelope.contentEncoding:  # type: ignore[attr-defined]
            raise InvalidError([FieldError("contentEncoding", "Unsupported value", "no content encoding is served",
                                           envelope.contentEncoding)])  # type: ignore[attr-defined]
        body = _to_dict(classes[kind].FromString(envelope.raw), "")  # type: ignore[attr-defined]
    except DecodeError as e:
        raise InvalidError(f"the protobuf body does not decode: {e}") from None
    body["apiVersion"], body["kind"] = meta.apiVersion, meta.kind
    return body
