"""`kubelite chaos ...`: faults on a lab cluster or a VM lab, bounded in time, undone when they end."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import click

from api import logs
from cli.common import local_cluster_option, run

T = TypeVar("T")


def _failures() -> tuple[type[Exception], ...]:
    """What a fault on a lab can run into: each is said in one line, never as a traceback."""
    from chaos.faults import ChaosError
    from chaos.plan import PlanError
    from deploy.lab.cluster import LabError
    from deploy.lab.network import NetworkError
    from deploy.lab.plan import LabPlanError
    from deploy.lab.procs import ProcError
    from deploy.node.containerd import NodeRuntimeError

    return (ChaosError, PlanError, LabError, LabPlanError, NetworkError, ProcError, NodeRuntimeError, TimeoutError,
            OSError)


def _target(name: str, vm: str | None = None):  # type: ignore[no-untyped-def]
    """The lab cluster `name`, or the VM lab `vm` (this command then runs again inside its namespace)."""
    from chaos.faults import LabTarget
    from chaos.vm import VmTarget

    try:
        if vm is None:
            return LabTarget(name)
        _in_vm_lab(vm)
        return VmTarget.of(vm)
    except _failures() as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(1)


def _in_vm_lab(vm: str) -> None:
    """The VMs' network exists only in their lab's namespace: unless already there, run this same command again
    there (it replaces this process, so Ctrl-C and the exit status are its own)."""
    from chaos.faults import ChaosError
    from deploy.vm import lab
    from deploy.vm.plan import VmPlanError

    try:
        plan = lab.load_plan(vm)
    except VmPlanError as e:
        raise ChaosError(str(e).replace("--name", "--vm", 1)) from None
    if not lab.is_up(plan):
        raise ChaosError(f"VM lab {vm!r} is not up (kubelite vm up --name {vm})")
    if os.stat("/proc/self/ns/net").st_ino == os.stat(plan.netns_path).st_ino:
        return
    argv = lab.in_netns(plan, [sys.executable, "-m", "cli.main", *sys.argv[1:]])
    os.execvp(argv[0], argv)


def vm_option(fn: Any) -> Any:
    return click.option("--vm", default=None, metavar="NAME",
                        help="a VM lab (kubelite vm up --name NAME) instead of a local cluster")(fn)


def _one_cluster(name_given: bool, vm: str | None) -> None:
    if vm is not None and name_given:
        click.echo("error: --name and --vm name two clusters; give one", err=True)
        sys.exit(2)


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
    """Stop a node's kubelet, proxy, speaker, ingress controller and containerd (on a control-plane machine such as
    cp2: every daemon of it), then bring them back."""
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
    """Cut a node or a control-plane machine off the lab network (its processes keep running), then reconnect it."""
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


LEGACY = ("node-loss", "partition", "apiserver-restart")


def _scenario_names() -> list[str]:
    from chaos.plan import SCENARIOS

    return [*SCENARIOS, *LEGACY]


@chaos.command("run")
@click.argument("scenario", type=click.Choice(_scenario_names()))
@click.option("--node", default="n1", show_default=True, help="node-loss, partition: the node to lose")
@local_cluster_option
@click.option("--namespace", "-n", default="default", show_default=True)
@click.option("--timeout", type=float, default=60.0, show_default=True, help="node-loss, partition, apiserver-restart")
@click.option("--report", "report_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="directory for report.json, timeline.png and report.md (default: ./chaos-SCENARIO-TIME)")
@click.option("--rate", type=click.FloatRange(1, 500), default=50.0, show_default=True,
              help="the load client's requests per second")
@click.option("--rollout-pods", type=int, default=None,
              help="scheduler-leader-kill-rollout: the size of the Deployment it rolls (default 300)")
@vm_option
def run_scenario(scenario: str, node: str, name: str, namespace: str, timeout: float, report_dir: Path | None,
                 rate: float, rollout_pods: int | None, vm: str | None) -> None:
    """Run a scenario under a live workload, write its report directory and print its summary (exit 1 if a
    check failed). node-loss, partition and apiserver-restart print a JSON report of timings instead."""
    ctx = click.get_current_context()
    given = {p for p in ("node", "timeout", "report_dir", "rate", "rollout_pods")
             if ctx.get_parameter_source(p) is not click.core.ParameterSource.DEFAULT}
    if vm is not None:
        given.add("vm")
    wrong = given & ({"report_dir", "rate", "rollout_pods", "vm"} if scenario in LEGACY else {"node", "timeout"})
    if wrong:
        flag = {"node": "--node", "timeout": "--timeout", "report_dir": "--report", "rate": "--rate",
                "rollout_pods": "--rollout-pods", "vm": "--vm"}[min(wrong)]
        click.echo(f"error: {flag} does not apply to scenario {scenario}", err=True)
        sys.exit(2)
    _one_cluster(ctx.get_parameter_source("name") is not click.core.ParameterSource.DEFAULT, vm)
    if scenario not in LEGACY:
        from chaos import plan

        target = _target(name, vm)
        _live_run(target, lambda topo: plan.plan_scenario(scenario, topo, rollout_pods), namespace, report_dir, rate)
        return
    from chaos import scenarios
    from client.api import Client

    target = _target(name)

    async def go() -> dict:
        async with Client(target.client_config()) as client:
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


def _duration(ctx: click.Context, param: click.Parameter, value: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    text = value.strip().lower()
    try:
        return float(text[:-1]) * units[text[-1]] if text and text[-1] in units else float(text)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a duration (60, 90s, 10m, 1h)") from None


@chaos.command("soak")
@click.option("--duration", default="10m", show_default=True, callback=_duration,
              help="how long the workload runs (90s, 10m, 1h)")
@click.option("--seed", type=int, required=True, help="the fault sequence is a function of the seed")
@click.option("--faults", "fault_set", default="workers", show_default=True,
              help="the named set faults are drawn from: workers, control-plane, all")
@local_cluster_option
@click.option("--namespace", "-n", default="default", show_default=True)
@click.option("--report", "report_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="directory for report.json, timeline.png and report.md (default: ./chaos-soak-SEED-TIME)")
@click.option("--rate", type=click.FloatRange(1, 500), default=50.0, show_default=True)
@click.option("--without", multiple=True, help="leave out a fault or component (netem, pause, kubelet, "
              "kill-etcd, ...); repeatable")
@click.option("--dry-run", is_flag=True, help="print the fault sequence and break nothing")
@vm_option
def soak(duration: float, seed: int, fault_set: str, name: str, namespace: str, report_dir: Path | None,
         rate: float, without: tuple[str, ...], dry_run: bool, vm: str | None) -> None:
    """Random faults, one after another, under a live workload; the same seed gives the same faults."""
    from chaos import plan
    from chaos.run import topology

    ctx = click.get_current_context()
    _one_cluster(ctx.get_parameter_source("name") is not click.core.ParameterSource.DEFAULT, vm)
    target = _target(name, vm)
    if plan.NETEM in plan.FAULT_SETS.get(fault_set, ()) and plan.NETEM not in without \
            and (missing := target.netem_missing()):
        # Drawn from what this kernel can do, and said: the same seed gives the same faults on this machine.
        click.echo(f"netem left out of the draw: this kernel cannot delay or drop packets ({missing}); "
                   "a kernel with sch_netem draws it", err=True)
        without = (*without, plan.NETEM)

    def build(topo: plan.Topology) -> plan.RunPlan:
        return plan.plan_soak(seed, duration, topo, fault_set, without)

    if dry_run:
        try:
            soak_plan = build(topology(target))
        except plan.PlanError as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(1)
        for f in soak_plan.faults:
            click.echo(f"{f.at:7.1f}s {f.duration:5.1f}s {f.label}")
        return
    _live_run(target, build, namespace, report_dir, rate)


@chaos.command("report")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def report_cmd(directory: Path) -> None:
    """Print the summary of a run's report directory again (exit 1 if that run failed a check)."""
    from chaos.report import load_report, summary

    try:
        report = load_report(directory)
        click.echo(summary(report))
    except (OSError, ValueError, KeyError, TypeError) as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(1)
    if not report.get("ok"):
        sys.exit(1)


def _live_run(target: Any, build: Any, namespace: str, report_dir: Path | None, rate: float) -> None:
    import time

    from chaos.faults import ChaosError
    from chaos.report import compute_report, require_plotting, summary, write_report
    from chaos.run import Run, topology, workload_nodes
    from client.api import Client

    async def go() -> tuple[dict[str, Any], Path]:
        require_plotting()
        async with Client(target.client_config()) as client:
            # The plan breaks a node that runs some of the workload, so the run shows a loss.
            run_plan = build(topology(target, await workload_nodes(client, namespace)))
            directory = report_dir or Path(f"chaos-{run_plan.name}-{time.strftime('%Y%m%d-%H%M%S')}")
            if directory.exists() and any(directory.iterdir()):
                raise ChaosError(f"report directory {directory} is not empty")
            run = Run(target, client, run_plan, namespace=namespace, rate=rate,
                      progress=lambda line: click.echo(line, err=True))
            try:
                return compute_report(await run.execute()), directory
            except asyncio.CancelledError:
                # Ctrl-C: the faults are undone by now; what was seen until then is still worth a report.
                run.obs.errors.append("interrupted")
                write_report(compute_report(run.obs), directory)
                click.echo(f"interrupted; partial report: {directory}/report.md", err=True)
                raise

    report, directory = _run(go())
    write_report(report, directory)
    click.echo(summary(report))
    click.echo(f"report: {directory}/report.md", err=True)
    if not report["ok"]:
        sys.exit(1)


COMMANDS: list[click.Command] = [chaos]
