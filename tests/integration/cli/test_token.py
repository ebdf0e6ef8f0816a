"""Who may call the apiserver: a client certificate of the cluster on its port, a bearer token from the token file on
its token port; everyone else is refused, and the caller's identity reaches admission."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest
import testpki
from conftest import start_apiserver

from api.errors import CertificateError, NotFoundError, UnauthorizedError
from api.pb import core_pb2, rbac_pb2
from apiserver import admission
from apiserver.authn import TokenFileError
from apiserver.server import ApiServer
from client.api import Client
from client.config import ClientConfig

from .conftest import clean_env, run_kubelite

TOKEN = "s3cret-token"


class Recorder:
    """An admission plugin that records who created what."""

    name = "Recorder"
    kinds: ClassVar[frozenset[str] | None] = None
    operations = frozenset({admission.CREATE})

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, tuple[str, ...]]] = []

    async def admit(self, a: admission.Attributes) -> None:
        assert a.user is not None
        self.seen.append((a.obj.metadata.name, a.user.name, a.user.groups))  # type: ignore[attr-defined]

    async def validate(self, a: admission.Attributes) -> None:
        pass


async def test_token_file_users_and_certificates(etcd: str, tmp_path: Path) -> None:
    """On the token port a bearer token from the token file names its user and groups, a wrong or missing token is
    refused; on the TLS port a client without a certificate fails the handshake; admission sees each caller."""
    tokens = tmp_path / "tokens.csv"
    tokens.write_text(f'{TOKEN},alice,1001,"devs,ops"\n')
    tokens.chmod(0o600)
    running = await start_apiserver(etcd, token_listen=["127.0.0.1:0"], token_file=str(tokens))
    recorder = Recorder()
    running.server.registry.admission.plugins.insert(0, recorder)
    running.server.registry.admission._for.clear()
    token_port = running.token_address
    pki = testpki.get()
    try:
        async with running.client() as admin:  # alice administers the cluster: authorization is not this test's
            await admin.create(rbac_pb2.ClusterRoleBinding(
                metadata={"name": "alice-admin"},
                subjects=[rbac_pb2.Subject(kind="User", name="alice", api_group="rbac.authorization.k8s.io")],
                role_ref=rbac_pb2.RoleRef(api_group="rbac.authorization.k8s.io", kind="ClusterRole",
                                          name="cluster-admin")))
        anonymous = Client(ClientConfig(server=token_port, ca_file=pki.ca_file))
        with pytest.raises(UnauthorizedError, match="no client certificate and no bearer token"):
            await anonymous.list("pods", "default")
        await anonymous.close()
        (tmp_path / "wrong").write_text("wrong\n")
        async with Client(ClientConfig(server=token_port, ca_file=pki.ca_file,
                                       token_file=str(tmp_path / "wrong"))) as wrong:
            with pytest.raises(UnauthorizedError, match="invalid bearer token"):
                await wrong.create(core_pb2.Namespace(metadata={"name": "sneaky"}))
        async with Client(ClientConfig(server=token_port, ca_file=pki.ca_file, token_file=str(tokens))) as bad_file:
            with pytest.raises(UnauthorizedError):  # the whole line is no token
                await bad_file.list("pods")
        (tmp_path / "good").write_text(f"{TOKEN}\n")
        async with Client(ClientConfig(server=token_port, ca_file=pki.ca_file,
                                       token_file=str(tmp_path / "good"))) as good:
            await good.create(core_pb2.Namespace(metadata={"name": "allowed"}))
            with pytest.raises(NotFoundError):  # the refused create wrote nothing
                await good.get("namespaces", "sneaky")
        async with running.client() as admin:
            await admin.create(core_pb2.Namespace(metadata={"name": "by-admin"}))
        # No client certificate on the mutual-TLS port: refused during the handshake, before any call.
        async with Client(ClientConfig(server=running.address, ca_file=pki.ca_file)) as certless:
            with pytest.raises(CertificateError, match="closed the connection during the TLS handshake") as err:
                await certless.list("pods")
            del err
        assert ("allowed", "alice", ("devs", "ops", "system:authenticated")) in recorder.seen
        assert ("by-admin", "kubelite-admin", ("system:masters", "system:authenticated")) in recorder.seen

        env = clean_env(tmp_path)
        refused = await run_kubelite("get", "namespaces", "--server", token_port, env=env)
        assert refused.code != 0
        assert "no client certificate and no bearer token" in refused.err and "Traceback" not in refused.err
        allowed = await run_kubelite("get", "namespaces", "--server", token_port, "--token-file",
                                     str(tmp_path / "good"), env=env)
        assert allowed.code == 0, allowed.err
        assert "allowed" in allowed.out
    finally:
        await running.stop()


@pytest.mark.parametrize(("content", "message"), [
    pytest.param("", "holds no token", id="empty"),
    pytest.param("# only a comment\n\n", "holds no token", id="comments-only"),
    pytest.param("lonely\n", "line 1: expected token,user", id="no-user"),
    pytest.param("abcdef.0123456789abcdef,bob\n", "must not look like a join token", id="join-token-shape"),
])
def test_a_token_file_that_cannot_be_used_stops_the_start(tmp_path: Path, content: str, message: str) -> None:
    """An empty or malformed token file refuses to start the apiserver, naming the file and the line."""
    from conftest import apiserver_config

    path = tmp_path / "tokens.csv"
    path.write_text(content)
    with pytest.raises(TokenFileError, match=message):
        ApiServer(apiserver_config("https://127.0.0.1:1", token_listen=["127.0.0.1:0"], token_file=str(path)))


async def test_empty_token_file_refused_by_the_command(tmp_path: Path) -> None:
    """`kubelite apiserver --token-file EMPTY` exits 1 with one line naming the file."""
    empty = tmp_path / "tokens.csv"
    empty.write_text("")
    result = await run_kubelite("apiserver", *testpki.get().apiserver_flags("https://127.0.0.1:1"),
                                "--etcd-servers", "https://127.0.0.1:1", "--token-listen", "127.0.0.1:0",
                                "--token-file", str(empty), env=clean_env(tmp_path))
    assert result.code == 1
    assert result.err_lines == [f"error: token file {empty} holds no token: refusing to start with nobody able to "
                                f"use it"]
