"""The generic verbs over every kind: create, get, list, update, update-status, delete, watch, subresources.

It names no kind: what differs between kinds is each kind's strategy
(apiserver/rules/), and what every create and update must pass is the admission chain
(apiserver/admission.py).

Reads come from the watch cache once it has applied every write this server
made, so a client reads its own writes. Every write is a compare-and-swap on
the object's revision in etcd; unconditional updates retry on conflict.
Validation and defaulting run before anything is written, so a refused
request leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import secrets
import time
import uuid
from collections.abc import Callable

import structlog
from google.protobuf.message import Message

from api import kinds, labels, text, timestamps
from api.errors import (
    AlreadyExistsError,
    ConflictError,
    FieldError,
    InvalidError,
    NotFoundError,
    TimeoutError_,
    UnsupportedError,
)
from api.pb import api_pb2
from apiserver import admission, authn, podsecurity, rules, serviceip
from apiserver.authz.noderestriction import NodeRestriction
from apiserver.cache import PREFIX, Entry, Filter, ListResult, WatchCache, Watcher, object_key
from apiserver.rules import Config, Strategy
from apiserver.rules.strategy import copy as _copy
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

__all__ = ["Config", "Registry"]

_NAME_SUFFIX = "bcdfghjklmnpqrstvwxz2456789"
_RETRIES = 32
# One storage lease serves every expiring object written in this long, so expiry costs no extra round trip.
_LEASE_REUSE = 600


def _conflict(kind: kinds.Kind, name: str) -> ConflictError:
    return ConflictError(f'Operation cannot be fulfilled on {kind.resource} "{name}": the object has been modified; '
                         f"please apply your changes to the latest version and try again")


def _not_found(kind: kinds.Kind, name: str) -> NotFoundError:
    return NotFoundError(f'{kind.resource} "{name}" not found')


def _resource_of_key(key: str) -> str:
    return key[len(PREFIX):].partition("/")[0]


Mutation = Callable[[Message], Message | None]
# Which rules an update loop applies (see Registry._update_loop).
_UPDATE, _STATUS, _SUBRESOURCE = "update", "status", "subresource"


class Registry:
    def __init__(self, storage: Storage, cache: WatchCache, config: Config | None = None,
                 plugins: list[admission.Plugin] | None = None) -> None:
        self.storage = storage
        self.cache = cache
        self.config = config or Config()
        self.strategies: dict[str, Strategy] = rules.build(self.config, self)
        self.last_rev = 0
        self._written: dict[str, int] = {}  # per resource, the newest revision at which this server wrote it
        self.admission = admission.Chain(plugins if plugins is not None else [
            admission.Priority(cache, self.written),
            admission.PriorityClassDefault(cache, self.written),
            admission.NamespaceLifecycle(cache, self.written),
            admission.DefaultStorageClass(cache, self.written),
            admission.DefaultIngressClass(cache, self.written),
            admission.ServiceAccount(cache, self.written),
            NodeRestriction(),
            podsecurity.PodSecurity(cache, self.written),
            serviceip.ExternalIPs(self.config.external_ip_cidrs),
        ])
        self._leases: dict[int, tuple[int, float]] = {}  # ttl -> (lease id, reuse until)

    # ------------------------------------------------------------ helpers

    def strategy(self, kind: kinds.Kind) -> Strategy:
        return self.strategies[kind.kind]

    def written(self, resource: str) -> int:
        """The newest revision at which this server wrote an object of `resource` (0: never)."""
        return self._written.get(resource, 0)

    async def _commit(self, ops: list[Op]) -> int:
        rev = await self.storage.commit(ops)
        if rev > self.last_rev:
            self.last_rev = rev
        self.cache.note_written(rev)
        for op in ops:
            resource = _resource_of_key(op.key)
            if rev > self._written.get(resource, 0):  # commits may finish out of revision order
                self._written[resource] = rev
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

    def _prepare_meta(self, obj: Message, kind: kinds.Kind) -> None:
        meta = obj.metadata  # type: ignore[attr-defined]
        meta.namespace = self._namespace(kind, meta.namespace)
        if not meta.name and meta.generate_name:
            # As Kubernetes: the prefix is cut so that prefix + 5 random characters fit 63.
            meta.name = meta.generate_name[:58] + "".join(secrets.choice(_NAME_SUFFIX) for _ in range(5))
        meta.uid = str(uuid.uuid4())
        meta.creation_timestamp.CopyFrom(timestamps.timestamp())
        meta.resource_version = ""
        meta.generation = 1
        meta.ClearField("deletion_timestamp")
        meta.ClearField("deletion_grace_period_seconds")
        meta.ClearField("managed_fields")
        meta.self_link = ""
        obj.api_version = kind.api_version  # type: ignore[attr-defined]
        obj.kind = kind.kind  # type: ignore[attr-defined]

    async def create(self, envelope: api_pb2.Object, *, dry_run: bool = False) -> bytes:
        kind = kinds.kind_of_envelope(envelope)
        strategy = self.strategy(kind)
        obj = kinds.unwrap(envelope)
        self._prepare_meta(obj, kind)
        attrs = admission.Attributes(admission.CREATE, kind, obj, strategy, user=authn.current_user())
        await self.admission.admit(attrs)
        strategy.prepare_for_create(obj)
        errs = strategy.validate(obj)
        if errs:
            raise InvalidError(errs, prefix=f'{kind.kind} "{obj.metadata.name}" is invalid: ')  # type: ignore[attr-defined]
        await self.admission.validate(attrs)
        meta = obj.metadata  # type: ignore[attr-defined]
        lease = await self._lease(strategy.ttl_seconds) if strategy.ttl_seconds else 0
        key = object_key(kind, meta.namespace, meta.name)
        allocates = strategy.allocates
        requested: set[str] = set()
        unallocated = obj
        if allocates:
            await strategy.before_allocate()
            requested = strategy.claims(obj)
            unallocated = _copy(obj)
        for attempt in range(_RETRIES):
            extra = strategy.allocate(obj, None) if allocates else []
            if dry_run:
                strategy.release(extra)
                return self.cache.store(kind).encode_item(obj)
            value = obj.SerializeToString()
            try:
                rev = await self._commit([Create(key, value, lease), *extra])
            except KeyExistsError as e:
                if e.key == key:
                    raise AlreadyExistsError(f'{kind.resource} "{meta.name}" already exists') from None
                if e.key in requested or attempt + 1 == _RETRIES:
                    raise strategy.claim_taken(e.key) from None
                # Another apiserver claimed the value this one picked: learn of it, then pick again.
                await self._learn_claim(e)
                obj = _copy(unallocated)
                continue
            finally:
                if extra:
                    strategy.release(extra)
            return self.cache.store(kind).written_item(value, rev)
        raise AssertionError("unreachable")

    async def _learn_claim(self, e: KeyExistsError) -> None:
        """Wait until the cache holds the object that made a claim this server did not know of."""
        if e.current is not None:
            with contextlib.suppress(TimeoutError_):
                await self.cache.wait_for(e.current.mod_revision)

    async def _lease(self, ttl: int) -> int:
        lease_id, reuse_until = self._leases.get(ttl, (0, 0.0))
        now = time.monotonic()
        if not lease_id or now > reuse_until:
            # One lease serves every object of this TTL for a while; it lives that much longer.
            lease_id = await self.storage.grant_lease(ttl + _LEASE_REUSE)
            self._leases[ttl] = (lease_id, now + _LEASE_REUSE)
        return lease_id

    # ------------------------------------------------------------ update

    async def update(self, envelope: api_pb2.Object, *, status: bool = False, dry_run: bool = False) -> bytes:
        kind = kinds.kind_of_envelope(envelope)
        req = kinds.unwrap(envelope)
        meta = req.metadata  # type: ignore[attr-defined]
        namespace = self._namespace(kind, meta.namespace)
        if status and not kind.has_status:
            raise UnsupportedError(f"{kind.resource} have no status subresource")
        want_rev = _revision(meta.resource_version, "metadata.resourceVersion")

        if status:
            def set_status(current: Message) -> Message:
                new = _copy(current)
                _copy_status(new, req)
                return new

            return await self.update_status(kind, namespace, meta.name, set_status, want_rev=want_rev,
                                            dry_run=dry_run)

        def merge(current: Message) -> Message:
            new = _copy(req)
            new.metadata.namespace = namespace  # type: ignore[attr-defined]
            if kind.has_status:
                _copy_status(new, current)
            return new

        return await self._update_loop(kind, namespace, meta.name, merge, want_rev=want_rev, dry_run=dry_run)

    async def update_status(self, kind: kinds.Kind, namespace: str, name: str, mutate: Mutation, *,
                            want_rev: int = 0, dry_run: bool = False) -> bytes:
        """The status path: the stored spec and metadata with a new status; only the status is checked."""
        return await self._update_loop(kind, namespace, name, mutate, want_rev=want_rev, dry_run=dry_run,
                                       path=_STATUS)

    async def update_subresource(self, kind: kinds.Kind, namespace: str, name: str, mutate: Mutation) -> bytes:
        """A subresource write (Binding): `mutate` carries the subresource's own rules and checks."""
        return await self._update_loop(kind, namespace, name, mutate, path=_SUBRESOURCE)

    async def _update_loop(self, kind: kinds.Kind, namespace: str, name: str, mutate: Mutation, *,
                           want_rev: int = 0, dry_run: bool = False, path: str = _UPDATE) -> bytes:
        """Read, change, compare-and-swap; retry on conflict unless the caller pinned a revision.

        `path` says which rules apply: an update's (server-owned fields, defaults, validation,
        allocation), a status write's (the status strategy only), or a subresource's (its own, in `mutate`).
        """
        strategy = self.strategy(kind)
        allocates = strategy.allocates and path == _UPDATE
        if want_rev:
            await self.cache.wait_for(want_rev)
        for _ in range(_RETRIES):
            entry = await self.current(kind, namespace, name)
            if want_rev and want_rev != entry.rev:
                raise _conflict(kind, name)
            new = mutate(entry.obj)
            if new is None:
                return entry.item
            errs: list[FieldError] = []
            attrs: admission.Attributes | None = None
            if path == _UPDATE:
                attrs = admission.Attributes(admission.UPDATE, kind, new, strategy, entry.obj,
                                             user=authn.current_user())
                await self.admission.admit(attrs)
                self._keep_server_fields(new, entry.obj, kind, strategy)
                errs = strategy.validate_update(new, entry.obj)
            elif path == _STATUS:
                strategy.prepare_for_status_update(new, entry.obj)
                errs = strategy.validate_status_update(new, entry.obj)
                # Whatever the kind's own rules, no control character reaches a stored status.
                named = {e.path for e in errs}
                errs += [e for e in text.control_errors(new.status, "status") if e.path not in named]  # type: ignore[attr-defined]
            if errs:
                raise InvalidError(errs, prefix=f'{kind.kind} "{name}" is invalid: ')
            if attrs is not None:
                await self.admission.validate(attrs)
            extra: list[Op] = []
            requested: set[str] = set()
            if allocates:
                requested = strategy.claims(new)
                extra = strategy.allocate(new, entry.obj)
            try:
                written = await self._write(kind, strategy, entry, new, extra, dry_run=dry_run)
            except RevisionMismatchError as e:
                await self._lost_race(e, kind, name, pinned=bool(want_rev))
                continue
            except KeyExistsError as e:
                if e.key in requested:
                    raise strategy.claim_taken(e.key) from None
                await self._learn_claim(e)  # a value this server picked was taken elsewhere: pick again
                continue
            finally:
                if extra:
                    strategy.release(extra)
            return written
        raise _conflict(kind, name)

    async def _write(self, kind: kinds.Kind, strategy: Strategy, entry: Entry, new: Message, extra: list[Op], *,
                     dry_run: bool) -> bytes:
        """Store an update (with `extra` ops), or remove the object if it is ready to go."""
        if strategy.ready_to_remove(new):
            return await self._remove(kind, strategy, entry, new)
        if new == entry.obj and not await self._stale(kind, entry):
            return entry.item  # a no-op update does not change the resourceVersion
        if dry_run:
            return self.cache.store(kind).encode_item(new)
        return await self._put(kind, entry, new, extra)

    async def _stale(self, kind: kinds.Kind, entry: Entry) -> bool:
        """Whether storage wants the object rewritten although it did not change (encrypted under an old key)."""
        stale = getattr(self.storage, "stale", None)
        if stale is None:
            return False
        meta = entry.obj.metadata  # type: ignore[attr-defined]
        return bool(await stale(object_key(kind, meta.namespace, meta.name)))

    async def _put(self, kind: kinds.Kind, entry: Entry, new: Message, extra: list[Op] | None = None) -> bytes:
        meta = new.metadata  # type: ignore[attr-defined]
        meta.resource_version = ""
        value = new.SerializeToString()
        try:
            rev = await self._commit([Update(object_key(kind, meta.namespace, meta.name), value, entry.rev),
                                      *(extra or ())])
        except KeyNotFoundError:
            raise _not_found(kind, meta.name) from None
        return self.cache.store(kind).written_item(value, rev)

    async def _lost_race(self, e: RevisionMismatchError, kind: kinds.Kind, name: str, *, pinned: bool) -> None:
        """Another write came first: a pinned revision is a conflict, else wait for the cache to see it."""
        if pinned:
            raise _conflict(kind, name) from None
        if e.current is not None:
            await self.cache.wait_for(e.current.mod_revision)

    def _keep_server_fields(self, new: Message, old: Message, kind: kinds.Kind, strategy: Strategy) -> None:
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
        strategy.prepare_for_update(new, old)
        if strategy.tracks_generation and hasattr(new, "spec"):
            changed = new.spec != old.spec  # type: ignore[attr-defined]
            nm.generation = om.generation + 1 if changed else om.generation
        else:
            nm.generation = om.generation

    # ------------------------------------------------------------ delete

    async def delete(self, req: api_pb2.DeleteRequest) -> bytes:
        kind = kinds.lookup(req.resource)
        strategy = self.strategy(kind)
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
            finalizers = list(meta.finalizers)
            if policy == "Orphan" and "orphan" not in finalizers and strategy.orphans_dependents:
                finalizers.append("orphan")
            if policy == "Foreground" and "foregroundDeletion" not in finalizers:
                finalizers.append("foregroundDeletion")
            strategy.check_delete(obj)
            new = strategy.plan_delete(obj, req, finalizers)
            try:
                if new is None:
                    return await self._remove(kind, strategy, entry, obj)
                if new == obj:
                    return entry.item
                return await self._put(kind, entry, new)
            except RevisionMismatchError as e:
                if e.current is not None:
                    await self.cache.wait_for(e.current.mod_revision)
                continue
        raise _conflict(kind, req.name)

    async def _remove(self, kind: kinds.Kind, strategy: Strategy, entry: Entry, final: Message) -> bytes:
        meta = final.metadata  # type: ignore[attr-defined]
        ops: list[Op] = [Delete(object_key(kind, meta.namespace, meta.name), entry.rev)]
        ops += [Delete(k) for k in sorted(strategy.claims(entry.obj))]
        try:
            await self._commit(ops)
        except KeyNotFoundError as e:
            if e.key == ops[0].key:
                raise _not_found(kind, meta.name) from None
            # A claim already gone: remove the object alone.
            await self._commit(ops[:1])
        return self.cache.store(kind).encode_item(final)

    # ------------------------------------------------------------ subresources

    async def scale(self, req: api_pb2.ScaleRequest) -> bytes:
        kind = kinds.lookup(req.resource)
        if not self.strategy(kind).scalable:
            scalable = " and ".join(sorted(k.resource for k in kinds.KINDS if self.strategy(k).scalable))
            raise UnsupportedError(f"{kind.resource} cannot be scaled; only {scalable}")
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
