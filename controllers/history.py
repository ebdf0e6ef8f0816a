"""ControllerRevisions: the history of a DaemonSet's or StatefulSet's pod templates (Kubernetes' controller/history).

Each distinct template gets one revision, named `<owner>-<hash>`, numbered one
past the newest; going back to an older template renumbers its revision to
the top instead of making a new one. Old revisions no pod runs any more are
deleted beyond spec.revisionHistoryLimit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from api.errors import AlreadyExistsError, ConflictError, NotFoundError
from api.pb import apps_pb2, core_pb2
from client.api import Client
from controllers import owners
from controllers.deployment.util import compute_hash

REVISION_HASH_LABEL = "controller-revision-hash"
CHANGE_CAUSE = "kubernetes.io/change-cause"


class CollisionError(Exception):
    """A revision of that name holds another template: the owner's collisionCount must grow."""


def template_hash(template: core_pb2.PodTemplateSpec, collision_count: int | None) -> str:
    return compute_hash(template, collision_count)


def max_revision(revisions: Iterable[apps_pb2.ControllerRevision]) -> int:
    return max((r.revision for r in revisions), default=0)


def by_revision(revisions: Iterable[apps_pb2.ControllerRevision]) -> list[apps_pb2.ControllerRevision]:
    """Oldest first: by revision number, then creation, then name."""
    return sorted(revisions, key=lambda r: (r.revision, r.metadata.creation_timestamp.ToNanoseconds(),
                                             r.metadata.name))


def matches(revision: apps_pb2.ControllerRevision, template: core_pb2.PodTemplateSpec) -> bool:
    return revision.data.spec.template == template


def new_revision(owner: Any, template: core_pb2.PodTemplateSpec, number: int,
                 collision_count: int | None) -> apps_pb2.ControllerRevision:
    """The revision recording `template` for `owner`, with the owner's change-cause annotation."""
    h = template_hash(template, collision_count)
    rev = apps_pb2.ControllerRevision(metadata={"name": f"{owner.metadata.name}-{h}",
                                                "namespace": owner.metadata.namespace}, revision=number)
    rev.metadata.labels.update(template.metadata.labels)
    rev.metadata.labels[REVISION_HASH_LABEL] = h
    cause = owner.metadata.annotations.get(CHANGE_CAUSE)
    if cause:
        rev.metadata.annotations[CHANGE_CAUSE] = cause
    rev.metadata.owner_references.add().CopyFrom(owners.make_controller_ref(owner))
    rev.data.spec.template.CopyFrom(template)
    return rev


def plan_truncate(old: Sequence[apps_pb2.ControllerRevision], live: set[str],
                  limit: int) -> list[apps_pb2.ControllerRevision]:
    """The oldest revisions no live pod uses, beyond `limit` of them."""
    unused = [r for r in by_revision(old) if r.metadata.name not in live
              and r.metadata.labels.get(REVISION_HASH_LABEL, "") not in live]
    return unused[:max(0, len(unused) - limit)]


async def sync_current(client: Client, owner: Any, template: core_pb2.PodTemplateSpec,
                       revisions: Sequence[apps_pb2.ControllerRevision], collision_count: int | None,
                       ) -> tuple[apps_pb2.ControllerRevision, list[apps_pb2.ControllerRevision]]:
    """The revision for the owner's current template (made or renumbered as needed), and the others.

    Raises CollisionError when a revision of the hashed name records another template.
    """
    same = [r for r in revisions if matches(r, template)]
    top = max_revision(revisions)
    if same:
        keep = by_revision(same)[-1]
        for dup in same:
            if dup is not keep:
                try:
                    await client.delete("controllerrevisions", dup.metadata.name, dup.metadata.namespace,
                                        uid=dup.metadata.uid)
                except (NotFoundError, ConflictError):
                    pass
        if keep.revision < top:
            renumbered = apps_pb2.ControllerRevision()
            renumbered.CopyFrom(keep)
            renumbered.revision = top + 1
            keep = await client.update(renumbered)
        return keep, [r for r in revisions if not matches(r, template)]
    rev = new_revision(owner, template, top + 1, collision_count)
    try:
        created = await client.create(rev)
    except AlreadyExistsError:
        existing = await client.get("controllerrevisions", rev.metadata.name, rev.metadata.namespace)
        if owners.controller_uid(existing) == owner.metadata.uid and matches(existing, template):
            created = existing
        else:
            raise CollisionError(rev.metadata.name) from None
    return created, list(revisions)
