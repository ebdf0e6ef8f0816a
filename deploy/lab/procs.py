"""Supervise the lab's daemons: start them inside a network namespace, detached, logged, tracked.

A daemon runs as `nsenter --net=/run/netns/<ns> -- argv` (not `ip netns exec`, which remounts
/sys and hides the cgroup mounts from runc), in its own session, with stdout and stderr appended
to `<log_dir>/<name>.log`. Its pid file `<pid_dir>/<name>.json` records the pid with its start
time and boot id, so a recycled pid is never taken for the daemon.

Every daemon also joins `<cluster cgroup>/daemons/<name>` in the cgroup2 hierarchy (mounted at
/sys/fs/cgroup/unified on this cgroup-v1 host, used by no controller, or /sys/fs/cgroup on a v2
host), before its first instruction, so whatever it forks (containerd's shims, and pods if the
runtime uses the plan's cgroup_parent) stays inside the cluster's cgroup. `stop_all` kills that
whole tree with cgroup.kill, which finds every leftover even when pid files are lost. The v1
controller hierarchies stay untouched: the host already uses some (memory) for its own tracking.

A daemon that dies without being stopped is started again by the cluster's watchdog
(deploy/lab/watchdog.py, itself the daemon named `supervisor`). A per-daemon lock file keeps the
watchdog and whoever starts or stops a daemon from acting on it at the same time; `stop` removes
the pid file before it lets go, so a stopped daemon is never revived.

Stopping tolerates whatever vanishes underneath it (a process that exits, a cgroup removed by
someone else): ENOENT, ENODEV and ESRCH mean "already gone", never an error.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import signal
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import cache
from pathlib import Path

import structlog

from deploy.lab.network import netns_path
from deploy.lab.plan import LabPlan

log = structlog.get_logger("deploy.lab.procs")

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
KILL_TIMEOUT = 5.0
LOCK_TIMEOUT = 30.0
WATCHDOG = "supervisor"  # the daemon that restarts the others
# What a vanished process, cgroup or file answers: for a teardown, the same as done.
GONE = frozenset({errno.ENOENT, errno.ENODEV, errno.ESRCH})
_POLL = 0.02
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
_BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
# The wrapper waits until the parent has put it in its cgroup and written its pid file, then
# becomes the daemon by exec (same pid, same start time): nothing it forks escapes the cgroup.
_GATE = 'read -r _ || exit 125; cd "$1" || exit 125; shift; exec "$@" </dev/null'


class ProcError(RuntimeError):
    """A daemon could not be started, identified or stopped."""


@dataclass(frozen=True)
class ProcRecord:
    """What a pid file holds: enough to recognise the daemon's process later."""

    name: str
    pid: int
    start_ticks: int  # /proc/<pid>/stat starttime: with the boot id, unique to this process
    boot_id: str
    argv: tuple[str, ...]
    netns: str | None
    cgroup: str | None
    log_path: str
    started_at: float
    env: dict[str, str] = field(default_factory=dict)  # added to the starter's environment
    cwd: str = "/"
    restarts: int = 0  # automatic restarts since it was last started by hand
    starts: tuple[float, ...] = ()  # recent start times (time.time()), for the start limit
    failed: str = ""  # why the watchdog gave up on it; it stays dead until started by hand


def gone(exc: OSError) -> bool:
    """Whether an error only says the process, cgroup or file is not there (any more)."""
    return exc.errno in GONE


def is_alive(record: ProcRecord) -> bool:
    """Whether the recorded process still runs (a zombie or a recycled pid does not count)."""
    if record.boot_id != _boot_id():
        return False
    stat = _stat(record.pid)
    if stat is None or stat[1] != record.start_ticks:
        return False
    if stat[0] in "ZX":
        _reap(record.pid)
        return False
    return True


@dataclass(frozen=True)
class Supervisor:
    """Starts and stops one cluster's daemons; state lives in pid_dir, log_dir and cgroup."""

    pid_dir: Path
    log_dir: Path
    cgroup: str | None = None  # relative to the cgroup2 root; None: no cgroup tracking

    @classmethod
    def for_plan(cls, plan: LabPlan) -> Supervisor:
        return cls(pid_dir=plan.paths.pid_dir, log_dir=plan.paths.log_dir, cgroup=plan.cgroup)

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        netns: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> ProcRecord:
        """Start `argv` as daemon `name`, inside network namespace `netns` if given.

        env entries are added to this process's environment; the daemon starts in cwd or /.
        """
        if not _NAME_RE.fullmatch(name):
            raise ProcError(f"daemon name {name!r} is invalid: use [a-z0-9._-], at most 63 characters")
        if not argv:
            raise ProcError(f"daemon {name}: empty command")
        with self.locked(name):
            current = self._load(name)
            if current is not None and is_alive(current):
                raise ProcError(f"daemon {name} is already running as pid {current.pid}")
            try:
                return self._spawn(name, tuple(argv), netns=netns, env=dict(env or {}), cwd=str(cwd or "/"),
                                   restarts=0, starts=(time.time(),))
            except BaseException:
                self._pid_file(name).unlink(missing_ok=True)
                raise

    def respawn(self, record: ProcRecord, *, starts: tuple[float, ...]) -> ProcRecord:
        """Start a dead daemon again as it was started, counting a restart (the caller holds its lock).

        If the start fails, the pid file keeps the dead record with the attempt counted.
        """
        try:
            return self._spawn(record.name, record.argv, netns=record.netns, env=record.env, cwd=record.cwd,
                               restarts=record.restarts + 1, starts=starts)
        except BaseException:
            self.save(replace(record, restarts=record.restarts + 1, starts=starts))
            raise

    def _spawn(self, name: str, argv: tuple[str, ...], *, netns: str | None, env: dict[str, str], cwd: str,
               restarts: int, starts: tuple[float, ...]) -> ProcRecord:
        environ = {**os.environ, **env}
        if shutil.which(argv[0], path=environ.get("PATH")) is None:
            raise ProcError(f"daemon {name}: {argv[0]!r} not found on PATH")
        command = list(argv)
        if netns is not None:
            if not os.path.ismount(netns_path(netns)):
                raise ProcError(f"daemon {name}: network namespace {netns} does not exist")
            command = ["nsenter", f"--net={netns_path(netns)}", "--", *command]
        cgroup = f"{self.cgroup}/daemons/{name}" if self.cgroup else None
        cgroup_dir = cgroup2_root() / cgroup if cgroup else None
        if cgroup_dir is not None:
            cgroup_dir.mkdir(parents=True, exist_ok=True)
        self.pid_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_path(name)
        gate_read, gate_write = os.pipe()
        try:
            pid = os.posix_spawn(
                "/bin/sh",
                ["/bin/sh", "-c", _GATE, f"kubelite-{name}", cwd, *command],
                environ,
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, gate_read, 0),
                    (os.POSIX_SPAWN_OPEN, 1, str(log_path), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
                    (os.POSIX_SPAWN_DUP2, 1, 2),
                ],
                setsid=True,
                setsigmask=(),
                # Python ignores these; an ignored signal would stay ignored across exec.
                setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),
            )
        except BaseException:
            os.close(gate_write)
            raise
        finally:
            os.close(gate_read)
        try:
            stat = _stat(pid)
            if stat is None:
                raise ProcError(f"daemon {name}: pid {pid} vanished before it was recorded")
            if cgroup_dir is not None:
                (cgroup_dir / "cgroup.procs").write_text(str(pid))
            record = ProcRecord(
                name=name,
                pid=pid,
                start_ticks=stat[1],
                boot_id=_boot_id(),
                argv=argv,
                netns=netns,
                cgroup=cgroup,
                log_path=str(log_path),
                started_at=time.time(),
                env=env,
                cwd=cwd,
                restarts=restarts,
                starts=starts,
            )
            self.save(record)
            os.write(gate_write, b"go\n")
        except BaseException:
            os.kill(pid, signal.SIGKILL)  # our unreaped child: the pid cannot have been reused
            os.waitpid(pid, 0)
            raise
        finally:
            os.close(gate_write)
        if netns is not None:
            try:
                _wait_in_netns(record, netns_path(netns))
            except BaseException:
                # Our child still: nothing half-started is left running.
                _signal_group(pid, signal.SIGKILL)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)
                raise
        log.info("daemon_started", name=name, pid=pid, netns=netns, argv=list(argv), log_path=str(log_path),
                 restarts=restarts)
        return record

    def get(self, name: str) -> ProcRecord | None:
        """The daemon's record if it is running, else None."""
        record = self._load(name)
        return record if record is not None and is_alive(record) else None

    def records(self) -> list[ProcRecord]:
        """Every pid file's record, running or not (a dead one means the daemon exited)."""
        if not self.pid_dir.is_dir():
            return []
        found = (self._load(path.stem) for path in sorted(self.pid_dir.glob("*.json")))
        return [record for record in found if record is not None]

    def stop(self, name: str, *, timeout: float = STOP_TIMEOUT) -> bool:
        """SIGTERM the daemon's process group, SIGKILL it after `timeout`; True if it was running."""
        with self.locked(name):
            record = self._load(name)
            if record is None:
                return False
            try:
                stopped = _terminate([record], timeout)
            finally:
                self._pid_file(name).unlink(missing_ok=True)
            return bool(stopped)

    def stop_all(self, *, timeout: float = STOP_TIMEOUT, names: Sequence[str] | None = None) -> list[str]:
        """Stop the watchdog, then every recorded daemon (or those in `names`) at once.

        Without `names`, whatever is left in the cluster's cgroup is killed and the cgroup removed.
        Returns the names of the recorded daemons that were running.
        """
        stopped = []
        if names is None or WATCHDOG in names:
            stopped += [WATCHDOG] if self.stop(WATCHDOG, timeout=timeout) else []
        records = [r for r in self.records() if names is None or r.name in names]
        stopped += _terminate(records, timeout)
        for record in records:
            self._pid_file(record.name).unlink(missing_ok=True)
        if self.cgroup and names is None:
            kill_cgroup(self.cgroup)
            remove_cgroup(self.cgroup)
        log.info("daemons_stopped", stopped=stopped, cgroup=self.cgroup)
        return stopped

    @contextlib.contextmanager
    def locked(self, name: str, *, wait: bool = True) -> Iterator[bool]:
        """Hold daemon `name`'s lock (across processes); yields False if `wait` is False and it is taken."""
        self.pid_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.pid_dir / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + LOCK_TIMEOUT
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if not wait:
                        yield False
                        return
                    if time.monotonic() > deadline:
                        raise ProcError(f"daemon {name} is locked by another process for {LOCK_TIMEOUT:.0f}s") from None
                    time.sleep(_POLL)
            yield True
        finally:
            os.close(fd)  # releases the lock

    def _pid_file(self, name: str) -> Path:
        return self.pid_dir / f"{name}.json"

    def save(self, record: ProcRecord) -> None:
        """Write the daemon's pid file (atomically)."""
        self.pid_dir.mkdir(parents=True, exist_ok=True)
        path = self._pid_file(record.name)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(record)))
        tmp.replace(path)

    def _load(self, name: str) -> ProcRecord | None:
        path = self._pid_file(name)
        try:
            data = json.loads(path.read_text())
            data["argv"] = tuple(data["argv"])
            data["starts"] = tuple(data.get("starts", ()))
            return ProcRecord(**data)
        except FileNotFoundError:
            return None
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("pid_file_unreadable", path=str(path), error=str(exc))
            return None


def _wait_in_netns(record: ProcRecord, path: Path, timeout: float = START_TIMEOUT) -> None:
    """Return once the daemon is inside the namespace, so callers never see it half started."""
    target = os.stat(path).st_ino
    deadline = time.monotonic() + timeout
    while True:
        try:
            if os.stat(f"/proc/{record.pid}/ns/net").st_ino == target:
                return
        except OSError as exc:
            if not gone(exc):
                raise  # else exited; reported below
        if not is_alive(record):
            try:
                tail = Path(record.log_path).read_text(errors="replace")[-500:].strip()
            except FileNotFoundError:
                tail = "(no log)"
            raise ProcError(f"daemon {record.name} exited while starting (log {record.log_path}): {tail}")
        if time.monotonic() > deadline:
            raise ProcError(f"daemon {record.name} (pid {record.pid}) did not enter {path} in {timeout}s")
        time.sleep(_POLL / 4)


def _terminate(records: Sequence[ProcRecord], timeout: float) -> list[str]:
    """SIGTERM each running record's group, SIGKILL the stragglers; names of those running."""
    running = [r for r in records if is_alive(r)]
    for record in running:
        _signal_group(record.pid, signal.SIGTERM)
    left = _wait_dead(running, timeout)
    for record in left:
        log.warning("daemon_killed", name=record.name, pid=record.pid, after_s=timeout)
        _signal_group(record.pid, signal.SIGKILL)
    left = _wait_dead(left, KILL_TIMEOUT)
    if left:
        raise ProcError(f"daemons {[r.name for r in left]} survived SIGKILL for {KILL_TIMEOUT}s")
    for record in running:
        # Children left in the group once the leader is gone; its pgid cannot be reused
        # while they live. Shims and pods run in groups of their own and are not touched.
        _signal_group(record.pid, signal.SIGKILL)
        log.info("daemon_stopped", name=record.name, pid=record.pid)
    return [r.name for r in running]


def _wait_dead(records: Sequence[ProcRecord], timeout: float) -> list[ProcRecord]:
    deadline = time.monotonic() + timeout
    left = [r for r in records if is_alive(r)]
    while left and time.monotonic() < deadline:
        time.sleep(_POLL)
        left = [r for r in left if is_alive(r)]
    return left


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _reap(pid: int) -> None:
    # Only our own children can be reaped; anyone else's are their parent's business.
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks) from /proc/<pid>/stat, or None if there is no such pid."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError as exc:
        if gone(exc):
            return None
        raise
    # comm (field 2) may hold spaces and parentheses; the fields after its last ')' are fixed.
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])


@cache
def _boot_id() -> str:
    return _BOOT_ID.read_text().strip()


@cache
def _cgroup_mounts() -> tuple[tuple[str, Path], ...]:
    """(filesystem type, mount point) of every cgroup and cgroup2 mount."""
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fstype = right.split()[0]
        if fstype in ("cgroup", "cgroup2"):
            mounts.append((fstype, Path(left.split()[4])))
    return tuple(mounts)


def cgroup2_root() -> Path:
    """Where the cgroup2 hierarchy is mounted (/sys/fs/cgroup/unified on a hybrid host)."""
    for fstype, mount in _cgroup_mounts():
        if fstype == "cgroup2":
            return mount
    raise ProcError("no cgroup2 hierarchy is mounted; start daemons with cgroup=None")


def cgroup_dirs(cgroup: str) -> list[Path]:
    """The directories of `cgroup` (relative path) that exist, in every hierarchy."""
    return [mount / cgroup for _, mount in _cgroup_mounts() if (mount / cgroup).is_dir()]


def cgroup_pids(cgroup: str) -> set[int]:
    """Every process in `cgroup` or below it, in any hierarchy (pods may sit in v1 ones only)."""
    pids: set[int] = set()
    for top in cgroup_dirs(cgroup):
        for dirpath, _, _ in os.walk(top):
            try:
                pids.update(int(p) for p in Path(dirpath, "cgroup.procs").read_text().split())
            except OSError as exc:
                if not gone(exc):
                    raise
                # Removed while walking: ENOENT before the open, ENODEV between open and read.
    return pids


def kill_cgroup(cgroup: str, *, timeout: float = KILL_TIMEOUT) -> int:
    """SIGKILL every process in `cgroup`'s tree and wait until it is empty; return how many."""
    pids = cgroup_pids(cgroup)
    if not pids:
        return 0
    log.warning("cgroup_leftovers_killed", cgroup=cgroup, pids=sorted(pids))
    for fstype, mount in _cgroup_mounts():
        kill_file = mount / cgroup / "cgroup.kill"
        if fstype == "cgroup2" and kill_file.exists():
            try:
                kill_file.write_text("1")  # atomic for the whole v2 subtree: nothing forks away
            except OSError as exc:
                if not gone(exc):
                    raise
    deadline = time.monotonic() + timeout
    left = cgroup_pids(cgroup)
    while left:
        if time.monotonic() > deadline:
            raise ProcError(f"cgroup {cgroup} still holds pids {sorted(left)} after {timeout}s")
        for pid in left:  # processes only in v1 hierarchies, or kernels without cgroup.kill
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(_POLL)
        left = cgroup_pids(cgroup)
    for pid in pids:
        _reap(pid)
    return len(pids)


def remove_cgroup(cgroup: str) -> None:
    """Remove `cgroup` and everything below it in every hierarchy (it must hold no process)."""
    for top in cgroup_dirs(cgroup):
        for dirpath, _, _ in os.walk(top, topdown=False):
            _rmdir_cgroup(dirpath)
    log.info("cgroup_removed", cgroup=cgroup)


def _rmdir_cgroup(path: str, timeout: float = 5.0) -> None:
    # A cgroup stays busy for a moment after its last process died (the kernel frees it
    # asynchronously), so EBUSY right after a kill is retried briefly.
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.rmdir(path)
            return
        except OSError as exc:
            if gone(exc):
                return
            if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                raise ProcError(f"cannot remove cgroup {path}: {exc}") from exc
        time.sleep(_POLL)
