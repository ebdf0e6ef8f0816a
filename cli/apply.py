"""`kubelite apply -f FILE|DIR|-`: create or update every document, concurrently.

Every document is parsed and validated before anything is sent, so a bad
file writes nothing; then documents go to the server in parallel and each
failure is reported with its file and document number.
"""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click

from api import convert, defaults, kinds, text, validation
from api.errors import AlreadyExistsError, ApiError, InvalidError, UnavailableError, UnsupportedError
from api.limits import MAX_OBJECT_BYTES
from api.pb import api_pb2
from cli import merge
from cli.common import CliError, connection_options, run
from cli.printers import name_of
from client.api import Client
from client.config import ClientConfig
from client.retry import retry_on_conflict

CONCURRENCY = 64


def read_sources(paths: Iterable[str], *, recursive: bool = False) -> list[convert.Document]:
    """Every document of every file (directories: their .yaml, .yml and .json files, sorted)."""
    docs: list[convert.Document] = []
    for path in paths:
        if path == "-":
            docs.extend(convert.load_documents(sys.stdin.read(), "-"))
            continue
        p = Path(path)
        if p.is_dir():
            pattern = "**/*" if recursive else "*"
            files = sorted(f for f in p.glob(pattern) if f.suffix in (".yaml", ".yml", ".json") and f.is_file())
            if not files:
                raise CliError(f"{path}: no .yaml, .yml or .json files")
        elif p.exists():
            files = [p]
        else:
            raise CliError(f'the path "{path}" does not exist')
        for f in files:
            try:
                text = f.read_text()
            except (OSError, UnicodeDecodeError) as e:
                raise CliError(f"{f}: {e}") from None
            docs.extend(convert.load_documents(text, str(f)))
    return docs


def parse_all(docs: list[convert.Document], namespace: str) -> tuple[list[tuple[convert.Document,
                                                                                 api_pb2.Object]], list[str]]:
    """Documents as objects, checked with the server's own validation; and every problem, one line each."""
    out, problems = [], []
    for doc in docs:
        try:
            envelope = convert.manifest_to_object(merge.with_last_applied(doc.data) if isinstance(doc.data, dict)
                                                  else doc.data, where=doc.where)
        except (InvalidError, UnsupportedError) as e:
            problems.append(e.message)
            continue
        obj = kinds.unwrap(envelope)
        kind = kinds.of(obj)
        meta = obj.metadata  # type: ignore[attr-defined]
        if kind.namespaced and not meta.namespace:
            meta.namespace = namespace or "default"
        elif kind.namespaced and namespace and meta.namespace != namespace:
            problems.append(f"{doc.where}: the namespace from the provided object \"{meta.namespace}\" does not "
                            f"match the namespace \"{namespace}\"")
            continue
        check = type(obj)()
        check.CopyFrom(obj)
        if not meta.name and not meta.generate_name:
            problems.append(f"{doc.where}: metadata.name: Required value")
            continue
        defaults.apply(check)
        errs = validation.validate(check)
        if errs:
            problems.append(f"{doc.where}: {kind.kind} \"{meta.name}\" is invalid: "
                            + "; ".join(str(e) for e in errs))
            continue
        if check.ByteSize() > MAX_OBJECT_BYTES:  # the server would refuse it after the others were written
            problems.append(f"{doc.where}: {kind.kind} \"{meta.name}\": object is larger than {MAX_OBJECT_BYTES} "
                            f"bytes")
            continue
        out.append((doc, envelope))
    return out, problems


async def apply_one(client: Client, doc: convert.Document, envelope: api_pb2.Object, *,
                    dry_run: bool = False) -> str:
    """Create the object, or merge the file into the live one; returns kubectl's verb."""
    try:
        await client.create_object(envelope, dry_run=dry_run)
        return "created"
    except AlreadyExistsError:
        pass
    obj = kinds.unwrap(envelope)
    kind = kinds.of(obj)
    meta = obj.metadata  # type: ignore[attr-defined]
    seen: list[Any] = []

    async def read() -> Any:
        seen[:] = [await client.get(kind.resource, meta.name, meta.namespace)]
        return seen[0]

    def merged_into(live: Any) -> Any:
        live_doc = convert.object_to_manifest(live)
        new_doc = merge.with_last_applied(doc.data)
        merged = merge.merge(live_doc, merge.last_applied(live_doc), new_doc)
        merged.setdefault("metadata", {})["resourceVersion"] = live.metadata.resource_version
        try:
            return kinds.unwrap(convert.manifest_to_object(merged, where=doc.where))
        except InvalidError as e:
            raise InvalidError(e.errors, prefix=f"{doc.where}: ") from None

    updated = await retry_on_conflict(read, merged_into, functools.partial(client.update, dry_run=dry_run),
                                      attempts=5, what=f"{doc.where}: the object")
    assert updated is not None
    return "unchanged" if updated.metadata.resource_version == seen[0].metadata.resource_version else "configured"


async def apply_all(conn: ClientConfig, parsed: list[tuple[convert.Document, api_pb2.Object]], *,
                    output_name: bool, dry_run: bool) -> int:
    failures = 0
    sem = asyncio.Semaphore(CONCURRENCY)
    suffix = " (server dry run)" if dry_run else ""
    unreachable: UnavailableError | None = None

    async def one(doc: convert.Document, env: api_pb2.Object) -> None:
        nonlocal failures, unreachable
        async with sem:
            if unreachable is not None:
                return
            obj = kinds.unwrap(env)
            try:
                verb = await apply_one(client, doc, env, dry_run=dry_run)
            except UnavailableError as e:
                unreachable = e  # reported once, not once per document
                return
            except ApiError as e:
                failures += 1
                click.echo(text.escape(f"error: {doc.where}: {name_of(obj)}: {e.message}"), err=True)
                return
            click.echo(name_of(obj) if output_name else f"{name_of(obj)} {verb}{suffix}")

    async with Client(conn) as client:
        # Namespaces first: the rest of the file may live in them.
        first = [p for p in parsed if p[1].WhichOneof("kind") == "namespace"]
        rest = [p for p in parsed if p[1].WhichOneof("kind") != "namespace"]
        for batch in (first, rest):
            await asyncio.gather(*(one(d, e) for d, e in batch))
    if unreachable is not None:
        raise unreachable
    return failures


@click.command()
@click.option("-f", "--filename", "files", multiple=True, required=True, help="file, directory, or - for stdin")
@click.option("-R", "--recursive", is_flag=True, help="process directories recursively")
@click.option("--namespace", "-n", default="", help="namespace for objects that name none")
@click.option("-o", "--output", type=click.Choice(["name"]), default=None)
@click.option("--dry-run", type=click.Choice(["none", "server", "client"]), default="none")
@connection_options
def apply(files: tuple[str, ...], recursive: bool, namespace: str, output: str | None, dry_run: str,
          conn: ClientConfig) -> None:
    """Create or update objects from Kubernetes YAML or JSON."""
    try:
        docs = read_sources(files, recursive=recursive)
    except (InvalidError, CliError) as e:
        click.echo(f"error: {text.escape(str(e))}", err=True)
        sys.exit(1)
    parsed, problems = parse_all(docs, namespace)
    if problems:
        for p in problems:
            click.echo(f"error: {text.escape(p)}", err=True)  # one line each, whatever the file held
        click.echo(f"error: {len(problems)} of {len(docs)} documents are invalid; nothing was applied", err=True)
        sys.exit(1)
    if not parsed:
        click.echo("error: no objects passed to apply", err=True)
        sys.exit(1)
    if dry_run == "client":
        for _, env in parsed:
            click.echo(f"{name_of(kinds.unwrap(env))} configured (dry run)")
        return
    failures = run(apply_all(conn, parsed, output_name=output == "name", dry_run=dry_run == "server"), conn)
    if failures:
        sys.exit(1)


def manifest_summary(data: Any) -> str:
    if isinstance(data, dict):
        return f"{data.get('kind', '?')}/{(data.get('metadata') or {}).get('name', '?')}"
    return "?"
