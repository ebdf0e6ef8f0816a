"""An apiserver started with a token refuses calls without it, from the client library and the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import start_apiserver

from api.errors import NotFoundError, UnauthorizedError
from api.pb import core_pb2
from client.api import Client

from .conftest import clean_env, run_kubelite

TOKEN = "s3cret-token"


async def test_token_is_required(etcd: str, tmp_path: Path) -> None:
    running = await start_apiserver(etcd, token=TOKEN)
    try:
        async with Client.from_server(running.address) as anonymous:
            with pytest.raises(UnauthorizedError):
                await anonymous.list("pods", "default")
        async with Client.from_server(running.address, token="wrong") as wrong:
            with pytest.raises(UnauthorizedError):
                await wrong.create(core_pb2.Namespace(metadata={"name": "sneaky"}))
        async with Client.from_server(running.address, token=TOKEN) as good:
            await good.create(core_pb2.Namespace(metadata={"name": "allowed"}))
            assert {n.metadata.name for n in (await good.list("namespaces")).items} >= {"allowed", "default"}
            with pytest.raises(NotFoundError):  # the refused create wrote nothing
                await good.get("namespaces", "sneaky")

        env = clean_env(tmp_path)
        refused = await run_kubelite("get", "namespaces", "--server", running.address, env=env)
        assert refused.code != 0
        assert "token" in refused.err.lower() and "Traceback" not in refused.err
        env["KUBELITE_TOKEN"] = TOKEN
        allowed = await run_kubelite("get", "namespaces", "--server", running.address, env=env)
        assert allowed.code == 0, allowed.err
        assert "allowed" in allowed.out
    finally:
        await running.stop()
