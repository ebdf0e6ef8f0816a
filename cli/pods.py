"""`logs` and `exec`: a container's output and commands in it, through the apiserver; a local cluster's
component logs from the files the config file names."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
from pathlib import Path

import click

from api import kinds, labels
from api.pb import api_pb2
from cli.common import CliError, connection_options, namespace_option, with_client
from client.api import Client
from client.config import ClientConfig

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(text: str) -> int:
    """Seconds in a kubectl-style duration: 30s, 5m, 1h30m (a bare number is seconds)."""
    if text.isdigit():
        return int(text)
    m = _DURATION.fullmatch(text)
    if not m or not any(m.groups()):
        raise click.BadParameter(f"invalid duration {text!r} (use e.g. 30s, 5m, 1h)")
    h, mi, s = (int(g or 0) for g in m.groups())
    return h * 3600 + mi * 60 + s


@click.command()
@click.argument("pod", required=False)
@click.option("--container", "-c", default="", help="container name (required if the pod has several)")
@click.option("--follow", "-f", is_flag=True, help="keep streaming until the container exits")
@click.option("--tail", type=int, default=-1, help="only the last N lines (-1: all)")
@click.option("--previous", "-p", is_flag=True, help="the previous instance of the container")
@click.option("--timestamps", is_flag=True, help="prefix each line with its RFC3339 time")
@click.option("--since", default=None, help="only lines newer than this duration, e.g. 5m")
@click.option("--component", default=None,
              help="a local cluster's component log instead (apiserver, scheduler, kubelet-n1, ...)")
@click.option("--audit", is_flag=True, help="with --component apiserver: the apiserver's audit log")
@click.option("--audit-log", default=None, type=click.Path(dir_okay=False),
              help="with --audit: the audit log's path (a control plane made by `kubelite bootstrap`)")
@namespace_option
@connection_options
def logs(pod: str | None, container: str, follow: bool, tail: int, previous: bool, timestamps: bool,
         since: str | None, component: str | None, audit: bool, audit_log: str | None, namespace: str,
         conn: ClientConfig) -> None:
    """Print a container's logs: POD, or deploy/, rs/, job/, ds/ or sts/NAME (one of its pods); or --component."""
    if audit:
        if component != "apiserver":
            raise click.UsageError("--audit is the apiserver's: --component apiserver --audit")
        _audit_log(conn, audit_log, follow=follow, tail=tail)
        return
    if component:
        _component_logs(conn, component, follow=follow, tail=tail)
        return
    if not pod:
        raise click.UsageError("give a POD (or deploy/NAME, job/NAME, ...), or --component NAME")

    async def go(c: Client) -> None:
        name = await _pod_for(c, pod, namespace or "default")
        req = api_pb2.LogsRequest(namespace=namespace or "default", name=name, container=container, follow=follow,
                                  previous=previous, timestamps=timestamps)
        if tail >= 0:
            req.tail_lines = tail
        if since:
            req.since_seconds = parse_duration(since)
        out = sys.stdout.buffer
        async for data in c.logs(req):
            out.write(data)
            out.flush()

    with_client(conn, go)


async def _pod_for(c: Client, target: str, namespace: str) -> str:
    """A pod name for `pod`, `pod/NAME`, or a workload (`deploy/NAME`, `job/NAME`, ...): its oldest running pod, else
    its oldest pod."""
    kind_name, _, name = target.rpartition("/")
    if not kind_name:
        return target
    kind = kinds.lookup(kind_name)
    if kind.kind == "Pod":
        return name
    if kind.kind not in ("Deployment", "ReplicaSet", "Job", "DaemonSet", "StatefulSet"):
        raise CliError(f"cannot read logs of a {kind.kind}; use a pod, or deploy/, rs/, job/, ds/ or sts/NAME")
    owner = await c.get(kind.resource, name, namespace)
    selector = str(labels.from_label_selector(owner.spec.selector))
    candidates = (await c.list("pods", namespace, label_selector=selector)).items
    candidates.sort(key=lambda p: (p.status.phase != "Running", p.metadata.creation_timestamp.ToNanoseconds()))
    if not candidates:
        raise CliError(f"{kind.kind.lower()} {name} has no pods")
    return candidates[0].metadata.name


def _component_logs(conn: ClientConfig, component: str, *, follow: bool, tail: int) -> None:
    cluster = conn.cluster or "kubelite"
    if not conn.log_dir:
        raise click.ClickException(f"cluster {cluster!r} has no component logs on this machine: the config file "
                                   f"records them for clusters `kubelite up` started")
    log_dir = Path(conn.log_dir)
    path = log_dir / f"{component}.log"
    if not path.exists():
        known = sorted(p.stem for p in log_dir.glob("*.log")) if log_dir.exists() else []
        raise click.ClickException(f"no log for component {component!r} in cluster {cluster!r}"
                                   + (f" (components: {', '.join(known)})" if known else " (is it up?)"))
    argv = ["tail", "-n", str(tail) if tail >= 0 else "+1", *(["-F"] if follow else []), str(path)]
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(subprocess.call(argv))


def _audit_log(conn: ClientConfig, path: str | None, *, follow: bool, tail: int) -> None:
    """The audit log of a local cluster (beside its component logs), or the one at `path`."""
    if path is None:
        if not conn.log_dir:
            raise click.ClickException("no local cluster's audit log is known: give --audit-log PATH (a control "
                                       "plane made by `kubelite bootstrap` keeps it at <data dir>/audit/audit.log)")
        path = str(Path(conn.log_dir).parent / "control-plane" / "audit" / "audit.log")
    if not Path(path).exists():
        raise click.ClickException(f"no audit log at {path}")
    argv = ["tail", "-n", str(tail) if tail >= 0 else "+1", *(["-F"] if follow else []), path]
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(subprocess.call(argv))


@click.command("exec")
@click.argument("pod")
@click.argument("command", nargs=-1, required=True)
@click.option("--container", "-c", default="", help="container name (required if the pod has several)")
@click.option("--stdin", "-i", "use_stdin", is_flag=True, help="pass this command's stdin to the command")
@click.option("--timeout", type=int, default=60, show_default=True, help="seconds the command may run")
@namespace_option
@connection_options
def exec_(pod: str, command: tuple[str, ...], container: str, use_stdin: bool, timeout: int, namespace: str,
          conn: ClientConfig) -> None:
    """Run a command in a container: kubelite exec POD [-c C] -- CMD ARGS...

    Prints its stdout and stderr and exits with its exit code.
    """
    data = sys.stdin.buffer.read() if use_stdin else b""

    async def go(c: Client) -> api_pb2.ExecResponse:
        return await c.exec(namespace or "default", pod, list(command), container=container, stdin=data,
                            timeout_seconds=timeout)

    resp = with_client(conn, go)
    sys.stdout.buffer.write(resp.stdout)
    sys.stdout.buffer.flush()
    sys.stderr.buffer.write(resp.stderr)
    sys.stderr.buffer.flush()
    sys.exit(resp.exit_code)


COMMANDS: list[click.Command] = [logs, exec_]
