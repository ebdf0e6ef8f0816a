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

import functools
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
    if not _clean(msg, skip):  # the common case found quickly; paths are built only to name what is wrong
        _walk(msg, path, errs, skip)
    return errs


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _check(value: str, path: str, free: bool, errs: list[FieldError]) -> None:
    if (CONTROL_IN_TEXT if free else CONTROL).search(value):
        errs.append(FieldError(path, "Invalid value", DETAIL, value))


# How _walk treats a field, decided once per field (reflection on descriptors costs more than the walk itself).
_SKIP, _STR, _MSG, _STRS, _MSGS, _MAP_KEYS, _MAP_STRS, _MAP_MSGS = range(8)


@functools.cache
def _plan(fd: FieldDescriptor) -> tuple[int, str, bool]:
    """(shape, JSON name, free text) of a field."""
    free = fd.full_name in FREE_TEXT or fd.name == "message"
    if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
        vfd = fd.message_type.fields_by_name["value"]
        if vfd.message_type is not None:
            shape = _MAP_MSGS
        elif vfd.type == FieldDescriptor.TYPE_STRING and fd.full_name not in CONTENT:
            shape = _MAP_STRS
        else:
            shape = _MAP_KEYS
    elif fd.is_repeated:
        shape = _MSGS if fd.message_type is not None else _STRS if fd.type == FieldDescriptor.TYPE_STRING else _SKIP
    else:
        shape = _MSG if fd.message_type is not None else _STR if fd.type == FieldDescriptor.TYPE_STRING else _SKIP
    return shape, fd.json_name, free


def _clean(msg: Message, skip: frozenset[str] = frozenset()) -> bool:
    """Whether _walk would find nothing: the same fields, the same patterns, no paths."""
    for fd, value in msg.ListFields():
        shape, _, free = _plan(fd)
        if shape == _SKIP or (skip and fd.name in skip):
            continue
        pattern = CONTROL_IN_TEXT if free else CONTROL
        if shape == _STR:
            if pattern.search(value):
                return False
        elif shape == _MSG:
            if not _clean(value):
                return False
        elif shape == _STRS:
            if any(pattern.search(item) for item in value):
                return False
        elif shape == _MSGS:
            if not all(_clean(item) for item in value):
                return False
        else:
            for k, v in value.items():
                if isinstance(k, str) and CONTROL.search(k):
                    return False
                if (shape == _MAP_MSGS and not _clean(v)) or (shape == _MAP_STRS and pattern.search(v)):
                    return False
    return True


def _walk(msg: Message, path: str, errs: list[FieldError], skip: frozenset[str] = frozenset()) -> None:
    for fd, value in msg.ListFields():
        shape, json_name, free = _plan(fd)
        if shape == _SKIP or (skip and fd.name in skip):
            continue
        fpath = _join(path, json_name)
        if shape == _STR:
            _check(value, fpath, free, errs)
        elif shape == _MSG:
            _walk(value, fpath, errs)
        elif shape == _STRS:
            for i, item in enumerate(value):
                _check(item, f"{fpath}[{i}]", free, errs)
        elif shape == _MSGS:
            for i, item in enumerate(value):
                _walk(item, f"{fpath}[{i}]", errs)
        else:
            for k, v in value.items():
                kpath = f"{fpath}[{k}]" if isinstance(k, str) and not has_control(k) else fpath
                if isinstance(k, str):
                    _check(k, fpath, False, errs)
                if shape == _MAP_MSGS:
                    _walk(v, kpath, errs)
                elif shape == _MAP_STRS:
                    _check(v, kpath, free, errs)
