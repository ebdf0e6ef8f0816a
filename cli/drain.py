"""`kubelite drain NODE`: cordon, then evict every pod through the eviction subresource, as kubectl drains.

Pods are sorted first: DaemonSet pods stay (with --ignore-daemonsets), pods
no controller would recreate need --force, pods with emptyDir data need
--delete-emptydir-data; anything refused stops the drain before a single pod
is touched (the node stays cordoned). Evictions then run concurrently; one a
PodDisruptionBudget forbids is retried every 5 seconds until the budget
allows it (or --timeout passes), and each pod is reported once it is gone.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import click

from api import kinds
from api.errors import NotFoundError, TooManyRequestsError
from api.pb import core_pb2
from cli.common import CliError, connection_options, with_client
from cli.verbs import mutate
from cli.workloads import parse_duration
from client.api import Client
from client.config import ClientConfig

# kubectl retries an eviction a disruption budget refused after this long.
EVICTION_RETRY = 5.0
DELETE_POLL = 0.5


@dataclass
class Sorted:
    """A node's pods sorted into those to evict, and what to warn about or refuse."""

    evict: list[core_pb2.Pod] = field(default_factory=list)
    warnings: dict[str, list[str]] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)


def _name(pod: core_pb2.Pod) -> str:
    return f"{pod.metadata.namespace}/{pod.metadata.name}"


def plan_drain(pods: list[core_pb2.Pod], *, ignore_daemonsets: bool, delete_emptydir_data: bool, force: bool,
               daemonsets_alive: set[str]) -> Sorted:
    """kubectl's drain filters, in its order: DaemonSet pods, mirror pods, local storage, no controller.

    `daemonsets_alive` holds the uids of DaemonSets that exist (a pod of a deleted one is orphaned).
    """
    out = Sorted()

    def warn(why: str, pod: core_pb2.Pod) -> None:
        out.warnings.setdefault(why, []).append(_name(pod))

    def refuse(why: str, pod: core_pb2.Pod) -> None:
        out.errors.setdefault(why, []).append(_name(pod))

    for pod in pods:
        ref = next((r for r in pod.metadata.owner_references if r.controller), None)
        finished = pod.status.phase in ("Succeeded", "Failed")
        if ref is not None and ref.kind == "DaemonSet":
            if ref.uid in daemonsets_alive or not force:
                if ignore_daemonsets:
                    warn("ignoring DaemonSet-managed Pods", pod)
                else:
                    refuse("cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore)", pod)
                continue
        if "kubernetes.io/config.mirror" in pod.metadata.annotations:
            continue  # a static pod's mirror: its kubelet owns it
        if not finished and any(v.HasField("empty_dir") for v in pod.spec.volumes):
            if not delete_emptydir_data:
                refuse("cannot delete Pods with local storage (use --delete-emptydir-data to override)", pod)
                continue
            warn("deleting Pods with local storage", pod)
        if not finished and ref is None:
            if not force:
                refuse("cannot delete Pods declare no controller (use --force to override)", pod)
                continue
            warn("deleting Pods that declare no controller", pod)
        out.evict.append(pod)
    return out


def _joined(groups: dict[str, list[str]]) -> str:
    return "; ".join(f"{why}: {', '.join(names)}" for why, names in groups.items())


async def _gone(c: Client, pod: core_pb2.Pod) -> bool:
    try:
        current = await c.get("pods", pod.metadata.name, pod.metadata.namespace)
    except NotFoundError:
        return True
    return current.metadata.uid != pod.metadata.uid


async def _evict_one(c: Client, pod: core_pb2.Pod, *, grace: int | None, disable_eviction: bool) -> None:
    ref = f'pods/"{pod.metadata.name}" -n "{pod.metadata.namespace}"'
    if disable_eviction:
        click.echo(f"deleting pod {_name(pod)}")
    else:
        click.echo(f"evicting pod {_name(pod)}")
    while True:
        try:
            if disable_eviction:
                await c.delete("pods", pod.metadata.name, pod.metadata.namespace, grace_period_seconds=grace,
                               uid=pod.metadata.uid)
            else:
                await c.evict(pod.metadata.namespace, pod.metadata.name, grace_period_seconds=grace,
                              uid=pod.metadata.uid)
            break
        except NotFoundError:
            break
        except TooManyRequestsError as e:
            first = e.message.split(". ")[0].rstrip(".") + "."
            click.echo(f"error when evicting {ref} (will retry after {EVICTION_RETRY:g}s): {first}", err=True)
            await asyncio.sleep(EVICTION_RETRY)
    while True:
        if await _gone(c, pod):
            break
        await asyncio.sleep(DELETE_POLL)
    click.echo(f"pod/{pod.metadata.name} {'deleted' if disable_eviction else 'evicted'}")


@click.command()
@click.argument("node")
@click.option("--ignore-daemonsets", is_flag=True, help="leave DaemonSet-managed pods where they are")
@click.option("--delete-emptydir-data", is_flag=True, help="evict pods with emptyDir volumes (their data is lost)")
@click.option("--force", is_flag=True, help="also evict pods no controller would recreate")
@click.option("--timeout", default="0s", show_default=True, help="give up after this long (0: wait forever)")
@click.option("--pod-selector", default="", help="only pods matching this label selector")
@click.option("--grace-period", type=int, default=-1, show_default=True,
              help="seconds each pod gets to stop (-1: its own terminationGracePeriodSeconds)")
@click.option("--disable-eviction", is_flag=True,
              help="delete pods directly, bypassing PodDisruptionBudgets (use with care)")
@connection_options
def drain(node: str, ignore_daemonsets: bool, delete_emptydir_data: bool, force: bool, timeout: str,
          pod_selector: str, grace_period: int, disable_eviction: bool, conn: ClientConfig) -> None:
    """Cordon NODE, then evict its pods, respecting PodDisruptionBudgets (kubectl drain)."""
    seconds = parse_duration(timeout)
    grace = None if grace_period < 0 else grace_period

    async def go(c: Client) -> None:
        def cordon(n: core_pb2.Node) -> bool:
            if n.spec.unschedulable:
                return False
            n.spec.unschedulable = True
            return True

        _, changed = await mutate(c, kinds.lookup("Node"), node, "", cordon)
        click.echo(f"node/{node} cordoned" if changed else f"node/{node} already cordoned")
        pods = (await c.list("pods", "", field_selector=f"spec.nodeName={node}", label_selector=pod_selector)).items
        alive = {d.metadata.uid for d in await c.list_all("daemonsets", "")}
        plan = plan_drain(pods, ignore_daemonsets=ignore_daemonsets, delete_emptydir_data=delete_emptydir_data,
                          force=force, daemonsets_alive=alive)
        if plan.errors:
            text = _joined(plan.errors)
            click.echo(f'error: unable to drain node "{node}" due to error: {text}, continuing command...', err=True)
            click.echo(f"There are pending nodes to be drained:\n {node}", err=True)
            raise CliError(text)
        if plan.warnings:
            click.echo(f"Warning: {_joined(plan.warnings)}", err=True)
        start = time.monotonic()
        work = asyncio.gather(*(_evict_one(c, p, grace=grace, disable_eviction=disable_eviction)
                                for p in plan.evict))
        try:
            async with asyncio.timeout(seconds if seconds > 0 else None):
                await work
        except TimeoutError:
            left = [_name(p) for p in plan.evict if not await _gone(c, p)]
            click.echo(f"There are pending pods in node \"{node}\" when an error occurred: drain did not complete "
                       f"within {seconds:g}s", err=True)
            for name in left:
                click.echo(f"{name}", err=True)
            raise CliError(f'unable to drain node "{node}" due to error: global timeout reached: '
                           f"{time.monotonic() - start:.0f}s") from None
        click.echo(f"node/{node} drained")

    with_client(conn, go)


COMMANDS: list[click.Command] = [drain]
