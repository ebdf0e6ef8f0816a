"""`kubelite chaos ...`: faults on a lab cluster, bounded in time, undone when they end."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

import click

from api import logs
from cli.common import local_cluster_option, run

T = TypeVar("T")


def _failures() -> tuple[type[Exception], ...]:
    """What a fault on a lab can run into: each is said in one line, never as a traceback."""
    from chaos.faults import ChaosError
    from deploy.lab.cluster import LabError
    from deploy.lab.network import NetworkError
    from deploy.lab.plan import LabPlanError
    from deploy.lab.procs import ProcError
    from deploy.node.containerd import NodeRuntimeError

    return ChaosError, LabError, LabPlanError, NetworkError, ProcError, NodeRuntimeError, TimeoutError, OSError


def _target(name: str):  # type: ignore[no-untyped-def]
    from chaos.faults import LabTarget

    try:
        return LabTarget(name)
    except _failures() as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(1)


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        return run(coro)
    except _failures() as e:
        click.echo(f"error: {e or type(e).__name__}", err=True)
        sys.exit(1)


@click.group()
def chaos() -> None:
    """Inject node and component failures into a local cluster and report the recovery."""
    logs.configure("chaos", level="warning")


@chaos.command("stop-node")
@click.argument("node")
@local_cluster_option
@click.option("--for", "seconds", type=click.FloatRange(0.5, 600), default=15.0, show_default=True,
              help="seconds until the node comes back")
def stop_node(node: str, name: str, seconds: float) -> None:
    """Stop a node's kubelet, proxy, speaker, ingress controller and containerd, then bring them back."""
    target = _target(name)

    async def go() -> None:
        await target.stop_node(node)
        click.echo(f"node {node} stopped for {seconds:.0f}s", err=True)
        try:
            await asyncio.sleep(seconds)
        finally:
            await target.start_node(node)
        click.echo(f"node {node} started again", err=True)

    _run(go())


@chaos.command("partition")
@click.argument("node")
@local_cluster_option
@click.option("--for", "seconds", type=click.FloatRange(0.5, 600), default=15.0, show_default=True)
def partition(node: str, name: str, seconds: float) -> None:
    """Cut a node off the lab network (its processes keep running), then reconnect it."""
    target = _target(name)

    async def go() -> None:
        await target.cut_off(node)
        click.echo(f"node {node} cut off for {seconds:.0f}s", err=True)
        try:
            await asyncio.sleep(seconds)
        finally:
            await target.heal(node)
        click.echo(f"node {node} reconnected", err=True)

    _run(go())


@chaos.command("restart")
@click.argument("component")
@local_cluster_option
def restart(component: str, name: str) -> None:
    """SIGKILL a component (apiserver, scheduler, controller-manager, dns, kubelet-n1, ...) and start it again."""
    target = _target(name)
    _run(target.restart(component))
    click.echo(f"{component} restarted", err=True)


@chaos.command("run")
@click.argument("scenario", type=click.Choice(["node-loss", "partition", "apiserver-restart"]))
@click.option("--node", default="n1", show_default=True)
@local_cluster_option
@click.option("--namespace", "-n", default="default", show_default=True)
@click.option("--timeout", type=float, default=60.0, show_default=True)
def run_scenario(scenario: str, node: str, name: str, namespace: str, timeout: float) -> None:
    """Run a scenario and print its report as JSON (exit 1 if recovery failed)."""
    from chaos import scenarios
    from client.api import Client
    from deploy.lab.cluster import client_config_for

    target = _target(name)

    async def go() -> dict:
        async with Client(client_config_for(target.plan)) as client:
            if scenario == "apiserver-restart":
                report = await scenarios.component_restart(target, client, "apiserver", timeout=timeout)
            else:
                report = await scenarios.node_loss(target, client, node, namespace=namespace, timeout=timeout,
                                                   lost="stop" if scenario == "node-loss" else "cut")
        return report.as_dict()

    result = _run(go())
    click.echo(json.dumps(result, indent=2))
    if not result["ok"]:
        sys.exit(1)


COMMANDS: list[click.Command] = [chaos]
