"""What every bench script shares: ports, CPU and memory readings, and the processes of a run.

`Processes` starts etcd, `kubelite apiserver` and any other kubelite daemon as
child processes of the benchmark, each logging to `<workdir>/<name>.log`, and
stops them newest first. Each script adds only what it measures.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from apiserver.storage import limits

BIN = Path(sys.executable).parent
GiB = 1024**3


def kubelite() -> list[str]:
    """The kubelite command of this virtualenv (or of PATH)."""
    exe = BIN / "kubelite"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("kubelite")
    return [found] if found else [sys.executable, "-m", "cli.main"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process (and its threads) used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile by nearest rank (nan for no values)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


class Processes:
    """The daemons of one benchmark run."""

    def __init__(self, workdir: Path, *, env: dict[str, str] | None = None, new_session: bool = False) -> None:
        self.workdir = workdir
        # No config file: a daemon must never pick up the user's current cluster.
        self.env = {**os.environ, "KUBELITE_CONFIG": str(workdir / "none.yaml"), **(env or {})}
        self.new_session = new_session
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.etcd_url = ""  # once started
        self.address = ""  # the apiserver's, once started

    def spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = (self.workdir / f"{name}.log").open("ab")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                start_new_session=self.new_session)
        log.close()  # the child holds its own copy
        self.procs[name] = proc
        return proc

    def start_etcd(self, *, quota: int = 4 * GiB) -> str:
        """A one-member etcd on free loopback ports; its client URL."""
        cport, pport = free_port(), free_port()
        url = f"http://127.0.0.1:{cport}"
        etcd = shutil.which("etcd") or "/usr/bin/etcd"
        self.spawn("etcd", [etcd, "--name", "bench", "--data-dir", str(self.workdir / "etcd"),
                            "--listen-client-urls", url, "--advertise-client-urls", url,
                            "--listen-peer-urls", f"http://127.0.0.1:{pport}",
                            "--initial-advertise-peer-urls", f"http://127.0.0.1:{pport}",
                            "--initial-cluster", f"bench=http://127.0.0.1:{pport}", "--log-level", "error",
                            "--quota-backend-bytes", str(quota), *limits.etcd_flags()])
        wait_port(cport)
        self.etcd_url = url
        return url

    def start_apiserver(self, etcd_url: str, *, log_level: str = "warning", wait: bool = True) -> str:
        """`kubelite apiserver` over `etcd_url` on a free port; its address (host:port), once it listens."""
        port = free_port()
        address = f"127.0.0.1:{port}"
        self.spawn("apiserver", [*kubelite(), "apiserver", "--etcd-servers", etcd_url, "--listen", address,
                                 "--log-level", log_level])
        if wait:
            wait_port(port)
        self.address = address
        return address

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        """Another kubelite daemon: `kubelite ARGS...` (scheduler, controller-manager, kubelet, hollow-nodes)."""
        return self.spawn(name, [*kubelite(), *args])

    def cpu(self) -> dict[str, float]:
        out = {}
        for name, p in self.procs.items():
            with contextlib.suppress(OSError):
                out[name] = round(cpu_seconds(p.pid), 1)
        return out

    def stop(self, name: str, timeout: float = 20.0) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def stop_all(self) -> None:
        """Newest first: clients before the apiserver, the apiserver before etcd."""
        for name in reversed(list(self.procs)):
            self.stop(name)
