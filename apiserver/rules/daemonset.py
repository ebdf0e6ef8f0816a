"""DaemonSets: an Orphan delete leaves their pods behind; the status is the controller's."""

from __future__ import annotations

from google.protobuf.message import Message

from apiserver.rules.strategy import Strategy


class Rules(Strategy):
    kind = "DaemonSet"
    orphans_dependents = True

    def prepare_for_create(self, obj: Message) -> None:
        obj.ClearField("status")
        super().prepare_for_create(obj)
