"""Authentication and node certificates: tokens, join tokens, who may ask for which certificate, safe start-up."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from api.errors import ForbiddenError, InvalidError, UnauthorizedError
from apiserver import authn, nodecerts
from apiserver.kubelet_proxy import KubeletTLS
from apiserver.server import Config, ServingTLS, check_config, is_local
from apiserver.storage.etcd import EtcdTLS
from client import pki, tokens

NOW = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)


def test_static_tokens_name_user_uid_and_groups(tmp_path: Path) -> None:
    """Kubernetes' static token file format: token,user,uid,"group1,group2"; comments and blank lines skipped."""
    path = tmp_path / "tokens.csv"
    path.write_text('# users\n\nt0k3n-a,alice,1001,"devs,ops"\nt0k3n-b,bob\n')
    static = authn.StaticTokens.load(path)
    assert static.authenticate("t0k3n-a") == authn.UserInfo("alice", "1001", ("devs", "ops", authn.AUTHENTICATED))
    assert static.authenticate("t0k3n-b") == authn.UserInfo("bob", "", (authn.AUTHENTICATED,))
    assert static.authenticate("t0k3n-c") is None
    assert static.authenticate("") is None


def _token(expires: datetime.datetime | None, secret: str = "0123456789abcdef") -> tokens.bootstrap_pb2.BootstrapToken:
    obj = tokens.token_object(tokens.JoinToken("sha256:x", "abcdef", secret), ttl=None)
    if expires is not None:
        obj.spec.expiration.FromDatetime(expires)
    return obj


@pytest.mark.parametrize(("obj", "secret", "error"), [
    pytest.param(None, "0123456789abcdef", r"does not exist \(deleted, or never created\)", id="deleted"),
    pytest.param(_token(NOW - datetime.timedelta(seconds=1)), "0123456789abcdef", "expired at 2029-12-31 23:59:59",
                 id="expired"),
    pytest.param(_token(None), "0123456789abcdeX", "the secret is wrong", id="wrong-secret"),
    pytest.param(_token(NOW + datetime.timedelta(hours=1)), "0123456789abcdef", None, id="valid"),
    pytest.param(_token(None), "0123456789abcdef", None, id="never-expires"),
])
def test_join_tokens(obj: tokens.bootstrap_pb2.BootstrapToken | None, secret: str, error: str | None) -> None:
    """A join token works until it expires or is deleted; its holder is system:bootstrap:<id> in the bootstrappers."""
    if error is not None:
        with pytest.raises(UnauthorizedError, match=error):
            authn.check_join_token(obj, "abcdef", secret, NOW)
        return
    user = authn.check_join_token(obj, "abcdef", secret, NOW)
    assert user.name == "system:bootstrap:abcdef" and tokens.BOOTSTRAPPERS in user.groups
    assert authn.permitted(user, "/kubelite.v1.Api/RequestNodeCertificates")
    assert not authn.permitted(user, "/kubelite.v1.Api/List")


ADMIN = authn.UserInfo("kubelite-admin", groups=("system:masters",))
JOINER = authn.UserInfo("system:bootstrap:abcdef", groups=(tokens.BOOTSTRAPPERS,))
N1 = authn.UserInfo("system:node:n1", groups=("system:nodes",))
SCHEDULER = authn.UserInfo("system:kube-scheduler")


@pytest.mark.parametrize(("user", "node", "allowed"), [
    pytest.param(ADMIN, "n2", True, id="admin-any-node"),
    pytest.param(JOINER, "n2", True, id="join-token-any-node"),
    pytest.param(N1, "n1", True, id="node-itself"),
    pytest.param(N1, "n2", False, id="node-another-node"),
    pytest.param(authn.UserInfo("system:node:n1"), "n1", False, id="node-name-without-the-group"),
    pytest.param(SCHEDULER, "n1", False, id="another-component"),
])
def test_who_may_ask_for_a_nodes_certificates(user: authn.UserInfo, node: str, allowed: bool) -> None:
    """Nodes renew their own certificates only; a join token or an admin may ask for any node's."""
    if allowed:
        nodecerts.check_caller(user, node)
    else:
        with pytest.raises(ForbiddenError, match=f'may not ask for the certificates of node "{node}"'):
            nodecerts.check_caller(user, node)


def _csr(user: str, groups: tuple[str, ...] = (), dns: tuple[str, ...] = (), ips: tuple[str, ...] = ()
         ) -> pki.SigningRequest:
    return pki.read_csr(pki.make_csr(pki.new_key(), pki.Request(pki.Identity(user, groups), dns=dns, ips=ips)))


NODE_ID = ("system:node:n1", ("system:nodes",))


@pytest.mark.parametrize(("fields", "error"), [
    pytest.param({"clientCsr": _csr(*NODE_ID), "servingCsr": _csr(*NODE_ID, dns=("n1",), ips=("10.0.0.1",)),
                  "proxyCsr": _csr("system:kube-proxy")}, None, id="all-three"),
    pytest.param({"clientCsr": _csr("system:node:n2", ("system:nodes",))}, "clientCsr.subject", id="other-node"),
    pytest.param({"clientCsr": _csr("system:node:n1", ("system:masters",))}, "clientCsr.subject", id="masters"),
    pytest.param({"clientCsr": _csr(*NODE_ID, ips=("10.0.0.1",))}, "clientCsr.subjectAltNames", id="client-sans"),
    pytest.param({"servingCsr": _csr(*NODE_ID, dns=("evil.example",), ips=("10.0.0.1",))}, "servingCsr.dnsNames",
                 id="serving-foreign-name"),
    pytest.param({"servingCsr": _csr(*NODE_ID, dns=("n1",))}, "servingCsr.ipAddresses", id="serving-no-address"),
    pytest.param({"proxyCsr": _csr("system:kube-scheduler")}, "proxyCsr.subject", id="proxy-as-scheduler"),
    pytest.param({}, "no certificate request", id="nothing-asked"),
])
def test_what_a_node_may_be_issued(fields: dict[str, pki.SigningRequest], error: str | None) -> None:
    """Each CSR must be exactly the node's identity (and, serving, its name and addresses); errors name the field."""
    if error is None:
        plan = nodecerts.plan_requests("n1", fields)
        assert plan["servingCsr"].usages == (pki.SERVER,) and plan["clientCsr"].usages == (pki.CLIENT,)
        assert plan["proxyCsr"].identity.user == "system:kube-proxy"
        return
    with pytest.raises(InvalidError, match=error):
        nodecerts.plan_requests("n1", fields)


TLS = dict(tls=ServingTLS("a", "b", "c"), etcd_tls=EtcdTLS("a", "b", "c"), kubelet_tls=KubeletTLS("a", "b", "c"))


@pytest.mark.parametrize(("config", "problem"), [
    pytest.param(Config(**TLS), None, id="tls-everywhere"),
    pytest.param(Config(), "no TLS files given", id="no-tls-no-switch"),
    pytest.param(Config(**{**TLS, "tls": None}), "no serving certificate", id="no-serving-certificate"),
    pytest.param(Config(etcd_servers="http://127.0.0.1:2379", insecure_plaintext=True), None, id="plaintext-loopback"),
    pytest.param(Config(etcd_servers="http://127.0.0.1:2379", insecure_plaintext=True, listen=["unix:///x.sock"]),
                 None, id="plaintext-unix-socket"),
    pytest.param(Config(etcd_servers="http://127.0.0.1:2379", insecure_plaintext=True, listen=["0.0.0.0:6443"]),
                 "--insecure-plaintext-on-the-network-for-anyone", id="plaintext-on-the-network"),
    pytest.param(Config(etcd_servers="http://127.0.0.1:2379", insecure_plaintext=True, listen=["10.0.0.1:6443"],
                        insecure_plaintext_network=True), None, id="plaintext-on-the-network-asked-for"),
    pytest.param(Config(**{**TLS, "etcd_tls": None}), "etcd is reached over mutual TLS", id="etcd-without-tls"),
    pytest.param(Config(**{**TLS, "kubelet_tls": None}), "kubelets are reached over mutual TLS",
                 id="kubelets-without-tls"),
    pytest.param(Config(**{**TLS}, etcd_servers="http://127.0.0.1:2379"), "every URL must be https://",
                 id="etcd-http-url-with-tls"),
    pytest.param(Config(**TLS, token_file="t.csv"), "accepted on --token-listen only", id="tokens-without-port"),
])
def test_the_apiserver_starts_safe_or_not_at_all(config: Config, problem: str | None) -> None:
    """Without TLS it starts only by the test-only switch, and on the network only by a second, loud one."""
    problems = check_config(config)
    if problem is None:
        assert problems == []
    else:
        assert any(problem in p for p in problems), problems


@pytest.mark.parametrize(("address", "local"), [
    pytest.param("127.0.0.1:6443", True, id="loopback"),
    pytest.param("[::1]:6443", True, id="ipv6-loopback"),
    pytest.param("localhost:6443", True, id="localhost"),
    pytest.param("unix:///run/x.sock", True, id="unix"),
    pytest.param("0.0.0.0:6443", False, id="any"),
    pytest.param("10.250.0.2:6443", False, id="lab-address"),
])
def test_is_local(address: str, local: bool) -> None:
    """Only loopback addresses and unix sockets count as local."""
    assert is_local(address) is local
