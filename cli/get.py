"""`kubelite get`: tables, wide tables, YAML, JSON, names; and `-w` to follow changes."""

from __future__ import annotations

import click

from api import kinds
from api.errors import NotFoundError
from cli import printers
from cli.common import CliError, connection_options, run
from client.api import Client
from client.config import ClientConfig


def parse_kinds(text: str) -> list[kinds.Kind]:
    out = []
    for part in text.split(","):
        try:
            out.append(kinds.lookup(part.strip()))
        except Exception as e:
            raise CliError(str(e)) from None
    return out


async def _get(conn: ClientConfig, kind_list: list[kinds.Kind], names: tuple[str, ...], namespace: str,
               all_namespaces: bool, selector: str, field_selector: str, output: str, watch: bool,
               show_kind: bool, show_labels: bool = False) -> None:
    async with Client(conn) as client:
        # YAML and JSON of several kinds are one List, as kubectl prints them (not one document per kind).
        combined: list | None = [] if output in ("yaml", "json") and len(kind_list) > 1 else None
        for i, kind in enumerate(kind_list):
            ns = "" if all_namespaces else (namespace or "default")
            if names:
                objs = []
                for name in names:
                    try:
                        objs.append(await client.get(kind.resource, name, ns))
                    except NotFoundError as e:
                        click.echo(f"Error from server (NotFound): {e.message}", err=True)
                rv = ""
            else:
                result = await client.list(kind.resource, ns, label_selector=selector, field_selector=field_selector)
                objs, rv = result.items, result.resource_version
                if kind.kind == "Event":
                    # As kubectl: oldest first, so the latest is at the bottom.
                    objs.sort(key=lambda e: (e.last_timestamp.ToNanoseconds()
                                             or e.metadata.creation_timestamp.ToNanoseconds()))
            multi = len(kind_list) > 1 or show_kind
            if combined is not None:
                combined.extend(objs)
            else:
                _print(objs, kind, output=output, all_namespaces=all_namespaces and kind.namespaced,
                       single=len(names) == 1 and len(kind_list) == 1, prefix_kind=multi, header=True,
                       show_labels=show_labels)
            if not objs and not names and output in ("", "wide"):
                where = "" if all_namespaces or not kind.namespaced else f" in {ns} namespace"
                click.echo(f"No resources found{where}.", err=True)
            if i + 1 < len(kind_list) and output in ("", "wide") and objs:
                click.echo("")
            if names and len(objs) < len(names):
                raise SystemExit(1)
        if combined is not None:
            _print(combined, kind_list[0], output=output, all_namespaces=False, single=False, prefix_kind=False,
                   header=True)
        if watch:
            if len(kind_list) != 1:
                raise CliError("watch is only supported on a single resource type")
            kind = kind_list[0]
            ns = "" if all_namespaces else (namespace or "default")
            field = field_selector
            if names:
                field = ",".join(filter(None, [field, f"metadata.name={names[0]}"]))
            async for ev in client.watch(kind.resource, ns, resource_version=rv or "", label_selector=selector,
                                         field_selector=field, bookmarks=False):
                _print([ev.object], kind, output=output, all_namespaces=all_namespaces and kind.namespaced,
                       single=True, prefix_kind=False, header=False, show_labels=show_labels)


def _print(objs: list, kind: kinds.Kind, *, output: str, all_namespaces: bool, single: bool, prefix_kind: bool,
           header: bool, show_labels: bool = False) -> None:
    # A listing with nothing in it is still an (empty) List, so scripts always get a document.
    if output == "yaml":
        if objs or (header and not single):
            click.echo(printers.as_yaml(objs, single=single or not header).rstrip("\n"))
            if not header:
                click.echo("---")
        return
    if output == "json":
        if objs or (header and not single):
            click.echo(printers.as_json(objs, single=single or not header))
        return
    if output == "name":
        for o in objs:
            click.echo(printers.name_of(o))
        return
    if not objs:
        return
    wide = output == "wide"
    rows = [printers.row(o, wide=wide, namespaced=all_namespaces) for o in objs]
    if prefix_kind:
        for r, o in zip(rows, objs, strict=True):
            idx = 1 if all_namespaces else 0
            r[idx] = printers.name_of(o)
    cols = printers.headers(kind, wide=wide, namespaced=all_namespaces)
    if show_labels:
        cols = [*cols, "LABELS"]
        for r, o in zip(rows, objs, strict=True):
            r.append(",".join(f"{k}={v}" for k, v in sorted(o.metadata.labels.items())) or "<none>")
    text = printers.table(rows, cols if header else None)
    if not header:
        # Following a watch: the same column layout without the header line.
        text = printers.table([cols, *rows], None).split("\n", 1)[1]
    click.echo(text)


@click.command()
@click.argument("kind")
@click.argument("names", nargs=-1)
@click.option("--namespace", "-n", default="", help="namespace (default: default)")
@click.option("--all-namespaces", "-A", is_flag=True, help="list across all namespaces")
@click.option("--selector", "-l", default="", help="label selector, e.g. app=web,tier in (a,b),!canary")
@click.option("--field-selector", default="", help="field selector, e.g. spec.nodeName=n1,status.phase=Running")
@click.option("--output", "-o", type=click.Choice(["wide", "yaml", "json", "name"]), default=None)
@click.option("--watch", "-w", is_flag=True, help="after listing, follow changes")
@click.option("--show-kind", is_flag=True)
@click.option("--show-labels", is_flag=True, help="add a LABELS column")
@connection_options
def get(kind: str, names: tuple[str, ...], namespace: str, all_namespaces: bool, selector: str,
        field_selector: str, output: str | None, watch: bool, show_kind: bool, show_labels: bool,
        conn: ClientConfig) -> None:
    """Show objects: `get pods`, `get deploy web -o yaml`, `get po -A -o wide`, `get svc,ep`."""
    if "/" in kind and not names:
        kind, _, name = kind.partition("/")
        names = (name,)
    try:
        kind_list = parse_kinds(kind)
    except CliError as e:
        click.echo(f"error: {e}", err=True)
        raise SystemExit(1) from None
    run(_get(conn, kind_list, names, namespace, all_namespaces, selector, field_selector, output or "", watch,
             show_kind, show_labels), conn)
