"""Label and field selectors, parsed and matched as Kubernetes does.

`app=web,tier in (a,b),!canary` parses into Requirements; LabelSelector
messages (matchLabels + matchExpressions) convert to the same Requirements, so
one `matches` serves the apiserver, the controllers and the scheduler.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from google.protobuf.message import Message

from api.errors import FieldError, InvalidError
from api.pb import meta_pb2

_NAME = r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?"
_NAME_RE = re.compile(_NAME)  # matched whole (fullmatch): `$` lets a final newline through
_DNS1123_SUBDOMAIN_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")


def key_errors(key: str) -> list[str]:
    """What is wrong with a label or annotation key (empty list if valid)."""
    prefix, slash, name = key.rpartition("/")
    errs: list[str] = []
    if slash and (not prefix or len(prefix) > 253 or not _DNS1123_SUBDOMAIN_RE.fullmatch(prefix)):
        errs.append("prefix part must be a lowercase RFC 1123 subdomain of at most 253 characters")
    if not name or len(name) > 63 or not _NAME_RE.fullmatch(name):
        errs.append(
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end "
            "with an alphanumeric character (at most 63 characters)"
        )
    return errs


def value_errors(value: str) -> list[str]:
    if value == "":
        return []
    if len(value) > 63 or not _NAME_RE.fullmatch(value):
        return [
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
            "and must start and end with an alphanumeric character (at most 63 characters)"
        ]
    return []


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # =, !=, in, notin, exists, !, gt, lt
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.op
        if op == "exists":
            return self.key in labels
        if op == "!":
            return self.key not in labels
        if op in ("=", "in"):
            return self.key in labels and labels[self.key] in self.values
        if op in ("!=", "notin"):
            return self.key not in labels or labels[self.key] not in self.values
        if op in ("gt", "lt"):
            if self.key not in labels:
                return False
            try:
                have, want = int(labels[self.key]), int(self.values[0])
            except ValueError:
                return False
            return have > want if op == "gt" else have < want
        return False

    def __str__(self) -> str:
        if self.op == "exists":
            return self.key
        if self.op == "!":
            return f"!{self.key}"
        if self.op in ("in", "notin"):
            return f"{self.key} {self.op} ({','.join(self.values)})"
        if self.op in ("gt", "lt"):
            return f"{self.key}{'>' if self.op == 'gt' else '<'}{self.values[0]}"
        return f"{self.key}{self.op}{self.values[0]}"


@dataclass(frozen=True)
class Selector:
    """A conjunction of requirements. `everything` matches all; `nothing` matches none."""

    requirements: tuple[Requirement, ...] = ()
    nothing: bool = False

    def matches(self, labels: Mapping[str, str]) -> bool:
        if self.nothing:
            return False
        return all(r.matches(labels) for r in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements and not self.nothing

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


EVERYTHING = Selector()
NOTHING = Selector(nothing=True)

_TOKEN = re.compile(r"\s*(\(|\)|,|!=|==|=|!|>|<|[^\s()!=,<>]+)")


# A selector longer than this is refused unparsed: parsing and matching cost grows with its length, and
# no real selector comes near it.
MAX_SELECTOR = 64 * 1024


def _check_length(text: str, field: str) -> None:
    if len(text) > MAX_SELECTOR:
        raise InvalidError([FieldError(field, "Too long", f"must have at most {MAX_SELECTOR} characters")])


def parse(text: str) -> Selector:
    """Parse a label selector string; raises InvalidError with the offending part."""
    _check_length(text, "labelSelector")
    tokens = _tokens(text)
    reqs: list[Requirement] = []
    i = 0

    def fail(msg: str) -> InvalidError:
        return InvalidError([FieldError("labelSelector", "Invalid value", msg, text)])

    while i < len(tokens):
        neg = tokens[i] == "!"
        if neg:
            i += 1
        if i >= len(tokens) or tokens[i] in "(),=!<>":
            raise fail("expected a label key")
        key = tokens[i]
        i += 1
        if neg:
            reqs.append(Requirement(key, "!"))
        elif i >= len(tokens) or tokens[i] == ",":
            reqs.append(Requirement(key, "exists"))
        else:
            op = tokens[i]
            i += 1
            if op in ("in", "notin"):
                if i >= len(tokens) or tokens[i] != "(":
                    raise fail(f"expected '(' after {op}")
                i += 1
                # Comma-separated; an empty slot is the empty value ("x in (foo,,baz)", "z notin ()").
                values: list[str] = [""]
                while i < len(tokens) and tokens[i] != ")":
                    if tokens[i] == ",":
                        values.append("")
                    elif values[-1] or tokens[i] in ("(", "=", "==", "!=", "!", "<", ">"):
                        raise fail(f"expected ',' or ')' before {tokens[i]!r}")
                    else:
                        values[-1] = tokens[i]
                    i += 1
                if i >= len(tokens):
                    raise fail("expected ')'")
                i += 1
                reqs.append(Requirement(key, op, tuple(dict.fromkeys(values))))
            elif op in ("=", "==", "!=", ">", "<"):
                value = ""
                if i < len(tokens) and tokens[i] not in ",()":
                    value = tokens[i]
                    i += 1
                if op in (">", "<") and not value.lstrip("-").isdigit():
                    raise fail(f"{key}{op} needs an integer")
                name = {"==": "=", ">": "gt", "<": "lt"}.get(op, op)
                reqs.append(Requirement(key, name, (value,)))
            else:
                raise fail(f"unexpected {op!r} after {key!r}")
        for problem in key_errors(key):
            raise fail(f"key {key!r}: {problem}")
        for value in reqs[-1].values if reqs[-1].op not in ("gt", "lt") else ():
            for problem in value_errors(value):
                raise fail(f"value {value!r}: {problem}")
        if i < len(tokens):
            if tokens[i] != ",":
                raise fail(f"expected ',' before {tokens[i]!r}")
            i += 1
            if i >= len(tokens):
                raise fail("expected a label key after ','")
    return Selector(tuple(reqs))


def _tokens(text: str) -> list[str]:
    out: list[str] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise InvalidError([FieldError("labelSelector", "Invalid value", "cannot parse", text)])
        out.append(m.group(1))
        pos = m.end()
    return out


def from_label_selector(sel: meta_pb2.LabelSelector | None) -> Selector:
    """A LabelSelector message as a Selector; an unset selector matches nothing, an empty one all."""
    if sel is None:
        return NOTHING
    reqs = [Requirement(k, "=", (v,)) for k, v in sorted(sel.match_labels.items())]
    for expr in sel.match_expressions:
        op = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}.get(expr.operator)
        if op is None:
            return NOTHING
        reqs.append(Requirement(expr.key, op, tuple(expr.values)))
    return Selector(tuple(reqs))


def from_map(match: Mapping[str, str]) -> Selector:
    """A Service-style selector (map); an empty map selects nothing."""
    if not match:
        return NOTHING
    return Selector(tuple(Requirement(k, "=", (v,)) for k, v in sorted(match.items())))


def label_selector_errors(sel: meta_pb2.LabelSelector, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for k, v in sel.match_labels.items():
        errs += [FieldError(f"{path}.matchLabels", "Invalid value", p, k) for p in key_errors(k)]
        errs += [FieldError(f"{path}.matchLabels", "Invalid value", p, v) for p in value_errors(v)]
    for i, expr in enumerate(sel.match_expressions):
        p = f"{path}.matchExpressions[{i}]"
        if expr.operator not in ("In", "NotIn", "Exists", "DoesNotExist"):
            errs.append(FieldError(f"{p}.operator", "Unsupported value",
                                   'supported values: "In", "NotIn", "Exists", "DoesNotExist"', expr.operator))
        elif expr.operator in ("In", "NotIn") and not expr.values:
            errs.append(FieldError(f"{p}.values", "Required value",
                                   "must be specified when `operator` is 'In' or 'NotIn'"))
        elif expr.operator in ("Exists", "DoesNotExist") and expr.values:
            errs.append(FieldError(f"{p}.values", "Forbidden",
                                   "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
        errs += [FieldError(f"{p}.key", "Invalid value", prob, expr.key) for prob in key_errors(expr.key)]
    return errs


# ---------------------------------------------------------------- field selectors


@dataclass(frozen=True)
class FieldRequirement:
    field: str
    op: str  # = or !=
    value: str


def parse_fields(text: str, supported: Sequence[str]) -> tuple[FieldRequirement, ...]:
    """Parse `a=b,c!=d`; only `supported` field paths are allowed."""
    _check_length(text, "fieldSelector")
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        m = re.fullmatch(r"([A-Za-z.]+)\s*(==|!=|=)\s*(.*)", part)
        if not m:
            raise InvalidError([FieldError("fieldSelector", "Invalid value", "expected field=value", text)])
        field, op, value = m.group(1), m.group(2), m.group(3)
        if field not in supported:
            raise InvalidError([FieldError(
                "fieldSelector", "Invalid value",
                f'field label not supported: {field} (supported: {", ".join(supported)})', text)])
        out.append(FieldRequirement(field, "!=" if op == "!=" else "=", value))
    return tuple(out)


def fields_match(reqs: Sequence[FieldRequirement], values: Mapping[str, str]) -> bool:
    for r in reqs:
        have = values.get(r.field, "")
        if (have == r.value) != (r.op == "="):
            return False
    return True


def field_values(obj: Message) -> dict[str, str]:
    """The field-selectable values of an object (metadata.name, spec.nodeName, ...)."""
    meta = obj.metadata  # type: ignore[attr-defined]
    values = {"metadata.name": meta.name, "metadata.namespace": meta.namespace}
    name = type(obj).__name__
    if name == "Pod":
        values.update({
            "spec.nodeName": obj.spec.node_name,  # type: ignore[attr-defined]
            "spec.schedulerName": obj.spec.scheduler_name,  # type: ignore[attr-defined]
            "spec.restartPolicy": obj.spec.restart_policy,  # type: ignore[attr-defined]
            "status.phase": obj.status.phase,  # type: ignore[attr-defined]
            "status.podIP": obj.status.pod_ip,  # type: ignore[attr-defined]
            "status.nominatedNodeName": obj.status.nominated_node_name,  # type: ignore[attr-defined]
        })
    elif name == "Node":
        values["spec.unschedulable"] = "true" if obj.spec.unschedulable else "false"  # type: ignore[attr-defined]
    elif name == "Event":
        ref = obj.involved_object  # type: ignore[attr-defined]
        values.update({
            "involvedObject.kind": ref.kind,
            "involvedObject.name": ref.name,
            "involvedObject.namespace": ref.namespace,
            "involvedObject.uid": ref.uid,
            "reason": obj.reason,  # type: ignore[attr-defined]
            "type": obj.type,  # type: ignore[attr-defined]
        })
    elif name == "Namespace":
        values["status.phase"] = obj.status.phase  # type: ignore[attr-defined]
    elif name == "Secret":
        values["type"] = obj.type  # type: ignore[attr-defined]
    return values


FIELD_SELECTORS: dict[str, tuple[str, ...]] = {
    "Pod": ("metadata.name", "metadata.namespace", "spec.nodeName", "spec.schedulerName", "spec.restartPolicy",
            "status.phase", "status.podIP", "status.nominatedNodeName"),
    "Node": ("metadata.name", "metadata.namespace", "spec.unschedulable"),
    "Event": ("metadata.name", "metadata.namespace", "involvedObject.kind", "involvedObject.name",
              "involvedObject.namespace", "involvedObject.uid", "reason", "type"),
    "Namespace": ("metadata.name", "metadata.namespace", "status.phase"),
    "Secret": ("metadata.name", "metadata.namespace", "type"),
}


def supported_fields(kind: str) -> tuple[str, ...]:
    return FIELD_SELECTORS.get(kind, ("metadata.name", "metadata.namespace"))
