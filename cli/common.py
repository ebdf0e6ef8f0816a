"""What every CLI verb shares: connection flags, running a coroutine, one-line errors."""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import click

from api import text
from api.errors import ApiError, UnavailableError
from client.api import Client
from client.config import ClientConfig, current_cluster, resolve

T = TypeVar("T")


class CliError(Exception):
    """A user error found before talking to the server; printed as `error: ...`."""


def connection_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add --server/--token/--cluster and pass the resolved ClientConfig as `conn`."""

    @click.option("--server", "-s", envvar="KUBELITE_SERVER", default=None,
                  help="apiserver address (host:port or unix:///path); default from the config file")
    @click.option("--token", envvar="KUBELITE_TOKEN", default=None, help="bearer token")
    @click.option("--certificate-authority", "ca_file", envvar="KUBELITE_CA", default=None,
                  help="CA certificate file: use TLS")
    @click.option("--cluster", envvar="KUBELITE_CLUSTER", default=None, help="cluster name in the config file")
    @functools.wraps(fn)
    def wrapper(*args: Any, server: str | None, token: str | None, ca_file: str | None, cluster: str | None,
                **kwargs: Any) -> Any:
        kwargs["conn"] = resolve(server, token=token, ca_file=ca_file, cluster=cluster)
        return fn(*args, **kwargs)

    return wrapper


def run(coro: Coroutine[Any, Any, T], conn: ClientConfig | None = None) -> T:
    """Run a CLI coroutine; turn every error into one line on stderr and a non-zero exit."""
    try:
        return asyncio.run(coro)
    except UnavailableError as e:
        where = f" at {conn.server}" if conn else ""
        detail = e.message.splitlines()[0] if e.message else "unavailable"
        click.echo(f"error: cannot reach the apiserver{where}: {detail} (is the cluster up? `kubelite up` starts a "
                   f"local one; --server chooses another)", err=True)
        sys.exit(1)
    except ApiError as e:
        click.echo(f"Error from server ({e.reason}): {text.escape(e.message)}", err=True)
        sys.exit(1)
    except CliError as e:
        click.echo(f"error: {text.escape(str(e))}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


def with_client(conn: ClientConfig, fn: Callable[[Client], Awaitable[T]]) -> T:
    async def go() -> T:
        async with Client(conn) as client:
            return await fn(client)

    return run(go(), conn)


def local_cluster_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--name for commands acting on a local cluster: by default the config file's current cluster."""

    def current(ctx: click.Context, param: click.Parameter, value: str | None) -> str:
        return current_cluster(value)

    return click.option("--name", default=None, callback=current,
                        help="local cluster (default: the config file's current cluster)")(fn)


def namespace_option(fn: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--namespace", "-n", default="", help="namespace (default: default)")(fn)
