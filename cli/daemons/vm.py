"""`kubelite vm ...`: Vagrant VMs on this machine, inside a network namespace of their own."""

from __future__ import annotations

import json
import os
import sys

import click

name_option = click.option("--name", default="kubelite", show_default=True,
                           help="VM lab name (several can coexist)")


def _progress(line: str) -> None:
    click.echo(line, err=True)


def _fail(e: Exception) -> None:
    click.echo(f"error: {e}", err=True)
    sys.exit(1)


@click.group()
def vm() -> None:
    """Build the VM box and run a control plane and workers as VMs (root)."""


@vm.command()
def box() -> None:
    """Build the Debian 12 box (or reuse the cached one) and add it to Vagrant."""
    from deploy.vm import box as box_mod

    try:
        b = box_mod.ensure(progress=_progress)
    except box_mod.BoxError as e:
        _fail(e)
    click.echo(f"box {b.name} ({'built' if b.built else 'cached'}): {b.path}")


@vm.command()
@name_option
@click.option("--workers", type=int, default=2, show_default=True, help="worker VMs beside the control plane")
@click.option("--control-planes", type=int, default=1, show_default=True,
              help="control-plane VMs (1, or 3 for a highly available control plane: cp2 and cp3 join cp's etcd)")
@click.option("--timeout", type=float, default=1800.0, show_default=True, help="seconds `vagrant up` may take")
@click.option("--quiet", "-q", is_flag=True, help="do not show vagrant's output (it is kept in the lab's log)")
def up(name: str, workers: int, control_planes: int, timeout: float, quiet: bool) -> None:
    """Build or reuse the box and the wheelhouse, then boot the VMs in a new network namespace."""
    from deploy.vm import lab
    from deploy.vm.plan import VmLabPlan, VmPlanError

    try:
        plan = VmLabPlan(name, workers, control_planes=control_planes)
        timings = lab.up(plan, progress=_progress, show_vagrant=not quiet, timeout=timeout)
    except (VmPlanError, lab.VmLabError) as e:
        _fail(e)
    except Exception as e:
        _fail(Exception(f"{type(e).__name__}: {e}"))
    click.echo(json.dumps({"lab": name, "machines": plan.machines, "server": plan.server, "seconds": timings}))


@vm.command()
@name_option
def down(name: str) -> None:
    """Destroy the VMs and remove the lab: processes, namespace, libvirt volumes and state."""
    from deploy.vm import lab
    from deploy.vm.plan import VmPlanError

    try:
        removed = lab.down(lab.load_plan(name), progress=_progress)
    except (VmPlanError, lab.VmLabError) as e:
        _fail(e)
    click.echo(f"VM lab {name!r} removed: {', '.join(removed)}" if removed
               else f"VM lab {name!r} is not up; nothing to do", err=True)


def _exec(argv: list[str], extra_env: dict[str, str] | None = None) -> None:
    env = dict(os.environ, **(extra_env or {}))
    os.execvpe(argv[0], argv, env)


@vm.command(context_settings={"ignore_unknown_options": True})
@name_option
@click.argument("args", nargs=-1, type=click.UNPROCESSED, required=True)
def vagrant(name: str, args: tuple[str, ...]) -> None:
    """Run `vagrant ARGS` in the lab (e.g. `kubelite vm vagrant -- halt n2`)."""
    from deploy.vm import lab

    plan = lab.load_plan(name)
    try:
        argv = lab.vagrant_argv(plan, args)
    except lab.VmLabError as e:
        _fail(e)
    _exec(argv, lab.vagrant_env(plan))


@vm.command(context_settings={"ignore_unknown_options": True})
@name_option
@click.argument("machine")
@click.argument("command", nargs=-1, type=click.UNPROCESSED)
def ssh(name: str, machine: str, command: tuple[str, ...]) -> None:
    """ssh to MACHINE (cp, n1, ...), optionally running COMMAND there."""
    from deploy.vm import lab

    plan = lab.load_plan(name)
    if machine not in plan.machines:
        _fail(Exception(f"no machine {machine!r} in VM lab {name!r} (machines: {', '.join(plan.machines)})"))
    if not lab.is_up(plan):
        _fail(Exception(f"VM lab {name!r} is not up (kubelite vm up --name {name})"))
    _exec([*lab.ssh_argv(plan), machine, *command])


@vm.command("exec", context_settings={"ignore_unknown_options": True})
@name_option
@click.argument("command", nargs=-1, type=click.UNPROCESSED, required=True)
def exec_(name: str, command: tuple[str, ...]) -> None:
    """Run COMMAND in the lab's network namespace, with KUBELITE_SERVER and the admin's certificate
    set for the VMs' cluster (e.g. `kubelite vm exec -- kubelite get nodes -o wide`)."""
    from deploy.vm import lab

    plan = lab.load_plan(name)
    if not lab.is_up(plan):
        _fail(Exception(f"VM lab {name!r} is not up (kubelite vm up --name {name})"))
    _exec(lab.in_netns(plan, list(command)), lab.cluster_env(plan))


COMMANDS: list[click.Command] = [vm]
