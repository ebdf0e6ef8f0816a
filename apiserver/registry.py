"""The generic verbs over every kind: create, get, list, update, delete, bind, scale.

Reads come from the watch cache once it has applied every write this server
made, so a client reads its own writes. Every write is a compare-and-swap on
the object's revision in etcd; unconditional updates retry on conflict.
Validation and defaulting run before anything is written, so a refused
request leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import random
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from api import defaults, kinds, labels, validation
from api.errors import (
    AlreadyExistsError,
    ConflictError,
    FieldError,
    ForbiddenError,
    InvalidError,
    NotFoundError,
    TimeoutError_,
    UnsupportedError,
)
from api.pb import api_pb2, core_pb2
from apiserver import allocator
from apiserver.cache import Entry, Filter, ListResult, WatchCache, Watcher, object_key
from apiserver.storage.interface import (
    Create,
    Delete,
    KeyExistsError,
    KeyNotFoundError,
    Op,
    RevisionMismatchError,
    Storage,
    Update,
)

log = structlog.get_logger(component="apiserver")

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
PRIORITY_CLASSES = {"system-cluster-critical": 2000000000, "system-node-critical": 2000001000}
# Events expire, as in Kubernetes, so they never fill etcd.
EVENT_TTL = 3600
_NAME_SUFFIX = "bcdfghjklmnpqrstvwxz2456789"
_RETRIES = 32
_NAMESPACES = "/registry/namespaces/"


@dataclass
class Config:
    service_cidr: str = "10.96.0.0/16"
    node_port_range: str = "30000-32767"
    lb_pool: str = ""
    toleration_seconds: int = defaults.DEFAULT_TOLERATION_SECONDS


def _now() -> Timestamp:
    ts = Timestamp()
    ts.GetCurrentTime()
    return ts


def _copy(obj: Message) -> Message:
    new = type(obj)()
    new.CopyFrom(obj)
    return new


def _conflict(kind: kinds.Kind, name: str) -> ConflictError:
    return ConflictError(f'Operation cannot be fulfilled on {kind.resource} "{name}": the object has been modified; '
                         f"please apply your changes to the latest version and try again")


def _not_found(kind: kinds.Kind, name: str) -> NotFoundError:
    return NotFoundError(f'{kind.resource} "{name}" not found')


@dataclass
class _Allocations:
    ips: set[str] = field(default_factory=set)
    ports: set[int] = field(default_factory=set)
    lb: set[str] = field(default_factory=set)


class Registry:
    def __init__(self, storage: Storage, cache: WatchCache, config: Config | None = None) -> None:
        self.storage = storage
        self.cache = cache
        self.config = config or Config()
        self.ranges = allocator.Ranges.parse(self.config.service_cidr, self.config.node_port_range,
                                             self.config.lb_pool)
        self.last_rev = 0
        self.last_ns_rev = 0  # the newest revision at which this server wrote a namespace
        self._rng = random.Random()
        self._inflight = _Allocations()
        self._event_lease: tuple[int, float] = (0, 0.0)

    # ------------------------------------------------------------ helpers

    async def _commit(self, ops: list[Op]) -> int:
        rev = await self.storage.commit(ops)
        if rev > self.last_rev:
            self.last_rev = rev
        if any(op.key.startswith(_NAMESPACES) for op in ops):
            self.last_ns_rev = max(self.last_ns_rev, rev)
        return rev

    async def sync(self) -> None:
        """Wait until the cache holds every write this server made."""
        await self.cache.wait_for(self.last_rev)

    async def current(self, kind: kinds.Kind, namespace: str, name: str) -> Entry:
        await self.sync()
        entry = self.cache.get(kind, namespace, name)
        if entry is None:
            raise _not_found(kind, name)
        return entry

    def _namespace(self, kind: kinds.Kind, namespace: str) -> str:
        if not kind.namespaced:
            return ""
        return namespace or "default"

    async def ensure_namespaces(self) -> None:
        for name in SYSTEM_NAMESPACES:
            ns = core_pb2.Namespace(metadata={"name": name})
            try:
                await self.create(kinds.wrap(ns))
            except AlreadyExistsError:
                pass

    # ------------------------------------------------------------ reads

    async def get(self, resource: str, namespace: str, name: str) -> bytes:
        kind = kinds.lookup(resource)
        return (await self.current(kind, self._namespace(kind, namespace), name)).item

    def _filter(self, kind: kinds.Kind, namespace: str, label_selector: str, field_selector: str) -> Filter:
        return Filter(
            namespace=namespace if kind.namespaced else "",
            label=labels.parse(label_selector) if label_selector else labels.EVERYTHING,
            fields=labels.parse_fields(field_selector, labels.supported_fields(kind.kind)) if field_selector else (),
        )

    async def list(self, req: api_pb2.ListRequest) -> ListResult:
        kind = kinds.lookup(req.resource)
        flt = self._filter(kind, req.namespace, req.label_selector, req.field_selector)
        await self.sync()
        return self.cache.list(kind, flt, limit=max(0, req.limit), continue_token=req.__getattribute__("continue"))

    async def watch(self, req: api_pb2.WatchRequest) -> Watcher:
        kind = kinds.lookup(req.resource)
        flt = self._filter(kind, req.namespace, req.label_selector, req.field_selector)
        since = 0
        if req.resource_version not in ("", "0"):
            try:
                since = int(req.resource_version)
            except ValueError:
                raise InvalidError([FieldError("resourceVersion", "Invalid value", "must be a number",
                                               req.resource_version)]) from None
            await self.cache.wait_for(since)
        else:
            await self.sync()
        return self.cache.watch(kind, flt, since=since, bookmarks=req.allow_bookmarks)

    # ------------------------------------------------------------ create

    def _prepare_new(self, obj: Message, kind: kinds.Kind) -> None:
        meta = obj.metadata  # type: ignore[attr-defined]
        meta.namespace = self._namespace(kind, meta.namespace)
        if not meta.name and meta.generate_name:
            # As Kubernetes: the prefix is cut so that prefix + 5 random characters fit 63.
            meta.name = meta.generate_name[:58] + "".join(secrets.choice(_NAME_SUFFIX) for _ in range(5))
        meta.uid = str(uuid.uuid4())
        meta.creation_timestamp.CopyFrom(_now())
        meta.resource_version = ""
        meta.generation = 1
        meta.ClearField("deletion_timestamp")
        meta.ClearField("deletion_grace_period_seconds")
        meta.ClearField("managed_fields")
        meta.self_link = ""
        obj.api_version = kind.api_version  # type: ignore[attr-defined]
        obj.kind = kind.kind  # type: ignore[attr-defined]
        if kind.kind == "Pod":
            self._admit_pod(obj)  # type: ignore[arg-type]
        elif kind.kind == "Namespace" and not obj.spec.finalizers:  # type: ignore[attr-defined]
            # On create only, as Kubernetes' namespace strategy does: an update may empty the list.
            obj.spec.finalizers.append("kubernetes")  # type: ignore[attr-defined]
        defaults.apply(obj, toleration_seconds=self.config.toleration_seconds)

    def _admit_pod(self, pod: core_pb2.Pod) -> None:
        cls = pod.spec.priority_class_name
        if cls and cls not in PRIORITY_CLASSES:
            # As Kubernetes' Priority admission: templates may name anything, pods may not.
            raise ForbiddenError(f'pods "{pod.metadata.name or pod.metadata.generate_name}" is forbidden: no '
                                 f"PriorityClass with name {cls} was found (known: {', '.join(PRIORITY_CLASSES)})")
        if cls in PRIORITY_CLASSES and not pod.spec.HasField("priority"):
            pod.spec.priority = PRIORITY_CLASSES[cls]
        if pod.spec.node_name:
            # Created already bound (as a static assignment): the scheduler is bypassed.
            pod.status.conditions.add(type="PodScheduled", status="True", last_transition_time=_now())

    async def _check_namespace(self, kind: kinds.Kind, namespace: str) -> None:
        if not kind.namespaced:
            return
        # Only this server's own namespace writes must be visible here (create a namespace, then use
        # it); waiting for all of its writes would make every create wait for the watch cache.
        await self.cache.wait_for(self.last_ns_rev)
        ns = self.cache.get(kinds.lookup("Namespace"), "", namespace)
        if ns is None:
            raise NotFoundError(f'namespaces "{namespace}" not found')
        if ns.obj.metadata.deletion_timestamp.seconds and kind.kind != "Event":  # type: ignore[attr-defined]
            raise ForbiddenError(f"unable to create new content in namespace {namespace} because it is being "
                                 f"terminated")

    async def create(self, envelope: api_pb2.Object, *, dry_run: bool = False) -> bytes:
        kind = kinds.kind_of_envelope(envelope)
        obj = kinds.unwrap(envelope)
        self._prepare_new(obj, kind)
        errs = validation.validate(obj)
        if errs:
            raise InvalidError(errs, prefix=f'{kind.kind} "{obj.metadata.name}" is invalid: ')  # type: ignore[attr-defined]
        meta = obj.metadata  # type: ignore[attr-defined]
        await self._check_namespace(kind, meta.namespace)
        lease = 0
        if kind.kind == "Event":
            lease = await self._event_lease_id()
        key = object_key(kind, meta.namespace, meta.name)
        is_service = kind.kind == "Service"
        if is_service:
            await self.sync()  # allocation picks from the cache: it must hold this server's Services
        requested = allocator.claims(obj) if is_service else set()  # type: ignore[arg-type]
        unallocated = _copy(obj)
        for attempt in range(_RETRIES):
            extra = self._allocate(obj, None) if is_service else []  # type: ignore[arg-type]
            if dry_run:
                self._release_inflight(extra)
                return self.cache.store(kind).encode_item(obj)
            value = obj.SerializeToString()
            try:
                rev = await self._commit([Create(key, value, lease), *extra])
            except KeyExistsError as e:
                if e.key == key:
                    raise AlreadyExistsError(f'{kind.resource} "{meta.name}" already exists') from None
                if e.key in requested or attempt + 1 == _RETRIES:
                    raise ConflictError(f"{e.key.removeprefix(allocator.RANGES)} is already allocated; retry") \
                        from None
                # Another apiserver claimed the value this one picked: learn of it, then pick again.
                await self._learn_claim(e)
                obj = _copy(unallocated)
                continue
            finally:
                self._release_inflight(extra)
            return self.cache.store(kind).decode(value, rev).item
        raise AssertionError("unreachable")

    async def _learn_claim(self, e: KeyExistsError) -> None:
        """Wait until the cache holds the Service that made a claim this server did not know of."""
        if e.current is not None:
            with contextlib.suppress(TimeoutError_):
                await self.cache.wait_for(e.current.mod_revision)

    async def _event_lease_id(self) -> int:
        lease_id, expires = self._event_lease
        now = time.monotonic()
        if not lease_id or now > expires:
            # One lease serves every event for ten minutes, so events cost no extra round trip.
            lease_id = await self.storage.grant_lease(EVENT_TTL + 600)
            self._event_lease = (lease_id, now + 600)
        return lease_id

    # ------------------------------------------------------------ services

    def _taken(self) -> _Allocations:
        taken = _Allocations(set(self._inflight.ips), set(self._inflight.ports), set(self._inflight.lb))
        for entry in self.cache.store(kinds.lookup("Service")).objects.values():
            svc: core_pb2.Service = entry.obj  # type: ignore[assignment]
            if svc.spec.cluster_ip and svc.spec.cluster_ip != "None":
                taken.ips.add(svc.spec.cluster_ip)
            taken.ports.update(p.node_port for p in svc.spec.ports if p.node_port)
            taken.lb.update(i.ip for i in svc.status.load_balancer.ingress if i.ip)
        return taken

    def _allocate(self, svc: core_pb2.Service, old: core_pb2.Service | None) -> list[Op]:
        """Fill in addresses and ports; return the range keys to claim and release."""
        errs = allocator.check_requested(svc, self.ranges)
        if errs:
            raise InvalidError(errs, prefix=f'Service "{svc.metadata.name}" is invalid: ')
        taken = self._taken()
        spec = svc.spec
        if spec.type == "ExternalName":
            spec.cluster_ip = ""
            del spec.cluster_ips[:]
        elif not spec.cluster_ip:
            spec.cluster_ip = allocator.pick_ip(self.ranges.service_cidr, taken.ips, self._rng)
        if spec.cluster_ip and not spec.cluster_ips:
            spec.cluster_ips.append(spec.cluster_ip)
        if spec.cluster_ip and spec.cluster_ip != "None" and not spec.ip_families:
            spec.ip_families.append("IPv4")
            spec.ip_family_policy = "SingleStack"
        if allocator.needs_node_ports(svc):
            for p in spec.ports:
                if not p.node_port:
                    p.node_port = allocator.pick_port(*self.ranges.node_ports, taken.ports, self._rng)
                    taken.ports.add(p.node_port)
        else:
            for p in spec.ports:
                p.node_port = 0
        if spec.type == "LoadBalancer" and self.ranges.lb_pool is not None:
            if not svc.status.load_balancer.ingress:
                wanted = spec.load_balancer_ip
                if wanted and wanted in taken.lb:
                    raise InvalidError([FieldError("spec.loadBalancerIP", "Invalid value", "already allocated",
                                                   wanted)])
                ip = wanted or allocator.pick_ip(self.ranges.lb_pool, taken.lb, self._rng)
                svc.status.load_balancer.ClearField("ingress")
                svc.status.load_balancer.ingress.add(ip=ip)
        elif spec.type != "LoadBalancer":
            svc.status.ClearField("load_balancer")
        new_claims = allocator.claims(svc)
        old_claims = allocator.claims(old) if old is not None else set()
        for key in new_claims - old_claims:
            self._note_inflight(key, add=True)
        owner = f"{svc.metadata.namespace}/{svc.metadata.name}".encode()
        ops: list[Op] = [Create(k, owner) for k in sorted(new_claims - old_claims)]
        ops += [Delete(k) for k in sorted(old_claims - new_claims)]
        return ops

    def _note_inflight(self, key: str, *, add: bool) -> None:
        tail = key.removeprefix(allocator.RANGES)
        section, _, value = tail.partition("/")
        target: set = {"serviceips": self._inflight.ips, "nodeports": self._inflight.ports,
                       "lbips": self._inflight.lb}[section]
        item: object = int(value.rsplit("/", 1)[-1]) if section == "nodeports" else value
        if add:
            target.add(item)
        else:
            target.discard(item)

    def _release_inflight(self, ops: list[Op]) -> None:
        for op in ops:
            if isinstance(op, Create):
                self._note_inflight(op.key, add=False)

    # ------------------------------------------------------------ update

    async def update(self, envelope: api_pb2.Object, *, status: bool = False, dry_run: bool = False) -> bytes:
        kind = kinds.kind_of_envelope(envelope)
        req = kinds.unwrap(envelope)
        meta = req.metadata  # type: ignore[attr-defined]
        namespace = self._namespace(kind, meta.namespace)
        if status and not kind.has_status:
            raise UnsupportedError(f"{kind.resource} have no status subresource")
        want_rev = _revision(meta.resource_version, "metadata.resourceVersion")

        def merge(current: Message) -> Message:
            if status:
                new = _copy(current)
                _copy_status(new, req)
                return new
            new = _copy(req)
            new.metadata.namespace = namespace  # type: ignore[attr-defined]
            if kind.has_status:
                _copy_status(new, current)
            return new

        return await self._update_loop(kind, namespace, meta.name, merge, want_rev=want_rev, dry_run=dry_run,
                                       status=status)

    async def _update_loop(self, kind: kinds.Kind, namespace: str, name: str,
                           mutate: Callable[[Message], Message | None], *, want_rev: int = 0,
                           dry_run: bool = False, status: bool = False) -> bytes:
        """Read, change, compare-and-swap; retry on conflict unless the caller pinned a revision."""
        if want_rev:
            await self.cache.wait_for(want_rev)
        for _ in range(_RETRIES):
            entry = await self.current(kind, namespace, name)
            if want_rev and want_rev != entry.rev:
                raise _conflict(kind, name)
            new = mutate(entry.obj)
            if new is None:
                return entry.item
            self._keep_server_fields(new, entry.obj, kind)
            errs = validation.validate_update(new, entry.obj)
            if errs:
                raise InvalidError(errs, prefix=f'{kind.kind} "{name}" is invalid: ')
            extra: list[Op] = []
            requested: set[str] = set()
            if kind.kind == "Service" and not status:
                requested = allocator.claims(new)  # type: ignore[arg-type]
                extra = self._allocate(new, entry.obj)  # type: ignore[arg-type]
            if self._should_remove(new, kind):
                self._release_inflight(extra)
                try:
                    return await self._remove(kind, entry, new)
                except RevisionMismatchError as e:
                    await self._lost_race(e, kind, name, pinned=bool(want_rev))
                    continue
            if new == entry.obj:
                self._release_inflight(extra)
                return entry.item  # a no-op update does not change the resourceVersion
            if dry_run:
                self._release_inflight(extra)
                return self.cache.store(kind).encode_item(new)
            new.metadata.resource_version = ""  # type: ignore[attr-defined]
            value = new.SerializeToString()
            try:
                rev = await self._commit([Update(object_key(kind, namespace, name), value, entry.rev), *extra])
            except RevisionMismatchError as e:
                await self._lost_race(e, kind, name, pinned=bool(want_rev))
                continue
            except KeyNotFoundError:
                raise _not_found(kind, name) from None
            except KeyExistsError as e:
                if e.key in requested:
                    raise ConflictError(f"{e.key.removeprefix(allocator.RANGES)} is already allocated; retry") \
                        from None
                await self._learn_claim(e)  # a value this server picked was taken elsewhere: pick again
                continue
            finally:
                self._release_inflight(extra)
            return self.cache.store(kind).decode(value, rev).item
        raise _conflict(kind, name)

    async def _lost_race(self, e: RevisionMismatchError, kind: kinds.Kind, name: str, *, pinned: bool) -> None:
        """Another write came first: a pinned revision is a conflict, else wait for the cache to see it."""
        if pinned:
            raise _conflict(kind, name) from None
        if e.current is not None:
            await self.cache.wait_for(e.current.mod_revision)

    def _keep_server_fields(self, new: Message, old: Message, kind: kinds.Kind) -> None:
        nm, om = new.metadata, old.metadata  # type: ignore[attr-defined]
        nm.uid = om.uid
        nm.creation_timestamp.CopyFrom(om.creation_timestamp)
        if om.HasField("deletion_timestamp"):
            nm.deletion_timestamp.CopyFrom(om.deletion_timestamp)
            if om.HasField("deletion_grace_period_seconds"):
                nm.deletion_grace_period_seconds = om.deletion_grace_period_seconds
        else:
            nm.ClearField("deletion_timestamp")
            nm.ClearField("deletion_grace_period_seconds")
        nm.resource_version = om.resource_version  # equal objects compare equal; cleared before storing
        nm.self_link = ""
        nm.ClearField("managed_fields")
        if not nm.name:
            nm.name = om.name
        new.api_version = kind.api_version  # type: ignore[attr-defined]
        new.kind = kind.kind  # type: ignore[attr-defined]
        if kind.kind == "Pod":
            defaults.pod_spec(new.spec, toleration_seconds=None)  # type: ignore[attr-defined]
        else:
            defaults.apply(new, toleration_seconds=None)
        if hasattr(new, "spec") and kind.kind not in ("Lease",):
            changed = new.spec != old.spec  # type: ignore[attr-defined]
            nm.generation = om.generation + 1 if changed else om.generation
        else:
            nm.generation = om.generation

    def _should_remove(self, obj: Message, kind: kinds.Kind) -> bool:
        """An object being deleted goes once its last finalizer is gone (bound pods wait for their kubelet)."""
        meta = obj.metadata  # type: ignore[attr-defined]
        if not meta.HasField("deletion_timestamp") or meta.finalizers:
            return False
        if kind.kind == "Namespace":
            return not obj.spec.finalizers  # type: ignore[attr-defined]
        return not (kind.kind == "Pod" and obj.spec.node_name)  # type: ignore[attr-defined]

    # ------------------------------------------------------------ delete

    async def delete(self, req: api_pb2.DeleteRequest) -> bytes:
        kind = kinds.lookup(req.resource)
        namespace = self._namespace(kind, req.namespace)
        policy = req.propagation_policy or "Background"
        if policy not in ("Background", "Foreground", "Orphan"):
            raise InvalidError([FieldError("propagationPolicy", "Unsupported value",
                                           'supported values: "Background", "Foreground", "Orphan"', policy)])
        for _ in range(_RETRIES):
            entry = await self.current(kind, namespace, req.name)
            obj = entry.obj
            meta = obj.metadata  # type: ignore[attr-defined]
            pre = req.preconditions
            if pre.uid and pre.uid != meta.uid:
                raise ConflictError(f"Precondition failed: UID in precondition: {pre.uid}, UID in object meta: "
                                    f"{meta.uid}")
            if pre.resource_version and pre.resource_version != meta.resource_version:
                raise ConflictError(f"Precondition failed: ResourceVersion in precondition: {pre.resource_version}, "
                                    f"ResourceVersion in object meta: {meta.resource_version}")
            new = self._plan_delete(kind, obj, req, policy)
            try:
                if new is None:
                    return await self._remove(kind, entry, obj)
                if new == obj:
                    return entry.item
                new.metadata.resource_version = ""  # type: ignore[attr-defined]
                value = new.SerializeToString()
                rev = await self._commit([Update(object_key(kind, namespace, req.name), value, entry.rev)])
                return self.cache.store(kind).decode(value, rev).item
            except RevisionMismatchError as e:
                if e.current is not None:
                    await self.cache.wait_for(e.current.mod_revision)
                continue
            except KeyNotFoundError:
                raise _not_found(kind, req.name) from None
        raise _conflict(kind, req.name)

    def _plan_delete(self, kind: kinds.Kind, obj: Message, req: api_pb2.DeleteRequest,
                     policy: str) -> Message | None:
        """The object marked for deletion, or None to remove it now."""
        meta = obj.metadata  # type: ignore[attr-defined]
        finalizers = list(meta.finalizers)
        if policy == "Orphan" and "orphan" not in finalizers and kind.kind in ("ReplicaSet", "Deployment"):
            finalizers.append("orphan")
        if policy == "Foreground" and "foregroundDeletion" not in finalizers:
            finalizers.append("foregroundDeletion")
        if kind.kind == "Namespace":
            if meta.name in SYSTEM_NAMESPACES[:3]:
                raise ForbiddenError(f'namespace "{meta.name}" is a system namespace and cannot be deleted')
            if not obj.spec.finalizers and not finalizers:  # type: ignore[attr-defined]
                return None
            new = _copy(obj)
            if not meta.HasField("deletion_timestamp"):
                new.metadata.deletion_timestamp.CopyFrom(_now())  # type: ignore[attr-defined]
                new.metadata.deletion_grace_period_seconds = 0  # type: ignore[attr-defined]
            new.status.phase = "Terminating"  # type: ignore[attr-defined]
            return new
        grace = 0
        graceful = False
        if kind.kind == "Pod":
            pod: core_pb2.Pod = obj  # type: ignore[assignment]
            grace = req.grace_period_seconds if req.HasField("grace_period_seconds") else \
                pod.spec.termination_grace_period_seconds
            # A bound pod is stopped by its kubelet, which then removes it.
            graceful = bool(pod.spec.node_name) and grace > 0
        if not finalizers and not graceful:
            return None
        if meta.HasField("deletion_timestamp"):
            if kind.kind == "Pod" and req.HasField("grace_period_seconds"):
                if grace == 0 and not meta.finalizers:
                    return None
                if grace < meta.deletion_grace_period_seconds:
                    new = _copy(obj)
                    new.metadata.deletion_grace_period_seconds = grace  # type: ignore[attr-defined]
                    deadline = _now()
                    deadline.seconds += grace
                    new.metadata.deletion_timestamp.CopyFrom(deadline)  # type: ignore[attr-defined]
                    return new
            if list(meta.finalizers) == finalizers:
                return obj
        new = _copy(obj)
        nm = new.metadata  # type: ignore[attr-defined]
        if not meta.HasField("deletion_timestamp"):
            deadline = _now()
            deadline.seconds += grace
            nm.deletion_timestamp.CopyFrom(deadline)
            nm.deletion_grace_period_seconds = grace
        del nm.finalizers[:]
        nm.finalizers.extend(finalizers)
        return new

    async def _remove(self, kind: kinds.Kind, entry: Entry, final: Message) -> bytes:
        meta = final.metadata  # type: ignore[attr-defined]
        ops: list[Op] = [Delete(object_key(kind, meta.namespace, meta.name), entry.rev)]
        if kind.kind == "Service":
            ops += [Delete(k) for k in sorted(allocator.claims(entry.obj))]  # type: ignore[arg-type]
        try:
            await self._commit(ops)
        except KeyNotFoundError as e:
            if e.key == ops[0].key:
                raise _not_found(kind, meta.name) from None
            # A claim already gone: remove the object alone.
            await self._commit(ops[:1])
        return self.cache.store(kind).encode_item(final)

    # ------------------------------------------------------------ subresources

    async def bind(self, req: api_pb2.BindRequest) -> bytes:
        kind = kinds.lookup("Pod")
        if not req.node_name:
            raise InvalidError([FieldError("target.name", "Required value")])
        namespace = req.namespace or "default"

        def assign(current: Message) -> Message:
            pod: core_pb2.Pod = current  # type: ignore[assignment]
            if req.uid and pod.metadata.uid != req.uid:
                raise ConflictError(f'pod "{req.name}" was recreated (uid {pod.metadata.uid}, binding for {req.uid})')
            if pod.spec.node_name:
                raise ConflictError(f'pod {req.name} is already assigned to node "{pod.spec.node_name}"')
            if pod.metadata.HasField("deletion_timestamp"):
                raise ConflictError(f'pod {req.name} is being deleted, cannot be assigned to a host')
            new = _copy(pod)
            new.spec.node_name = req.node_name
            new.status.nominated_node_name = ""
            _set_condition(new.status.conditions, "PodScheduled", "True", "", "")
            return new

        # Binding changes spec.nodeName, which a plain update may not: bypass the pod update rule.
        return await self._bind_loop(kind, namespace, req.name, assign)

    async def _bind_loop(self, kind: kinds.Kind, namespace: str, name: str,
                         mutate: Callable[[Message], Message]) -> bytes:
        key = object_key(kind, namespace, name)
        for _ in range(_RETRIES):
            entry = await self.current(kind, namespace, name)
            new = mutate(entry.obj)
            new.metadata.resource_version = ""  # type: ignore[attr-defined]
            value = new.SerializeToString()
            try:
                rev = await self._commit([Update(key, value, entry.rev)])
            except RevisionMismatchError as e:
                if e.current is not None:
                    await self.cache.wait_for(e.current.mod_revision)
                continue
            except KeyNotFoundError:
                raise _not_found(kind, name) from None
            return self.cache.store(kind).decode(value, rev).item
        raise _conflict(kind, name)

    async def scale(self, req: api_pb2.ScaleRequest) -> bytes:
        kind = kinds.lookup(req.resource)
        if kind.kind not in ("Deployment", "ReplicaSet"):
            raise UnsupportedError(f"{kind.resource} cannot be scaled; only deployments and replicasets")
        if req.replicas < 0:
            raise InvalidError([FieldError("spec.replicas", "Invalid value", "must be greater than or equal to 0",
                                           req.replicas)])

        def set_replicas(current: Message) -> Message | None:
            if current.spec.replicas == req.replicas:  # type: ignore[attr-defined]
                return None
            new = _copy(current)
            new.spec.replicas = req.replicas  # type: ignore[attr-defined]
            return new

        return await self._update_loop(kind, self._namespace(kind, req.namespace), req.name, set_replicas)

    async def update_pod_status(self, namespace: str, name: str, uid: str, status: core_pb2.PodStatus) -> int:
        """Replace a pod's status (the kubelet's stream); returns the new revision (0 if unchanged)."""
        kind = kinds.lookup("Pod")

        def replace(current: Message) -> Message | None:
            if uid and current.metadata.uid != uid:  # type: ignore[attr-defined]
                raise NotFoundError(f'pod "{name}" with uid {uid} not found')
            if current.status == status:  # type: ignore[attr-defined]
                return None
            new = _copy(current)
            new.status.CopyFrom(status)  # type: ignore[attr-defined]
            if not new.status.nominated_node_name:  # type: ignore[attr-defined]
                new.status.nominated_node_name = current.status.nominated_node_name  # type: ignore[attr-defined]
            return new

        before = self.last_rev
        await self._update_loop(kind, namespace, name, replace, status=True)
        return self.last_rev if self.last_rev != before else 0


def _revision(value: str, path: str) -> int:
    """A resourceVersion a client sent ("" is none): an etcd revision, a whole number."""
    if not value:
        return 0
    if not value.isascii() or not value.isdigit():
        raise InvalidError([FieldError(path, "Invalid value", "must be a number", value)])
    return int(value)


def _copy_status(target: Message, source: Message) -> None:
    """Give `target` the status of `source`, unset if it is unset there.

    CopyFrom would mark an unset status as set (`status: {}`), so an update that changes
    nothing would still differ from the stored object and be written.
    """
    if source.HasField("status"):
        target.status.CopyFrom(source.status)  # type: ignore[attr-defined]
    else:
        target.ClearField("status")


def _set_condition(conditions, type_: str, status: str, reason: str, message: str) -> None:  # type: ignore[no-untyped-def]
    for c in conditions:
        if c.type == type_:
            if c.status != status:
                c.last_transition_time.CopyFrom(_now())
            c.status, c.reason, c.message = status, reason, message
            return
    conditions.add(type=type_, status=status, reason=reason, message=message, last_transition_time=_now())
