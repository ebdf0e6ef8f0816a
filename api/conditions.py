"""Object conditions (Pod, Node, ReplicaSet, Deployment, ...): find one, set one.

Every condition message has `type`, `status`, `reason`, `message` and
`last_transition_time`; Deployment's also has `last_update_time`. The
transition time moves only when the status changes, as in Kubernetes.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from google.protobuf.timestamp_pb2 import Timestamp

from api import timestamps

C = TypeVar("C")


def get(conditions: Iterable[C], type_: str) -> C | None:
    """The condition of type `type_`, or None."""
    for c in conditions:
        if c.type == type_:  # type: ignore[attr-defined]
            return c
    return None


def is_true(conditions: Iterable[Any], type_: str) -> bool:
    c = get(conditions, type_)
    return c is not None and c.status == "True"


def set_(conditions: Any, type_: str, status: str, reason: str = "", message: str = "", *,
         now: Timestamp | None = None) -> None:
    """Set a condition in a repeated field; the transition time moves only when the status changes."""
    c = get(conditions, type_)
    if c is not None:
        if c.status != status or not c.HasField("last_transition_time"):
            c.last_transition_time.CopyFrom(now or timestamps.timestamp())
        c.status, c.reason, c.message = status, reason, message
        return
    conditions.add(type=type_, status=status, reason=reason, message=message,
                   last_transition_time=now or timestamps.timestamp())


def carried(previous: Iterable[Any], cls: type[C], type_: str, status: str, reason: str, message: str, *,
            now: Timestamp) -> C:
    """A new condition of class `cls` that keeps the previous one's transition time if its status is unchanged."""
    cond = cls(type=type_, status=status, reason=reason, message=message)  # type: ignore[call-arg]
    old = get(previous, type_)
    if old is not None and old.status == status and old.HasField("last_transition_time"):
        cond.last_transition_time.CopyFrom(old.last_transition_time)  # type: ignore[attr-defined]
    else:
        cond.last_transition_time.CopyFrom(now)  # type: ignore[attr-defined]
    return cond


def remove(conditions: Any, type_: str) -> None:
    """Drop every condition of type `type_` from a repeated field."""
    kept = [c for c in conditions if c.type != type_]
    del conditions[:]
    conditions.extend(kept)
