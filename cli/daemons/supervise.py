"""`kubelite supervise`: the lab's watchdog daemon, which `kubelite up` starts for each cluster."""

from __future__ import annotations

from pathlib import Path

import click

from api import logs


@click.command(hidden=True)
@click.option("--pid-dir", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--log-dir", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--cgroup", default="", help="the cluster's cgroup (relative to the cgroup2 root)")
@click.option("--log-level", default="info")
def supervise(pid_dir: Path, log_dir: Path, cgroup: str, log_level: str) -> None:
    """Start a local cluster's daemons again when they die (Restart=on-failure), until SIGTERM."""
    from deploy.lab.procs import Supervisor
    from deploy.lab.watchdog import serve

    logs.configure("supervisor", level=log_level)
    serve(Supervisor(pid_dir=pid_dir, log_dir=log_dir, cgroup=cgroup or None))


COMMANDS: list[click.Command] = [supervise]
