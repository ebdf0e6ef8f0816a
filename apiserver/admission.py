"""Admission: an ordered chain of plugins every create and update passes, around the kind's own rules.

The order of a request, as in Kubernetes: authentication (server.py) →
authorization → mutating admission (`admit`) → the kind's defaults and
validation (rules/) → validating admission (`validate`) → storage. A plugin
names the kinds it cares for; the chain gives each kind only its plugins, so
a kind with none pays nothing. Authorization, Pod Security, NodeRestriction
and the like slot in here as plugins, in the order they are listed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from google.protobuf.message import Message

from api import kinds, volumes
from api.errors import ForbiddenError, NotFoundError
from api.pb import core_pb2, networking_pb2, scheduling_pb2
from apiserver.authn import UserInfo

CREATE = "CREATE"
UPDATE = "UPDATE"


@dataclass(frozen=True)
class Attributes:
    """What a plugin sees of one request."""

    operation: str  # CREATE or UPDATE
    kind: kinds.Kind
    obj: Message  # the object to write; mutating plugins change it in place
    strategy: Any  # the kind's rules (apiserver.rules.Strategy)
    old: Message | None = None  # the stored object, on UPDATE
    user: UserInfo | None = None  # who asks (authn.current_user()); None for the server's own writes


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

# Kubernetes' DefaultPriorityWhenNoDefaultClassExists.
DEFAULT_PRIORITY = 0
PREEMPT_LOWER_PRIORITY = "PreemptLowerPriority"
# An unknown class's error names this many of the known ones.
_KNOWN_SHOWN = 20


def default_class(classes: Iterable[scheduling_pb2.PriorityClass]) -> scheduling_pb2.PriorityClass | None:
    """The global default class; if a race left several, the one with the lowest value, as Kubernetes picks."""
    defaults = [c for c in classes if c.global_default]
    return min(defaults, key=lambda c: (c.value, c.metadata.name)) if defaults else None


def admit_pod_priority(pod: core_pb2.Pod, classes: Mapping[str, scheduling_pb2.PriorityClass]) -> None:
    """Set a new pod's priority (and preemptionPolicy) from the class it names, or from the global default class.

    As Kubernetes' Priority admission: an unknown class, or a priority or preemptionPolicy that differs from
    the class's, is forbidden; without a class and without a default the priority is 0.
    """
    who = f'pods "{pod.metadata.name or pod.metadata.generate_name}" is forbidden: '
    name = pod.spec.priority_class_name
    policy: str | None
    if name:
        pc = classes.get(name)
        if pc is None:
            known = sorted(classes)
            shown = ", ".join(known[:_KNOWN_SHOWN]) + (", ..." if len(known) > _KNOWN_SHOWN else "")
            raise ForbiddenError(f"{who}no PriorityClass with name {name} was found (known: {shown})")
        priority = pc.value
        policy = pc.preemption_policy if pc.HasField("preemption_policy") else None
    elif (pc := default_class(classes.values())) is not None:
        pod.spec.priority_class_name = pc.metadata.name
        priority = pc.value
        policy = pc.preemption_policy if pc.HasField("preemption_policy") else None
    else:
        priority, policy = DEFAULT_PRIORITY, PREEMPT_LOWER_PRIORITY
    if pod.spec.HasField("priority") and pod.spec.priority != priority:
        raise ForbiddenError(f"{who}the integer value of priority ({pod.spec.priority}) must not be provided in pod "
                             f"spec; priority admission controller computed {priority} from the given PriorityClass "
                             f"name")
    pod.spec.priority = priority
    if policy is not None:
        if pod.spec.HasField("preemption_policy") and pod.spec.preemption_policy != policy:
            raise ForbiddenError(f"{who}the string value of PreemptionPolicy ({pod.spec.preemption_policy}) must not "
                                 f"be provided in pod spec; priority admission controller computed {policy} from the "
                                 f"given PriorityClass name")
        pod.spec.preemption_policy = policy


def keep_pod_priority(new: core_pb2.Pod, old: core_pb2.Pod) -> None:
    """An update that leaves out the priority or preemptionPolicy admission set keeps the stored ones."""
    if not new.spec.HasField("priority") and old.spec.HasField("priority"):
        new.spec.priority = old.spec.priority
    if not new.spec.HasField("preemption_policy") and old.spec.HasField("preemption_policy"):
        new.spec.preemption_policy = old.spec.preemption_policy


def check_one_default(pc: scheduling_pb2.PriorityClass, classes: Iterable[scheduling_pb2.PriorityClass],
                      operation: str) -> None:
    """A class may become the global default only while no other class is."""
    if not pc.global_default:
        return
    current = default_class(classes)
    if current is not None and (operation == CREATE or current.metadata.name != pc.metadata.name):
        raise ForbiddenError(f'priorityclasses.scheduling.k8s.io "{pc.metadata.name}" is forbidden: PriorityClass '
                             f"{current.metadata.name} is already marked as default. Only one default can exist")


class _StoredClasses:
    """The priority classes in the watch cache, once it holds this server's own writes of them."""

    def __init__(self, cache: Any, written: Callable[[str], int]) -> None:
        self.cache = cache
        self.written = written
        self.kind = kinds.lookup("priorityclasses")

    async def get(self) -> dict[str, scheduling_pb2.PriorityClass]:
        await self.cache.wait_for(self.written(self.kind.resource))
        return {e.obj.metadata.name: e.obj for e in self.cache.store(self.kind).objects.values()}


class Priority:
    """Pods get the priority of the PriorityClass they name, or of the global default (Kubernetes' Priority)."""

    name = "Priority"
    kinds: ClassVar[frozenset[str] | None] = frozenset({"Pod"})
    operations = frozenset({CREATE, UPDATE})

    def __init__(self, cache: Any, written: Callable[[str], int]) -> None:
        self.classes = _StoredClasses(cache, written)

    async def admit(self, a: Attributes) -> None:
        if a.operation == UPDATE:
            keep_pod_priority(a.obj, a.old)  # type: ignore[arg-type]
            return
        admit_pod_priority(a.obj, await self.classes.get())  # type: ignore[arg-type]

    async def validate(self, a: Attributes) -> None:
        pass


class PriorityClassDefault:
    """At most one PriorityClass is the global default (the other half of Kubernetes' Priority plugin)."""

    name = "PriorityClassDefault"
    kinds: ClassVar[frozenset[str] | None] = frozenset({"PriorityClass"})
    operations = frozenset({CREATE, UPDATE})

    def __init__(self, cache: Any, written: Callable[[str], int]) -> None:
        self.classes = _StoredClasses(cache, written)

    async def admit(self, a: Attributes) -> None:
        pass

    async def validate(self, a: Attributes) -> None:
        check_one_default(a.obj, (await self.classes.get()).values(), a.operation)  # type: ignore[arg-type]


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


# ---------------------------------------------------------------- ingress classes

INGRESS_CLASS_ANNOTATION = "kubernetes.io/ingress.class"  # the class before ingressClassName existed


def default_ingress_class(classes: Iterable[networking_pb2.IngressClass]) -> networking_pb2.IngressClass | None:
    """The class marked default (the newest one if several are), as Kubernetes' DefaultIngressClass picks it."""
    marked = [c for c in classes if c.metadata.annotations.get("ingressclass.kubernetes.io/is-default-class") == "true"]
    if not marked:
        return None
    return max(marked, key=lambda c: (c.metadata.creation_timestamp.seconds, c.metadata.creation_timestamp.nanos,
                                      c.metadata.name))


class DefaultIngressClass:
    """A new Ingress that names no class gets the default IngressClass (Kubernetes' DefaultIngressClass)."""

    name = "DefaultIngressClass"
    kinds: ClassVar[frozenset[str] | None] = frozenset({"Ingress"})
    operations = frozenset({CREATE})

    def __init__(self, cache: Any, written: Callable[[str], int]) -> None:
        self.cache = cache
        self.written = written
        self.kind = kinds.lookup("ingressclasses")

    async def admit(self, a: Attributes) -> None:
        ing: networking_pb2.Ingress = a.obj  # type: ignore[assignment]
        if ing.spec.HasField("ingress_class_name") or INGRESS_CLASS_ANNOTATION in ing.metadata.annotations:
            return
        await self.cache.wait_for(self.written(self.kind.resource))
        found = default_ingress_class(e.obj for e in self.cache.store(self.kind).objects.values())
        if found is not None:
            ing.spec.ingress_class_name = found.metadata.name

    async def validate(self, a: Attributes) -> None:
        pass


# ---------------------------------------------------------------- service accounts

MIRROR_ANNOTATION = "kubernetes.io/config.mirror"


def resolve_automount(pod: core_pb2.Pod, sa: core_pb2.ServiceAccount) -> bool:
    """Whether the pod gets its token mounted: the pod's say, else its ServiceAccount's, else yes."""
    if pod.spec.HasField("automount_service_account_token"):
        return pod.spec.automount_service_account_token
    if sa.HasField("automount_service_account_token"):
        return sa.automount_service_account_token
    return True


class ServiceAccount:
    """A new pod runs as a ServiceAccount that exists (`default` unless it names one); whether its token is mounted
    is settled here and stored on the pod, so kubelets need not read ServiceAccounts (Kubernetes' ServiceAccount
    admission). Mirror pods run as none."""

    name = "ServiceAccount"
    kinds: ClassVar[frozenset[str] | None] = frozenset({"Pod"})
    operations = frozenset({CREATE, UPDATE})

    def __init__(self, cache: Any, written: Callable[[str], int]) -> None:
        self.cache = cache
        self.written = written
        self.kind = kinds.lookup("serviceaccounts")
        self.namespaces = kinds.lookup("namespaces")

    async def admit(self, a: Attributes) -> None:
        pod: core_pb2.Pod = a.obj  # type: ignore[assignment]
        if a.operation == UPDATE:
            old: core_pb2.Pod = a.old  # type: ignore[assignment]
            if not pod.spec.service_account_name and not pod.spec.service_account:
                pod.spec.service_account_name = old.spec.service_account_name
                pod.spec.service_account = old.spec.service_account
            if not pod.spec.HasField("automount_service_account_token") and \
                    old.spec.HasField("automount_service_account_token"):
                pod.spec.automount_service_account_token = old.spec.automount_service_account_token
            return
        if MIRROR_ANNOTATION in pod.metadata.annotations:
            return
        name = pod.spec.service_account_name or pod.spec.service_account or "default"
        pod.spec.service_account_name = pod.spec.service_account = name
        await self.cache.wait_for(max(self.written(self.kind.resource), self.written(self.namespaces.resource)))
        if self.cache.get(self.namespaces, "", pod.metadata.namespace) is None:
            return  # NamespaceLifecycle refuses it, naming the namespace
        entry = self.cache.get(self.kind, pod.metadata.namespace, name)
        if entry is None:
            raise ForbiddenError(f'pods "{pod.metadata.name}" is forbidden: error looking up service account '
                                 f'{pod.metadata.namespace}/{name}: serviceaccount "{name}" not found')
        pod.spec.automount_service_account_token = resolve_automount(pod, entry.obj)

    async def validate(self, a: Attributes) -> None:
        pass
