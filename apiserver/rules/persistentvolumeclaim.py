"""PersistentVolumeClaims: the pvc-protection finalizer from the start (Kubernetes' StorageObjectInUseProtection).

A claim being deleted stays (Terminating) until the PV controller sees no pod
using it and removes the finalizer. The default storage class is filled in by
admission (DefaultStorageClass), before these rules run.
"""

from __future__ import annotations

from google.protobuf.message import Message

from api import volumes
from apiserver.rules.strategy import Strategy


class Rules(Strategy):
    kind = "PersistentVolumeClaim"

    def prepare_for_create(self, obj: Message) -> None:
        super().prepare_for_create(obj)
        meta = obj.metadata  # type: ignore[attr-defined]
        if volumes.PVC_PROTECTION not in meta.finalizers:
            meta.finalizers.append(volumes.PVC_PROTECTION)
