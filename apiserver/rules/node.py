"""Nodes: NoExecute taints stamped with when they were added; a status write (the kubelet's heartbeat) checks only
the capacities it reports."""

from __future__ import annotations

from collections.abc import Iterable

from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from api import timestamps, validation
from api.errors import FieldError
from api.pb import core_pb2
from apiserver.rules.strategy import Strategy


def stamp_taints(taints: Iterable[core_pb2.Taint], stored: Iterable[core_pb2.Taint], now: Timestamp) -> None:
    """Give each NoExecute taint without timeAdded the stored one's time if it was there already, else `now`.

    As Kubernetes: the taint manager counts tolerationSeconds from timeAdded, so a taint a user adds
    (`kubelite taint`, an edited manifest) starts its clock when it is written, and rewriting a node keeps
    the clocks of the taints it already had. A taint is the same taint by key and effect. A stored taint
    without a time (written before the apiserver stamped them) stays so: the taint manager's clock from
    when it first saw the taint is older than any stamp given now.
    """
    before = {(t.key, t.effect): t for t in stored}
    for t in taints:
        if t.effect != "NoExecute" or t.HasField("time_added"):
            continue
        old = before.get((t.key, t.effect))
        if old is None:
            t.time_added.CopyFrom(now)
        elif old.HasField("time_added"):
            t.time_added.CopyFrom(old.time_added)


class Rules(Strategy):
    kind = "Node"

    def prepare_for_create(self, obj: Message) -> None:
        stamp_taints(obj.spec.taints, (), timestamps.timestamp())  # type: ignore[attr-defined]
        super().prepare_for_create(obj)

    def prepare_for_update(self, new: Message, old: Message) -> None:
        stamp_taints(new.spec.taints, old.spec.taints, timestamps.timestamp())  # type: ignore[attr-defined]
        super().prepare_for_update(new, old)

    def validate_status_update(self, new: Message, old: Message) -> list[FieldError]:
        errs: list[FieldError] = []
        validation.validate_node_status(new, errs)  # type: ignore[arg-type]
        return errs
