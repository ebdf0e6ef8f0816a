"""Leader election through a Lease object: only the holder runs the work.

A candidate takes the lease when its holder has not renewed it for
`lease_duration` seconds as seen by the candidate's own clock (so clock skew
between machines does not matter). The leader renews every `renew_interval`;
if it cannot renew within `lease_duration - renew_interval` it stops its work,
so it has stopped before any candidate can take over. On a clean
shutdown it releases the lease so another candidate takes over at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

import structlog

from api.errors import AlreadyExistsError, ApiError, ConflictError, NotFoundError
from api.pb import apps_pb2
from api.timestamps import timestamp
from client.api import Client

log = structlog.get_logger()


class LeaderElector:
    def __init__(self, client: Client, *, name: str, identity: str, namespace: str = "kube-system",
                 lease_duration: float = 4.0, renew_interval: float = 1.0) -> None:
        self.client = client
        self.name = name
        self.namespace = namespace
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_interval = renew_interval
        self.is_leader = False
        self._observed_rv = ""
        self._observed_at = 0.0

    async def run(self, work: Callable[[], Awaitable[None]]) -> None:
        """Campaign forever; run `work` while leading, cancel it when leadership is lost."""
        while True:
            await self._acquire()
            log.info("leader_elected", lease=self.name, identity=self.identity)
            try:
                async with asyncio.TaskGroup() as tg:
                    task = tg.create_task(work())
                    await self._renew_until_lost()
                    task.cancel()
            except asyncio.CancelledError:
                await self._release()
                raise
            self.is_leader = False
            log.warning("leader_lost", lease=self.name, identity=self.identity)

    async def _acquire(self) -> None:
        while True:
            try:
                if await self._try_acquire_or_renew():
                    self.is_leader = True
                    return
            except ApiError as e:
                log.info("leader_acquire_failed", lease=self.name, error=e.message)
            await asyncio.sleep(self.renew_interval)

    async def _renew_until_lost(self) -> None:
        last_ok = time.monotonic()
        # Give up before the lease can expire in another candidate's eyes (client-go's renewDeadline): a renewal
        # may not outlive it, however long the client's own deadline is.
        renew_deadline = max(self.renew_interval, self.lease_duration - self.renew_interval)
        while True:
            await asyncio.sleep(self.renew_interval)
            left = max(0.05, renew_deadline - (time.monotonic() - last_ok))
            try:
                async with asyncio.timeout(left):
                    renewed = await self._try_acquire_or_renew()
                if renewed:
                    last_ok = time.monotonic()
                    continue
                return  # someone else holds it
            except ApiError as e:
                log.info("leader_renew_failed", lease=self.name, error=e.message)
            except TimeoutError:
                log.info("leader_renew_failed", lease=self.name, error="timed out")
            if time.monotonic() - last_ok >= renew_deadline:
                return

    async def _try_acquire_or_renew(self) -> bool:
        try:
            lease: apps_pb2.Lease = await self.client.get("leases", self.name, self.namespace)
        except NotFoundError:
            lease = apps_pb2.Lease(metadata={"name": self.name, "namespace": self.namespace})
            self._fill(lease, new_holder=True)
            try:
                await self.client.create(lease)
            except (AlreadyExistsError, ConflictError):
                return False
            return True
        now = time.monotonic()
        if lease.metadata.resource_version != self._observed_rv:
            self._observed_rv = lease.metadata.resource_version
            self._observed_at = now
        holder = lease.spec.holder_identity
        expired = not holder or now - self._observed_at > (lease.spec.lease_duration_seconds or self.lease_duration)
        if holder != self.identity and not expired:
            return False
        self._fill(lease, new_holder=holder != self.identity)
        try:
            updated = await self.client.update(lease)
        except ConflictError:
            return False
        self._observed_rv = updated.metadata.resource_version
        self._observed_at = time.monotonic()
        return True

    def _fill(self, lease: apps_pb2.Lease, *, new_holder: bool) -> None:
        spec = lease.spec
        spec.holder_identity = self.identity
        spec.lease_duration_seconds = max(1, round(self.lease_duration))
        spec.renew_time.CopyFrom(timestamp())
        if new_holder:
            spec.acquire_time.CopyFrom(timestamp())
            spec.lease_transitions = spec.lease_transitions + 1 if spec.HasField("lease_transitions") else 0

    async def _release(self) -> None:
        if not self.is_leader:
            return
        self.is_leader = False
        with contextlib.suppress(ApiError, asyncio.CancelledError, Exception):
            async with asyncio.timeout(2):
                lease: apps_pb2.Lease = await self.client.get("leases", self.name, self.namespace)
            if lease.spec.holder_identity == self.identity:
                lease.spec.holder_identity = ""
                async with asyncio.timeout(2):
                    await self.client.update(lease)
                log.info("leader_released", lease=self.name, identity=self.identity)
