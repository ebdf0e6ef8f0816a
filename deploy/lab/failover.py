"""Losing part of a highly available control plane, and measuring how long the API stays unwritable.

`kill_etcd_leader` SIGKILLs whichever etcd member leads (the watchdog starts it again);
stopping and starting a whole control-plane machine is `cluster.stop_control_plane_machine`
and `start_control_plane_machine`. `WriteProbe` writes a ConfigMap every `interval` seconds,
each write on its own (a write stuck on a dead leader does not hold up the next), and records
when each was sent and acknowledged: `writable_after(t)` is how long after a fault at `t` the
API took writes again, and `acknowledged` the names to look for afterwards.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from dataclasses import dataclass, field

from api.errors import ApiError
from api.pb import core_pb2
from client.api import Client
from client.config import ClientConfig
from deploy.lab import status
from deploy.lab.cluster import daemon_name
from deploy.lab.plan import LabPlan
from deploy.lab.procs import Supervisor


class FailoverError(Exception):
    pass


def etcd_leader(plan: LabPlan) -> str:
    """The control-plane machine whose etcd member leads."""
    leaders = [m["name"] for m in status.etcd_members(plan) if m["leader"] and m["healthy"]]
    if len(leaders) != 1:
        raise FailoverError(f"expected one etcd leader, found {leaders or 'none'}")
    return leaders[0]


def kill_etcd_leader(plan: LabPlan) -> str:
    """SIGKILL the leading etcd member's process; returns its machine."""
    leader = etcd_leader(plan)
    record = Supervisor.for_plan(plan).get(daemon_name(leader, "etcd"))
    if record is None:
        raise FailoverError(f"etcd on {leader} is not running")
    os.kill(record.pid, signal.SIGKILL)
    return leader


@dataclass
class Write:
    name: str
    sent: float  # time.monotonic()
    acked: float | None = None
    error: str = ""


@dataclass
class WriteProbe:
    """ConfigMaps `<prefix>-<n>` in `namespace`, one every `interval` s, each with `timeout` s to be acknowledged."""

    conn: ClientConfig
    prefix: str
    namespace: str = "default"
    interval: float = 0.05
    timeout: float = 15.0
    writes: list[Write] = field(default_factory=list)

    async def run(self, seconds: float) -> None:
        """Write for `seconds`, then wait for the writes still in flight."""
        async with Client(self.conn) as client, asyncio.TaskGroup() as tg:
            end = time.monotonic() + seconds
            n = 0
            while time.monotonic() < end:
                write = Write(f"{self.prefix}-{n}", time.monotonic())
                self.writes.append(write)
                tg.create_task(self._one(client, write))
                n += 1
                await asyncio.sleep(self.interval)

    async def _one(self, client: Client, write: Write) -> None:
        cm = core_pb2.ConfigMap()
        cm.metadata.name, cm.metadata.namespace = write.name, self.namespace
        cm.data["sent"] = f"{write.sent:.3f}"
        try:
            async with asyncio.timeout(self.timeout):
                await client.create(cm)
            write.acked = time.monotonic()
        except (ApiError, TimeoutError) as e:
            write.error = str(e) or type(e).__name__

    def writable_after(self, t: float, *, slow: float = 1.0) -> float | None:
        """Seconds from a fault at `t` until the API took writes again: the first acknowledgement of a write sent
        after the last one (sent at or after `t`) that failed or took over `slow` s; without such a write, the
        first acknowledgement after `t`. None: nothing sent after `t` was acknowledged."""
        after = [w for w in self.writes if w.sent >= t]
        bad = [w.sent for w in after if w.acked is None or w.acked - w.sent > slow]
        cutoff = max(bad) if bad else t
        acks = [w.acked for w in after if w.acked is not None and (w.sent > cutoff or not bad)]
        return min(acks) - t if acks else None

    @property
    def acknowledged(self) -> list[str]:
        return [w.name for w in self.writes if w.acked is not None]

    @property
    def failed(self) -> list[Write]:
        return [w for w in self.writes if w.acked is None]
