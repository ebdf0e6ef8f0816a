"""Namespaces: the `kubernetes` finalizer, a two-step delete (Terminating, then gone), system namespaces, and the
`default` ServiceAccount, written in the same transaction as the namespace."""

from __future__ import annotations

import uuid

from google.protobuf.message import Message

from api import defaults, kinds, timestamps
from api.errors import ForbiddenError
from api.pb import api_pb2, core_pb2
from apiserver.rules.strategy import Strategy, copy
from apiserver.storage.interface import Create, Op

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
# These three may not be deleted.
UNDELETABLE = SYSTEM_NAMESPACES[:3]


DEFAULT_SERVICE_ACCOUNT = "default"


def default_service_account(namespace: str) -> core_pb2.ServiceAccount:
    """A namespace's `default` ServiceAccount, as the apiserver stores it."""
    sa = core_pb2.ServiceAccount(api_version="v1", kind="ServiceAccount",
                                 metadata={"name": DEFAULT_SERVICE_ACCOUNT, "namespace": namespace,
                                           "uid": str(uuid.uuid4())})
    sa.metadata.creation_timestamp.CopyFrom(timestamps.timestamp())
    return sa


class Rules(Strategy):
    kind = "Namespace"
    # Not an allocation: the `default` ServiceAccount rides along with the namespace's create.
    allocates = True

    def prepare_for_create(self, obj: Message) -> None:
        if not obj.spec.finalizers:  # type: ignore[attr-defined]
            # On create only, as Kubernetes' namespace strategy does: an update may empty the list.
            obj.spec.finalizers.append("kubernetes")  # type: ignore[attr-defined]
        super().prepare_for_create(obj)

    def allocate(self, new: Message, old: Message | None) -> list[Op]:
        if old is not None or self.ctx is None:
            return []
        from apiserver.cache import object_key  # the cache imports the rules

        sa_kind = kinds.lookup("serviceaccounts")
        name = new.metadata.name  # type: ignore[attr-defined]
        if self.ctx.cache.get(sa_kind, name, DEFAULT_SERVICE_ACCOUNT) is not None:
            return []  # left over (or raced): kept as it is
        return [Create(object_key(sa_kind, name, DEFAULT_SERVICE_ACCOUNT),
                       default_service_account(name).SerializeToString())]

    def prepare_for_status_update(self, new: Message, old: Message) -> None:
        defaults.namespace(new)  # type: ignore[arg-type]

    def check_delete(self, obj: Message) -> None:
        if obj.metadata.name in UNDELETABLE:  # type: ignore[attr-defined]
            raise ForbiddenError(f'namespace "{obj.metadata.name}" is a system namespace and cannot be deleted')  # type: ignore[attr-defined]

    def plan_delete(self, obj: Message, req: api_pb2.DeleteRequest, finalizers: list[str]) -> Message | None:
        # Marked Terminating first: the namespace controller empties it, then drops spec.finalizers.
        ns: core_pb2.Namespace = obj  # type: ignore[assignment]
        if not ns.spec.finalizers and not finalizers:
            return None
        new: core_pb2.Namespace = copy(ns)  # type: ignore[assignment]
        if not ns.metadata.HasField("deletion_timestamp"):
            new.metadata.deletion_timestamp.CopyFrom(timestamps.timestamp())
            new.metadata.deletion_grace_period_seconds = 0
        new.status.phase = "Terminating"
        return new

    def ready_to_remove(self, obj: Message) -> bool:
        return super().ready_to_remove(obj) and not obj.spec.finalizers  # type: ignore[attr-defined]


def system_namespaces() -> list[core_pb2.Namespace]:
    """The namespaces every cluster has, created by the apiserver at start."""
    return [core_pb2.Namespace(metadata={"name": name}) for name in SYSTEM_NAMESPACES]
