"""Controller references: who owns what, which objects a controller should adopt or release, and doing it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import Message

from api import kinds, labels
from api.errors import ConflictError, NotFoundError
from api.pb import meta_pb2


def controller_ref(obj: Message) -> meta_pb2.OwnerReference | None:
    """The owner reference with controller=true, if any."""
    for ref in obj.metadata.owner_references:  # type: ignore[attr-defined]
        if ref.controller:
            return ref
    return None


def controller_uid(obj: Message) -> str:
    ref = controller_ref(obj)
    return ref.uid if ref is not None else ""


def make_controller_ref(owner: Message) -> meta_pb2.OwnerReference:
    """A controller reference to `owner` that blocks its foreground deletion."""
    kind = kinds.of(owner)
    meta = owner.metadata  # type: ignore[attr-defined]
    return meta_pb2.OwnerReference(api_version=kind.api_version, kind=kind.kind, name=meta.name, uid=meta.uid,
                                   controller=True, block_owner_deletion=True)


def resolve(informer: Any, namespace: str, ref: meta_pb2.OwnerReference | None, kind: str) -> Any | None:
    """The `kind` object that `ref` names, from an informer's cache; None if it is not that very object."""
    if ref is None or ref.kind != kind:
        return None
    obj = informer.get_named(namespace, ref.name)
    if obj is None or obj.metadata.uid != ref.uid:
        return None
    return obj


def is_deleting(obj: Message) -> bool:
    return obj.metadata.HasField("deletion_timestamp")  # type: ignore[attr-defined]


@dataclass
class Claims:
    """The result of matching candidate objects against an owner's selector."""

    owned: list[Any] = field(default_factory=list)  # ours and matching (including those to adopt)
    adopt: list[Any] = field(default_factory=list)  # orphans that match: take them
    release: list[Any] = field(default_factory=list)  # ours but no longer matching: let go


def plan_claims(owner_uid: str, selector: labels.Selector, candidates: Iterable[Message], *,
                owner_deleting: bool) -> Claims:
    """Which candidates the owner keeps, adopts and releases (Kubernetes' ClaimObject rules).

    An object controlled by someone else is never touched. An owner being
    deleted neither adopts nor releases. Objects being deleted are not adopted.
    """
    out = Claims()
    for obj in candidates:
        ref = controller_ref(obj)
        matches = selector.matches(obj.metadata.labels)  # type: ignore[attr-defined]
        if ref is not None:
            if ref.uid != owner_uid:
                continue
            if matches:
                out.owned.append(obj)
            elif not owner_deleting:
                out.release.append(obj)
            continue
        if owner_deleting or not matches or is_deleting(obj):
            continue
        out.adopt.append(obj)
        out.owned.append(obj)
    return out


def with_controller(obj: Message, ref: meta_pb2.OwnerReference) -> Message:
    """A copy of `obj` with `ref` added as its controller reference."""
    new = type(obj)()
    new.CopyFrom(obj)
    refs = [r for r in new.metadata.owner_references if r.uid != ref.uid]  # type: ignore[attr-defined]
    del new.metadata.owner_references[:]  # type: ignore[attr-defined]
    new.metadata.owner_references.extend([*refs, ref])  # type: ignore[attr-defined]
    return new


def without_owners(obj: Message, uids: Sequence[str]) -> Message:
    """A copy of `obj` without the owner references to `uids`."""
    new = type(obj)()
    new.CopyFrom(obj)
    refs = [r for r in new.metadata.owner_references if r.uid not in uids]  # type: ignore[attr-defined]
    del new.metadata.owner_references[:]  # type: ignore[attr-defined]
    new.metadata.owner_references.extend(refs)  # type: ignore[attr-defined]
    return new


async def apply_claims(client: Any, owner: Message, claims: Claims, *, log: Any,
                       written: Callable[[Message], None] | None = None) -> list[Any]:
    """Adopt and release as `claims` says; return the owned objects (adopted ones as written).

    The owner is read again first, as Kubernetes' RecheckDeletionTimestamp does: a
    recreated or deleting owner adopts nothing. An object that changed or went away
    meanwhile is left out; the next sync looks again.
    """
    adopted: dict[str, Any] = {}
    failed: set[str] = set()
    meta = owner.metadata  # type: ignore[attr-defined]
    if claims.adopt:
        fresh = await client.get(kinds.of(owner).resource, meta.name, meta.namespace)
        ok = fresh.metadata.uid == meta.uid and not is_deleting(fresh)
        ref = make_controller_ref(owner)
        for obj in claims.adopt:
            try:
                if not ok:
                    raise NotFoundError("owner recreated or being deleted")
                new = await client.update(with_controller(obj, ref))
            except (NotFoundError, ConflictError):
                failed.add(obj.metadata.uid)
                continue
            adopted[obj.metadata.uid] = new
            if written is not None:
                written(new)
            log.info(f"{kinds.of(obj).kind.lower()}_adopted", key=f"{meta.namespace}/{meta.name}",
                     name=obj.metadata.name)
    for obj in claims.release:
        try:
            new = await client.update(without_owners(obj, [meta.uid]))
        except NotFoundError:
            continue
        if written is not None:
            written(new)
        log.info(f"{kinds.of(obj).kind.lower()}_released", key=f"{meta.namespace}/{meta.name}",
                 name=obj.metadata.name)
    return [adopted.get(o.metadata.uid, o) for o in claims.owned if o.metadata.uid not in failed]
