"""PodDisruptionBudgets: the status is the disruption controller's (and the eviction subresource's)."""

from __future__ import annotations

from google.protobuf.message import Message

from apiserver.rules.strategy import Strategy


class Rules(Strategy):
    kind = "PodDisruptionBudget"

    def prepare_for_create(self, obj: Message) -> None:
        obj.ClearField("status")
        super().prepare_for_create(obj)
