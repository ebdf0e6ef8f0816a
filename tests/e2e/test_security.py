"""Security by default on the lab, checked as a new user would: what a pod reaches, what another cluster's
certificates open, what `ps` shows, the modes of every key file, joining, and the certificates commands."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import testpki

from client import tokens
from client.config import credentials_dir
from deploy.lab.cluster import join_token_path, node_dir, pki_dir

from .lab import Lab, wait_until

PROBE = str(Path(__file__).with_name("probe.py"))
IMAGE = "localhost:5000/kubelite/busybox:1.35"


def probe(netns: str, target: str, kind: str, **creds: str) -> dict[str, Any]:
    """A gRPC call from inside network namespace `netns` (a path or a name under /run/netns)."""
    path = netns if netns.startswith("/") else f"/run/netns/{netns}"
    flags = [f"--{k}={v}" for k, v in creds.items()]
    result = subprocess.run(["nsenter", f"--net={path}", "--", sys.executable, PROBE, target, kind, *flags],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def pod_netns(lab: Lab) -> str:
    """The network namespace of a pod on n1, as /proc/<pid>/ns/net of its container."""
    lab.kubelite("apply", "-f", "-", stdin=json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "intruder"},
        "spec": {"nodeName": "n1", "terminationGracePeriodSeconds": 1,
                 "containers": [{"name": "c", "image": IMAGE, "command": ["sleep", "3600"]}]}}))
    lab.kubelite("wait", "--for=condition=Ready", "pod/intruder", "--timeout", "60", timeout=90)
    container = json.loads(lab.kubelite("get", "pod", "intruder", "-o", "json").stdout)[
        "status"]["containerStatuses"][0]["containerID"].removeprefix("containerd://")
    tasks = subprocess.run(["ctr", "-a", lab.containerd_socket("n1"), "-n", "k8s.io", "tasks", "ls"],
                           capture_output=True, text=True, check=True, timeout=30).stdout
    pid = next(line.split()[1] for line in tasks.splitlines() if line.startswith(container))
    yield f"/proc/{pid}/ns/net"
    lab.kubelite("delete", "pod", "intruder", "--grace-period", "1")


def test_a_pod_reaches_no_kubelet_and_no_apiserver_without_a_certificate(lab: Lab, pod_netns: str) -> None:
    """From a pod, TCP reaches a node's kubelet port, the apiserver and the image registry, but each fails the TLS
    handshake (no client certificate), and on the token port a call without a token is refused."""
    cp = str(lab.plan.control_plane.address)
    ca = str(pki_dir(lab.plan) / "ca.crt")  # even knowing the CA does not help
    for node in lab.plan.nodes:
        got = probe(pod_netns, f"{node.address}:10250", "kubelet", ca=ca)
        assert got["tcp"] and got["code"] == "UNAVAILABLE", (node.role, got)
        plain = probe(pod_netns, f"{node.address}:10250", "kubelet")
        assert plain["tcp"] and plain["code"] == "UNAVAILABLE", plain
    api = probe(pod_netns, f"{cp}:6443", "apiserver", ca=ca)
    assert api["tcp"] and api["code"] == "UNAVAILABLE", api
    tokenless = probe(pod_netns, f"{cp}:6444", "apiserver", ca=ca)
    assert tokenless["code"] == "UNAUTHENTICATED"
    assert "no client certificate and no bearer token" in tokenless["details"]
    # The image registry too: neither plain HTTP nor TLS without a certificate gets an answer.
    for creds in ({}, {"ca": ca}):
        got = probe(pod_netns, f"{cp}:5000", "registry", **creds)
        assert got["tcp"] and got["code"] == "UNAVAILABLE", got


def test_another_clusters_certificates_open_nothing(lab: Lab) -> None:
    """A certificate from a second cluster's CA is refused by the apiserver, etcd, every kubelet and the image
    registry, while the cluster's own identities get in (the controls)."""
    ours, theirs = pki_dir(lab.plan), testpki.foreign()
    cp_ns, cp = lab.plan.control_plane.netns, str(lab.plan.control_plane.address)

    def own(name: str, ca: str = "ca") -> dict[str, str]:
        return {"ca": str(ours / f"{ca}.crt"), "cert": str(ours / f"{name}.crt"), "key": str(ours / f"{name}.key")}

    def foreign(name: str, ca: str = "ca") -> dict[str, str]:
        return {"ca": str(ours / f"{ca}.crt"), "cert": theirs.path(name), "key": theirs.path(name, "key")}

    assert probe(cp_ns, f"{cp}:6443", "apiserver", **foreign("admin"))["code"] == "UNAVAILABLE"
    assert probe(cp_ns, f"{cp}:6443", "apiserver", **own("admin"))["code"] == "OK"
    etcd = "127.0.0.1:2379"
    assert probe(cp_ns, etcd, "etcd", **foreign("apiserver-etcd-client", "etcd/ca"))["code"] == "UNAVAILABLE"
    assert probe(cp_ns, etcd, "etcd", **own("admin", "etcd/ca"))["code"] == "UNAVAILABLE"  # the cluster CA's: no
    assert probe(cp_ns, etcd, "etcd", **own("apiserver-etcd-client", "etcd/ca"))["code"] == "OK"
    for node in lab.plan.nodes:
        target = f"{node.address}:10250"
        assert probe(cp_ns, target, "kubelet", **foreign("apiserver-kubelet-client"))["code"] == "UNAVAILABLE"
        other = probe(cp_ns, target, "kubelet", **own("admin"))
        assert other["code"] == "PERMISSION_DENIED" and "kube-apiserver-kubelet-client only" in other["details"]
        assert probe(cp_ns, target, "kubelet", **own("apiserver-kubelet-client"))["code"] == "NOT_FOUND"  # let in
    registry = f"{cp}:5000"
    assert probe(cp_ns, registry, "registry", **foreign("admin"))["code"] == "UNAVAILABLE"
    node_cert = node_dir(lab.plan, "n1") / "pki"
    assert probe(cp_ns, registry, "registry", ca=str(ours / "ca.crt"), cert=str(node_cert / "kubelet.crt"),
                 key=str(node_cert / "kubelet.key"))["code"] == "OK"  # as a node's containerd pulls
    # And the user is told why, in one line.
    result = lab.kubelite("get", "pods", "--client-certificate", theirs.path("admin"), "--client-key",
                          theirs.path("admin", "key"), check=False)
    assert result.returncode == 1
    assert "certificate signed by unknown authority: this client's certificate" in result.stderr


def test_no_secret_on_a_command_line_and_every_key_is_0600(lab: Lab) -> None:
    """`ps -eo args` shows no token or key material; every key and token file of the cluster is 0600 in a 0700
    directory; the join token `up` used is gone, from disk and from the cluster."""
    args = subprocess.run(["ps", "-ww", "-eo", "args"], capture_output=True, text=True, check=True).stdout.splitlines()
    ours = [a for a in args if f"/{lab.name}/" in a or f"kl-{lab.name}-" in a]
    assert len(ours) >= 10, ours
    for line in ours:
        assert "K10" not in line and "BEGIN" not in line and "--token " not in line, line
        assert tokens.split_bearer(line) is None
    keys = [*pki_dir(lab.plan).rglob("*.key"), *node_dir(lab.plan, "n1").parent.rglob("pki/*.key"),
            *credentials_dir(lab.name).glob("*.key")]
    assert len(keys) >= 11 + 3 * len(lab.plan.nodes) + 1
    for key in keys:
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
        assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700, key.parent
    from client.config import config_path

    assert stat.S_IMODE(config_path().stat().st_mode) == 0o600
    assert not join_token_path(lab.plan).exists()
    assert "No join tokens." in lab.kubelite("token", "list").stdout
    sock = lab.plan.paths.run_dir / "api.sock"
    assert stat.S_IMODE(os.stat(sock).st_mode) == 0o600


def test_a_node_joins_and_a_wrong_ca_hash_is_refused(lab: Lab, tmp_path: Path) -> None:
    """From a node's namespace, `kubelite bootstrap join` with a fresh token gets a node's certificates; with a
    token pinning another CA it refuses and says why; a deleted token is refused by the control plane."""
    token = tokens.parse(lab.kubelite("token", "create", "--ttl", "5m", "--description", "e2e").stdout.strip())
    cp = f"{lab.plan.control_plane.address}:6444"
    node = lab.plan.nodes[0]

    def join(value: str, name: str) -> subprocess.CompletedProcess[str]:
        path = tmp_path / f"{name}.token"
        path.write_text(value + "\n")
        path.chmod(0o600)
        return subprocess.run(["nsenter", f"--net=/run/netns/{node.netns}", "--", sys.executable, "-m", "cli.main",
                               "bootstrap", "join", "--join-server", cp, "--token-file", str(path), "--name", name,
                               "--address", str(node.address), "--pki-dir", str(tmp_path / name)],
                              capture_output=True, text=True, timeout=60, check=False)

    good = join(str(token), "joiner")
    assert good.returncode == 0, good.stderr
    assert (tmp_path / "joiner" / "kubelet.crt").exists()
    wrong = join(str(tokens.JoinToken("sha256:" + "0" * 64, token.id, token.secret)), "wrong")
    assert wrong.returncode == 1 and "refusing to join" in wrong.stderr and "0" * 64 in wrong.stderr
    lab.kubelite("token", "delete", token.id)
    gone = join(str(token), "late")
    assert gone.returncode == 1 and f"join token {token.id} does not exist" in gone.stderr


def test_status_lists_certificates_and_renew_keeps_the_cluster_working(lab: Lab) -> None:
    """`kubelite status` and `certs check-expiration` list every certificate; `certs renew` renews the named ones
    and the cluster goes on (new connections get the new apiserver certificate)."""
    status = lab.kubelite("status").stdout
    for name in ("apiserver", "etcd/server", "admin", "n1/kubelet", "n1/kubelet-serving", "n1/kube-proxy"):
        assert f"\n{name} " in status, name
    listed = lab.kubelite("certs", "check-expiration").stdout
    before = next(line for line in listed.splitlines() if line.startswith("apiserver "))
    renewed = lab.kubelite("certs", "renew", "apiserver", "admin", "n2/kubelet").stdout
    assert "apiserver: renewed" in renewed and "n2/kubelet: renewed" in renewed
    after = next(line for line in lab.kubelite("certs", "check-expiration").stdout.splitlines()
                 if line.startswith("apiserver "))
    assert after != before
    lab.kubelite("chaos", "restart", "kubelet-n2")  # reconnects with its renewed certificate
    wait_until(lambda: "n2" in lab.kubelite("get", "nodes").stdout, timeout=30, what="nodes listed")
    lab.kubelite("wait", "--for=condition=Ready", "node/n2", "--timeout", "30", timeout=60)


def test_denials_and_execs_are_in_the_audit_log(lab: Lab) -> None:
    """A user denied (here impersonated by the admin) and an exec show in `kubelite logs --component apiserver
    --audit` with the user's name; an impersonated user gets Kubernetes' denial text."""
    denied = lab.kubelite("get", "pods", "-n", "kube-system", "--as", "eve", check=False)
    assert denied.returncode == 1
    assert 'User "eve" cannot list resource "pods" in API group "" in the namespace "kube-system"' in denied.stderr
    assert lab.kubelite("auth", "can-i", "list", "pods", "--as", "eve", check=False).stdout.strip() == "no"
    assert "kubelite-admin" in lab.kubelite("auth", "whoami").stdout
    lab.kubelite("exec", "no-such-pod", "--", "true", check=False)
    out = lab.kubelite("logs", "--component", "apiserver", "--audit").stdout
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert any(e["user"] == "eve" and e["verb"] == "list" and e["code"] == "PERMISSION_DENIED" for e in lines)
    assert any(e["user"] == "kubelite-admin" and e["resource"] == "pods/exec" and e["name"] == "no-such-pod"
               for e in lines)
    # Every component ran a while with its own identity: none of them was refused anything.
    refused = [" ".join(str(e[k]) for k in ("time", "user", "verb", "resource", "namespace", "name"))
               for e in lines if e["code"] == "PERMISSION_DENIED" and e["user"] != "eve"]
    assert not refused, "\n".join(refused)


# ---------------------------------------------------------------- Pod Security and securityContext


def _pod(name: str, *, namespace: str = "default", security: dict[str, Any] | None = None,
         container_security: dict[str, Any] | None = None, **spec: Any) -> str:
    container: dict[str, Any] = {"name": "c", "image": IMAGE, "command": ["sleep", "3600"]}
    if container_security is not None:
        container["securityContext"] = container_security
    body: dict[str, Any] = {"terminationGracePeriodSeconds": 1, "containers": [container], **spec}
    if security is not None:
        body["securityContext"] = security
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
                       "spec": body})


def _status_field(lab: Lab, pod: str, name: str, namespace: str = "default") -> str:
    text = lab.kubelite("exec", "-n", namespace, pod, "--", "cat", "/proc/self/status").stdout
    return next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith(f"{name}:"))


def test_pod_security_refuses_host_path_and_privileged_unless_the_namespace_allows(lab: Lab) -> None:
    """In the lab, `hostPath: /` and `privileged: true` are refused in an unlabelled namespace with the check named,
    and run in a namespace labelled privileged (the privileged container has every capability of the node)."""
    rooted = {"volumes": [{"name": "root", "hostPath": {"path": "/"}}]}
    refused = lab.kubelite("apply", "-f", "-", stdin=_pod("rooted", **rooted), check=False)
    assert refused.returncode == 1
    assert 'pods "rooted" is forbidden: violates PodSecurity "baseline:latest": hostPath volumes (volume "root")' \
        in refused.stderr, refused.stderr
    priv = lab.kubelite("apply", "-f", "-", stdin=_pod("priv", container_security={"privileged": True}), check=False)
    assert priv.returncode == 1
    assert 'violates PodSecurity "baseline:latest": privileged (container "c" must not set ' \
           'securityContext.privileged=true)' in priv.stderr, priv.stderr

    lab.kubelite("apply", "-f", "-", stdin=json.dumps({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": "ops", "labels": {"pod-security.kubernetes.io/enforce": "privileged"}}}))
    try:
        lab.kubelite("apply", "-f", "-", stdin=_pod("rooted", namespace="ops", nodeName="n1", **rooted))
        lab.kubelite("apply", "-f", "-", stdin=_pod("priv", namespace="ops", nodeName="n1",
                                                    container_security={"privileged": True}))
        for name in ("rooted", "priv"):
            lab.kubelite("wait", "-n", "ops", "--for=condition=Ready", f"pod/{name}", "--timeout", "60", timeout=90)
        bounding = _status_field(lab, "priv", "CapBnd", "ops")
        assert _status_field(lab, "priv", "CapEff", "ops") == bounding
    finally:
        lab.kubelite("delete", "namespace", "ops", check=False)


def test_security_context_runs_as_asked(lab: Lab) -> None:
    """runAsUser 1000 runs as uid 1000 (`id -u` through exec); drop: [ALL] leaves CapEff 0; runAsNonRoot on the
    root busybox image waits with CreateContainerConfigError and Kubernetes' message."""
    lab.kubelite("apply", "-f", "-", stdin=_pod("uid1000", security={"runAsUser": 1000, "runAsGroup": 1000},
                                                nodeName="n2"))
    lab.kubelite("apply", "-f", "-", stdin=_pod("nocaps", nodeName="n2",
                                                container_security={"capabilities": {"drop": ["ALL"]}}))
    lab.kubelite("apply", "-f", "-", stdin=_pod("nonroot", nodeName="n2", security={"runAsNonRoot": True}))
    try:
        for name in ("uid1000", "nocaps"):
            lab.kubelite("wait", "--for=condition=Ready", f"pod/{name}", "--timeout", "60", timeout=90)
        assert lab.kubelite("exec", "uid1000", "--", "id", "-u").stdout == "1000\n"
        assert _status_field(lab, "nocaps", "CapEff") == "0000000000000000"

        def waiting() -> dict[str, Any] | None:
            status = lab.get_json("pod", "nonroot")["status"].get("containerStatuses") or [{}]
            state = status[0].get("state", {}).get("waiting", {})
            return state if state.get("reason") == "CreateContainerConfigError" else None

        state = wait_until(waiting, timeout=60, what="nonroot waiting with CreateContainerConfigError")
        uid = lab.get_json("pod", "nonroot")["metadata"]["uid"]
        assert state["message"] == (f'container has runAsNonRoot and image will run as root (pod: '
                                    f'"nonroot_default({uid})", container: c)')
    finally:
        lab.kubelite("delete", "pod", "uid1000", "nocaps", "nonroot", "--grace-period", "1", check=False)


def test_a_service_with_external_ips_is_refused(lab: Lab) -> None:
    """The lab's apiserver refuses `externalIPs: [8.8.8.8]`, naming the field."""
    refused = lab.kubelite("apply", "-f", "-", check=False, stdin=json.dumps({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "capture"},
        "spec": {"selector": {"app": "x"}, "ports": [{"port": 53, "protocol": "UDP"}], "externalIPs": ["8.8.8.8"]}}))
    assert refused.returncode == 1
    assert "spec.externalIPs[0]: Forbidden: externalIPs are not allowed" in refused.stderr, refused.stderr


def test_a_pod_has_its_service_account_token(lab: Lab) -> None:
    """A pod finds its namespace and a token at the usual path (through `kubelite exec`); with
    automountServiceAccountToken: false, nothing is there."""
    lab.kubelite("apply", "-f", "-", stdin=_pod("sa-on", nodeName="n1"))
    lab.kubelite("apply", "-f", "-", stdin=_pod("sa-off", nodeName="n1", automountServiceAccountToken=False))
    try:
        for name in ("sa-on", "sa-off"):
            lab.kubelite("wait", "--for=condition=Ready", f"pod/{name}", "--timeout", "60", timeout=90)
        path = "/var/run/secrets/kubernetes.io/serviceaccount"
        assert lab.kubelite("exec", "sa-on", "--", "cat", f"{path}/namespace").stdout == "default"
        assert lab.kubelite("exec", "sa-on", "--", "cat", f"{path}/token").stdout.startswith("eyJ")
        assert lab.kubelite("exec", "sa-off", "--", "ls", path, check=False).returncode != 0
    finally:
        lab.kubelite("delete", "pod", "sa-on", "sa-off", "--grace-period", "1", check=False)
