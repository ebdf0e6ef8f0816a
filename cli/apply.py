"""`kubelite apply -f FILE|DIR|-`: create or update every document, concurrently.

Every document is parsed and validated before anything is sent, so a bad
file writes nothing; then documents go to the server in parallel and each
failure is reported with its file and document number. Many objects are
created in chunks of one CreateMany call each (one call instead of hundreds);
an object that exists already is then updated on its own, and a server
without CreateMany gets one Create per object.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import multiprocessing
import os
import sys
import threading
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import click

from api import convert, defaults, kinds, text, validation
from api.errors import (
    AlreadyExistsError,
    ApiError,
    InvalidError,
    UnavailableError,
    UnimplementedError,
    UnsupportedError,
)
from api.limits import MAX_CREATE_MANY_BYTES, MAX_CREATE_MANY_OBJECTS, MAX_OBJECT_BYTES
from api.pb import api_pb2
from cli import merge
from cli.common import CliError, connection_options, run
from cli.printers import name_of
from client.api import Client
from client.config import ClientConfig
from client.retry import retry_on_conflict

CONCURRENCY = 64
# Files of this many documents or more are loaded and checked in several processes (load_and_parse).
PARALLEL_MIN_DOCUMENTS = 1000
PARSE_PROCESSES = 4
# Objects per CreateMany, and calls in flight at once: enough to keep the server's group commit full (see
# bench/api.py for the measurement), small enough that each call's answers come back in a moment.
CHUNK_OBJECTS = 250
CHUNKS_IN_FLIGHT = 4
# What wrapping each object in the request adds to its size (field tag and length).
OBJECT_OVERHEAD = 8


def read_texts(paths: Iterable[str], *, recursive: bool = False) -> list[tuple[str, str]]:
    """(source, text) of every file (directories: their .yaml, .yml and .json files, sorted; "-": stdin)."""
    texts: list[tuple[str, str]] = []
    for path in paths:
        if path == "-":
            texts.append(("-", sys.stdin.read()))
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
                texts.append((str(f), f.read_text()))
            except (OSError, UnicodeDecodeError) as e:
                raise CliError(f"{f}: {e}") from None
    return texts


def read_sources(paths: Iterable[str], *, recursive: bool = False) -> list[convert.Document]:
    """Every document of every file."""
    return [doc for source, text_ in read_texts(paths, recursive=recursive)
            for doc in convert.load_documents(text_, source)]


def parse_all(docs: Iterable[convert.Document], namespace: str) -> tuple[list[tuple[convert.Document,
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


def _parse_run(run: str, source: str, namespace: str) -> tuple[list[tuple[convert.Document, api_pb2.Object]],
                                                                list[str], int, int]:
    """One run of a file checked, loaded and parsed: its objects, problems, documents given and documents in
    YAML's count (for the numbers of the runs after it)."""
    documents = len(convert.check_documents(run, source))
    docs = list(convert.load_documents(run, source, checked=True))
    parsed, problems = parse_all(docs, namespace)
    return parsed, problems, len(docs), documents


def _parse_run_encoded(run: str, source: str, namespace: str) -> tuple[list[tuple[convert.Document, bytes]],
                                                                        list[str], int, int]:
    """_parse_run in a worker process: the objects encoded, to travel back."""
    parsed, problems, count, documents = _parse_run(run, source, namespace)
    return [(doc, env.SerializeToString()) for doc, env in parsed], problems, count, documents


def _parse_runs(runs: list[str], source: str, namespace: str) -> tuple[list[tuple[convert.Document,
                                                                                  api_pb2.Object]], int] | None:
    """The runs of one file parsed one per process, numbered as in the whole file; None if any run does not
    load or holds a problem (then the whole file is parsed again in one process, and its errors are named
    with their places in the file)."""
    with ProcessPoolExecutor(len(runs) - 1, mp_context=multiprocessing.get_context("fork")) as pool:
        others = [pool.submit(_parse_run_encoded, run, source, namespace) for run in runs[1:]]
        try:
            results = [_parse_run(runs[0], source, namespace)]
            results += [([(doc, api_pb2.Object.FromString(env)) for doc, env in encoded], problems, count, documents)
                        for encoded, problems, count, documents in (f.result() for f in others)]
        except InvalidError:
            pool.shutdown(cancel_futures=True)
            return None
    if any(problems for _, problems, _, _ in results):
        return None
    parsed: list[tuple[convert.Document, api_pb2.Object]] = []
    before = 0
    for out, _, _, documents in results:
        parsed += [(dataclasses.replace(doc, index=doc.index + before), env) for doc, env in out]
        before += documents
    return parsed, sum(count for _, _, count, _ in results)


def load_and_parse(texts: list[tuple[str, str]], namespace: str) -> tuple[list[tuple[convert.Document,
                                                                                   api_pb2.Object]], list[str], int]:
    """parse_all of every document of every file, and how many documents there were.

    A file of PARALLEL_MIN_DOCUMENTS or more is cut into runs of whole documents, checked, loaded and parsed
    one run per CPU: for a file of thousands of pods this is most of what apply spends before it sends
    anything, while the server sits idle. Results come back in file order, as one process gives them.
    """
    parsed: list[tuple[convert.Document, api_pb2.Object]] = []
    problems: list[str] = []
    count = 0
    workers = min(os.cpu_count() or 1, PARSE_PROCESSES)
    for source, text_ in texts:
        runs = convert.cut_documents(text_, workers, min_documents=PARALLEL_MIN_DOCUMENTS)
        if len(runs) > 1 and threading.active_count() == 1:  # fork only a process without threads
            result = _parse_runs(runs, source, namespace)
            if result is not None:
                parsed += result[0]
                count += result[1]
                continue
        out, bad, n, _ = _parse_run(text_, source, namespace)
        parsed += out
        problems += bad
        count += n
    return parsed, problems, count


def plan_phases(kinds_in_order: list[str]) -> list[list[int]]:
    """The positions of the objects (by their Object field: "namespace", "pod", ...) in the order they are sent:
    namespaces first, as the rest of the file may live in them; each phase in file order. Empty phases left out."""
    first = [i for i, k in enumerate(kinds_in_order) if k == "namespace"]
    rest = [i for i, k in enumerate(kinds_in_order) if k != "namespace"]
    return [phase for phase in (first, rest) if phase]


def plan_chunks(sizes: list[int], *, max_objects: int = CHUNK_OBJECTS,
                max_bytes: int = MAX_CREATE_MANY_BYTES) -> list[range]:
    """Consecutive runs of objects (of these encoded sizes) for one CreateMany each, in order: at most
    `max_objects` objects and, with each object's wrapping, `max_bytes` bytes. An object too large for any
    chunk gets one of its own (the server answers it as it would a Create)."""
    max_objects = min(max_objects, MAX_CREATE_MANY_OBJECTS)
    chunks: list[range] = []
    start, total = 0, 0
    for i, size in enumerate(sizes):
        size += OBJECT_OVERHEAD
        if i > start and (i - start >= max_objects or total + size > max_bytes):
            chunks.append(range(start, i))
            start, total = i, 0
        total += size
    if start < len(sizes):
        chunks.append(range(start, len(sizes)))
    return chunks


async def apply_one(client: Client, doc: convert.Document, envelope: api_pb2.Object, *,
                    dry_run: bool = False) -> str:
    """Create the object, or merge the file into the live one; returns kubectl's verb."""
    try:
        await client.create_object(envelope, dry_run=dry_run)
        return "created"
    except AlreadyExistsError:
        return await configure(client, doc, envelope, dry_run=dry_run)


async def configure(client: Client, doc: convert.Document, envelope: api_pb2.Object, *,
                    dry_run: bool = False) -> str:
    """Merge the file into the live object (three-way, as kubectl); returns "configured" or "unchanged"."""
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
    chunk_sem = asyncio.Semaphore(CHUNKS_IN_FLIGHT)
    suffix = " (server dry run)" if dry_run else ""
    unreachable: UnavailableError | None = None
    batched = True  # until the server answers CreateMany UNIMPLEMENTED

    def report(doc: convert.Document, env: api_pb2.Object, outcome: str | ApiError) -> None:
        nonlocal failures, unreachable
        obj = kinds.unwrap(env)
        if isinstance(outcome, UnavailableError):
            unreachable = outcome  # reported once, not once per document
        elif isinstance(outcome, ApiError):
            failures += 1
            click.echo(text.escape(f"error: {doc.where}: {name_of(obj)}: {outcome.message}"), err=True)
        else:
            click.echo(name_of(obj) if output_name else f"{name_of(obj)} {outcome}{suffix}")

    async def one(doc: convert.Document, env: api_pb2.Object, *, created: bool | None = None) -> None:
        """Apply one object; `created` False: its create answered AlreadyExists already, so update it."""
        async with sem:
            if unreachable is not None:
                return
            try:
                verb = await (apply_one(client, doc, env, dry_run=dry_run) if created is None
                              else configure(client, doc, env, dry_run=dry_run))
            except ApiError as e:
                report(doc, env, e)
                return
            report(doc, env, verb)

    async def chunk(items: list[tuple[convert.Document, api_pb2.Object]]) -> None:
        nonlocal batched
        async with chunk_sem:
            if unreachable is not None:
                return
            if batched:
                try:
                    answers = await client.create_many([env for _, env in items], dry_run=dry_run)
                except UnimplementedError:
                    batched = False  # a server before CreateMany: one Create per object, as before it
                except UnavailableError as e:
                    report(*items[0], e)
                    return
                except ApiError:
                    pass  # the call refused as a whole (its size, the load): each object on its own answers
                else:
                    existing = []
                    for (doc, env), answer in zip(items, answers, strict=True):
                        if isinstance(answer, AlreadyExistsError):
                            existing.append((doc, env))
                        else:
                            report(doc, env, answer if isinstance(answer, ApiError) else "created")
                    await asyncio.gather(*(one(d, e, created=False) for d, e in existing))
                    return
        await asyncio.gather(*(one(d, e) for d, e in items))

    async with Client(conn) as client:
        for phase in plan_phases([env.WhichOneof("kind") or "" for _, env in parsed]):
            items = [parsed[i] for i in phase]
            if len(items) == 1:
                await one(*items[0])
                continue
            chunks = plan_chunks([env.ByteSize() for _, env in items])
            await asyncio.gather(*(chunk([items[i] for i in c]) for c in chunks))
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
        parsed, problems, count = load_and_parse(read_texts(files, recursive=recursive), namespace)
    except (InvalidError, CliError) as e:
        click.echo(f"error: {text.escape(str(e))}", err=True)
        sys.exit(1)
    if problems:
        for p in problems:
            click.echo(f"error: {text.escape(p)}", err=True)  # one line each, whatever the file held
        click.echo(f"error: {len(problems)} of {count} documents are invalid; nothing was applied", err=True)
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
