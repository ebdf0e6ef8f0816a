"""`kubelite create job NAME --image IMAGE -- CMD...` and `create job NAME --from=cronjob/NAME`, as kubectl's."""

from __future__ import annotations

import sys

import click

from api import defaults, jobs, kinds, validation
from api.errors import ApiError
from api.pb import batch_pb2, meta_pb2
from cli import printers
from cli.common import CliError, connection_options, with_client
from cli.verbs import create
from client.api import Client
from client.config import ClientConfig


def job_from_flags(name: str, image: str, command: tuple[str, ...]) -> batch_pb2.Job:
    """kubectl's Job for `create job NAME --image IMAGE -- CMD`: one container named like the Job, restartPolicy
    Never."""
    job = batch_pb2.Job(metadata={"name": name})
    spec = job.spec.template.spec
    spec.restart_policy = "Never"
    spec.containers.add(name=name, image=image, command=list(command))
    return job


def _check(job: batch_pb2.Job) -> None:
    """The checks the apiserver will run, before anything is sent."""
    check = batch_pb2.Job()
    check.CopyFrom(job)
    defaults.apply(check)
    errs = validation.validate(check)
    if errs:
        raise CliError(f'Job "{job.metadata.name}" is invalid: ' + "; ".join(str(e) for e in errs))


@create.command("job")
@click.argument("name")
@click.argument("command", nargs=-1)
@click.option("--image", default="", help="the image of the Job's one container")
@click.option("--from", "source", default="", metavar="cronjob/NAME", help="a Job from a CronJob's jobTemplate")
@click.option("--namespace", "-n", default="", help="namespace (default: default)")
@connection_options
def create_job(name: str, command: tuple[str, ...], image: str, source: str, namespace: str,
               conn: ClientConfig) -> None:
    """Create a Job: `create job NAME --image IMAGE [-- CMD ARGS...]`, or `create job NAME --from=cronjob/NAME`."""
    ns = namespace or "default"
    try:
        if image and source:
            raise CliError("--image and --from are mutually exclusive")
        if not image and not source:
            raise CliError("either --image or --from must be specified")
        if source and command:
            raise CliError("cannot specify --from and command")
        cron = ""
        if source:
            kind_text, sep, cron = source.partition("/")
            try:
                kind = kinds.lookup(kind_text) if sep else None
            except ApiError:
                kind = None
            if kind is None or kind.kind != "CronJob" or not cron:
                raise CliError(f"from must be an existing cronjob: {source!r} (use --from=cronjob/NAME)")
        else:
            job = job_from_flags(name, image, command)
            job.metadata.namespace = ns
            _check(job)
    except CliError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(1)

    async def go(c: Client) -> None:
        if cron:
            cj: batch_pb2.CronJob = await c.get("cronjobs", cron, ns)
            ref = meta_pb2.OwnerReference(api_version="batch/v1", kind="CronJob", name=cj.metadata.name,
                                          uid=cj.metadata.uid, controller=True)
            made = jobs.job_from_template(cj, None, ref, name=name)
            _check(made)
        else:
            made = job
        created = await c.create(made)
        click.echo(f"{printers.name_of(created)} created")

    with_client(conn, go)


COMMANDS: list[click.Command] = []
