"""Nodes: a status write (the kubelet's heartbeat) checks only the capacities it reports."""

from __future__ import annotations

from google.protobuf.message import Message

from api import validation
from api.errors import FieldError
from apiserver.rules.strategy import Strategy


class Rules(Strategy):
    kind = "Node"

    def validate_status_update(self, new: Message, old: Message) -> list[FieldError]:
        errs: list[FieldError] = []
        validation.validate_node_status(new, errs)  # type: ignore[arg-type]
        return errs
