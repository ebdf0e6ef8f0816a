"""Smaller verbs: create namespace|configmap|secret|priorityclass, api-resources, label, annotate, scale, cordon, taint,
version."""

from __future__ import annotations

import base64
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from api import defaults, kinds, labels, validation
from api.errors import ApiError
from api.pb import core_pb2, scheduling_pb2
from cli import printers
from cli.common import CliError, connection_options, with_client
from client.api import Client
from client.config import ClientConfig
from client.retry import retry_on_conflict


@click.group()
def create() -> None:
    """Create an object from flags."""


@create.command("namespace")
@click.argument("name")
@connection_options
def create_namespace(name: str, conn: ClientConfig) -> None:
    """Create a namespace."""

    async def go(c: Client) -> None:
        ns = await c.create(core_pb2.Namespace(metadata={"name": name}))
        click.echo(f"{printers.name_of(ns)} created")

    with_client(conn, go)


@create.command("priorityclass")
@click.argument("name")
@click.option("--value", type=click.IntRange(-2**31, 2**31 - 1), default=0, show_default=True,
              help="the priority of pods naming this class")
@click.option("--global-default", type=click.BOOL, is_flag=False, flag_value=True, default=False,
              help="pods without a priorityClassName get this class (--global-default or --global-default=BOOL)")
@click.option("--preemption-policy", default="PreemptLowerPriority", show_default=True,
              help="PreemptLowerPriority or Never (pods of the class never preempt others)")
@click.option("--description", default="", help="when this class should be used")
@connection_options
def create_priorityclass(name: str, value: int, global_default: bool, preemption_policy: str, description: str,
                         conn: ClientConfig) -> None:
    """Create a priority class (as `kubectl create priorityclass`)."""
    pc = scheduling_pb2.PriorityClass(metadata={"name": name}, value=value, global_default=global_default,
                                      description=description, preemption_policy=preemption_policy)
    check = scheduling_pb2.PriorityClass()
    check.CopyFrom(pc)
    defaults.apply(check)
    errs = validation.validate(check)
    if errs:
        click.echo(f'error: PriorityClass "{name}" is invalid: ' + "; ".join(str(e) for e in errs), err=True)
        sys.exit(1)

    async def go(c: Client) -> None:
        created = await c.create(pc)
        click.echo(f"{printers.name_of(created)} created")

    with_client(conn, go)


# ---------------------------------------------------------------- create configmap / secret


def _read_source(path: str) -> list[tuple[str, bytes]]:
    """(key, content) of a --from-file source: a file (key: its name) or every regular file of a directory."""
    p = Path(path)
    try:
        if p.is_dir():
            return [(f.name, f.read_bytes()) for f in sorted(p.iterdir()) if f.is_file()]
        return [(p.name, p.read_bytes())]
    except OSError as e:
        raise CliError(f"error reading {path}: {e.strerror or e}") from None


def collect_data(literals: tuple[str, ...], files: tuple[str, ...], env_files: tuple[str, ...]) -> dict[str, bytes]:
    """kubectl's --from-literal key=value, --from-file [key=]path and --from-env-file path, as key -> bytes;
    a key given twice or not a valid config key is refused by name."""
    out: dict[str, bytes] = {}

    def put(key: str, value: bytes, source: str) -> None:
        if why := validation.config_key_error(key):
            raise CliError(f"{source}: {key!r} is not a valid key name: {why}")
        if key in out:
            raise CliError(f"cannot add key {key}, another key by that name already exists")
        out[key] = value

    for lit in literals:
        key, eq, value = lit.partition("=")
        if not eq or not key:
            raise CliError(f"--from-literal: {lit!r} is not key=value")
        put(key, value.encode(), "--from-literal")
    for src in files:
        key, eq, path = src.partition("=")
        if eq:
            if Path(path).is_dir():
                raise CliError(f"--from-file: {path} is a directory; a key may name only a file")
            put(key, _read_source(path)[0][1], "--from-file")
        else:
            for name, content in _read_source(src):
                put(name, content, "--from-file")
    for env_file in env_files:
        try:
            lines = Path(env_file).read_text().splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise CliError(f"--from-env-file: cannot read {env_file}: {e}") from None
        for n, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            key, eq, value = line.partition("=")
            if not eq:
                raise CliError(f"--from-env-file: {env_file} line {n}: {line!r} is not key=value")
            put(key.strip(), value.encode(), f"--from-env-file {env_file} line {n}")
    return out


def config_map_from(name: str, namespace: str, data: dict[str, bytes]) -> core_pb2.ConfigMap:
    """Text values go to data, anything that is not UTF-8 to binaryData (as kubectl does)."""
    cm = core_pb2.ConfigMap(metadata={"name": name, "namespace": namespace})
    for k, v in data.items():
        try:
            cm.data[k] = v.decode()
        except UnicodeDecodeError:
            cm.binary_data[k] = v
    return cm


def docker_config_json(server: str, username: str, password: str, email: str) -> bytes:
    auth = base64.b64encode(f"{username}:{password}".encode()).decode()
    entry = {"username": username, "password": password, "auth": auth}
    if email:
        entry["email"] = email
    return json.dumps({"auths": {server: entry}}).encode()


def _create_and_report(conn: ClientConfig, obj: Any, dry_run: str) -> None:
    async def go(c: Client) -> None:
        from api import kinds as _kinds

        errs = validation.validate(obj)
        if errs:
            raise CliError(f'{_kinds.of(obj).kind} "{obj.metadata.name}" is invalid: '
                           + "; ".join(str(e) for e in errs))
        if dry_run == "client":
            click.echo(f"{printers.name_of(obj)} created (dry run)")
            return
        created = await c.create(obj, dry_run=dry_run == "server")
        click.echo(f"{printers.name_of(created)} created" + (" (server dry run)" if dry_run == "server" else ""))

    with_client(conn, go)


_data_options = [
    click.option("--from-literal", "literals", multiple=True, help="key=value (repeatable)"),
    click.option("--from-file", "files", multiple=True,
                 help="[key=]path: a file, or a directory's every file (repeatable)"),
    click.option("--from-env-file", "env_files", multiple=True, help="a file of key=value lines (repeatable)"),
]
_dry_run = click.option("--dry-run", type=click.Choice(["none", "client", "server"]), default="none",
                        show_default=True)


def _with(options: list[Callable[..., Any]]) -> Callable[..., Any]:
    def apply(fn: Callable[..., Any]) -> Callable[..., Any]:
        for opt in reversed(options):
            fn = opt(fn)
        return fn

    return apply


@create.command("configmap")
@click.argument("name")
@_with(_data_options)
@click.option("--namespace", "-n", default="")
@_dry_run
@connection_options
def create_configmap(name: str, literals: tuple[str, ...], files: tuple[str, ...], env_files: tuple[str, ...],
                     namespace: str, dry_run: str, conn: ClientConfig) -> None:
    """Create a ConfigMap from literals, files, directories or env files (kubectl's flags)."""
    try:
        data = collect_data(literals, files, env_files)
    except CliError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(1)
    _create_and_report(conn, config_map_from(name, namespace or "default", data), dry_run)


@create.group("secret")
def create_secret() -> None:
    """Create a Secret: generic, tls or docker-registry."""


@create_secret.command("generic")
@click.argument("name")
@_with(_data_options)
@click.option("--type", "type_", default="", help="the Secret's type (default Opaque)")
@click.option("--namespace", "-n", default="")
@_dry_run
@connection_options
def create_secret_generic(name: str, literals: tuple[str, ...], files: tuple[str, ...], env_files: tuple[str, ...],
                          type_: str, namespace: str, dry_run: str, conn: ClientConfig) -> None:
    """Create a Secret from literals, files, directories or env files."""
    try:
        data = collect_data(literals, files, env_files)
    except CliError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(1)
    secret = core_pb2.Secret(metadata={"name": name, "namespace": namespace or "default"}, data=data,
                             type=type_ or "Opaque")
    _create_and_report(conn, secret, dry_run)


@create_secret.command("tls")
@click.argument("name")
@click.option("--cert", required=True, type=click.Path(dir_okay=False), help="PEM certificate file")
@click.option("--key", required=True, type=click.Path(dir_okay=False), help="PEM private key file")
@click.option("--namespace", "-n", default="")
@_dry_run
@connection_options
def create_secret_tls(name: str, cert: str, key: str, namespace: str, dry_run: str, conn: ClientConfig) -> None:
    """Create a kubernetes.io/tls Secret from a certificate and its key."""
    try:
        crt, pem = Path(cert).read_bytes(), Path(key).read_bytes()
    except OSError as e:
        click.echo(f"error: {e.filename}: {e.strerror}", err=True)
        sys.exit(1)
    for what, content, marker in (("--cert", crt, b"CERTIFICATE"), ("--key", pem, b"PRIVATE KEY")):
        if b"-----BEGIN " not in content or marker not in content:
            click.echo(f"error: {what}: not a PEM {marker.decode().lower()}", err=True)
            sys.exit(1)
    secret = core_pb2.Secret(metadata={"name": name, "namespace": namespace or "default"},
                             data={"tls.crt": crt, "tls.key": pem}, type="kubernetes.io/tls")
    _create_and_report(conn, secret, dry_run)


@create_secret.command("docker-registry")
@click.argument("name")
@click.option("--docker-server", default="https://index.docker.io/v1/", show_default=True)
@click.option("--docker-username", default="")
@click.option("--docker-password", default="")
@click.option("--docker-email", default="")
@click.option("--from-file", "files", multiple=True, help="[key=]path of a .dockerconfigjson file")
@click.option("--namespace", "-n", default="")
@_dry_run
@connection_options
def create_secret_docker_registry(name: str, docker_server: str, docker_username: str, docker_password: str,
                                  docker_email: str, files: tuple[str, ...], namespace: str, dry_run: str,
                                  conn: ClientConfig) -> None:
    """Create a kubernetes.io/dockerconfigjson Secret for a registry."""
    try:
        if files:
            data = collect_data((), files, ())
        else:
            if not docker_username or not docker_password:
                raise CliError("--docker-username and --docker-password are required (or --from-file)")
            data = {".dockerconfigjson": docker_config_json(docker_server, docker_username, docker_password,
                                                            docker_email)}
    except CliError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(1)
    secret = core_pb2.Secret(metadata={"name": name, "namespace": namespace or "default"}, data=data,
                             type="kubernetes.io/dockerconfigjson")
    _create_and_report(conn, secret, dry_run)


@click.command("api-resources")
@connection_options
def api_resources(conn: ClientConfig) -> None:
    """List the kinds the server serves."""

    async def go(c: Client) -> None:
        res = await c.api_resources()
        rows = [[r.name, ",".join(r.short_names), r.api_version, str(r.namespaced).lower(), r.kind] for r in res]
        click.echo(printers.table(rows, ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]))

    with_client(conn, go)


async def mutate(client: Client, kind: kinds.Kind, name: str, namespace: str,
                 change: Callable[[Any], bool]) -> tuple[Any, bool]:
    """Read, change, update; retry on conflict. `change` returns False when nothing changed."""
    seen: list[Any] = []

    async def read() -> Any:
        seen[:] = [await client.get(kind.resource, name, namespace)]
        return seen[0]

    written = await retry_on_conflict(read, lambda obj: obj if change(obj) else None, client.update,
                                      what=f"{kind.resource} {name!r}")
    return (written, True) if written is not None else (seen[0], False)


_PAIR = re.compile(r"^([^=]+)=(.*)$")


def parse_pairs(items: tuple[str, ...], what: str) -> tuple[dict[str, str], list[str]]:
    """`k=v` sets, `k-` removes; labels are validated as Kubernetes does."""
    sets, removes = {}, []
    for item in items:
        if item.endswith("-") and "=" not in item:
            removes.append(item[:-1])
            continue
        m = _PAIR.fullmatch(item)
        if not m:
            raise CliError(f"invalid {what} spec: {item!r} (use key=value or key-)")
        key, value = m.group(1), m.group(2)
        problems = labels.key_errors(key) + (labels.value_errors(value) if what == "label" else [])
        if problems:
            raise CliError(f"invalid {what} {item!r}: {problems[0]}")
        sets[key] = value
    return sets, removes


def _label_like(field: str, what: str) -> Callable[..., None]:
    @click.argument("kind")
    @click.argument("name")
    @click.argument("pairs", nargs=-1, required=True)
    @click.option("--namespace", "-n", default="")
    @click.option("--overwrite", is_flag=True, help="allow replacing existing values")
    @connection_options
    def command(kind: str, name: str, pairs: tuple[str, ...], namespace: str, overwrite: bool,
                conn: ClientConfig) -> None:
        try:
            k = kinds.lookup(kind)
            sets, removes = parse_pairs(pairs, what)
        except (CliError, ApiError) as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(1)

        def change(obj: Any) -> bool:
            target = getattr(obj.metadata, field)
            for key, value in sets.items():
                if key in target and target[key] != value and not overwrite:
                    raise CliError(f"'{key}' already has a value ({target[key]}), and --overwrite is false")
            before = dict(target)
            target.update(sets)
            for key in removes:
                target.pop(key, None)
            return dict(target) != before

        async def go(c: Client) -> None:
            obj, changed = await mutate(c, k, name, namespace or "default", change)
            click.echo(f"{printers.name_of(obj)} {'labeled' if what == 'label' else 'annotated'}"
                       if changed else f"{printers.name_of(obj)} not {what}ed")

        with_client(conn, go)

    return command


label = click.command("label", help="Set (k=v) or remove (k-) labels on an object.")(_label_like("labels", "label"))
annotate = click.command("annotate", help="Set (k=v) or remove (k-) annotations on an object.")(
    _label_like("annotations", "annotation"))


@click.command()
@click.argument("kind")
@click.argument("name")
@click.option("--replicas", type=int, required=True)
@click.option("--namespace", "-n", default="")
@connection_options
def scale(kind: str, name: str, replicas: int, namespace: str, conn: ClientConfig) -> None:
    """Set the number of replicas of a deployment or replicaset."""
    if "/" in kind:
        kind, _, name = kind.partition("/")

    async def go(c: Client) -> None:
        obj = await c.scale(kinds.lookup(kind).resource, name, replicas, namespace or "default")
        click.echo(f"{printers.name_of(obj)} scaled")

    with_client(conn, go)


def _cordon(unschedulable: bool) -> Callable[..., None]:
    @click.argument("node")
    @connection_options
    def command(node: str, conn: ClientConfig) -> None:
        def change(n: core_pb2.Node) -> bool:
            if n.spec.unschedulable == unschedulable:
                return False
            n.spec.unschedulable = unschedulable
            return True

        async def go(c: Client) -> None:
            obj, changed = await mutate(c, kinds.lookup("Node"), node, "", change)
            verb = "cordoned" if unschedulable else "uncordoned"
            click.echo(f"node/{obj.metadata.name} {verb}" if changed else f"node/{obj.metadata.name} already {verb}")

        with_client(conn, go)

    return command


cordon = click.command("cordon", help="Mark a node unschedulable.")(_cordon(True))
uncordon = click.command("uncordon", help="Mark a node schedulable.")(_cordon(False))

_TAINT = re.compile(r"^([^=:]+)(?:=([^:]*))?(?::(NoSchedule|PreferNoSchedule|NoExecute))?$")


def parse_taint(spec: str) -> tuple[core_pb2.Taint, bool]:
    """`key=value:Effect` adds, `key:Effect-` or `key-` removes (no effect: every effect of the key)."""
    # A trailing '-' means removal; taken off first, since a key may itself contain '-'.
    remove = spec.endswith("-")
    m = _TAINT.fullmatch(spec[:-1] if remove else spec)
    if not m:
        raise CliError(f"invalid taint spec: {spec!r} (use key=value:Effect, key:Effect-, or key-; effects: "
                       f"NoSchedule, PreferNoSchedule, NoExecute)")
    key, value, effect = m.group(1), m.group(2) or "", m.group(3) or ""
    if not remove and not effect:
        raise CliError(f"invalid taint spec: {spec!r}: an effect is required (NoSchedule, PreferNoSchedule, "
                       f"NoExecute)")
    problems = labels.key_errors(key) + labels.value_errors(value)
    if problems:
        raise CliError(f"invalid taint spec: {spec!r}: {problems[0]}")
    return core_pb2.Taint(key=key, value=value, effect=effect), remove


@click.command()
@click.argument("kind", type=click.Choice(["node", "nodes", "no"]))
@click.argument("node")
@click.argument("taints", nargs=-1, required=True)
@click.option("--overwrite", is_flag=True)
@connection_options
def taint(kind: str, node: str, taints: tuple[str, ...], overwrite: bool, conn: ClientConfig) -> None:
    """Add (key=value:Effect) or remove (key:Effect- / key-) node taints."""
    try:
        parsed = [parse_taint(t) for t in taints]
    except CliError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(1)

    def change(n: core_pb2.Node) -> bool:
        current = list(n.spec.taints)
        for t, remove in parsed:
            if remove:
                kept = [c for c in current if not (c.key == t.key and (not t.effect or c.effect == t.effect))]
                if len(kept) == len(current):
                    raise CliError(f"taint {t.key!r} not found")
                current = kept
                continue
            same = [c for c in current if c.key == t.key and c.effect == t.effect]
            if same and not overwrite and same[0].value != t.value:
                raise CliError(f"node {node} already has {t.key} taint(s) with same effect(s) and --overwrite is "
                               f"false")
            current = [c for c in current if not (c.key == t.key and c.effect == t.effect)] + [t]
        if current == list(n.spec.taints):
            return False
        del n.spec.taints[:]
        n.spec.taints.extend(current)
        return True

    async def go(c: Client) -> None:
        obj, _ = await mutate(c, kinds.lookup("Node"), node, "", change)
        click.echo(f"node/{obj.metadata.name} tainted" if any(not r for _, r in parsed)
                   else f"node/{obj.metadata.name} untainted")

    with_client(conn, go)


@click.command()
@click.argument("targets", nargs=-1, required=True)
@click.option("--for", "condition", required=True,
              help="condition=NAME[=VALUE] (e.g. condition=Ready, condition=Available) or delete")
@click.option("--namespace", "-n", default="")
@click.option("--selector", "-l", default="", help="wait for every object matching this selector")
@click.option("--timeout", default="30s", show_default=True, help="give up after this long (e.g. 60s, 2m, 90)")
@connection_options
def wait(targets: tuple[str, ...], condition: str, namespace: str, selector: str, timeout: str,
         conn: ClientConfig) -> None:
    """Wait until objects meet a condition: `wait --for=condition=Ready pod/client`, `--for=condition=complete
    job/pi`, `--for=delete`."""
    import asyncio
    import time

    from api.errors import NotFoundError
    from cli.workloads import parse_duration

    seconds = parse_duration(timeout)

    want_delete = condition == "delete"
    cond_name, want = "", "True"
    if not want_delete:
        kind_, _, rest = condition.partition("=")
        if kind_ != "condition" or not rest:
            click.echo(f"error: unrecognized condition: {condition!r} (use condition=NAME or delete)", err=True)
            sys.exit(1)
        cond_name, _, value = rest.partition("=")
        want = value or "True"
    pairs: list[tuple[kinds.Kind, str]] = []
    try:
        for t in targets:
            k, _, name = t.partition("/")
            pairs.append((kinds.lookup(k), name))
    except ApiError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(1)

    def met(obj: Any) -> bool:
        return any(c.type.lower() == cond_name.lower() and c.status == want for c in obj.status.conditions)

    async def go(c: Client) -> None:
        deadline = time.monotonic() + seconds
        pending = list(pairs)
        ns = namespace or "default"
        while True:
            still = []
            for kind, name in pending:
                if not name:
                    items = (await c.list(kind.resource, ns, label_selector=selector)).items
                    if bool(items) == want_delete:  # none yet, or some still there
                        still.append((kind, name))
                    elif not want_delete:
                        still.extend((kind, o.metadata.name) for o in items if not met(o))
                    continue
                try:
                    obj = await c.get(kind.resource, name, ns)
                except NotFoundError:
                    if not want_delete:
                        still.append((kind, name))
                    continue
                if want_delete or not met(obj):
                    still.append((kind, name))
                else:
                    click.echo(f"{printers.name_of(obj)} condition met")
            if not still:
                return
            if time.monotonic() > deadline:
                names = ", ".join(f"{k.kind.lower()}/{n}" if n else f"{k.resource} -l {selector}" for k, n in still)
                raise CliError(f"timed out waiting for the condition on {names}")
            pending = still
            await asyncio.sleep(0.25)

    with_client(conn, go)


@click.command()
def version() -> None:
    """Print the client version."""
    from importlib.metadata import version as pkg_version

    click.echo(f"kubelite {pkg_version('kubelite')}")


COMMANDS = [create, api_resources, label, annotate, scale, cordon, uncordon, taint, wait, version]
