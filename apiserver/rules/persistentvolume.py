"""PersistentVolumes: the pv-protection finalizer from the start, so a volume bound to a claim is not removed
under it; the PV controller lifts it once the volume is no longer bound."""

from __future__ import annotations

from google.protobuf.message import Message

from api import volumes
from apiserver.rules.strategy import Strategy


class Rules(Strategy):
    kind = "PersistentVolume"

    def prepare_for_create(self, obj: Message) -> None:
        super().prepare_for_create(obj)
        meta = obj.metadata  # type: ignore[attr-defined]
        if volumes.PV_PROTECTION not in meta.finalizers:
            meta.finalizers.append(volumes.PV_PROTECTION)
