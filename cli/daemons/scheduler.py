"""`kubelite scheduler` (the daemon) and `kubelite explain pod NAME` (why a pod is pending or went where it did).

`explain` runs the scheduler's own plugins here, in the CLI process, over a
snapshot listed from the apiserver. It imports scheduler.framework and
scheduler.plugins (pure code: no daemon, no I/O), so that explain can never
disagree with the scheduler about a verdict; that is why it lives on the
scheduler's side of the CLI and not among the user commands, which import
only api/ and client/.
"""

from __future__ import annotations

import os
import socket
import sys

import click

from api import logs, quantity
from api.errors import NotFoundError
from api.pb import core_pb2
from cli.common import CliError, connection_options, run
from client.api import Client
from client.config import ClientConfig
from scheduler.framework.config import ConfigError, SchedulerConfig
from scheduler.framework.config import load as load_config
from scheduler.framework.interface import Code
from scheduler.framework.runner import Explanation
from scheduler.framework.types import PodInfo, VolumeState, compute_snapshot
from scheduler.plugins import new_framework


def _config(path: str | None, **overrides: object) -> SchedulerConfig:
    try:
        base = load_config(path) if path else SchedulerConfig()
        return base.with_overrides(**overrides)
    except (ConfigError, ValueError, TypeError) as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(1)


@click.command()
@connection_options
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
              help="scheduler configuration (YAML; see scheduler/default-config.yaml)")
@click.option("--leader-elect/--no-leader-elect", default=None,
              help="campaign for the kube-system/kube-scheduler Lease; only the leader schedules (default: on)")
@click.option("--identity", default=None, help="this instance's name in the Lease (default: hostname_pid)")
@click.option("--percentage-of-nodes-to-score", type=click.IntRange(0, 100), default=None,
              help="stop filtering once this share of nodes is feasible; 0 = adaptive")
@click.option("--backoff-initial", type=click.FloatRange(min=0.001), default=None,
              help="seconds an unschedulable pod waits before its first retry (default 1)")
@click.option("--backoff-max", type=click.FloatRange(min=0.001), default=None,
              help="longest wait between retries, seconds (default 60)")
@click.option("--parallelism", type=click.IntRange(min=1), default=None,
              help="binds and status writes in flight at once (default 64)")
@click.option("--log-level", default="info", show_default=True)
def scheduler(conn: ClientConfig, config_file: str | None, leader_elect: bool | None, identity: str | None,
              percentage_of_nodes_to_score: int | None, backoff_initial: float | None, backoff_max: float | None,
              parallelism: int | None, log_level: str) -> None:
    """Bind pending pods to nodes (filter, score, bind)."""
    from cli.daemons import serve
    from scheduler.daemon import Scheduler

    cfg = _config(config_file, leader_elect=leader_elect, percentage_of_nodes_to_score=percentage_of_nodes_to_score,
                  backoff_initial=backoff_initial, backoff_max=backoff_max, parallelism=parallelism)
    ident = identity or f"{socket.gethostname()}_{os.getpid()}"
    logs.configure("scheduler", level=log_level, identity=ident)

    async def main() -> None:
        async with Client(conn) as client:
            await Scheduler(client, cfg, identity=ident).run()

    serve(main())


# ---------------------------------------------------------------- explain


def _requests_text(info: PodInfo) -> str:
    parts = []
    if info.cpu:
        parts.append(f"cpu={quantity.format_milli(info.cpu)}")
    if info.memory:
        parts.append(f"memory={quantity.format_bytes(info.memory)}")
    if info.ephemeral:
        parts.append(f"ephemeral-storage={quantity.format_bytes(info.ephemeral)}")
    return " ".join(parts) or "none"


def render_explanation(pod: core_pb2.Pod, info: PodInfo, ex: Explanation) -> str:
    """The report `kubelite explain pod` prints."""
    lines = [f"Pod {info.key}: priority {info.priority}, requests {_requests_text(info)}"]
    if pod.spec.node_name:
        lines.append(f"Bound to {pod.spec.node_name}; evaluated as if it were not placed yet (excluding itself).")
    else:
        cond = next((c for c in pod.status.conditions if c.type == "PodScheduled"), None)
        lines.append("Pending" + (f": {cond.message}" if cond is not None and cond.message else "."))
    if pod.status.nominated_node_name:
        lines.append(f"Nominated node (preemption): {pod.status.nominated_node_name}")
    if ex.chosen:
        best = next(n.total for n in ex.nodes if n.node == ex.chosen[0])
        lines.append(f"Best node(s) now: {', '.join(ex.chosen)} (score {best})")
    else:
        lines.append(f"Fits nowhere now: {ex.message}")
    width = max((len(name) for n in ex.nodes for name in [*(f for f, _ in n.filters), *(s[0] for s in n.scores)]),
                default=10)
    for n in ex.nodes:
        head = f"feasible, score {n.total}" if n.feasible and n.total is not None else \
            ("feasible" if n.feasible else "rejected")
        lines.append("")
        lines.append(f"node {n.node}: {head}")
        for name, st in n.filters:
            verdict = st.code_name
            if st.code == Code.SKIP:
                lines.append(f"  filter {name:<{width}}  Skip ({st.message()})")
            elif st.ok:
                lines.append(f"  filter {name:<{width}}  {verdict}")
            else:
                lines.append(f"  filter {name:<{width}}  {verdict}: {st.message()}")
        for name, score, weight, weighted in n.scores:
            lines.append(f"  score  {name:<{width}}  {score:>3} x {weight} = {weighted}")
        if n.total is not None:
            lines.append(f"  total  {'':<{width}}  {n.total}")
    return "\n".join(lines)


@click.command()
@click.argument("kind", type=click.Choice(["pod", "pods", "po"]))
@click.argument("name")
@click.option("--namespace", "-n", default="", help="namespace (default: default)")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
              help="the scheduler's configuration file, for its score weights and strategy")
@connection_options
def explain(kind: str, name: str, namespace: str, config_file: str | None, conn: ClientConfig) -> None:
    """Show, for every node, each filter's verdict and each score for a pod."""
    del kind
    cfg = _config(config_file)
    ns = namespace or "default"

    async def go() -> str:
        async with Client(conn) as client:
            try:
                pod: core_pb2.Pod = await client.get("pods", name, ns)
            except NotFoundError:
                raise CliError(f'pod "{name}" not found in namespace "{ns}"') from None
            nodes = await client.list_all("nodes")
            pods = await client.list_all("pods")
            claims = await client.list_all("persistentvolumeclaims")
            pvs = await client.list_all("persistentvolumes")
            classes = await client.list_all("storageclasses")
        storage = VolumeState({f"{c.metadata.namespace}/{c.metadata.name}": c for c in claims},
                              {v.metadata.name: v for v in pvs}, {c.metadata.name: c for c in classes})
        snapshot = compute_snapshot(nodes, pods, exclude=f"{ns}/{name}", storage=storage)
        unplaced = core_pb2.Pod()
        unplaced.CopyFrom(pod)
        unplaced.spec.node_name = ""
        info = PodInfo(unplaced)
        ex = new_framework(cfg).explain(info, snapshot)
        return render_explanation(pod, info, ex)

    click.echo(run(go(), conn))
    sys.stdout.flush()


COMMANDS: list[click.Command] = [scheduler, explain]
