"""The `kubelite` command: component daemons and the user's verbs."""

from __future__ import annotations

import os

# Daemons start subprocesses (iptables-restore, ctr) that exec at once: gRPC's fork
# handlers are not needed, and its informational logging is noise on stderr.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

import click

from cli import (
    apply,
    chaos,
    daemons,
    delete,
    describe,
    get,
    images,
    lab,
    networking,
    node,
    scheduling,
    verbs,
    vm,
    workloads,
)

# Each module exports COMMANDS; one line per module.
MODULES = (
    chaos,
    lab,
    images,
    verbs,
    daemons,
    scheduling,
    node,
    workloads,
    networking,
    vm,
)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("--server", "-s", default=None, help="apiserver address for the command (as kubectl's --server)")
@click.option("--token", default=None, help="bearer token for the command")
@click.option("--cluster", default=None, help="cluster name in the config file")
def main(server: str | None, token: str | None, cluster: str | None) -> None:
    """kubelite: a small Kubernetes-style orchestrator.

    Components run as `kubelite apiserver`, `kubelite scheduler`, ...; users drive
    the cluster with `kubelite apply`, `get`, `describe`, `delete` and friends.
    """
    # Given before the verb, they apply to it as if given after it.
    for name, value in (("KUBELITE_SERVER", server), ("KUBELITE_TOKEN", token), ("KUBELITE_CLUSTER", cluster)):
        if value is not None:
            os.environ[name] = value


for command in (apply.apply, get.get, describe.describe, delete.delete):
    main.add_command(command)
for module in MODULES:
    for command in module.COMMANDS:
        main.add_command(command)


if __name__ == "__main__":
    main()
