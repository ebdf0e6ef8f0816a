"""Ingresses: their status (the addresses that serve them) is checked when a controller writes it."""

from __future__ import annotations

from google.protobuf.message import Message

from api import validation
from api.errors import FieldError
from apiserver.rules.strategy import Strategy


class Rules(Strategy):
    kind = "Ingress"

    def validate_status_update(self, new: Message, old: Message) -> list[FieldError]:
        errs: list[FieldError] = []
        validation.validate_ingress_status(new, errs)  # type: ignore[arg-type]
        return errs
