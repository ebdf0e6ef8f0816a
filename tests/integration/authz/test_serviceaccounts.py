"""ServiceAccounts against a real apiserver over real etcd: the `default` one in every namespace, pods running as
one that exists, tokens from `kubelite create token` that authenticate as the ServiceAccount until it is deleted
or they expire, RBAC bindings to a ServiceAccount, and a kubelet kept to the tokens of its own pods."""

from __future__ import annotations

import asyncio
import datetime
import sys
from pathlib import Path

import grpc
import pytest
import testpki
from conftest import RunningApiserver, start_apiserver

from api import convert
from api.errors import (
    ApiError,
    ForbiddenError,
    InvalidError,
    PermissionDeniedError,
    TooLargeError,
)
from api.limits import MAX_TOKEN_MANY_REQUESTS
from api.pb import api_pb2, core_pb2
from apiserver import satoken
from apiserver.server import REQUESTS
from client.api import Client
from client.config import ClientConfig

KUBELITE = str(Path(sys.executable).parent / "kubelite")


async def _kubelite(running: RunningApiserver, identity: str, *args: str, tmp: Path) -> tuple[int, str, str]:
    """Run the real command as `identity` (a certificate name in the test PKI)."""
    config = testpki.get().config_file(tmp / f"{identity}.yaml", running.address, identity=identity)
    env = {"HOME": str(tmp), "KUBELITE_CONFIG": str(config), "PATH": "/usr/bin:/bin"}
    proc = await asyncio.create_subprocess_exec(KUBELITE, *args, env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


def _pod(name: str, node: str = "", namespace: str = "default") -> core_pb2.Pod:
    spec = {"containers": [{"name": "c", "image": "busybox"}], **({"nodeName": node} if node else {})}
    return convert.from_dict(core_pb2.Pod, {"metadata": {"name": name, "namespace": namespace}, "spec": spec})


@pytest.fixture
async def running(etcd: str):  # type: ignore[no-untyped-def]
    server = await start_apiserver(etcd, token_listen=["127.0.0.1:0"])
    try:
        yield server
    finally:
        await server.stop()


def _token_client(running: RunningApiserver, token: str, path: Path) -> Client:
    """A client presenting only `token` (no certificate), on the token port, as a pod's client would."""
    path.write_text(token + "\n")
    return Client(ClientConfig(server=running.token_address, ca_file=testpki.get().ca_file, token_file=str(path)))


async def _unauthenticated(client: Client) -> str:
    with pytest.raises(ApiError) as e:
        await client.who_am_i()
    assert e.value.code == grpc.StatusCode.UNAUTHENTICATED
    return e.value.message


async def test_every_namespace_has_a_default_service_account(running: RunningApiserver, tmp_path: Path) -> None:
    """A new namespace comes with `default`, listed by `kubelite get sa`; pods run as it unless they name another,
    and a pod naming a missing one is refused in Kubernetes' words."""
    code, out, err = await _kubelite(running, "admin", "create", "namespace", "team", tmp=tmp_path)
    assert code == 0, err
    code, out, err = await _kubelite(running, "admin", "get", "sa", "-n", "team", tmp=tmp_path)
    assert code == 0, err
    assert out.split("\n")[0].split() == ["NAME", "SECRETS", "AGE"]
    assert out.split("\n")[1].split()[:2] == ["default", "0"]
    async with running.client() as admin:
        assert (await admin.get("serviceaccounts", "default", "kube-system")).metadata.uid
        pod = await admin.create(_pod("web", namespace="team"))
        assert (pod.spec.service_account_name, pod.spec.service_account) == ("default", "default")
        assert pod.spec.automount_service_account_token is True
        with pytest.raises(ForbiddenError) as e:
            bad = _pod("x", namespace="team")
            bad.spec.service_account_name = "ghost"
            await admin.create(bad)
        assert e.value.message == ('pods "x" is forbidden: error looking up service account team/ghost: '
                                   'serviceaccount "ghost" not found')
        await admin.create(convert.from_dict(core_pb2.ServiceAccount, {
            "metadata": {"name": "quiet", "namespace": "team"}, "automountServiceAccountToken": False}))
        quiet = _pod("quiet", namespace="team")
        quiet.spec.service_account = "quiet"  # the deprecated alias works too
        quiet = await admin.create(quiet)
        assert quiet.spec.service_account_name == "quiet"
        assert quiet.spec.automount_service_account_token is False


async def test_a_token_authenticates_as_its_service_account(running: RunningApiserver, tmp_path: Path) -> None:
    """`kubelite create token` prints a token that is the ServiceAccount to the apiserver; a RoleBinding to the
    ServiceAccount grants exactly that; deleting the ServiceAccount revokes the token."""
    for args in (("create", "namespace", "team"), ("create", "serviceaccount", "robot", "-n", "team"),
                 ("create", "rolebinding", "robot-view", "--clusterrole", "view", "--serviceaccount", "team:robot",
                  "-n", "team")):
        code, _, err = await _kubelite(running, "admin", *args, tmp=tmp_path)
        assert code == 0, err
    code, token, err = await _kubelite(running, "admin", "create", "token", "robot", "-n", "team", "--duration",
                                       "10m", tmp=tmp_path)
    assert code == 0, err
    token = token.strip()
    claims = satoken.verify(token, satoken.load_public(testpki.get().store.sa_pub), audiences=[satoken.ISSUER],
                            now=datetime.datetime.now(datetime.UTC))
    assert (claims.namespace, claims.name) == ("team", "robot")
    assert 590 <= (claims.expires - datetime.datetime.now(datetime.UTC)).total_seconds() <= 600  # type: ignore[operator]
    async with running.client() as admin:
        await admin.create(_pod("web", namespace="team"))
        async with _token_client(running, token, tmp_path / "token") as robot:
            me = await robot.who_am_i()
            assert me.username == "system:serviceaccount:team:robot"
            assert set(me.groups) == {"system:serviceaccounts", "system:serviceaccounts:team", "system:authenticated"}
            assert [p.metadata.name for p in (await robot.list("pods", "team")).items] == ["web"]
            with pytest.raises(PermissionDeniedError, match='User "system:serviceaccount:team:robot" cannot list '
                                                            'resource "pods" in API group "" in the namespace '
                                                            '"default"'):
                await robot.list("pods", "default")
            with pytest.raises(PermissionDeniedError, match="cannot create resource \"pods\""):
                await robot.create(_pod("mine", namespace="team"))
            await admin.delete("serviceaccounts", "robot", "team")
            assert "no longer exists" in await _unauthenticated(robot)
        # The same name again is another ServiceAccount: the old token stays refused.
        await admin.create(core_pb2.ServiceAccount(metadata={"name": "robot", "namespace": "team"}))
        async with _token_client(running, token, tmp_path / "token") as robot:
            assert "no longer exists" in await _unauthenticated(robot)


async def test_tokens_expire_and_bound_tokens_die_with_their_pod(running: RunningApiserver, tmp_path: Path) -> None:
    """A token past its expiry is refused; a token bound to a pod stops working when the pod is deleted; a token
    for another audience, or signed by another key, is refused."""
    async with running.client() as admin:
        sa = await admin.get("serviceaccounts", "default", "default")
        key = satoken.load_private(testpki.get().store.sa_key)
        short = satoken.sign(key, namespace="default", name="default", uid=sa.metadata.uid,
                             audiences=[satoken.ISSUER], now=datetime.datetime.now(datetime.UTC), seconds=2)
        async with _token_client(running, short, tmp_path / "short") as client:
            assert (await client.who_am_i()).username == "system:serviceaccount:default:default"
            await asyncio.sleep(2.5)
            assert "expired" in await _unauthenticated(client)
        other = satoken.sign(key, namespace="default", name="default", uid=sa.metadata.uid, audiences=["vault"],
                             now=datetime.datetime.now(datetime.UTC), seconds=600)
        async with _token_client(running, other, tmp_path / "other") as client:
            assert "audience" in await _unauthenticated(client)
        pod = await admin.create(_pod("web"))
        bound = await admin.create_token(api_pb2.TokenRequest(namespace="default", service_account="default",
                                                              pod_name="web", pod_uid=pod.metadata.uid))
        async with _token_client(running, bound.token, tmp_path / "bound") as client:
            assert (await client.who_am_i()).username == "system:serviceaccount:default:default"
            await admin.delete("pods", "web", "default", grace_period_seconds=0)
            assert "pod default/web" in await _unauthenticated(client)
        with pytest.raises(ApiError, match='serviceaccounts "ghost" not found'):
            await admin.create_token(api_pb2.TokenRequest(namespace="default", service_account="ghost"))
        with pytest.raises(ApiError, match="expirationSeconds"):
            await admin.create_token(api_pb2.TokenRequest(namespace="default", service_account="default",
                                                          expiration_seconds=60))


async def test_a_kubelet_gets_tokens_only_for_its_own_pods(running: RunningApiserver) -> None:
    """n1's kubelet gets a token bound to its pod, and is denied one for a pod on n2 or one not bound to a pod."""
    async with running.client() as admin:
        on_n1 = await admin.create(_pod("on-n1", "n1"))
        on_n2 = await admin.create(_pod("on-n2", "n2"))
    files = testpki.get().node("n1")
    conn = ClientConfig(server=running.address, ca_file=testpki.get().ca_file, cert_file=files["kubelet"],
                        key_file=files["kubelet-key"])
    async with Client(conn) as n1:
        got = await n1.create_token(api_pb2.TokenRequest(namespace="default", service_account="default",
                                                         pod_name="on-n1", pod_uid=on_n1.metadata.uid))
        assert got.token
        with pytest.raises(PermissionDeniedError, match='User "system:node:n1" cannot create resource '
                                                        '"serviceaccounts/token"'):
            await n1.create_token(api_pb2.TokenRequest(namespace="default", service_account="default",
                                                       pod_name="on-n2", pod_uid=on_n2.metadata.uid))
        with pytest.raises(PermissionDeniedError):
            await n1.create_token(api_pb2.TokenRequest(namespace="default", service_account="default"))


def _kubelet(running: RunningApiserver, node: str) -> Client:
    files = testpki.get().node(node)
    return Client(ClientConfig(server=running.address, ca_file=testpki.get().ca_file, cert_file=files["kubelet"],
                               key_file=files["kubelet-key"]))


async def test_token_requests_together_are_answered_each_as_its_own(running: RunningApiserver,
                                                                    tmp_path: Path) -> None:
    """In one CreateTokenMany a kubelet gets the token for its own pod and, one by one, the refusals its own
    CreateTokens would get: a pod on another node, a ServiceAccount the pod does not run as, a too-short expiry. The
    token it got authenticates as the pod's ServiceAccount."""
    async with running.client() as admin:
        on_n1 = await admin.create(_pod("on-n1", "n1"))
        on_n2 = await admin.create(_pod("on-n2", "n2"))
    request = api_pb2.TokenRequest
    async with _kubelet(running, "n1") as n1:
        answers = await n1.create_token_many([
            request(namespace="default", service_account="default", pod_name="on-n1", pod_uid=on_n1.metadata.uid),
            request(namespace="default", service_account="default", pod_name="on-n2", pod_uid=on_n2.metadata.uid),
            request(namespace="default", service_account="ghost", pod_name="on-n1", pod_uid=on_n1.metadata.uid),
            request(namespace="default", service_account="default", pod_name="on-n1", pod_uid=on_n1.metadata.uid,
                    expiration_seconds=60),
        ])
        with pytest.raises(TooLargeError, match=f"requests: {MAX_TOKEN_MANY_REQUESTS + 1} token requests in one "
                                                f"CreateTokenMany; at most {MAX_TOKEN_MANY_REQUESTS} are accepted"):
            await n1.create_token_many([request(namespace="default", service_account="default")]
                                       * (MAX_TOKEN_MANY_REQUESTS + 1))
    got, other_node, ghost, short = answers
    assert isinstance(got, api_pb2.TokenResponse) and got.expiration_timestamp.seconds > 0
    assert isinstance(other_node, PermissionDeniedError) and other_node.message.startswith(
        'serviceaccounts "default" is forbidden: User "system:node:n1" cannot create resource '
        '"serviceaccounts/token"')
    assert isinstance(ghost, PermissionDeniedError)  # not the ServiceAccount its pod runs as
    assert isinstance(short, InvalidError) and "expirationSeconds" in short.message
    async with _token_client(running, got.token, tmp_path / "token") as pod_client:
        assert (await pod_client.who_am_i()).username == "system:serviceaccount:default:default"


async def test_a_kubelets_concurrent_token_requests_share_calls(running: RunningApiserver) -> None:
    """Tokens for ten pods asked for at once: the first goes alone, the rest together in one CreateTokenMany, and
    each is counted as its own CreateToken."""
    async with running.client() as admin:
        pods = [await admin.create(_pod(f"p{i}", "n1")) for i in range(10)]
    calls = REQUESTS.labels("create_token_many", "", "OK")
    tokens = REQUESTS.labels("create_token", "", "OK")
    calls_before, tokens_before = calls._value.get(), tokens._value.get()
    async with _kubelet(running, "n1") as n1:
        got = await asyncio.gather(*(n1.create_token(api_pb2.TokenRequest(
            namespace="default", service_account="default", pod_name=p.metadata.name, pod_uid=p.metadata.uid))
            for p in pods))
    assert len({t.token for t in got}) == 10
    assert calls._value.get() - calls_before == 1
    assert tokens._value.get() - tokens_before == 10


async def test_against_a_server_without_it_tokens_come_one_call_each(etcd: str) -> None:
    """An apiserver before CreateTokenMany answers it UNIMPLEMENTED; a kubelet's concurrent requests still get
    their tokens, one CreateToken each."""
    old = await start_apiserver(etcd, batch_calls=False)
    try:
        async with old.client() as admin:
            pods = [await admin.create(_pod(f"old{i}", "n1")) for i in range(4)]
        async with _kubelet(old, "n1") as n1:
            got = await asyncio.gather(*(n1.create_token(api_pb2.TokenRequest(
                namespace="default", service_account="default", pod_name=p.metadata.name,
                pod_uid=p.metadata.uid)) for p in pods))
        assert all(t.token for t in got)
    finally:
        await old.stop()


async def test_apiserver_start_puts_back_a_missing_default_service_account(etcd: str) -> None:
    """A namespace whose `default` ServiceAccount is gone (deleted, or made before ServiceAccounts existed) has it
    again once an apiserver starts."""
    first = await start_apiserver(etcd)
    try:
        async with first.client() as admin:
            await admin.create(core_pb2.Namespace(metadata={"name": "old"}))
            old_uid = (await admin.get("serviceaccounts", "default", "old")).metadata.uid
            await admin.delete("serviceaccounts", "default", "old")
    finally:
        await first.stop()
    second = await start_apiserver(etcd)
    try:
        async with second.client() as admin:
            again = await admin.get("serviceaccounts", "default", "old")
            assert again.metadata.uid and again.metadata.uid != old_uid
    finally:
        await second.stop()
