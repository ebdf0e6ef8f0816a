"""Nodes join with a join token, as a user runs it: `kubelite token create`, then `kubelite bootstrap join`; a token
for another CA, a deleted or an expired token is refused, saying why."""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
import stat
import subprocess
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import testpki
from conftest import RunningApiserver, start_apiserver

from client import pki, tokens
from client.api import Client
from client.config import ClientConfig

from .conftest import KUBELITE, clean_env, run_kubelite


@pytest.fixture
async def joinable(etcd: str) -> AsyncIterator[RunningApiserver]:
    """An apiserver with a token port, signing nodes' certificates with the test CA."""
    running = await start_apiserver(etcd, token_listen=["127.0.0.1:0"])
    try:
        yield running
    finally:
        await running.stop()


async def _create(server: RunningApiserver, env: dict[str, str], *extra: str) -> str:
    result = await run_kubelite("token", "create", "--server", server.address, *extra, env=env)
    assert result.code == 0, result.err
    return result.out.strip()


async def _join(server: RunningApiserver, token: str, tmp: Path, name: str, env: dict[str, str]
                ) -> tuple[int, str, Path]:
    token_file = tmp / f"{name}.token"
    pki.write_private(token_file, f"{token}\n".encode())
    pki_dir = tmp / name
    result = await run_kubelite("bootstrap", "join", "--join-server", server.token_address, "--token-file",
                                str(token_file), "--name", name, "--address", "127.0.0.1", "--pki-dir", str(pki_dir),
                                env=env)
    return result.code, result.err.strip(), pki_dir


async def test_a_node_joins_with_a_token(joinable: RunningApiserver, tmp_path: Path) -> None:
    """The node pins the CA by the token's hash, makes its keys (0600) and gets certificates naming it; with them it
    is system:node:<name> to the apiserver."""
    env = clean_env(tmp_path)
    token = await _create(joinable, env, "--ttl", "10m", "--description", "for n7")
    parsed = tokens.parse(token)
    assert parsed.ca_hash == pki.ca_hash(pki.read_cert(testpki.get().ca_file))
    listed = await run_kubelite("token", "list", "--server", joinable.address, env=env)
    assert listed.code == 0 and parsed.id in listed.out and "for n7" in listed.out
    assert parsed.secret not in listed.out

    code, err, pki_dir = await _join(joinable, token, tmp_path, "n7", env)
    assert code == 0, err
    for name in ("kubelet", "kubelet-serving", "kube-proxy"):
        assert stat.S_IMODE((pki_dir / f"{name}.key").stat().st_mode) == 0o600
        assert pki.signed_by(pki.read_cert(pki_dir / f"{name}.crt"), pki.read_cert(testpki.get().ca_file))
    info = pki.describe(pki.read_cert(pki_dir / "kubelet.crt"))
    assert (info.identity.user, info.identity.groups) == ("system:node:n7", ("system:nodes",))
    serving = pki.describe(pki.read_cert(pki_dir / "kubelet-serving.crt"))
    assert (serving.dns, serving.ips, serving.usages) == (("n7",), ("127.0.0.1",), ("server",))
    assert pki.describe(pki.read_cert(pki_dir / "kube-proxy.crt")).identity.user == "system:kube-proxy"
    node = ClientConfig(server=joinable.address, ca_file=str(pki_dir / "ca.crt"),
                        cert_file=str(pki_dir / "kubelet.crt"), key_file=str(pki_dir / "kubelet.key"))
    async with Client(node) as client:
        assert (await client.who_am_i()).username == "system:node:n7"
        await client.list("services")  # what every node may read
    # The same token joins a second node (until it expires or is deleted), as kubeadm's do.
    assert (await _join(joinable, token, tmp_path, "n8", env))[0] == 0


async def test_a_token_for_another_ca_is_refused_by_the_node(joinable: RunningApiserver, tmp_path: Path) -> None:
    """A token pinning another CA: the node refuses to join, names both hashes, and asks the apiserver nothing."""
    env = clean_env(tmp_path)
    good = tokens.parse(await _create(joinable, env))
    wrong = tokens.JoinToken(pki.ca_hash(pki.read_cert(testpki.foreign().ca_file)), good.id, good.secret)
    code, err, pki_dir = await _join(joinable, str(wrong), tmp_path, "n9", env)
    assert code == 1
    assert err.startswith(f"error: refusing to join: the control plane at {joinable.token_address} does not present "
                          f"the CA the join token pins ({wrong.ca_hash}); its CA is {good.ca_hash}.")
    assert not (pki_dir / "kubelet.key").exists()


async def test_deleted_and_expired_tokens_are_refused(joinable: RunningApiserver, tmp_path: Path) -> None:
    """A deleted token and an expired one are refused by the apiserver, saying which and why; nothing is written."""
    env = clean_env(tmp_path)
    deleted = await _create(joinable, env)
    gone = await run_kubelite("token", "delete", tokens.parse(deleted).id, "--server", joinable.address, env=env)
    assert gone.code == 0 and "deleted" in gone.out
    code, err, pki_dir = await _join(joinable, deleted, tmp_path, "n10", env)
    assert code == 1
    assert f"join token {tokens.parse(deleted).id} does not exist (deleted, or never created)" in err
    assert not pki_dir.exists() or not any(pki_dir.iterdir())

    expiring = await _create(joinable, env, "--ttl", "1s")
    await asyncio.sleep(1.5)
    listed = await run_kubelite("token", "list", "--server", joinable.address, env=env)
    assert "<expired>" in listed.out
    code, err, _ = await _join(joinable, expiring, tmp_path, "n11", env)
    assert code == 1
    assert f"join token {tokens.parse(expiring).id} expired at" in err


async def test_a_join_token_opens_nothing_else(joinable: RunningApiserver, tmp_path: Path) -> None:
    """With a join token as its bearer, a caller may ask for node certificates and nothing else."""
    from api.errors import ForbiddenError

    env = clean_env(tmp_path)
    token = tokens.parse(await _create(joinable, env))
    (tmp_path / "bearer").write_text(token.bearer)
    async with Client(ClientConfig(server=joinable.token_address, ca_file=testpki.get().ca_file,
                                   token_file=str(tmp_path / "bearer"))) as client:
        with pytest.raises(ForbiddenError, match="may only ask for node certificates"):
            await client.list("pods")


async def test_a_control_plane_too_busy_to_answer_is_asked_again(joinable: RunningApiserver, tmp_path: Path) -> None:
    """A control plane that has just started may be too busy to answer within the node's timeout (an emulated VM
    whose workers provision beside it): the node says so and asks again, and joins once it answers."""
    env = clean_env(tmp_path)
    token_file = tmp_path / "busy.token"
    pki.write_private(token_file, f"{await _create(joinable, env)}\n".encode())
    argv = [KUBELITE, "bootstrap", "join", "--join-server", joinable.token_address, "--token-file", str(token_file),
            "--name", "busy", "--address", "127.0.0.1", "--pki-dir", str(tmp_path / "busy"), "--timeout", "1.5"]
    # Popen, not asyncio's: this test blocks the loop on purpose, below.
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # noqa: ASYNC220
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in proc.stderr or ()], daemon=True)
    reader.start()
    # The apiserver shares this event loop: holding it (not awaiting) is a control plane with no time to answer,
    # until the node has given up on its first request.
    seen: list[str] = []
    deadline = time.monotonic() + 60
    while not any("join_retry" in line for line in seen):
        assert time.monotonic() < deadline and (proc.poll() is None or not lines.empty()), \
            f"the node never retried: {seen}"
        with contextlib.suppress(queue.Empty):
            seen.append(lines.get(timeout=1))
    out, _ = await asyncio.to_thread(proc.communicate, timeout=60)
    reader.join(timeout=5)
    while not lines.empty():
        seen.append(lines.get())
    assert proc.returncode == 0, "".join(seen)
    assert "node busy holds its certificates" in out
    retry = json.loads(next(line for line in seen if "join_retry" in line))
    assert (retry["level"], retry["attempt"], retry["of"], retry["error"]) == ("warning", 1, 3, "DEADLINE_EXCEEDED")
    assert pki.signed_by(pki.read_cert(tmp_path / "busy" / "kubelet.crt"), pki.read_cert(testpki.get().ca_file))
