"""Storage over etcd v3, through aetcd's stubs on a channel of our own: mutual TLS unless the test-only plaintext
switch is on (etcd runs with --client-cert-auth; the apiserver presents its etcd client certificate)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from urllib.parse import urlparse

import grpc
import structlog
from aetcd import rpc
from aetcd.utils import prefix_range_end

from api.errors import ApiError, CertificateError, UnavailableError
from apiserver.storage import errors
from apiserver.storage.groupcommit import GroupCommitter, Result, txn_ops
from apiserver.storage.interface import (
    KV,
    CompactedError,
    Create,
    Delete,
    Event,
    KeyExistsError,
    KeyNotFoundError,
    Op,
    RevisionMismatchError,
    Update,
    WatchMovedError,
)
from apiserver.storage.limits import Limits
from client import tls
from client.config import ClientConfig

log = structlog.get_logger(component="storage")

DEADLINE = 10.0
# A write that a follower forwarded to a leader that then died is lost, and etcd only says so at its request
# timeout (5 s + two election timeouts: 7 s), while writes sent after the election succeed. The same key's next
# write waits behind it (group commit keeps per-key order), so a kubelet's Lease renewal would wait 7 s. A write
# still unanswered this long is checked: once a newer term has a leader, twice in a row, it is failed (its outcome
# unknown, as with any timeout) so its writer can retry.
LEADER_CHECK_AFTER = 1.0
LEADER_CHECK_EVERY = 0.5
# A member whose machine was cut off answers nothing, not even that check; the write is failed and the storage
# moves to another member after this many unanswered checks in a row (about 2.5 s), not at DEADLINE or when the
# pings give up (seen: a control plane's apiserver, on another machine's member when that one was cut off, kept
# the API unwritable for 5.6 s).
SILENT_CHECKS = 3
_MAX_MSG = 64 * 1024 * 1024
# A replaced connection stays open this long (the longest deadline a call has) for the calls still on it.
RETIRED_GRACE = DEADLINE * 3
# A member whose machine vanished sends no reset: a watch on it would stay open and silent for good. HTTP/2 pings
# on the channel find such a peer within KEEPALIVE_TIME + KEEPALIVE_TIMEOUT and fail its calls: any ping of the
# channel's left unanswered KEEPALIVE_TIMEOUT ends the connection. etcd refuses pings more often than every 5 s
# (--grpc-keepalive-min-time) and closes the connection of a client that sends them.
KEEPALIVE_TIME = 10.0
KEEPALIVE_TIMEOUT = 5.0


def _transaction(ops: Sequence[Op]) -> rpc.TxnRequest:
    """All ops as one compare-and-swap; on failure, read every key back to say which failed."""
    compares, success, failure = [], [], []
    for op in ops:
        key = op.key.encode()
        if isinstance(op, Create):
            compares.append(rpc.Compare(key=key, result=rpc.Compare.EQUAL, target=rpc.Compare.CREATE,
                                        create_revision=0))
            success.append(rpc.RequestOp(request_put=rpc.PutRequest(key=key, value=op.value, lease=op.lease)))
        elif isinstance(op, Update):
            compares.append(rpc.Compare(key=key, result=rpc.Compare.EQUAL, target=rpc.Compare.MOD,
                                        mod_revision=op.revision))
            success.append(rpc.RequestOp(request_put=rpc.PutRequest(key=key, value=op.value)))
        elif isinstance(op, Delete):
            if op.revision:
                compares.append(rpc.Compare(key=key, result=rpc.Compare.EQUAL, target=rpc.Compare.MOD,
                                            mod_revision=op.revision))
            else:
                compares.append(rpc.Compare(key=key, result=rpc.Compare.GREATER, target=rpc.Compare.CREATE,
                                            create_revision=0))
            success.append(rpc.RequestOp(request_delete_range=rpc.DeleteRangeRequest(key=key)))
        failure.append(rpc.RequestOp(request_range=rpc.RangeRequest(key=key)))
    return rpc.TxnRequest(compare=compares, success=success, failure=failure)


@dataclass(frozen=True)
class EtcdTLS:
    """The CA etcd's certificate is signed by, and the client certificate and key the apiserver presents."""

    ca_file: str
    cert_file: str
    key_file: str

    def client_config(self, target: str) -> ClientConfig:
        return ClientConfig(server=target, ca_file=self.ca_file, cert_file=self.cert_file, key_file=self.key_file,
                            cluster="etcd")


def parse_endpoints(servers: str) -> list[tuple[str, int]]:
    """`https://127.0.0.1:2379,https://h2:2379` -> [(host, port), ...]."""
    out = []
    for item in filter(None, (s.strip() for s in servers.split(","))):
        url = urlparse(item if "://" in item else f"http://{item}")
        if not url.hostname:
            raise ValueError(f"--etcd-servers: cannot parse {item!r}")
        out.append((url.hostname, url.port or 2379))
    if not out:
        raise ValueError("--etcd-servers: no endpoint given")
    return out


def check_scheme(servers: str, tls_given: bool) -> None:
    """https:// URLs with the etcd client certificate, http:// only without (the test-only plaintext switch)."""
    schemes = {urlparse(s.strip()).scheme or "http" for s in servers.split(",") if s.strip()}
    if tls_given and schemes != {"https"}:
        raise ValueError(f"--etcd-servers {servers}: etcd is reached over TLS, so every URL must be https://")
    if not tls_given and "https" in schemes:
        raise ValueError(f"--etcd-servers {servers}: https:// needs --etcd-cafile, --etcd-certfile and --etcd-keyfile")


class EtcdConnection:
    """One channel to one etcd member, with the stubs storage uses."""

    def __init__(self, host: str, port: int, tls_files: EtcdTLS | None = None) -> None:
        self.target = f"{host}:{port}"
        options = [("grpc.max_receive_message_length", _MAX_MSG), ("grpc.max_send_message_length", _MAX_MSG),
                   ("grpc.keepalive_time_ms", int(KEEPALIVE_TIME * 1000)),
                   ("grpc.keepalive_timeout_ms", int(KEEPALIVE_TIMEOUT * 1000)),
                   # How long gRPC core waits for any ping's answer, whatever the keepalive timeout (60 s default).
                   ("grpc.http2.ping_timeout_ms", int(KEEPALIVE_TIMEOUT * 1000)),
                   ("grpc.http2.max_pings_without_data", 0)]
        self.config = tls_files.client_config(self.target) if tls_files else None
        if self.config is not None:
            self.creds: tls.ClientCredentials | None = tls.ClientCredentials(self.config)
            self.channel = grpc.aio.secure_channel(self.target, self.creds.channel_credentials(), options=options)
        else:
            self.creds = None
            self.channel = grpc.aio.insecure_channel(self.target, options=options)
        self.kvstub = rpc.KVStub(self.channel)
        self.leasestub = rpc.LeaseStub(self.channel)
        self.maintenance = rpc.MaintenanceStub(self.channel)
        # Watches streaming over this channel. When the connection is replaced (its member stopped answering),
        # they are ended with WatchMovedError, so their readers watch again through the new one: a watch left
        # on a member that vanished would deliver nothing while writes go on elsewhere.
        self.watches: set[grpc.aio.StreamStreamCall] = set()
        self.retired = False

    def retire(self) -> None:
        self.retired = True
        for call in list(self.watches):
            call.cancel()

    def explain(self, e: grpc.aio.AioRpcError) -> str:
        """The error's details, or plain words when a certificate is to blame."""
        details = e.details() or e.code().name
        if self.config is not None:
            return tls.explain(self.config, details, peer=f"etcd at {self.target}") or details
        return details

    async def close(self) -> None:
        await self.channel.close()


class EtcdStorage:
    """etcd-backed Storage. Connects to the first endpoint that answers."""

    def __init__(self, endpoints: Sequence[tuple[str, int]], limits: Limits | None = None, *,
                 tls_files: EtcdTLS | None = None) -> None:
        self._endpoints = list(endpoints)
        self._tls = tls_files
        self._client: EtcdConnection | None = None
        self._lock = asyncio.Lock()
        self.limits = limits or Limits()
        self.term = 0  # the newest raft term an answer carried
        # Replaced connections, closed RETIRED_GRACE after: calls still in flight on them get their answers.
        self._retired: list[tuple[float, EtcdConnection]] = []
        self._committer = GroupCommitter(self._send_txn, self.limits)

    async def connect(self, *, timeout: float = 30.0, avoid: str = "") -> None:
        """Connect to the first endpoint that serves (`avoid`, host:port, tried last); retry until `timeout`."""
        deadline = asyncio.get_running_loop().time() + timeout
        endpoints = sorted(self._endpoints, key=lambda e: f"{e[0]}:{e[1]}" == avoid)
        while True:
            last = ""
            for host, port in endpoints:
                try:
                    client = EtcdConnection(host, port, self._tls)
                except (ValueError, OSError) as e:  # unreadable certificate files: no retry mends that
                    raise CertificateError(f"etcd client certificate: {e}") from None
                try:
                    probe = await client.kvstub.Range(rpc.RangeRequest(key=b"/", limit=1), timeout=2.0)
                    self.term = max(self.term, probe.header.raft_term)
                except grpc.aio.AioRpcError as e:  # any failure means try the next endpoint
                    last = client.explain(e)
                    log.info("etcd_endpoint_unreachable", endpoint=f"{host}:{port}", error=last)
                    with contextlib.suppress(Exception):
                        await client.close()
                    continue
                old, self._client = self._client, client
                if old is not None:
                    old.retire()
                    self._retired.append((asyncio.get_running_loop().time(), old))
                await self._close_retired(older_than=RETIRED_GRACE)
                log.info("etcd_connected", endpoint=f"{host}:{port}")
                return
            if asyncio.get_running_loop().time() > deadline:
                raise UnavailableError(f"etcd unreachable at {self._endpoints}: {last}")
            await asyncio.sleep(0.5)

    @property
    def endpoint(self) -> str:
        """host:port of the member it is connected to ("" before it is)."""
        return self._client.target if self._client is not None else ""

    async def _close_retired(self, *, older_than: float) -> None:
        now, keep = asyncio.get_running_loop().time(), []
        for at, conn in self._retired:
            if now - at < older_than:
                keep.append((at, conn))
                continue
            with contextlib.suppress(Exception):
                await conn.close()
        self._retired = keep

    @property
    def _kv(self) -> rpc.KVStub:
        if self._client is None:
            raise UnavailableError("storage not connected")
        return self._client.kvstub

    def _error(self, e: grpc.aio.AioRpcError, what: str = "etcd") -> ApiError:
        return errors.from_etcd(e.code(), e.details() or "", what=what)

    async def _call(self, fn, request):  # type: ignore[no-untyped-def]
        try:
            return await self._send(fn, request)
        except grpc.aio.AioRpcError as e:
            raise self._error(e) from None

    async def _send(self, fn, request):  # type: ignore[no-untyped-def]
        """One RPC with a deadline; when the member is gone, the next call goes to another one."""
        client = self._client
        try:
            resp = await fn(request, timeout=DEADLINE)
            header = getattr(resp, "header", None)
            if header is not None:
                self.term = max(self.term, header.raft_term)
            return resp
        except grpc.aio.AioRpcError as e:
            renewed = self._client is not None and self._client.creds is not None and self._client.creds.changed()
            if e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED) \
                    and (len(self._endpoints) > 1 or renewed):
                await self._leave(client)
            raise

    async def _leave(self, client: EtcdConnection | None, *, silent: bool = False) -> None:
        """Connect to a member that answers, unless another call already left `client`: the calls that failed
        with it reconnect once, not each in turn. A `silent` member is tried last (its probe would only wait)."""
        async with self._lock:
            if self._client is client:
                with contextlib.suppress(UnavailableError):
                    await self.connect(timeout=5.0, avoid=client.target if silent and client else "")

    async def _send_txn(self, txn: rpc.TxnRequest) -> rpc.TxnResponse:
        """A transaction, failed early (UnavailableError) when etcd elected a new leader while it waited, or when
        its member stopped answering (then the storage moves to another member)."""
        term, client = self.term, self._client
        call = asyncio.ensure_future(self._send(self._kv.Txn, txn))
        try:
            done, _ = await asyncio.wait({call}, timeout=LEADER_CHECK_AFTER)
            seen = silent = 0
            while not done:
                newer = await self._new_leader_since(term)
                seen = seen + 1 if newer else 0
                silent = silent + 1 if newer is None else 0
                if seen == 2:  # a write that survived the election was applied by now
                    log.warning("etcd_write_lost_to_election", term=term, new_term=self.term)
                    raise UnavailableError("etcd elected a new leader while this write waited for the old one; "
                                           "it may or may not have been applied")
                if silent == SILENT_CHECKS and len(self._endpoints) > 1:
                    target = client.target if client is not None else ""
                    log.warning("etcd_member_silent", endpoint=target)
                    await self._leave(client, silent=True)
                    raise UnavailableError(f"etcd member {target} stopped answering while this write waited; "
                                           "it may or may not have been applied")
                # An unanswered check has waited its LEADER_CHECK_EVERY already.
                done, _ = await asyncio.wait({call}, timeout=0 if newer is None else LEADER_CHECK_EVERY)
            return call.result()
        finally:
            if not call.done():
                call.cancel()

    async def _new_leader_since(self, term: int) -> bool | None:
        """The connected member knows a leader of a term newer than `term`; None when it did not answer."""
        if self._client is None or term == 0:
            return False
        try:
            status = await self._client.maintenance.Status(rpc.StatusRequest(), timeout=LEADER_CHECK_EVERY)
        except grpc.aio.AioRpcError as e:
            return None if e.code() in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE) else False
        self.term = max(self.term, status.raftTerm)
        return status.leader != 0 and status.raftTerm > term

    async def get(self, key: str) -> KV | None:
        resp = await self._call(self._kv.Range, rpc.RangeRequest(key=key.encode()))
        if not resp.kvs:
            return None
        kv = resp.kvs[0]
        return KV(key, kv.value, kv.mod_revision, kv.create_revision)

    async def list(self, prefix: str, *, revision: int = 0) -> tuple[list[KV], int]:
        start = prefix.encode()
        req = rpc.RangeRequest(key=start, range_end=prefix_range_end(start), revision=revision)
        try:
            resp = await self._kv.Range(req, timeout=DEADLINE * 3)
        except grpc.aio.AioRpcError as e:
            if e.code() == grpc.StatusCode.OUT_OF_RANGE:
                raise CompactedError(revision) from None
            raise self._error(e, f"list {prefix}") from None
        items = [KV(kv.key.decode(), kv.value, kv.mod_revision, kv.create_revision) for kv in resp.kvs]
        return items, resp.header.revision

    def _check_limits(self, ops: Sequence[Op], txn: rpc.TxnRequest) -> None:
        """Refuse, before etcd sees it, a write larger than an object may be or than one transaction holds."""
        what = errors.describe_key(ops[0].key)
        for op in ops:
            if not isinstance(op, Delete) and len(op.value) > self.limits.max_object_bytes:
                raise errors.too_large(errors.describe_key(op.key), self.limits.max_object_bytes)
        if (n := txn_ops(txn)) > self.limits.max_txn_ops:
            raise errors.too_many_ops(what, n, self.limits.max_txn_ops)
        if txn.ByteSize() > self.limits.txn_bytes:
            raise errors.too_large(what, self.limits.txn_bytes)

    async def commit(self, ops: Sequence[Op]) -> int:
        txn = _transaction(ops)
        self._check_limits(ops, txn)
        try:
            if self._committer.running:
                result = await self._committer.submit(txn, frozenset(op.key.encode() for op in ops))
            else:
                resp = await self._send_txn(txn)
                result = Result(resp.succeeded, list(resp.responses), resp.header.revision)
        except grpc.aio.AioRpcError as e:
            raise self._error(e, errors.describe_key(ops[0].key)) from None
        if result.succeeded:
            return result.revision
        for op, response in zip(ops, result.responses, strict=True):
            kvs = response.response_range.kvs
            current = KV(op.key, kvs[0].value, kvs[0].mod_revision, kvs[0].create_revision) if kvs else None
            if isinstance(op, Create) and current is not None:
                raise KeyExistsError(op.key, current)
            if isinstance(op, Update | Delete):
                if current is None:
                    raise KeyNotFoundError(op.key)
                if op.revision and current.mod_revision != op.revision:
                    raise RevisionMismatchError(op.key, current)
        # The compares failed but every key now looks right: it changed in between.
        raise RevisionMismatchError(ops[0].key, None)

    async def run_group_commit(self) -> None:
        """Batch concurrent commits into shared etcd transactions until cancelled."""
        await self._committer.run()

    async def watch(self, prefix: str, *, from_revision: int) -> AsyncIterator[tuple[list[Event], int]]:
        client = self._client
        if client is None:
            raise UnavailableError("storage not connected")
        stub = rpc.WatchStub(client.channel)
        start = prefix.encode()
        create = rpc.WatchRequest(create_request=rpc.WatchCreateRequest(
            key=start, range_end=prefix_range_end(start), start_revision=from_revision,
            prev_kv=True, progress_notify=True))
        requests: asyncio.Queue[rpc.WatchRequest | None] = asyncio.Queue()
        requests.put_nowait(create)

        # No progress requests: etcd 3.4 (before 3.4.25) answers one at once with its current revision,
        # even to a watch still replaying history or with that revision's events not yet sent, so
        # the reader would think itself current too early. The watch cache learns that it has
        # caught up from a key it writes under the prefix instead (WatchCache._mark).
        async def send() -> AsyncIterator[rpc.WatchRequest]:
            while (req := await requests.get()) is not None:
                yield req

        # hasleader: a member that loses its leader ends the watch (etcd's WithRequireLeader) rather than
        # leaving it open and silent while the rest of the cluster goes on writing.
        call = stub.Watch(send(), metadata=(("hasleader", "true"),))
        client.watches.add(call)
        try:
            async for resp in call:
                if resp.compact_revision:
                    raise CompactedError(resp.compact_revision)
                if resp.canceled:
                    raise UnavailableError(f"etcd watch canceled: {resp.cancel_reason}")
                if resp.created and not resp.events:
                    # The creation notice's header is the store's current revision, not how far
                    # this watch has been delivered: replayed history is still to come.
                    continue
                events = []
                for ev in resp.events:
                    kv = ev.kv
                    if ev.type == rpc.Event.DELETE:
                        prev = ev.prev_kv
                        events.append(Event("DELETE", kv.key.decode(), prev.value, kv.mod_revision,
                                            prev.create_revision))
                    else:
                        events.append(Event("PUT", kv.key.decode(), kv.value, kv.mod_revision, kv.create_revision))
                # While catching up, etcd stamps each batch with the current revision although more
                # batches follow; a batch is complete only up to its last event. Empty responses are
                # progress notices, which etcd sends only to watchers that have everything.
                yield events, events[-1].revision if events else resp.header.revision
        except grpc.aio.AioRpcError as e:
            raise UnavailableError(f"etcd watch: {e.code().name}: {e.details()}") from None  # a new watch may work
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if client.retired and task is not None and not task.cancelling():  # ended by retire(), not by our caller
                raise WatchMovedError(f"etcd watch: left {client.target}, which stopped answering") from None
            raise
        finally:
            requests.put_nowait(None)
            call.cancel()
            client.watches.discard(call)

    async def revision(self) -> int:
        resp = await self._call(self._kv.Range, rpc.RangeRequest(key=b"/", limit=1, count_only=True))
        return resp.header.revision

    async def compact(self, revision: int) -> None:
        with contextlib.suppress(UnavailableError):
            await self._call(self._kv.Compact, rpc.CompactionRequest(revision=revision))

    async def compacted_revision(self) -> int:
        """The oldest revision still readable; etcd does not report it, so binary-search it."""
        lo, hi = 1, await self.revision()
        while lo < hi:
            mid = (lo + hi) // 2
            try:
                await self._kv.Range(rpc.RangeRequest(key=b"/", limit=1, revision=mid), timeout=DEADLINE)
                hi = mid
            except grpc.aio.AioRpcError as e:
                if e.code() != grpc.StatusCode.OUT_OF_RANGE:
                    raise self._error(e) from None
                lo = mid + 1
        return lo

    async def grant_lease(self, ttl: int) -> int:
        if self._client is None:
            raise UnavailableError("storage not connected")
        resp = await self._call(self._client.leasestub.LeaseGrant, rpc.LeaseGrantRequest(TTL=ttl))
        return resp.ID

    async def close(self) -> None:
        await self._close_retired(older_than=0)
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.close()
            self._client = None
