"""Control characters in object fields.

A value with a control character breaks whatever writes it into a line: an
iptables rule, a DNS name, a file path, a log line, a table on a terminal. So
every string field of every object and request refuses control characters
(C0, DEL, C1, and the Unicode line and paragraph separators), except the few
that are free text by nature, where tab, newline and carriage return are
allowed: container commands and arguments, environment values, annotation
values and status messages. ConfigMap data and Secret stringData values are
file contents and may hold anything.
"""

from __future__ import annotations

import re

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from api.errors import FieldError

CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
CONTROL_IN_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]")
_ESCAPE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")

# Fields (by full name) whose values are free text; besides these, every field named `message`.
FREE_TEXT = frozenset({
    "kubelite.v1.Container.command",
    "kubelite.v1.Container.args",
    "kubelite.v1.EnvVar.value",
    "kubelite.v1.ExecAction.command",
    "kubelite.v1.ExecRequest.command",
    "kubelite.v1.ObjectMeta.annotations",  # the values; keys are qualified names
})
# Fields whose values are file contents (any text at all, as in Kubernetes); their keys are still checked.
CONTENT = frozenset({
    "kubelite.v1.ConfigMap.data",
    "kubelite.v1.Secret.string_data",
})
DETAIL = "must not contain control characters"


def has_control(value: str) -> bool:
    return CONTROL.search(value) is not None


def escape(text: str) -> str:
    """`text` on one line: control characters written as Python escapes (`web\\n`)."""
    return _ESCAPE.sub(lambda m: repr(m.group(0))[1:-1], text)


def control_errors(msg: Message, path: str = "", *, skip: frozenset[str] = frozenset()) -> list[FieldError]:
    """A FieldError for every string in `msg` holding a control character it may not hold.

    `skip` names top-level fields (by proto name) to leave out, such as a request's embedded object.
    """
    errs: list[FieldError] = []
    _walk(msg, path, errs, skip)
    return errs


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _check(value: str, path: str, free: bool, errs: list[FieldError]) -> None:
    if (CONTROL_IN_TEXT if free else CONTROL).search(value):
        errs.append(FieldError(path, "Invalid value", DETAIL, value))


def _walk(msg: Message, path: str, errs: list[FieldError], skip: frozenset[str] = frozenset()) -> None:
    for fd, value in msg.ListFields():
        if fd.name in skip:
            continue
        fpath = _join(path, fd.json_name)
        free = fd.full_name in FREE_TEXT or fd.name == "message"
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            vfd = fd.message_type.fields_by_name["value"]
            for k, v in value.items():
                kpath = f"{fpath}[{k}]" if isinstance(k, str) and not has_control(k) else fpath
                if isinstance(k, str):
                    _check(k, fpath, False, errs)
                if vfd.message_type is not None:
                    _walk(v, kpath, errs)
                elif vfd.type == FieldDescriptor.TYPE_STRING and fd.full_name not in CONTENT:
                    _check(v, kpath, free, errs)
        elif fd.is_repeated:
            for i, item in enumerate(value):
                if fd.message_type is not None:
                    _walk(item, f"{fpath}[{i}]", errs)
                elif fd.type == FieldDescriptor.TYPE_STRING:
                    _check(item, f"{fpath}[{i}]", free, errs)
        elif fd.message_type is not None:
            _walk(value, fpath, errs)
        elif fd.type == FieldDescriptor.TYPE_STRING:
            _check(value, fpath, free, errs)
