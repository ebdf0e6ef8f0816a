"""The lab's watchdog with real processes: a daemon killed with SIGKILL comes back, counted; a stopped one does not;
one that keeps dying is given up."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.lab import ProcError, Supervisor, is_alive
from deploy.lab.restart import RestartPolicy
from deploy.lab.watchdog import Watchdog

POLICY = RestartPolicy(delay=0.2, burst=3, interval=5.0)


def wait_for(condition, what: str, timeout: float = 5.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.fixture
def supervisor(tmp_path: Path) -> Iterator[Supervisor]:
    sup = Supervisor(pid_dir=tmp_path / "pids", log_dir=tmp_path / "logs")
    try:
        yield sup
    finally:
        sup.stop_all(timeout=2.0)


@pytest.fixture
def watchdog(supervisor: Supervisor) -> Iterator[Watchdog]:
    dog = Watchdog(supervisor, POLICY)
    stop = threading.Event()
    thread = threading.Thread(target=dog.run, args=(stop,), daemon=True)
    thread.start()
    try:
        yield dog
    finally:
        stop.set()
        thread.join(5)


def record(supervisor: Supervisor, name: str):  # type: ignore[no-untyped-def]
    return next((r for r in supervisor.records() if r.name == name), None)


def test_killed_daemon_comes_back_with_its_restart_counted(supervisor: Supervisor, watchdog: Watchdog,
                                                           tmp_path: Path) -> None:
    """SIGKILL: the same command runs again, with the same environment and directory, after the back-off."""
    first = supervisor.start("sleeper", ["sh", "-c", 'echo "started in $(pwd) with $FOO"; exec sleep 600'],
                             env={"FOO": "bar"}, cwd=tmp_path)
    wait_for(lambda: "started" in supervisor.log_path("sleeper").read_text(), "the first start's line")
    killed = time.monotonic()
    os.kill(first.pid, signal.SIGKILL)
    second = wait_for(lambda: supervisor.get("sleeper") if supervisor.get("sleeper") != first else None,
                      "the restart")
    took = time.monotonic() - killed
    assert POLICY.delay <= took < 1.5, took
    assert second.pid != first.pid and second.restarts == 1 and second.argv == first.argv
    wait_for(lambda: supervisor.log_path("sleeper").read_text().count(f"started in {tmp_path} with bar") == 2,
             "the second start's line in the same log")


def test_stopped_daemon_stays_stopped(supervisor: Supervisor, watchdog: Watchdog) -> None:
    """A daemon stopped on purpose is not revived."""
    supervisor.start("quiet", ["sleep", "600"])
    assert supervisor.stop("quiet", timeout=1.0)
    time.sleep(POLICY.delay + 0.5)
    assert supervisor.get("quiet") is None and record(supervisor, "quiet") is None


def test_daemon_that_keeps_dying_is_given_up(supervisor: Supervisor, watchdog: Watchdog) -> None:
    """After `burst` starts within `interval` it stays dead, marked failed; starting it by hand clears that."""
    supervisor.start("crasher", ["sh", "-c", "sleep 0.1; exit 3"])
    failed = wait_for(lambda: (r := record(supervisor, "crasher")) is not None and r.failed and r, "giving up")
    assert failed.restarts == POLICY.burst - 1
    assert "started 3 times within 5s" in failed.failed
    time.sleep(POLICY.delay + 0.5)
    again = record(supervisor, "crasher")
    assert again is not None and not is_alive(again) and again.restarts == failed.restarts
    fresh = supervisor.start("crasher", ["sleep", "600"])
    assert fresh.restarts == 0 and not fresh.failed


def test_start_and_stop_refuse_while_the_watchdog_holds_the_lock(supervisor: Supervisor) -> None:
    """The per-daemon lock is what keeps the watchdog and a user from acting on one daemon at once."""
    supervisor.start("locked", ["sleep", "600"])
    with supervisor.locked("locked"), supervisor.locked("locked", wait=False) as mine:
        assert mine is False
    with supervisor.locked("locked", wait=False) as mine:
        assert mine is True
    with pytest.raises(ProcError, match="already running"):
        supervisor.start("locked", ["sleep", "600"])
