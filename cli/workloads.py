"""Workload verbs: `kubelite rollout status|history|undo|restart deployment/NAME` (and daemonset/NAME,
statefulset/NAME), `rollout pause|resume deployment/NAME` and `kubelite set image deployment/NAME
CONTAINER=IMAGE`, with kubectl's wording.

A Deployment's history is its ReplicaSets; a DaemonSet's and a StatefulSet's are their ControllerRevisions.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import click

from api import conditions, convert, kinds
from api import deployments as dutil
from api.deployments import PROGRESSING, TIMED_OUT
from api.errors import ApiError, NotFoundError
from api.pb import apps_pb2, core_pb2
from api.timestamps import now, whole_seconds
from cli import printers
from cli.common import CliError, connection_options, with_client
from cli.verbs import mutate
from client.api import Client
from client.config import ClientConfig

# ---------------------------------------------------------------- targets


def parse_target(target: str, name: str | None, *, allowed: tuple[str, ...] = ("Deployment",)) -> tuple[str, str]:
    """`deployment/web` or `deployment web` -> ("Deployment", "web"), for the kinds allowed."""
    if "/" in target:
        if name:
            raise CliError(f"there is no need to specify a resource type as a separate argument when passing "
                           f"arguments in resource/name form (e.g. 'kubelite rollout status {target}')")
        kind_text, _, name = target.partition("/")
    else:
        kind_text = target
    if not name:
        raise CliError("required resource not specified: give TYPE/NAME, e.g. deployment/web")
    try:
        kind = kinds.lookup(kind_text)
    except ApiError as e:
        raise CliError(e.message) from None
    if kind.kind not in allowed:
        raise CliError(f'no {"/".join(a.lower() for a in allowed)} named "{name}": '
                       f"this command works on {', '.join(a.lower() + 's' for a in allowed)} only, not {kind.resource}")
    return kind.kind, name


def _deploy_name(name: str) -> str:
    return f"deployment.apps/{name}"


async def _owned_replicasets(c: Client, d: apps_pb2.Deployment) -> list[apps_pb2.ReplicaSet]:
    items = await c.list_all("replicasets", d.metadata.namespace)
    return [rs for rs in items if any(r.controller and r.uid == d.metadata.uid
                                      for r in rs.metadata.owner_references)]


# ---------------------------------------------------------------- rollout status


def status_message(d: apps_pb2.Deployment) -> tuple[str, bool]:
    """kubectl's DeploymentStatusViewer: (message, done); raises CliError once the progress deadline passed."""
    name = d.metadata.name
    if d.metadata.generation <= d.status.observed_generation:
        cond = conditions.get(d.status.conditions, PROGRESSING)
        if cond is not None and cond.reason == TIMED_OUT:
            raise CliError(f'deployment "{name}" exceeded its progress deadline')
        st = d.status
        if st.updated_replicas < d.spec.replicas:
            return (f'Waiting for deployment "{name}" rollout to finish: {st.updated_replicas} out of '
                    f"{d.spec.replicas} new replicas have been updated...", False)
        if st.replicas > st.updated_replicas:
            return (f'Waiting for deployment "{name}" rollout to finish: {st.replicas - st.updated_replicas} old '
                    f"replicas are pending termination...", False)
        if st.available_replicas < st.updated_replicas:
            return (f'Waiting for deployment "{name}" rollout to finish: {st.available_replicas} of '
                    f"{st.updated_replicas} updated replicas are available...", False)
        return f'deployment "{name}" successfully rolled out', True
    return "Waiting for deployment spec update to be observed...", False


def daemonset_status_message(ds: apps_pb2.DaemonSet) -> tuple[str, bool]:
    """kubectl's DaemonSetStatusViewer: (message, done)."""
    name = ds.metadata.name
    if ds.spec.update_strategy.type != "RollingUpdate":
        raise CliError("rollout status is only available for RollingUpdate strategy type")
    if ds.metadata.generation <= ds.status.observed_generation:
        st = ds.status
        if st.updated_number_scheduled < st.desired_number_scheduled:
            return (f'Waiting for daemon set "{name}" rollout to finish: {st.updated_number_scheduled} out of '
                    f"{st.desired_number_scheduled} new pods have been updated...", False)
        if st.number_available < st.desired_number_scheduled:
            return (f'Waiting for daemon set "{name}" rollout to finish: {st.number_available} of '
                    f"{st.desired_number_scheduled} updated pods are available...", False)
        return f'daemon set "{name}" successfully rolled out', True
    return "Waiting for daemon set spec update to be observed...", False


def statefulset_status_message(sts: apps_pb2.StatefulSet) -> tuple[str, bool]:
    """kubectl's StatefulSetStatusViewer: (message, done)."""
    if sts.spec.update_strategy.type != "RollingUpdate":
        raise CliError("rollout status is only available for RollingUpdate strategy type")
    st = sts.status
    if st.observed_generation == 0 or sts.metadata.generation > st.observed_generation:
        return "Waiting for statefulset spec update to be observed...", False
    if st.ready_replicas < sts.spec.replicas:
        return f"Waiting for {sts.spec.replicas - st.ready_replicas} pods to be ready...", False
    partition = sts.spec.update_strategy.rolling_update.partition
    if partition > 0:
        if st.updated_replicas < sts.spec.replicas - partition:
            return (f"Waiting for partitioned roll out to finish: {st.updated_replicas} out of "
                    f"{sts.spec.replicas - partition} new pods have been updated...", False)
        return f"partitioned roll out complete: {st.updated_replicas} new pods have been updated...", True
    if st.update_revision != st.current_revision:
        return (f"waiting for statefulset rolling update to complete {st.updated_replicas} pods at revision "
                f"{st.update_revision}...", False)
    return f"statefulset rolling update complete {st.current_replicas} pods at revision {st.current_revision}...", True


def _status_of(obj: Any) -> tuple[str, bool]:
    kind = kinds.of(obj).kind
    if kind == "DaemonSet":
        return daemonset_status_message(obj)
    if kind == "StatefulSet":
        return statefulset_status_message(obj)
    return status_message(obj)


async def follow_status(c: Client, namespace: str, name: str, *, watch: bool, timeout: float,
                        revision: int = 0, kind: str = "Deployment") -> None:
    """Print status lines as they change until the rollout is done; CliError on failure or timeout."""
    deadline = time.monotonic() + timeout if timeout > 0 else None
    last = ""

    resource = kinds.lookup(kind).resource
    noun = {"Deployment": "deployment", "DaemonSet": "daemon set", "StatefulSet": "statefulset"}[kind]

    def show(d: Any) -> bool:
        nonlocal last
        if revision and kind == "Deployment":
            have = dutil.revision(d)
            if have != revision:
                raise CliError(f"desired revision ({revision}) is different from the running revision ({have})")
        msg, done = _status_of(d)
        if msg != last:
            click.echo(msg)
            last = msg
        return done

    async def go() -> None:
        while True:
            try:
                result = await c.list(resource, namespace, field_selector=f"metadata.name={name}")
            except NotFoundError:
                result = None
            if result is None or not result.items:
                raise CliError(f'{resource}.apps "{name}" not found')
            if show(result.items[0]) or not watch:
                return
            try:
                async for ev in c.watch(resource, namespace, resource_version=result.resource_version,
                                        field_selector=f"metadata.name={name}", bookmarks=False):
                    if ev.type == "DELETED":
                        raise CliError(f'{noun} "{name}" was deleted')
                    if show(ev.object):  # type: ignore[arg-type]
                        return
            except CliError:
                raise
            except ApiError:
                await asyncio.sleep(0.2)  # the watch broke (or expired): list again and resume

    if deadline is None:
        await go()
        return
    try:
        async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
            await go()
    except TimeoutError:
        raise CliError("timed out waiting for the condition") from None


# ---------------------------------------------------------------- history and undo


def previous_revision(rss: list[apps_pb2.ReplicaSet], to_revision: int) -> apps_pb2.ReplicaSet:
    """The ReplicaSet to roll back to: `to_revision`, or the one before the latest (kubectl's deploymentRevision)."""
    if to_revision > 0:
        for rs in rss:
            if dutil.revision(rs) == to_revision:
                return rs
        raise CliError(f"unable to find specified revision {to_revision} in history")
    ranked = sorted((rs for rs in rss if dutil.revision(rs) > 0), key=dutil.revision, reverse=True)
    if len(ranked) < 2:
        raise CliError("no rollout history found for the deployment" if not ranked else
                       "no previous revision to roll back to")
    return ranked[1]


def previous_controller_revision(revs: list[apps_pb2.ControllerRevision],
                                 to_revision: int) -> apps_pb2.ControllerRevision:
    """The ControllerRevision to roll a DaemonSet or StatefulSet back to: `to_revision`, or the one before the
    latest."""
    if to_revision > 0:
        for r in revs:
            if r.revision == to_revision:
                return r
        raise CliError(f"unable to find specified revision {to_revision} in history")
    ranked = sorted(revs, key=lambda r: r.revision, reverse=True)
    if len(ranked) < 2:
        raise CliError("no rollout history found" if not ranked else "no previous revision to roll back to")
    return ranked[1]


async def _owned_revisions(c: Client, owner: Any) -> list[apps_pb2.ControllerRevision]:
    items = await c.list_all("controllerrevisions", owner.metadata.namespace)
    return [r for r in items if any(o.controller and o.uid == owner.metadata.uid
                                    for o in r.metadata.owner_references)]


def template_of(rs: apps_pb2.ReplicaSet) -> core_pb2.PodTemplateSpec:
    t = core_pb2.PodTemplateSpec()
    t.CopyFrom(rs.spec.template)
    t.metadata.labels.pop(dutil.HASH_LABEL, None)
    return t


def render_template(t: core_pb2.PodTemplateSpec, indent: str = "  ") -> list[str]:
    lines = [f"{indent}Labels:\t{','.join(f'{k}={v}' for k, v in sorted(t.metadata.labels.items())) or '<none>'}"]
    ann = ",".join(f"{k}={v}" for k, v in sorted(t.metadata.annotations.items()))
    lines.append(f"{indent}Annotations:\t{ann or '<none>'}")
    lines.append(f"{indent}Containers:")
    for c in t.spec.containers:
        lines.append(f"{indent} {c.name}:")
        lines.append(f"{indent}  Image:\t{c.image}")
        ports = ", ".join(f"{p.container_port}/{p.protocol or 'TCP'}" for p in c.ports)
        lines.append(f"{indent}  Port:\t{ports or '<none>'}")
        if c.command:
            lines.append(f"{indent}  Command:\t{' '.join(c.command)}")
        if c.args:
            lines.append(f"{indent}  Args:\t{' '.join(c.args)}")
        env = ", ".join(f"{e.name}={e.value}" for e in c.env)
        lines.append(f"{indent}  Environment:\t{env or '<none>'}")
    return lines


# ---------------------------------------------------------------- commands


@click.group()
def rollout() -> None:
    """Manage the rollout of a deployment, daemonset or statefulset: status, history, undo, restart (and pause,
    resume for deployments)."""


def _target_args(fn: Any) -> Any:
    fn = click.argument("name", required=False)(fn)
    fn = click.argument("target")(fn)
    fn = click.option("--namespace", "-n", default="", help="namespace (default: default)")(fn)
    return connection_options(fn)


def _resolve(target: str, name: str | None) -> str:
    try:
        return parse_target(target, name)[1]
    except CliError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(1)


ROLLABLE = ("Deployment", "DaemonSet", "StatefulSet")


def _resolve_kind(target: str, name: str | None) -> tuple[kinds.Kind, str]:
    try:
        kind, resolved = parse_target(target, name, allowed=ROLLABLE)
    except CliError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(1)
    return kinds.lookup(kind), resolved


def _full_name(kind: kinds.Kind, name: str) -> str:
    return f"{kind.kind.lower()}.{kind.group}/{name}"


@rollout.command("status")
@_target_args
@click.option("--watch", "-w", "watch", type=bool, default=True, show_default=True,
              help="follow the rollout until it finishes")
@click.option("--timeout", type=str, default="0", help="give up after this long (e.g. 30s, 2m); 0 waits forever")
@click.option("--revision", type=int, default=0, help="pin to this revision; fail if the deployment is at another")
def rollout_status(target: str, name: str | None, namespace: str, watch: bool, timeout: str, revision: int,
                   conn: ClientConfig) -> None:
    """Follow a rollout (deployment, daemonset or statefulset); exit non-zero if it fails or times out."""
    kind, obj_name = _resolve_kind(target, name)
    seconds = parse_duration(timeout)

    async def go(c: Client) -> None:
        await follow_status(c, namespace or "default", obj_name, watch=watch, timeout=seconds, revision=revision,
                            kind=kind.kind)

    with_client(conn, go)


def parse_duration(text: str) -> float:
    """`30`, `30s`, `2m`, `1h`, `1m30s` -> seconds."""
    text = text.strip()
    if not text:
        return 0.0
    if text.replace(".", "", 1).isdigit():
        return float(text)
    total, number = 0.0, ""
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isdigit() or ch == ".":
            number += ch
            i += 1
            continue
        unit = "ms" if text[i:i + 2] == "ms" else ch
        if unit not in units or not number:
            raise click.BadParameter(f"invalid duration {text!r} (use e.g. 30s, 2m, 1h)", param_hint="--timeout")
        total += float(number) * units[unit]
        number = ""
        i += len(unit)
    if number:
        raise click.BadParameter(f"invalid duration {text!r}: missing unit", param_hint="--timeout")
    return total


@rollout.command("history")
@_target_args
@click.option("--revision", type=int, default=0, help="show the pod template of this revision")
def rollout_history(target: str, name: str | None, namespace: str, revision: int, conn: ClientConfig) -> None:
    """List the revisions of a deployment, daemonset or statefulset, or show one revision's pod template."""
    kind, obj_name = _resolve_kind(target, name)
    if kind.kind != "Deployment":
        with_client(conn, lambda c: _revision_history(c, kind, obj_name, namespace or "default", revision))
        return
    deploy = obj_name

    async def go(c: Client) -> None:
        d = await c.get("deployments", deploy, namespace or "default")
        rss = await _owned_replicasets(c, d)
        history = sorted((rs for rs in rss if dutil.revision(rs) > 0), key=dutil.revision)
        if revision:
            rs = next((rs for rs in history if dutil.revision(rs) == revision), None)
            if rs is None:
                raise CliError(f"unable to find the specified revision {revision}")
            click.echo(f"{_deploy_name(deploy)} with revision #{revision}")
            click.echo("Pod Template:")
            click.echo("\n".join(render_template(template_of(rs))))
            return
        click.echo(f"{_deploy_name(deploy)} ")
        if not history:
            click.echo("No rollout history found.")
            return
        rows = [[str(dutil.revision(rs)), rs.metadata.annotations.get(dutil.CHANGE_CAUSE, "<none>")] for rs in history]
        click.echo(printers.table(rows, ["REVISION", "CHANGE-CAUSE"]))

    with_client(conn, go)


async def _revision_history(c: Client, kind: kinds.Kind, name: str, namespace: str, revision: int) -> None:
    owner = await c.get(kind.resource, name, namespace)
    history = sorted(await _owned_revisions(c, owner), key=lambda r: r.revision)
    full = _full_name(kind, name)
    if revision:
        rev = next((r for r in history if r.revision == revision), None)
        if rev is None:
            raise CliError(f"unable to find the specified revision {revision}")
        click.echo(f"{full} with revision #{revision}")
        click.echo("Pod Template:")
        click.echo("\n".join(render_template(rev.data.spec.template)))
        return
    click.echo(f"{full} ")
    if not history:
        click.echo("No rollout history found.")
        return
    rows = [[str(r.revision), r.metadata.annotations.get(dutil.CHANGE_CAUSE, "<none>")] for r in history]
    click.echo(printers.table(rows, ["REVISION", "CHANGE-CAUSE"]))


async def _revision_undo(c: Client, kind: kinds.Kind, name: str, namespace: str, to_revision: int) -> None:
    owner = await c.get(kind.resource, name, namespace)
    source = previous_controller_revision(await _owned_revisions(c, owner), to_revision)
    template = source.data.spec.template
    full = _full_name(kind, name)
    if owner.spec.template == template:
        click.echo(f"{full} skipped rollback (current template already matches revision {source.revision})")
        return

    def change(obj: Any) -> bool:
        if obj.metadata.uid != owner.metadata.uid:
            raise CliError(f'{kind.kind.lower()} "{name}" was replaced while rolling back; try again')
        obj.spec.template.CopyFrom(template)
        return True

    await mutate(c, kind, name, namespace, change)
    click.echo(f"{full} rolled back")


@rollout.command("undo")
@_target_args
@click.option("--to-revision", type=int, default=0, help="the revision to roll back to (default: the previous one)")
def rollout_undo(target: str, name: str | None, namespace: str, to_revision: int, conn: ClientConfig) -> None:
    """Roll a deployment, daemonset or statefulset back to its previous template (or to --to-revision)."""
    kind, deploy = _resolve_kind(target, name)
    if kind.kind != "Deployment":
        with_client(conn, lambda c: _revision_undo(c, kind, deploy, namespace or "default", to_revision))
        return

    async def go(c: Client) -> None:
        d = await c.get("deployments", deploy, namespace or "default")
        if d.spec.paused:
            raise CliError(f"you cannot rollback a paused deployment; resume it first with "
                           f"'kubelite rollout resume deployment/{deploy}' and try again")
        source = previous_revision(await _owned_replicasets(c, d), to_revision)
        template = template_of(source)
        rev = dutil.revision(source)
        if dutil.equal_ignore_hash(d.spec.template, template):
            click.echo(f"{_deploy_name(deploy)} skipped rollback (current template already matches revision {rev})")
            return

        def change(obj: apps_pb2.Deployment) -> bool:
            if obj.metadata.uid != d.metadata.uid:
                raise CliError(f'deployment "{deploy}" was replaced while rolling back; try again')
            obj.spec.template.CopyFrom(template)
            for k, v in source.metadata.annotations.items():
                if k == dutil.CHANGE_CAUSE:
                    obj.metadata.annotations[k] = v
            return True

        await mutate(c, kind, deploy, namespace or "default", change)
        click.echo(f"{_deploy_name(deploy)} rolled back")

    with_client(conn, go)


@rollout.command("restart")
@_target_args
def rollout_restart(target: str, name: str | None, namespace: str, conn: ClientConfig) -> None:
    """Replace every pod of a deployment, daemonset or statefulset by a rolling update (stamps
    kubectl.kubernetes.io/restartedAt)."""
    kind, deploy = _resolve_kind(target, name)
    stamp = convert.format_time(_now_ts())

    def change(obj: Any) -> bool:
        if kind.kind == "Deployment" and obj.spec.paused:
            raise CliError(f'deployments.apps "{deploy}" can\'t restart paused deployment (run rollout resume first)')
        obj.spec.template.metadata.annotations[dutil.RESTARTED_AT] = stamp
        return True

    async def go(c: Client) -> None:
        await mutate(c, kind, deploy, namespace or "default", change)
        click.echo(f"{_full_name(kind, deploy)} restarted")

    with_client(conn, go)


def _now_ts() -> Any:
    return whole_seconds(now())


def _pause_command(pause: bool) -> click.Command:
    verb = "paused" if pause else "resumed"

    @_target_args
    def command(target: str, name: str | None, namespace: str, conn: ClientConfig) -> None:
        deploy = _resolve(target, name)

        def change(obj: apps_pb2.Deployment) -> bool:
            if obj.spec.paused == pause:
                raise CliError(f'deployments.apps "{deploy}" is {"already paused" if pause else "not paused"}')
            obj.spec.paused = pause
            return True

        async def go(c: Client) -> None:
            await mutate(c, kinds.lookup("Deployment"), deploy, namespace or "default", change)
            click.echo(f"{_deploy_name(deploy)} {verb}")

        with_client(conn, go)

    help_text = ("Stop a deployment from rolling out template changes (scaling still works)." if pause
                 else "Let a paused deployment roll out again.")
    return click.command("pause" if pause else "resume", help=help_text)(command)


rollout.add_command(_pause_command(True))
rollout.add_command(_pause_command(False))


# ---------------------------------------------------------------- set image


@click.group("set")
def set_() -> None:
    """Change fields of workloads: `set image`."""


def apply_images(spec: core_pb2.PodSpec, images: dict[str, str]) -> bool:
    """Set container images by name (`*` for all); raises CliError for a name no container has."""
    containers = [*spec.init_containers, *spec.containers]
    changed = False
    for cname, image in images.items():
        targets = containers if cname == "*" else [c for c in containers if c.name == cname]
        if not targets:
            raise CliError(f'unable to find container named "{cname}"')
        for c in targets:
            if c.image != image:
                c.image = image
                changed = True
    return changed


@set_.command("image")
@click.argument("target")
@click.argument("pairs", nargs=-1, required=True)
@click.option("--namespace", "-n", default="", help="namespace (default: default)")
@connection_options
def set_image(target: str, pairs: tuple[str, ...], namespace: str, conn: ClientConfig) -> None:
    """Set images: `set image deployment/web web=nginx:1.25` (CONTAINER=IMAGE, `*=IMAGE` for every container)."""
    try:
        names = list(pairs)
        if "/" not in target:
            if not names:
                raise CliError("give TYPE/NAME and CONTAINER=IMAGE pairs")
            target = f"{target}/{names.pop(0)}"
        kind_name, name = parse_target(target, None, allowed=("Deployment", "ReplicaSet", "Pod"))
        images: dict[str, str] = {}
        for p in names:
            cname, sep, image = p.partition("=")
            if not sep or not cname or not image:
                raise CliError(f"invalid image spec {p!r}: use CONTAINER=IMAGE")
            images[cname] = image
        if not images:
            raise CliError("at least one image update is required (CONTAINER=IMAGE)")
    except CliError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(1)
    kind = kinds.lookup(kind_name)

    def change(obj: Any) -> bool:
        spec = obj.spec if kind.kind == "Pod" else obj.spec.template.spec
        return apply_images(spec, images)

    async def go(c: Client) -> None:
        obj, changed = await mutate(c, kind, name, namespace or "default", change)
        click.echo(f"{printers.name_of(obj)} image updated" if changed else f"{printers.name_of(obj)} image unchanged")

    with_client(conn, go)


COMMANDS: list[click.Command] = [rollout, set_]
