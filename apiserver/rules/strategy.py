"""The strategy every kind's rules fill in, with the behaviour of a plain kind as its default."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from google.protobuf.message import Message

from api import defaults, timestamps, validation
from api.errors import ApiError, ConflictError, FieldError
from api.pb import api_pb2
from apiserver.storage.interface import Op


@dataclass
class Config:
    """What the kinds' rules need from the apiserver's flags."""

    service_cidr: str = "10.96.0.0/16"
    node_port_range: str = "30000-32767"
    lb_pool: str = ""
    toleration_seconds: int = defaults.DEFAULT_TOLERATION_SECONDS
    external_ip_cidrs: str = ""  # Services' externalIPs must fall in these (comma-separated); none: refused


@dataclass(frozen=True)
class Index:
    """An extra watch-cache index: objects (and watchers pinned with `field=value`) by one field's value."""

    field: str  # the field selector it serves, e.g. spec.nodeName
    value: Callable[[Any], str]  # the object's value of that field ("" is not indexed)


def copy(obj: Message) -> Message:
    new = type(obj)()
    new.CopyFrom(obj)
    return new


class Strategy:
    """A kind's rules. Subclasses set `kind` and override what differs; this class is a plain kind.

    `ctx` is the registry's view the rules may use: its config, the watch cache, its sync().
    """

    kind: ClassVar[str] = ""

    # Create in a namespace being deleted (events about the deletion itself).
    create_in_terminating_namespace: ClassVar[bool] = False
    # Objects expire this many seconds after their last write (0: never).
    ttl_seconds: ClassVar[int] = 0
    # Spec changes advance metadata.generation.
    tracks_generation: ClassVar[bool] = True
    # The Scale subresource sets spec.replicas.
    scalable: ClassVar[bool] = False
    # Deleting with propagationPolicy=Orphan adds the `orphan` finalizer (the garbage collector orphans dependents).
    orphans_dependents: ClassVar[bool] = False
    # Allocates values (addresses, ports) claimed in storage with the object: see allocate().
    allocates: ClassVar[bool] = False
    # An extra watch-cache index.
    index: ClassVar[Index | None] = None

    def __init__(self, config: Config, ctx: Any = None) -> None:
        self.config = config
        self.ctx = ctx

    # ------------------------------------------------------------ create

    def prepare_for_create(self, obj: Message) -> None:
        """Fill server-owned fields and defaults of a new object (metadata is done already)."""
        defaults.apply(obj, toleration_seconds=self.config.toleration_seconds)

    def validate(self, obj: Message) -> list[FieldError]:
        return validation.validate(obj)

    # ------------------------------------------------------------ update

    def prepare_for_update(self, new: Message, old: Message) -> None:
        """Defaults of an updated object; server-owned metadata is already copied from `old`."""
        defaults.apply(new, toleration_seconds=None)

    def validate_update(self, new: Message, old: Message) -> list[FieldError]:
        return validation.validate_update(new, old)

    # ------------------------------------------------------------ status

    def prepare_for_status_update(self, new: Message, old: Message) -> None:
        """Fix up a status write; spec and metadata are the stored object's and are never re-defaulted."""

    def validate_status_update(self, new: Message, old: Message) -> list[FieldError]:
        """Only the status is checked: the rest is what was stored."""
        return []

    # ------------------------------------------------------------ delete

    def check_delete(self, obj: Message) -> None:
        """Raise to refuse a delete outright."""

    def delete_grace(self, obj: Message, req: api_pb2.DeleteRequest) -> tuple[int, bool] | None:
        """For kinds deleted gracefully: (grace period, wait for it); None: removed once its finalizers are gone."""
        return None

    def plan_delete(self, obj: Message, req: api_pb2.DeleteRequest, finalizers: list[str]) -> Message | None:
        """The object marked for deletion with `finalizers`, the object itself if nothing changes, or None to
        remove it now."""
        meta = obj.metadata  # type: ignore[attr-defined]
        graceful_kind = self.delete_grace(obj, req)
        grace, graceful = graceful_kind if graceful_kind is not None else (0, False)
        if not finalizers and not graceful:
            return None
        if meta.HasField("deletion_timestamp"):
            if graceful_kind is not None and req.HasField("grace_period_seconds"):
                if grace == 0 and not meta.finalizers:
                    return None
                if grace < meta.deletion_grace_period_seconds:
                    new = copy(obj)
                    new.metadata.deletion_grace_period_seconds = grace  # type: ignore[attr-defined]
                    deadline = timestamps.timestamp()
                    deadline.seconds += grace
                    new.metadata.deletion_timestamp.CopyFrom(deadline)  # type: ignore[attr-defined]
                    return new
            if list(meta.finalizers) == finalizers:
                return obj
        new = copy(obj)
        nm = new.metadata  # type: ignore[attr-defined]
        if not meta.HasField("deletion_timestamp"):
            deadline = timestamps.timestamp()
            deadline.seconds += grace
            nm.deletion_timestamp.CopyFrom(deadline)
            nm.deletion_grace_period_seconds = grace
        del nm.finalizers[:]
        nm.finalizers.extend(finalizers)
        return new

    def ready_to_remove(self, obj: Message) -> bool:
        """An object being deleted goes once its last finalizer is gone."""
        meta = obj.metadata  # type: ignore[attr-defined]
        return meta.HasField("deletion_timestamp") and not meta.finalizers

    # ------------------------------------------------------------ allocation

    async def before_allocate(self) -> None:
        """Called once before a create that allocates: e.g. wait for the cache to hold what was allocated."""

    def allocate(self, new: Message, old: Message | None) -> list[Op]:
        """Fill in allocated values; return the storage ops that claim new values and release dropped ones.

        Every value handed out here stays reserved in memory until release() is called with these ops.
        """
        return []

    def release(self, ops: list[Op]) -> None:
        """Forget the in-memory reservations of ops allocate() returned (written or not)."""

    def claims(self, obj: Message) -> set[str]:
        """The storage keys the object holds, removed with it."""
        return set()

    def claim_taken(self, key: str) -> ApiError:
        """The error for a claim another object holds (a value the client asked for, or none left to pick)."""
        return ConflictError(f"{key} is already allocated; retry")
