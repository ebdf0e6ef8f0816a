"""How a node's daemons are started: supervised processes in the lab, systemd units on VMs.

The bootstrap decides *what* runs (the same commands in both places); a
Launcher decides *how*, so what the lab tests is what the VMs run.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from deploy.lab.procs import Supervisor
from deploy.lab.restart import DEFAULT_POLICY, RestartPolicy

SYSTEMD_DIR = Path(__file__).resolve().parent.parent / "systemd"
UNIT_DIR = Path("/etc/systemd/system")


class Launcher(Protocol):
    systemd: bool

    def start(self, name: str, argv: Sequence[str], *, netns: str | None = None, after: str = "") -> None:
        """Start (or restart) daemon `name` running `argv`, inside `netns` if given."""
        ...

    def stop(self, name: str) -> None: ...

    def log_path(self, name: str) -> Path: ...


class SupervisorLauncher:
    """Lab: detached processes in network namespaces, with pid files and a cgroup."""

    systemd = False

    def __init__(self, supervisor: Supervisor) -> None:
        self.supervisor = supervisor

    def start(self, name: str, argv: Sequence[str], *, netns: str | None = None, after: str = "") -> None:
        del after
        if self.supervisor.get(name) is not None:
            self.supervisor.stop(name)
        self.supervisor.start(name, list(argv), netns=netns)

    def stop(self, name: str) -> None:
        self.supervisor.stop(name)

    def log_path(self, name: str) -> Path:
        return self.supervisor.log_path(name)


# Words systemd takes as they are: no quoting, escaping, specifiers or variables.
_PLAIN_WORD = re.compile(r"[A-Za-z0-9_@+=:,./-]+")


def systemd_escape(text: str) -> str:
    """`text` with systemd's specifiers (`%`) and variable references (`$`) made literal."""
    return text.replace("%", "%%").replace("$", "$$")


def render_exec(argv: Sequence[str]) -> str:
    """An ExecStart= value that makes systemd run exactly `argv`.

    systemd unquotes words with C-style escapes, expands `%` specifiers and
    `$VAR` references, and splits commands at a lone `;`: each is made literal.
    """
    if not argv or not argv[0]:
        raise ValueError("ExecStart needs a command")
    if argv[0][:1] in "@-:+!":
        raise ValueError(f"command {argv[0]!r} starts with a character systemd reads as a prefix")
    words = []
    for arg in argv:
        if arg == ";":
            words.append("\\;")
        elif _PLAIN_WORD.fullmatch(arg):
            words.append(arg)
        else:
            quoted = arg.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
            words.append(f'"{systemd_escape(quoted)}"')
    return " ".join(words)


def render_unit(name: str, argv: Sequence[str], *, log_file: Path, after: str = "", template: str = "",
                policy: RestartPolicy = DEFAULT_POLICY) -> str:
    """A unit file for daemon `name` from the templates in deploy/systemd/, restarted as the lab restarts."""
    tmpl = (SYSTEMD_DIR / (template or "kubelite-daemon.service")).read_text()
    return tmpl.format(name=systemd_escape(name), exec_start=render_exec(argv), log_file=systemd_escape(str(log_file)),
                       after=f"kubelite-{after}.service" if after else "", **policy.unit_settings())


class SystemdLauncher:
    """VMs: one unit per daemon (`kubelite-<name>.service`), enabled so it survives reboots."""

    systemd = True

    def __init__(self, log_dir: Path, unit_dir: Path = UNIT_DIR) -> None:
        self.log_dir = log_dir
        self.unit_dir = unit_dir

    def start(self, name: str, argv: Sequence[str], *, netns: str | None = None, after: str = "") -> None:
        if netns:
            argv = ["nsenter", f"--net=/run/netns/{netns}", "--", *argv]
        template = "kubelite-containerd.service" if name == "containerd" else "kubelite-daemon.service"
        self.log_dir.mkdir(parents=True, exist_ok=True)
        unit = self.unit_dir / f"kubelite-{name}.service"
        unit.write_text(render_unit(name, argv, log_file=self.log_path(name), after=after, template=template))
        _systemctl("daemon-reload")
        _systemctl("enable", unit.name)
        _systemctl("restart", unit.name)

    def stop(self, name: str) -> None:
        _systemctl("stop", f"kubelite-{name}.service")

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"


def _systemctl(*args: str) -> None:
    result = subprocess.run(["systemctl", *args], capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"systemctl {' '.join(args)} failed: {result.stderr.strip()}")
