"""Daemon supervision (root): namespaces, logs, pid identity, group and cgroup kills."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from deploy.lab import LabPlan, ProcError, Supervisor, is_alive, netns_path
from deploy.lab.procs import cgroup_dirs, cgroup_pids

from .labhelp import in_netns


def wait_for(condition, what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def gone(pid: int) -> bool:
    """No such process, or only a zombie left for a parent outside this test to reap."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state == "Z"


def test_daemon_runs_in_its_namespace_serves_the_lab_and_logs(lab: LabPlan) -> None:
    """A daemon started in n2 lives in n2's network namespace and cgroup, answers n1, and logs."""
    supervisor = Supervisor.for_plan(lab)
    n1, n2 = lab.node("n1"), lab.node("n2")
    record = supervisor.start(
        "n2-echo",
        ["sh", "-c", "echo listening; exec busybox nc -ll -p 7000 -e cat"],
        netns=n2.netns,
    )
    assert is_alive(record)
    assert os.stat(f"/proc/{record.pid}/ns/net").st_ino == os.stat(netns_path(n2.netns)).st_ino
    assert f"0::/{lab.cgroup}/daemons/n2-echo" in Path(f"/proc/{record.pid}/cgroup").read_text().splitlines()
    assert json.loads((lab.paths.pid_dir / "n2-echo.json").read_text())["pid"] == record.pid
    wait_for(lambda: "listening" in supervisor.log_path("n2-echo").read_text(), "the log line")

    def echoed() -> bool:
        reply = in_netns(n1.netns, "sh", "-c", f"echo hello | timeout 3 busybox nc {n2.address} 7000")
        return reply.stdout == "hello\n"

    wait_for(echoed, "an echo from n2")
    assert supervisor.get("n2-echo") == record
    assert supervisor.stop("n2-echo") is True
    assert gone(record.pid)
    assert not is_alive(record)
    assert supervisor.get("n2-echo") is None
    assert not (lab.paths.pid_dir / "n2-echo.json").exists()
    assert supervisor.stop("n2-echo") is False


def test_env_and_cwd_reach_the_daemon(tmp_path: Path) -> None:
    """Extra environment entries and the working directory are the daemon's; stdin is /dev/null."""
    supervisor = Supervisor(pid_dir=tmp_path / "pids", log_dir=tmp_path / "logs")
    script = 'echo "foo=$FOO cwd=$(pwd)"; cat; echo eof; exec sleep 600'
    record = supervisor.start("env", ["sh", "-c", script], env={"FOO": "bar"}, cwd=tmp_path)
    try:
        wait_for(lambda: "eof" in supervisor.log_path("env").read_text(), "the daemon's output")
        assert supervisor.log_path("env").read_text() == f"foo=bar cwd={tmp_path}\neof\n"
        assert record.netns is None and record.cgroup is None
    finally:
        supervisor.stop_all(timeout=2.0)


def test_stop_escalates_to_sigkill_for_the_whole_group(lab: LabPlan) -> None:
    """A daemon ignoring SIGTERM is killed after the timeout, together with its children."""
    supervisor = Supervisor.for_plan(lab)
    record = supervisor.start("n1-stubborn", ["sh", "-c", 'trap "" TERM; sleep 600 & wait'], netns=lab.node("n1").netns)
    wait_for(lambda: len(cgroup_pids(record.cgroup)) == 2, "the child to start")
    pids = cgroup_pids(record.cgroup)
    started = time.monotonic()
    with capture_logs() as logs:
        assert supervisor.stop("n1-stubborn", timeout=0.3) is True
    assert time.monotonic() - started >= 0.3
    assert "daemon_killed" in [e["event"] for e in logs]
    assert all(gone(pid) for pid in pids)


def test_a_recycled_pid_is_not_taken_for_the_daemon(lab: LabPlan) -> None:
    """A pid file whose pid now belongs to another process (other start time or boot) is dead."""
    supervisor = Supervisor.for_plan(lab)
    real = supervisor.start("n1-sleep", ["sleep", "600"], netns=lab.node("n1").netns)
    for forged in (
        dataclasses.replace(real, name="ghost", start_ticks=real.start_ticks + 1),
        dataclasses.replace(real, name="ghost", boot_id="00000000-0000-0000-0000-000000000000"),
    ):
        (lab.paths.pid_dir / "ghost.json").write_text(json.dumps(dataclasses.asdict(forged)))
        assert not is_alive(forged)
        assert supervisor.get("ghost") is None
        assert supervisor.stop("ghost", timeout=0.1) is False
        assert is_alive(real)
    assert supervisor.stop_all(timeout=2.0) == ["n1-sleep"]


def test_stop_all_kills_leftovers_even_without_pid_files(lab: LabPlan) -> None:
    """With its pid files lost, stop_all still kills a daemon and a child that left its session."""
    supervisor = Supervisor.for_plan(lab)
    record = supervisor.start(
        "n3-forker", ["sh", "-c", "setsid sleep 600 & exec sleep 601"], netns=lab.node("n3").netns
    )
    wait_for(lambda: len(cgroup_pids(lab.cgroup)) == 2, "the escaped child")
    pids = cgroup_pids(lab.cgroup)
    for path in lab.paths.pid_dir.iterdir():
        path.unlink()
    with capture_logs() as logs:
        assert supervisor.stop_all(timeout=1.0) == []
    assert "cgroup_leftovers_killed" in [e["event"] for e in logs]
    assert record.pid in pids
    assert all(gone(pid) for pid in pids)
    assert cgroup_dirs(lab.cgroup) == []


def test_start_refuses_a_running_name_and_restarts_a_dead_one(lab: LabPlan) -> None:
    """The same name cannot run twice; once it exited, it starts again under the same name."""
    supervisor = Supervisor.for_plan(lab)
    first = supervisor.start("cp-once", ["sleep", "600"], netns=lab.control_plane.netns)
    with pytest.raises(ProcError, match=f"cp-once is already running as pid {first.pid}"):
        supervisor.start("cp-once", ["sleep", "600"], netns=lab.control_plane.netns)
    short = supervisor.start("cp-short", ["sleep", "0.1"], netns=lab.control_plane.netns)
    wait_for(lambda: not is_alive(short), "the short daemon to exit")
    again = supervisor.start("cp-short", ["sleep", "600"], netns=lab.control_plane.netns)
    assert is_alive(again)
    assert sorted(r.name for r in supervisor.records()) == ["cp-once", "cp-short"]


def test_a_daemon_that_dies_while_starting_is_reported(lab: LabPlan, tmp_path: Path) -> None:
    """A daemon exiting before it is seen in its namespace raises with the end of its log. It must die before
    it enters the namespace: a command that fails inside it may be seen there first, under load, and then it
    started (the watchdog reports it). A working directory that does not exist stops it before nsenter."""
    supervisor = Supervisor.for_plan(lab)
    missing = tmp_path / "no-such-dir"
    with pytest.raises(ProcError, match=rf"n1-crash exited while starting .*: .*{missing.name}"):
        supervisor.start("n1-crash", ["sh", "-c", "echo started; sleep 60"], netns=lab.node("n1").netns,
                         cwd=missing)
    assert not any(r.name == "n1-crash" for r in supervisor.records())


@pytest.mark.parametrize(
    ("name", "argv", "netns", "message"),
    [
        pytest.param("Bad/Name", ["sleep", "1"], None, "daemon name 'Bad/Name' is invalid", id="bad-name"),
        pytest.param("x", [], None, "empty command", id="empty-command"),
        pytest.param("x", ["no-such-binary-kl"], None, "'no-such-binary-kl' not found on PATH", id="no-binary"),
        pytest.param("x", ["sleep", "1"], "kl-nosuchcluster-n1", "kl-nosuchcluster-n1 does not exist", id="no-netns"),
    ],
)
def test_start_errors_are_clear(tmp_path: Path, name: str, argv: list[str], netns: str | None, message: str) -> None:
    """A daemon that cannot start raises before anything is spawned, saying why."""
    supervisor = Supervisor(pid_dir=tmp_path / "pids", log_dir=tmp_path / "logs")
    with pytest.raises(ProcError, match=message):
        supervisor.start(name, argv, netns=netns)
    assert supervisor.records() == []
