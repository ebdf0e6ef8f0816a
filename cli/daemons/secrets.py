"""`kubelite secrets rotate-key`: a new encryption key for Secrets, and every Secret rewritten under it.

It runs where the apiserver's EncryptionConfiguration file is (a local
cluster's control plane, or a control-plane machine with --encryption-config):
it puts a new aesgcm key first in the file (the old keys stay, to read what
is not rewritten yet), then updates every Secret through the API. The
apiserver reads the changed file before its next Secret write, and writes a
Secret whose stored value is under an old key even when nothing else changed,
so each update re-encrypts it under the new key.
"""

from __future__ import annotations

from pathlib import Path

import click
import yaml

from api.errors import ConflictError, NotFoundError
from cli.common import CliError, connection_options, local_cluster_option, run
from client.api import Client
from client.config import ClientConfig


def _config_paths(name: str, path: str | None) -> list[Path]:
    """The file to change, the first control plane's first; a local cluster's other control planes hold copies,
    which get the same new key (every apiserver must read what any of them writes)."""
    if path:
        return [Path(path)]
    from deploy.lab import cluster
    from deploy.lab.plan import plan_lab

    running = cluster.find_running(name)
    plan = running.plan if running is not None else plan_lab(name, 0)
    paths = [cluster.control_plane_spec(plan, role=m.role).encryption_config for m in plan.control_planes]
    return [paths[0], *(p for p in paths[1:] if p.exists())]


@click.group()
def secrets() -> None:
    """Secrets' encryption at rest."""


@secrets.command("rotate-key")
@click.option("--encryption-config", default=None, type=click.Path(dir_okay=False),
              help="the apiserver's EncryptionConfiguration file (default: the local cluster's)")
@local_cluster_option
@connection_options
def rotate_key(encryption_config: str | None, name: str, conn: ClientConfig) -> None:
    """Add a new key, make it the one that encrypts, and rewrite every Secret under it."""
    from apiserver import encryption

    paths = _config_paths(name, encryption_config)
    path = paths[0]

    async def go() -> str:
        try:
            data = yaml.safe_load(path.read_text())
            new, key = encryption.plan_rotation(data)
        except OSError as e:
            raise CliError(f"{path}: {e.strerror or e}") from None
        except (yaml.YAMLError, encryption.EncryptionConfigError) as e:
            raise CliError(f"{path}: {e}") from None
        for each in paths:
            encryption.write_file(each, new)
        rewritten = 0
        async with Client(conn) as client:
            for s in await client.list_all("secrets"):
                for _ in range(10):
                    try:
                        current = await client.get("secrets", s.metadata.name, s.metadata.namespace)
                        await client.update(current)
                        rewritten += 1
                        break
                    except NotFoundError:
                        break
                    except ConflictError:
                        continue
                else:
                    raise CliError(f"secret {s.metadata.namespace}/{s.metadata.name} kept changing; run again")
        return f"encryption key {key} added to {path} and now encrypts; {rewritten} secret(s) rewritten under it"

    click.echo(run(go(), conn))


COMMANDS: list[click.Command] = [secrets]
