"""The nginx process: one master with its workers, inside the node's network namespace.

A configuration is first checked with `nginx -t` (a bad one never replaces a
good one), then put in place and the master is sent SIGHUP: it starts workers
on the new configuration and tells the old ones to finish the requests they
have and exit, so a reload drops no connection. SIGQUIT stops it the same
graceful way.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import os
import pwd
import signal
import time
from pathlib import Path

import structlog

log = structlog.get_logger()

TEMP_DIRS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
WORKER_USER = "nobody"  # nginx's own default: workers run unprivileged


# If the controller dies, nginx is told to stop (gracefully), so a new controller can take the ports. setpriv
# sets the signal and execs (nsenter and nginx keep it): no Python runs between fork and exec, which in a process
# with gRPC's threads can crash the child.
STOP_WITH_PARENT = ("setpriv", "--pdeathsig", "SIGQUIT")


def _stop_pid(pid: int, grace: float) -> None:
    """SIGQUIT, wait up to `grace` seconds for the process to go, then SIGKILL (blocking)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGQUIT)
    deadline = time.monotonic() + grace
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _ids() -> tuple[int, int]:
    entry = pwd.getpwnam(WORKER_USER)
    return entry.pw_uid, entry.pw_gid


def worker() -> str:
    """`user group` for nginx's workers: nobody and its own group (nogroup on Debian)."""
    return f"{WORKER_USER} {grp.getgrgid(_ids()[1]).gr_name}"


class NginxError(Exception):
    """nginx refused a configuration or would not start; the message carries its output."""


class Nginx:
    def __init__(self, state_dir: Path, *, netns: str = "", binary: str = "nginx") -> None:
        self.state_dir = state_dir
        self.conf = state_dir / "nginx.conf"
        self.netns = netns
        self.binary = binary
        self.proc: asyncio.subprocess.Process | None = None
        self.reloads = 0

    def _argv(self, conf: Path, *extra: str) -> list[str]:
        # `user` on the command line: the rendered configuration stays free of who runs it.
        return [self.binary, "-c", str(conf), "-p", str(self.state_dir), "-g", f"daemon off; user {worker()};",
                *extra]

    def prepare(self) -> None:
        """The state directory with the temp directories nginx's workers write."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        certs = self.state_dir / "certs"  # the Secrets' keys: nobody else reads them
        certs.mkdir(mode=0o700, exist_ok=True)
        os.chmod(certs, 0o700)
        tmp = self.state_dir / "tmp"
        tmp.mkdir(exist_ok=True)
        uid, gid = _ids()
        for name in TEMP_DIRS:
            d = tmp / name
            d.mkdir(exist_ok=True)
            os.chmod(d, 0o700)
            with contextlib.suppress(PermissionError):
                os.chown(d, uid, gid)

    async def test(self, conf: Path) -> None:
        """`nginx -t` of a configuration file (NginxError with nginx's words if it is refused)."""
        proc = await asyncio.create_subprocess_exec(*self._argv(conf, "-t", "-q"), stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE)
        try:
            async with asyncio.timeout(30):
                out, err = await proc.communicate()
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise
        if proc.returncode != 0:
            raise NginxError((err or out).decode(errors="replace").strip()[-2000:])

    async def stop_stale(self, grace: float = 10.0) -> None:
        """Stop an nginx an earlier controller left running on this state directory (it holds the ports)."""
        try:
            pid = int((self.state_dir / "nginx.pid").read_text().split()[0])
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()  # noqa: ASYNC240
        except (OSError, ValueError, IndexError):
            return
        if b"nginx" not in cmdline or str(self.state_dir).encode() not in cmdline:
            return
        log.warning("nginx_left_running", pid=pid)
        await asyncio.to_thread(_stop_pid, pid, grace)

    async def start(self) -> None:
        """Start the master on the configuration in place (in the node's namespace when one is given)."""
        prefix = ["nsenter", f"--net={self.netns}", "--"] if self.netns else []
        self.proc = await asyncio.create_subprocess_exec(*STOP_WITH_PARENT, *prefix, *self._argv(self.conf))
        log.info("nginx_started", pid=self.proc.pid)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def reload(self) -> None:
        """Graceful reload: new workers on the new configuration, old ones finish their connections."""
        if self.proc is None or self.proc.returncode is not None:
            raise NginxError("nginx is not running")
        self.proc.send_signal(signal.SIGHUP)
        self.reloads += 1

    async def wait(self) -> int:
        assert self.proc is not None
        return await self.proc.wait()

    async def stop(self, grace: float = 10.0) -> None:
        """SIGQUIT (finish the requests in flight), then SIGKILL after `grace` seconds."""
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGQUIT)
        try:
            async with asyncio.timeout(grace):
                await proc.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        log.info("nginx_stopped", code=proc.returncode)
