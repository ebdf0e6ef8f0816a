"""The lab's watchdog: daemons that die are started again, as systemd's Restart=on-failure does on VMs.

It runs as the cluster's `supervisor` daemon (`kubelite supervise`) and polls the pid files. A
recorded daemon whose process is gone died without being stopped (`Supervisor.stop` removes the
pid file first), so it is started again with the same command after the policy's back-off, its
restart counted in its pid file; after too many starts too quickly it is marked failed and left
alone (deploy/lab/restart.py). The exit status is not needed, and not known: the lab's daemons are
servers that run until stopped, and they are nobody's children once `up` has exited.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from dataclasses import replace

import structlog

from deploy.lab.procs import WATCHDOG, ProcError, Supervisor, is_alive
from deploy.lab.restart import DEFAULT_POLICY, GiveUp, RestartPolicy, plan_restart, recent_starts

log = structlog.get_logger("deploy.lab.watchdog")

POLL = 0.1


class Watchdog:
    """Restarts one cluster's dead daemons; `run()` polls until stopped."""

    def __init__(self, supervisor: Supervisor, policy: RestartPolicy = DEFAULT_POLICY, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.supervisor = supervisor
        self.policy = policy
        self.clock = clock
        self._died: dict[tuple[str, int], float] = {}  # (name, pid) -> when first seen dead

    def check(self) -> float:
        """One pass over the daemons; returns how long until the next restart is due (at most POLL)."""
        wait = POLL
        seen = set()
        for record in self.supervisor.records():
            if record.name == WATCHDOG or record.failed or is_alive(record):
                continue
            key = (record.name, record.pid)
            seen.add(key)
            now = self.clock()
            died_at = self._died.setdefault(key, now)
            if key[1] and died_at == now:
                log.warning("daemon_died", name=record.name, pid=record.pid, restarts=record.restarts)
            plan = plan_restart(record.starts, died_at, self.policy)
            if not isinstance(plan, GiveUp) and plan > now:
                wait = min(wait, plan - now)
                continue
            self._act(record.name, record.pid, plan)
        for key in set(self._died) - seen:
            del self._died[key]
        return wait

    def _act(self, name: str, pid: int, plan: float | GiveUp) -> None:
        with self.supervisor.locked(name, wait=False) as mine:
            if not mine:
                return  # being started or stopped right now: its owner decides
            record = next((r for r in self.supervisor.records() if r.name == name), None)
            if record is None or record.pid != pid or record.failed or is_alive(record):
                return  # stopped, or started by someone else meanwhile
            if isinstance(plan, GiveUp):
                self.supervisor.save(replace(record, failed=plan.reason))
                log.error("daemon_failed", name=name, restarts=record.restarts, reason=plan.reason)
                return
            starts = recent_starts(record.starts, self.clock(), self.policy)
            try:
                new = self.supervisor.respawn(record, starts=starts)
            except (ProcError, OSError) as exc:
                log.warning("daemon_restart_failed", name=name, restarts=record.restarts + 1, error=str(exc))
                self._died.pop((name, pid), None)
                return
            log.info("daemon_restarted", name=name, pid=new.pid, restarts=new.restarts)

    def run(self, stop: threading.Event) -> None:
        log.info("watchdog_started", pid_dir=str(self.supervisor.pid_dir), delay=self.policy.delay,
                 burst=self.policy.burst, interval=self.policy.interval)
        while not stop.is_set():
            try:
                wait = self.check()
            except (ProcError, OSError) as exc:
                log.warning("watchdog_pass_failed", error=str(exc))
                wait = POLL
            stop.wait(wait)
        log.info("watchdog_stopped")


def serve(supervisor: Supervisor, policy: RestartPolicy = DEFAULT_POLICY) -> None:
    """Run the watchdog in this process until SIGTERM or SIGINT."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    Watchdog(supervisor, policy).run(stop)
