"""Kubernetes YAML/JSON <-> protobuf objects.

The conversion walks the message descriptors, so it knows every field by its
JSON name, refuses unknown fields with the list of known ones, accepts
int-or-string and quantity values as Kubernetes spells them, and names the
exact path of anything wrong (`spec.containers[0].ports[1].containerPort`).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import yaml
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from api import kinds, omitempty
from api.errors import FieldError, InvalidError, UnsupportedError
from api.pb import api_pb2, meta_pb2

MAX_DEPTH = 48

_TS = Timestamp.DESCRIPTOR.full_name
_INT_TYPES = {
    FieldDescriptor.TYPE_INT32,
    FieldDescriptor.TYPE_INT64,
    FieldDescriptor.TYPE_UINT32,
    FieldDescriptor.TYPE_UINT64,
    FieldDescriptor.TYPE_SINT32,
    FieldDescriptor.TYPE_SINT64,
}
_INT32 = {FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32}


@dataclass(frozen=True)
class _Field:
    fd: FieldDescriptor
    int_or_string: bool
    quantity: bool


_FIELDS: dict[str, dict[str, _Field]] = {}


def _fields(desc: Descriptor) -> dict[str, _Field]:
    cached = _FIELDS.get(desc.full_name)
    if cached is None:
        cached = {}
        for fd in desc.fields:
            opts = fd.GetOptions()
            cached[fd.json_name] = _Field(
                fd, opts.Extensions[meta_pb2.int_or_string], opts.Extensions[meta_pb2.quantity]
            )
        _FIELDS[desc.full_name] = cached
    return cached


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _type_name(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}.get(
        type(value), type(value).__name__
    )


# ---------------------------------------------------------------- dict -> proto


def from_dict(cls: type[Message], data: Any, path: str = "") -> Message:
    """Build a message from a JSON-like dict; raises InvalidError naming every bad field."""
    errors: list[FieldError] = []
    msg = cls()
    _fill(msg, data, path, errors, 0)
    if errors:
        raise InvalidError(errors)
    return msg


def _fill(msg: Message, data: Any, path: str, errors: list[FieldError], depth: int) -> None:
    if depth > MAX_DEPTH:
        errors.append(FieldError(path, "Invalid value", "nested too deeply"))
        return
    if not isinstance(data, dict):
        errors.append(FieldError(path or "<root>", "Invalid value", f"expected object, got {_type_name(data)}"))
        return
    fields = _fields(msg.DESCRIPTOR)
    for key, value in data.items():
        fpath = _join(path, str(key))
        field = fields.get(key) if isinstance(key, str) else None
        if field is None:
            known = ", ".join(sorted(fields))
            errors.append(FieldError(fpath, "unknown field", f"known fields: {known}"))
            continue
        if value is None:
            continue
        fd = field.fd
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            _fill_map(getattr(msg, fd.name), fd, field, value, fpath, errors, depth)
        elif fd.is_repeated:
            if not isinstance(value, list):
                errors.append(FieldError(fpath, "Invalid value", f"expected array, got {_type_name(value)}"))
                continue
            target = getattr(msg, fd.name)
            for i, item in enumerate(value):
                ipath = f"{fpath}[{i}]"
                if fd.message_type is not None:
                    if item is None:
                        errors.append(FieldError(ipath, "Invalid value", "expected object, got null"))
                        continue
                    _fill_message(target.add(), item, ipath, errors, depth)
                else:
                    ok, conv = _scalar(fd, field, item, ipath, errors)
                    if ok:
                        target.append(conv)
        elif fd.message_type is not None:
            sub = getattr(msg, fd.name)
            _fill_message(sub, value, fpath, errors, depth)
            if fd.message_type.full_name != _TS:
                sub.SetInParent()  # an empty object (`emptyDir: {}`) is still set
        else:
            ok, conv = _scalar(fd, field, value, fpath, errors)
            if ok:
                setattr(msg, fd.name, conv)


def _fill_message(target: Message, value: Any, path: str, errors: list[FieldError], depth: int) -> None:
    if target.DESCRIPTOR.full_name == _TS:
        ts = _parse_time(value)
        if ts is None:
            errors.append(FieldError(path, "Invalid value", "expected an RFC 3339 time", value))
        else:
            target.CopyFrom(ts)
        return
    _fill(target, value, path, errors, depth + 1)


def _fill_map(target: Any, fd: FieldDescriptor, field: _Field, value: Any, path: str,
              errors: list[FieldError], depth: int) -> None:
    if not isinstance(value, dict):
        errors.append(FieldError(path, "Invalid value", f"expected object, got {_type_name(value)}"))
        return
    vfd = fd.message_type.fields_by_name["value"]
    for k, v in value.items():
        kpath = f"{path}[{k}]"
        if not isinstance(k, str):
            errors.append(FieldError(kpath, "Invalid value", "keys must be strings", k))
            continue
        if vfd.message_type is not None:
            _fill_message(target[k], v, kpath, errors, depth)
            continue
        if v is None:
            v = ""
        ok, conv = _scalar(vfd, field, v, kpath, errors)
        if ok:
            target[k] = conv


def _scalar(fd: FieldDescriptor, field: _Field, value: Any, path: str,
            errors: list[FieldError]) -> tuple[bool, Any]:
    t = fd.type
    if t == FieldDescriptor.TYPE_STRING:
        if isinstance(value, str):
            return True, value
        if (field.int_or_string or field.quantity) and isinstance(value, int) and not isinstance(value, bool):
            return True, str(value)
        if field.quantity and isinstance(value, float):
            return True, repr(value).removesuffix(".0") if value.is_integer() else repr(value)
        errors.append(FieldError(path, "Invalid value", f"expected string, got {_type_name(value)}", value))
        return False, None
    if t in _INT_TYPES:
        if isinstance(value, int) and not isinstance(value, bool):
            limit = 2**31 if t in _INT32 else 2**63
            if -limit <= value < limit:
                return True, value
            errors.append(FieldError(path, "Invalid value", "out of range", value))
            return False, None
        errors.append(FieldError(path, "Invalid value", f"expected integer, got {_type_name(value)}", value))
        return False, None
    if t == FieldDescriptor.TYPE_BOOL:
        if isinstance(value, bool):
            return True, value
        errors.append(FieldError(path, "Invalid value", f"expected boolean, got {_type_name(value)}", value))
        return False, None
    if t in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        if isinstance(value, int | float) and not isinstance(value, bool):
            return True, float(value)
    if t == FieldDescriptor.TYPE_BYTES and isinstance(value, str):
        # Bytes are base64 in Kubernetes' JSON (a Secret's data, a ConfigMap's binaryData).
        try:
            return True, base64.b64decode(value.encode(), validate=True)
        except (ValueError, binascii.Error):
            errors.append(FieldError(path, "Invalid value", "illegal base64 data", value))
            return False, None
    errors.append(FieldError(path, "Invalid value", f"unexpected {_type_name(value)}", value))
    return False, None


def _parse_time(value: Any) -> Timestamp | None:
    if isinstance(value, dt.datetime):
        when = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    elif isinstance(value, str):
        try:
            when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if when.tzinfo is None:
            return None
    else:
        return None
    ts = Timestamp()
    ts.FromDatetime(when.astimezone(dt.UTC))
    return ts


# ---------------------------------------------------------------- proto -> dict


def to_dict(msg: Message) -> dict[str, Any]:
    """The Kubernetes JSON shape of a message: the fields that are set, plus the fields Kubernetes always
    prints (api/omitempty.py) with their zero values, in field order."""
    out: dict[int, tuple[str, Any]] = {}
    fields = _fields(msg.DESCRIPTOR)
    by_name = {f.fd.name: (json, f) for json, f in fields.items()}
    for fd, value in msg.ListFields():
        json_name, field = by_name[fd.name]
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            vfd = fd.message_type.fields_by_name["value"]
            if vfd.message_type is not None:
                out[fd.number] = json_name, {k: _out_message(value[k]) for k in sorted(value)}
            else:
                out[fd.number] = json_name, {k: _out_scalar(field, value[k]) for k in sorted(value)}
        elif fd.is_repeated:
            if fd.message_type is not None:
                out[fd.number] = json_name, [_out_message(v) for v in value]
            else:
                out[fd.number] = json_name, [_out_scalar(field, v) for v in value]
        elif fd.message_type is not None:
            out[fd.number] = json_name, _out_message(value)
        else:
            out[fd.number] = json_name, _out_scalar(field, value)
    for json_name, field in _always(msg.DESCRIPTOR):
        fd = field.fd
        if fd.number in out:
            continue
        if fd.message_type is not None:
            out[fd.number] = json_name, to_dict(getattr(msg, fd.name))
        else:
            out[fd.number] = json_name, _out_scalar(field, fd.default_value)
    return dict(out[number] for number in sorted(out))


_ALWAYS: dict[str, tuple[tuple[str, _Field], ...]] = {}


def _always(desc: Descriptor) -> tuple[tuple[str, _Field], ...]:
    """The message's always-printed fields that have a zero value to print (scalars without presence, messages)."""
    cached = _ALWAYS.get(desc.full_name)
    if cached is None:
        fields = _fields(desc)
        cached = tuple((name, fields[name]) for name in sorted(omitempty.always(desc.full_name))
                       if name in fields and printable_zero(fields[name].fd))
        _ALWAYS[desc.full_name] = cached
    return cached


def printable_zero(fd: FieldDescriptor) -> bool:
    """Whether a field has a zero value Kubernetes prints: a plain scalar or a struct (not a time, list or map)."""
    if fd.is_repeated:
        return False
    if fd.message_type is not None:
        return fd.message_type.full_name != _TS
    return not fd.has_presence


def _out_message(msg: Message) -> Any:
    if msg.DESCRIPTOR.full_name == _TS:
        return format_time(msg)
    return to_dict(msg)


def _out_scalar(field: _Field, value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if field.int_or_string and isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return value


def format_time(ts: Timestamp) -> str:
    when = ts.ToDatetime(tzinfo=dt.UTC)
    if ts.nanos:
        return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------- manifests

# Kinds a Kubernetes user might bring that kubelite does not serve.
_KNOWN_BUT_UNSUPPORTED_HINT = "supported kinds: " + kinds.SUPPORTED_TEXT


def manifest_to_object(doc: Any, *, where: str = "") -> api_pb2.Object:
    """A Kubernetes manifest (dict) as an Object envelope; errors name `where` and the field."""
    prefix = f"{where}: " if where else ""
    if not isinstance(doc, dict):
        raise InvalidError(f"{prefix}expected a mapping with apiVersion and kind, got {_type_name(doc)}")
    kind_name = doc.get("kind")
    api_version = doc.get("apiVersion")
    if not kind_name or not isinstance(kind_name, str):
        raise InvalidError([FieldError("kind", "Required value")], prefix=prefix)
    if not api_version or not isinstance(api_version, str):
        raise InvalidError([FieldError("apiVersion", "Required value")], prefix=prefix)
    try:
        kind = kinds.lookup(kind_name)
    except UnsupportedError:
        raise UnsupportedError(
            f'{prefix}kind "{kind_name}" is not supported; {_KNOWN_BUT_UNSUPPORTED_HINT}'
        ) from None
    if kind.kind != kind_name:
        raise UnsupportedError(f'{prefix}kind "{kind_name}" is not supported; {_KNOWN_BUT_UNSUPPORTED_HINT}')
    if api_version != kind.api_version:
        raise InvalidError(
            [FieldError("apiVersion", "Unsupported value", f'{kind.kind} is served as "{kind.api_version}"',
                        api_version)],
            prefix=prefix,
        )
    try:
        obj = from_dict(kind.cls, doc)
    except InvalidError as e:
        raise InvalidError(e.errors, prefix=prefix) from None
    except RecursionError:
        raise InvalidError(f"{prefix}document is nested too deeply") from None
    return kinds.wrap(obj)


def object_to_manifest(obj: Message | api_pb2.Object) -> dict[str, Any]:
    """The Kubernetes-shaped dict of an object, with apiVersion and kind filled."""
    if isinstance(obj, api_pb2.Object):
        obj = kinds.unwrap(obj)
    kind = kinds.of(obj)
    out = to_dict(obj)
    out["apiVersion"] = kind.api_version
    out["kind"] = kind.kind
    ordered = {"apiVersion": out.pop("apiVersion"), "kind": out.pop("kind")}
    ordered.update(out)
    return ordered


# YAML nesting allowed in a manifest. Kubernetes objects nest about 15 deep; the limit is checked
# before any document is built, so absurd input is refused without deep recursion (libyaml's
# composer would overflow the C stack and kill the process).
MAX_YAML_DEPTH = 100
# Nodes that aliases may stand for in one document: generous for anchors reused across a manifest, far
# below what would exhaust memory or time when the document is walked.
MAX_ALIAS_NODES = 100_000

_NO_TIMESTAMPS = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


class _Loader(yaml.SafeLoader):
    """SafeLoader without implicit timestamps: times stay strings, as in Kubernetes."""


_Loader.yaml_implicit_resolvers = _NO_TIMESTAMPS

if getattr(yaml, "__with_libyaml__", False):

    class _CLoader(yaml.CSafeLoader):  # type: ignore[misc,name-defined]
        """The same, parsed by libyaml (several times faster: `apply` of thousands of documents)."""

    _CLoader.yaml_implicit_resolvers = _NO_TIMESTAMPS
    _FAST: type = _CLoader
else:  # pragma: no cover - PyYAML without libyaml
    _FAST = _Loader

_OPEN = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_CLOSE = (yaml.MappingEndEvent, yaml.SequenceEndEvent)


def _malformed(source: str, index: int, e: yaml.YAMLError) -> InvalidError:
    mark = getattr(e, "problem_mark", None)
    line = f" line {mark.line + 1}" if mark is not None else ""
    problem = getattr(e, "problem", None) or str(e)
    return InvalidError(f"{source} (document {index}):{line}: malformed YAML: {problem}")


class _Aliases:
    """How many nodes a document's aliases stand for, counted from the parser's events before anything is built.

    Each anchored node's size (itself and everything under it, aliases expanded) is known when it closes; an
    alias adds that size. A few aliases can stand for billions of nodes ("billion laughs"): every later step
    (conversion, merging, printing) walks them expanded, so a document is refused once they pass MAX_ALIAS_NODES.
    """

    def __init__(self) -> None:
        self.nodes = 0  # nodes so far, aliases expanded
        self.expanded = 0  # nodes that aliases stand for
        self.sizes: dict[str, int] = {}
        self.open: list[tuple[str | None, int]] = []  # (anchor, nodes before it) per open collection

    def event(self, event: yaml.Event) -> str | None:
        """Account for one event; a reason to refuse the document, or None."""
        if isinstance(event, yaml.AliasEvent):
            size = self.sizes.get(event.anchor)
            if size is None:
                if any(anchor == event.anchor for anchor, _ in self.open):
                    return f"YAML alias *{event.anchor} refers to a node that contains it"
                return None  # an undefined alias: the loader reports it
            self.nodes += size
            self.expanded += size
            if self.expanded > MAX_ALIAS_NODES:
                return f"YAML aliases expand to more than {MAX_ALIAS_NODES} nodes"
        elif isinstance(event, yaml.ScalarEvent):
            self.nodes += 1
            if event.anchor:
                self.sizes[event.anchor] = 1
        elif isinstance(event, _OPEN):
            self.open.append((event.anchor, self.nodes))
            self.nodes += 1
        elif isinstance(event, _CLOSE) and self.open:
            anchor, before = self.open.pop()
            if anchor:
                self.sizes[anchor] = self.nodes - before
        return None


def check_documents(text: str, source: str) -> list[int]:
    """Scan the parser's events (flat, no recursion): malformed YAML, excessive nesting and aliases that stand for
    too much are refused naming their document and line, before any document is built. Returns where each
    document starts (a character offset)."""
    starts: list[int] = []
    index, depth = 0, 0
    aliases = _Aliases()
    try:
        for event in yaml.parse(text, Loader=_FAST):
            if isinstance(event, _OPEN):
                depth += 1
                if depth > MAX_YAML_DEPTH:
                    raise InvalidError(f"{source} (document {index}): line {event.start_mark.line + 1}: YAML "
                                       f"nested too deeply (more than {MAX_YAML_DEPTH} levels)")
            elif isinstance(event, _CLOSE):
                depth -= 1
            elif isinstance(event, yaml.DocumentStartEvent):
                index += 1
                starts.append(event.start_mark.index)
                aliases = _Aliases()  # anchors do not cross documents
            if (why := aliases.event(event)) is not None:
                raise InvalidError(f"{source} (document {index}): line {event.start_mark.line + 1}: {why}")
    except yaml.YAMLError as e:
        raise _malformed(source, max(index, 1), e) from None
    return starts


# A line that begins a document: "---", then a blank or the line's end.
_MARKER = re.compile(r"^---(?=[ \t\r\n]|\Z)", re.MULTILINE)


def cut_documents(text: str, parts: int, *, min_documents: int = 2) -> list[str]:
    """A file cut into at most `parts` runs of about as many documents, at lines that begin a document, found
    without parsing: the file stays whole if it has fewer than `min_documents` such places.

    Whenever every run loads, loading them in turn gives the documents of the whole file: at such a line
    libyaml ends what is open (a plain or block scalar) or refuses it (a quoted scalar, a flow collection),
    and nothing crosses from one document to the next but a directive, which stands before a "---" and so
    leaves a run that ends in it, and does not load. A run that does not load says nothing of the whole file.
    """
    cuts = [m.start() for m in _MARKER.finditer(text) if m.start()]
    if parts < 2 or len(cuts) + 1 < max(min_documents, parts):
        return [text]
    step = (len(cuts) + 1) / parts
    bounds = [0, *sorted({cuts[round(k * step) - 1] for k in range(1, parts)}), len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


@dataclass(frozen=True)
class Document:
    source: str  # file name or "-"
    index: int  # position in the file, from 1
    data: Any

    @property
    def where(self) -> str:
        return f"{self.source} (document {self.index})"


def load_documents(text: str, source: str, *, checked: bool = False) -> Iterator[Document]:
    """Each non-empty YAML document of a file; `kind: List` expands to its items.

    Raises InvalidError naming the file, document and line for malformed or absurdly nested YAML. `checked`:
    check_documents passed already.
    """
    if not checked:
        check_documents(text, source)
    index = 0
    try:
        for data in yaml.load_all(text, Loader=_FAST):
            index += 1
            if data is None:
                continue
            if isinstance(data, dict) and data.get("kind") == "List" and isinstance(data.get("items"), list):
                for item in data["items"]:
                    yield Document(source, index, item)
                continue
            yield Document(source, index, data)
    except yaml.YAMLError as e:
        raise _malformed(source, index + 1, e) from None
    except RecursionError:
        raise InvalidError(f"{source} (document {index + 1}): YAML nested too deeply") from None


def dump_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, allow_unicode=True)
