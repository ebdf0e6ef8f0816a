"""`kubelite delete (-f FILE | KIND NAME... | KIND -l SEL | KIND --all)`."""

from __future__ import annotations

import asyncio
import sys
import time

import click

from api import kinds
from api.errors import ApiError, NotFoundError, UnavailableError
from cli.apply import read_sources
from cli.common import CliError, connection_options, run
from cli.printers import name_of
from client.api import Client
from client.config import ClientConfig

CASCADE = {"background": "Background", "foreground": "Foreground", "orphan": "Orphan", "true": "Background",
           "false": "Orphan"}


async def _delete(conn: ClientConfig, targets: list[tuple[kinds.Kind, str, str]], *, grace: int | None,
                  cascade: str, wait: bool, timeout: float, ignore_not_found: bool) -> int:
    failures = 0
    unreachable: UnavailableError | None = None
    async with Client(conn) as client:

        async def one(kind: kinds.Kind, ns: str, name: str) -> None:
            nonlocal failures, unreachable
            try:
                obj = await client.delete(kind.resource, name, ns, grace_period_seconds=grace,
                                          propagation_policy=CASCADE[cascade])
            except UnavailableError as e:
                unreachable = e  # reported once, not once per object
                return
            except NotFoundError as e:
                if not ignore_not_found:
                    failures += 1
                    click.echo(f"Error from server (NotFound): {e.message}", err=True)
                return
            except ApiError as e:
                failures += 1
                click.echo(f"Error from server ({e.reason}): {e.message}", err=True)
                return
            click.echo(f'{name_of(obj)} deleted')
            if wait:
                deadline = time.monotonic() + timeout
                while time.monotonic() < deadline:
                    try:
                        current = await client.get(kind.resource, name, ns)
                    except NotFoundError:
                        return
                    if current.metadata.uid != obj.metadata.uid:
                        return
                    await asyncio.sleep(0.2)
                failures += 1
                click.echo(f"error: timed out waiting for {name_of(obj)} to be deleted", err=True)

        await asyncio.gather(*(one(k, ns, n) for k, ns, n in targets))
    if unreachable is not None:
        raise unreachable
    return failures


async def _resolve(conn: ClientConfig, kind: kinds.Kind, namespace: str, selector: str, all_: bool,
                   all_namespaces: bool) -> list[tuple[kinds.Kind, str, str]]:
    async with Client(conn) as client:
        ns = "" if all_namespaces else namespace
        items = (await client.list(kind.resource, ns, label_selector=selector)).items
    return [(kind, o.metadata.namespace, o.metadata.name) for o in items]


@click.command()
@click.argument("args", nargs=-1)
@click.option("-f", "--filename", "files", multiple=True, help="delete what these files describe")
@click.option("-R", "--recursive", is_flag=True)
@click.option("--namespace", "-n", default="")
@click.option("--all-namespaces", "-A", is_flag=True)
@click.option("--selector", "-l", default="")
@click.option("--all", "all_", is_flag=True, help="every object of the kind in the namespace")
@click.option("--grace-period", type=int, default=None, help="seconds to let pods stop (0 with --force: at once)")
@click.option("--force", is_flag=True, help="with --grace-period=0: remove at once, without waiting for the kubelet")
@click.option("--now", is_flag=True, help="same as --grace-period=1")
@click.option("--cascade", type=click.Choice(sorted(CASCADE)), default="background",
              help="background (default), foreground, or orphan the dependents")
@click.option("--wait/--no-wait", default=True, help="wait until the objects are gone")
@click.option("--timeout", type=float, default=120.0)
@click.option("--ignore-not-found", is_flag=True)
@connection_options
def delete(args: tuple[str, ...], files: tuple[str, ...], recursive: bool, namespace: str, all_namespaces: bool,
           selector: str, all_: bool, grace_period: int | None, force: bool, now: bool, cascade: str, wait: bool,
           timeout: float, ignore_not_found: bool, conn: ClientConfig) -> None:
    """Delete objects by file, by name, or by label selector."""
    if now:
        grace_period = 1
    if grace_period == 0 and not force:
        grace_period = 1  # as kubectl: --grace-period=0 alone means "as fast as possible, still graceful"
    targets: list[tuple[kinds.Kind, str, str]] = []
    try:
        if files:
            for doc in read_sources(files, recursive=recursive):
                data = doc.data if isinstance(doc.data, dict) else {}
                kind = kinds.lookup(str(data.get("kind", "")))
                meta = data.get("metadata") or {}
                targets.append((kind, str(meta.get("namespace") or namespace or "default"), str(meta.get("name"))))
        elif args:
            first = args[0]
            if "/" in first:
                for a in args:
                    k, _, name = a.partition("/")
                    targets.append((kinds.lookup(k), namespace or "default", name))
            else:
                kind = kinds.lookup(first)
                if len(args) > 1:
                    targets += [(kind, namespace or "default", n) for n in args[1:]]
                elif selector or all_:
                    targets += run(_resolve(conn, kind, namespace or "default", selector, all_, all_namespaces),
                                   conn)
                    if not targets:
                        click.echo("No resources found", err=True)
                        return
                else:
                    raise CliError("resource(s) were provided, but no name was specified (or use -l / --all)")
        else:
            raise CliError("you must provide one or more resources by argument or filename (-f)")
    except (CliError, ApiError) as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(1)
    failures = run(_delete(conn, targets, grace=grace_period, cascade=cascade, wait=wait, timeout=timeout,
                           ignore_not_found=ignore_not_found), conn)
    if failures:
        sys.exit(1)
