"""The `kubelite` command: component daemons and the user's verbs."""

from __future__ import annotations

import os
import sys

# Daemons start subprocesses (iptables-restore, ctr) that exec at once: gRPC's fork
# handlers are not needed, and its informational logging is noise on stderr.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

import click

from cli import apply, auth, delete, describe, drain, get, jobs, kubeconfig, pods, tokens, verbs, workloads
from cli.daemons import (
    apiserver,
    certs,
    chaos,
    controllermanager,
    dns,
    hollow,
    images,
    ingress,
    kubelet,
    lab,
    proxy,
    scheduler,
    secrets,
    speaker,
    supervise,
    vm,
)
from client import api as client_api

# Each module exports COMMANDS; one line per module. The user commands first, then the machine side.
MODULES = (
    verbs,
    auth,
    pods,
    workloads,
    tokens,
    kubeconfig,
    jobs,
    drain,
    lab,
    certs,
    images,
    chaos,
    secrets,
    apiserver,
    scheduler,
    controllermanager,
    kubelet,
    hollow,
    proxy,
    speaker,
    dns,
    ingress,
    supervise,
    vm,
)


# Long-running components: a crash leaves its traceback in the component's log, where it helps.
DAEMONS = frozenset({"apiserver", "scheduler", "controller-manager", "kubelet", "proxy", "speaker", "dns", "ingress",
                     "hollow-nodes", "supervise", "registry"})


def _print_warning(text: str) -> None:
    click.echo(f"Warning: {text}", err=True)


class _Main(click.Group):
    """Every user command reports its failures in one line; one nobody foresaw still does, naming its type
    (KUBELITE_TRACEBACK=1 shows the traceback instead)."""

    def invoke(self, ctx: click.Context) -> object:
        if ctx.invoked_subcommand not in DAEMONS:
            client_api.warning_handler = _print_warning  # the apiserver's warnings, printed as kubectl prints them
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as e:
            if ctx.invoked_subcommand in DAEMONS or os.environ.get("KUBELITE_TRACEBACK"):
                raise
            click.echo(f"error: {type(e).__name__}: {e} (unexpected; KUBELITE_TRACEBACK=1 shows where)", err=True)
            sys.exit(1)


@click.group(cls=_Main, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("--server", "-s", default=None, help="apiserver address for the command (as kubectl's --server)")
@click.option("--token-file", default=None, help="bearer token file for the command")
@click.option("--cluster", default=None, help="cluster name in the config file")
def main(server: str | None, token_file: str | None, cluster: str | None) -> None:
    """kubelite: a small Kubernetes-style orchestrator.

    Components run as `kubelite apiserver`, `kubelite scheduler`, ...; users drive
    the cluster with `kubelite apply`, `get`, `describe`, `delete` and friends.
    """
    # Given before the verb, they apply to it as if given after it.
    for name, value in (("KUBELITE_SERVER", server), ("KUBELITE_TOKEN_FILE", token_file),
                        ("KUBELITE_CLUSTER", cluster)):
        if value is not None:
            os.environ[name] = value


for command in (apply.apply, get.get, describe.describe, delete.delete):
    main.add_command(command)
for module in MODULES:
    for command in module.COMMANDS:
        main.add_command(command)


if __name__ == "__main__":
    main()
