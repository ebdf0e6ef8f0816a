"""Pure garbage-collection decisions for one object, given the state of its owners and dependents.

The rules are Kubernetes' (attemptToDeleteItem, orphanDependents,
processDeletingDependentsItem):

- An owner is *solid* if it exists (same uid) and is not waiting for its
  dependents; *waiting* if it is being deleted in the foreground; *dangling*
  if it is gone (or was replaced: another uid under the same name).
- An object with a solid owner stays; references to dangling or waiting
  owners are dropped from it. An object with no solid owner is deleted:
  in the foreground if a waiting owner blocks on it and it has dependents of
  its own, otherwise with the policy its own finalizers ask for.
- An owner deleted with the orphan policy first strips itself from its
  dependents' ownerReferences, then drops the orphan finalizer.
- An owner deleted in the foreground has its dependents deleted; it drops
  the foregroundDeletion finalizer once no dependent that blocks owner
  deletion remains.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from google.protobuf.message import Message

ORPHAN = "orphan"
FOREGROUND = "foregroundDeletion"

SOLID = "solid"
WAITING = "waiting"
DANGLING = "dangling"


@dataclass(frozen=True)
class OwnerState:
    uid: str
    state: str  # solid, waiting, dangling


@dataclass(frozen=True)
class Dependent:
    obj: Message
    blocking: bool  # its reference to the owner has blockOwnerDeletion=true

    @property
    def deleting(self) -> bool:
        return self.obj.metadata.HasField("deletion_timestamp")  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Plan:
    delete: str = ""  # delete the object itself with this propagation policy
    drop_owners: tuple[str, ...] = ()  # owner uids to remove from the object's ownerReferences
    orphan: tuple[Message, ...] = ()  # dependents to strip of their reference to the object
    revisit: tuple[Message, ...] = ()  # dependents to look at again (each is deleted unless another owner holds it)
    remove_finalizer: str = ""  # finalizer to take off the object (after the above succeeded)

    @property
    def empty(self) -> bool:
        return self == Plan()


def _deleting(obj: Message) -> bool:
    return obj.metadata.HasField("deletion_timestamp")  # type: ignore[attr-defined]


def _finalizers(obj: Message) -> Sequence[str]:
    return obj.metadata.finalizers  # type: ignore[attr-defined]


def owner_state(owner: Message | None, uid: str) -> str:
    """Classify one owner reference, given what the live lookup found under its name."""
    if owner is None or owner.metadata.uid != uid:  # type: ignore[attr-defined]
        return DANGLING
    if _deleting(owner) and FOREGROUND in _finalizers(owner):
        return WAITING
    return SOLID


def plan_item(obj: Message, owners: Sequence[OwnerState], dependents: Sequence[Dependent]) -> Plan:
    """What to do about `obj`: as an owner being deleted, or as a dependent whose owners may be gone."""
    if _deleting(obj):
        fins = _finalizers(obj)
        if ORPHAN in fins:
            return plan_orphan(obj, dependents)
        if FOREGROUND in fins:
            return plan_foreground(dependents)
        return Plan()
    return plan_owned(obj, owners, has_dependents=bool(dependents))


def plan_owned(obj: Message, owners: Sequence[OwnerState], *, has_dependents: bool) -> Plan:
    if not owners:
        return Plan()
    solid = [o.uid for o in owners if o.state == SOLID]
    waiting = [o.uid for o in owners if o.state == WAITING]
    dangling = [o.uid for o in owners if o.state == DANGLING]
    if solid:
        if not waiting and not dangling:
            return Plan()
        return Plan(drop_owners=tuple(dangling + waiting))
    if waiting and has_dependents:
        return Plan(delete="Foreground")
    fins = _finalizers(obj)
    policy = "Orphan" if ORPHAN in fins else "Foreground" if FOREGROUND in fins else "Background"
    return Plan(delete=policy)


def plan_orphan(obj: Message, dependents: Sequence[Dependent]) -> Plan:
    return Plan(orphan=tuple(d.obj for d in dependents), remove_finalizer=ORPHAN)


def plan_foreground(dependents: Sequence[Dependent]) -> Plan:
    if not any(d.blocking for d in dependents):
        return Plan(remove_finalizer=FOREGROUND)
    return Plan(revisit=tuple(d.obj for d in dependents if not d.deleting))
