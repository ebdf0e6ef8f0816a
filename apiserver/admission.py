"""Admission: an ordered chain of plugins every create passes, around the kind's own rules.

The order of a request, as in Kubernetes: authentication (server.py) →
authorization → mutating admission (`admit`) → the kind's defaults and
validation (rules/) → validating admission (`validate`) → storage. A plugin
names the kinds it cares for; the chain gives each kind only its plugins, so
a kind with none pays nothing. Authorization, Pod Security, NodeRestriction
and the like slot in here as plugins, in the order they are listed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from google.protobuf.message import Message

from api import kinds, volumes
from api.errors import ForbiddenError, NotFoundError

CREATE = "CREATE"


@dataclass(frozen=True)
class Attributes:
    """What a plugin sees of one request."""

    operation: str  # CREATE
    kind: kinds.Kind
    obj: Message  # the object to write; mutating plugins change it in place
    strategy: Any  # the kind's rules (apiserver.rules.Strategy)


class Plugin(Protocol):
    name: ClassVar[str]
    kinds: ClassVar[frozenset[str] | None]  # None: every kind
    operations: ClassVar[frozenset[str]]

    async def admit(self, a: Attributes) -> None:
        """Mutating phase: before the kind's defaults and validation."""

    async def validate(self, a: Attributes) -> None:
        """Validating phase: after them, before storage."""


class Chain:
    """The plugins, in order, pre-sorted by kind and operation."""

    def __init__(self, plugins: Sequence[Plugin]) -> None:
        self.plugins = list(plugins)
        self._for: dict[tuple[str, str], list[Plugin]] = {}

    def _plugins(self, a: Attributes) -> list[Plugin]:
        key = (a.kind.kind, a.operation)
        found = self._for.get(key)
        if found is None:
            found = self._for[key] = [p for p in self.plugins if a.operation in p.operations
                                      and (p.kinds is None or a.kind.kind in p.kinds)]
        return found

    async def admit(self, a: Attributes) -> None:
        for p in self._plugins(a):
            await p.admit(a)

    async def validate(self, a: Attributes) -> None:
        for p in self._plugins(a):
            await p.validate(a)


# ---------------------------------------------------------------- plugins

PRIORITY_CLASSES = {"system-cluster-critical": 2000000000, "system-node-critical": 2000001000}


class Priority:
    """Pods naming a priority class get its value; unknown classes are refused (Kubernetes' Priority)."""

    name = "Priority"
    kinds: ClassVar[frozenset[str] | None] = frozenset({"Pod"})
    operations = frozenset({CREATE})

    async def admit(self, a: Attributes) -> None:
        pod: Any = a.obj
        cls = pod.spec.priority_class_name
        if cls and cls not in PRIORITY_CLASSES:
            # Templates may name anything, pods may not.
            raise ForbiddenError(f'pods "{pod.metadata.name or pod.metadata.generate_name}" is forbidden: no '
                                 f"PriorityClass with name {cls} was found (known: {', '.join(PRIORITY_CLASSES)})")
        if cls in PRIORITY_CLASSES and not pod.spec.HasField("priority"):
            pod.spec.priority = PRIORITY_CLASSES[cls]

    async def validate(self, a: Attributes) -> None:
        pass


class NamespaceLifecycle:
    """Namespaced objects go only into a namespace that exists and is not being deleted."""

    name = "NamespaceLifecycle"
    kinds: ClassVar[frozenset[str] | None] = None
    operations = frozenset({CREATE})

    def __init__(self, cache: Any, written: Callable[[str], int]) -> None:
        self.cache = cache
        self.written = written  # the newest revision at which this server wrote a resource
        self.namespaces = kinds.lookup("namespaces")

    async def admit(self, a: Attributes) -> None:
        pass

    async def validate(self, a: Attributes) -> None:
        if not a.kind.namespaced:
            return
        namespace = a.obj.metadata.namespace  # type: ignore[attr-defined]
        # Only this server's own namespace writes must be visible here (create a namespace, then use
        # it); waiting for all of its writes would make every create wait for the watch cache.
        await self.cache.wait_for(self.written(self.namespaces.resource))
        ns = self.cache.get(self.namespaces, "", namespace)
        if ns is None:
            raise NotFoundError(f'namespaces "{namespace}" not found')
        if ns.obj.metadata.deletion_timestamp.seconds and not a.strategy.create_in_terminating_namespace:
            raise ForbiddenError(f"unable to create new content in namespace {namespace} because it is being "
                                 f"terminated")


class DefaultStorageClass:
    """A claim that names no storage class gets the default one, if there is one (Kubernetes' DefaultStorageClass)."""

    name = "DefaultStorageClass"
    kinds: ClassVar[frozenset[str] | None] = frozenset({"PersistentVolumeClaim"})
    operations = frozenset({CREATE})

    def __init__(self, cache: Any, written: Callable[[str], int]) -> None:
        self.cache = cache
        self.written = written
        self.classes = kinds.lookup("storageclasses")

    async def admit(self, a: Attributes) -> None:
        pvc: Any = a.obj
        if pvc.spec.HasField("storage_class_name"):
            return  # "" asks for no class: only volumes without one
        await self.cache.wait_for(self.written(self.classes.resource))
        chosen = volumes.default_class(e.obj for e in self.cache.store(self.classes).objects.values())
        if chosen is not None:
            pvc.spec.storage_class_name = chosen.metadata.name

    async def validate(self, a: Attributes) -> None:
        pass
