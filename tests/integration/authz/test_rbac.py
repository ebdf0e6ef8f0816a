"""RBAC and the node authorizer against a real apiserver over real etcd, with users from client certificates:
the Kubernetes documentation's examples applied unchanged, a kubelet's credentials kept to its own node, the
denials in the audit log, and the `kubelite auth` and `create role...` commands as a user runs them."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
import testpki
from conftest import RunningApiserver, start_apiserver

from api import convert
from api.errors import ConflictError, ForbiddenError, NotFoundError, PermissionDeniedError
from api.pb import api_pb2, apps_pb2, core_pb2
from apiserver.audit import AuditConfig, read_lines
from client import pki
from client.api import Client
from client.events import EventRecorder

DOCS = Path(__file__).with_name("docs_rbac.yaml")
KUBELITE = str(Path(sys.executable).parent / "kubelite")


def _user(name: str, *groups: str) -> str:
    """A client certificate for `name` in `groups` under the test PKI; its name there."""
    ident = f"users/{name}"
    if not (testpki.get().dir / f"{ident}.crt").exists():
        testpki.get().issue(ident, pki.Request(pki.Identity(name, groups)))
    return ident


async def _kubelite(running: RunningApiserver, identity: str, *args: str, tmp: Path) -> tuple[int, str, str]:
    """Run the real command as `identity` (a certificate name in the test PKI)."""
    config = testpki.get().config_file(tmp / f"{identity.replace('/', '-')}.yaml", running.address, identity=identity)
    env = {"HOME": str(tmp), "KUBELITE_CONFIG": str(config), "PATH": "/usr/bin:/bin"}
    proc = await asyncio.create_subprocess_exec(KUBELITE, *args, env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


def _pod(name: str, node: str = "", namespace: str = "default") -> core_pb2.Pod:
    spec = {"containers": [{"name": "c", "image": "busybox"}], **({"nodeName": node} if node else {})}
    return convert.from_dict(core_pb2.Pod, {"metadata": {"name": name, "namespace": namespace}, "spec": spec})


@pytest.fixture
async def running(etcd: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    server = await start_apiserver(etcd, audit=AuditConfig(str(tmp_path / "audit" / "audit.log")))
    try:
        yield server
    finally:
        await server.stop()


async def test_documentation_examples_grant_what_the_documentation_says(running: RunningApiserver,
                                                                        tmp_path: Path) -> None:
    """Role pod-reader bound to jane: she lists pods in default and nothing else, each denial in Kubernetes' words
    and in the audit log; group manager reads secrets everywhere through secret-reader."""
    code, out, err = await _kubelite(running, "admin", "apply", "-f", str(DOCS), tmp=tmp_path)
    assert code == 0, err
    assert "role.rbac.authorization.k8s.io/pod-reader created" in out
    async with running.client() as admin:
        await admin.create(core_pb2.Namespace(metadata={"name": "prod"}))
        await admin.create(_pod("web"))
    async with Client(testpki.get().client(running.address, _user("jane"))) as jane:
        names = [p.metadata.name for p in (await jane.list("pods", "default")).items]
        assert names == ["web"]
        assert (await jane.get("pods", "web", "default")).metadata.name == "web"
        with pytest.raises(PermissionDeniedError) as denied:
            await jane.list("pods", "prod")
        assert denied.value.message == ('pods is forbidden: User "jane" cannot list resource "pods" in API group "" '
                                        'in the namespace "prod"')
        with pytest.raises(PermissionDeniedError, match='cannot list resource "deployments" in API group "apps"'):
            await jane.list(apps_pb2.Deployment, "default")
        with pytest.raises(PermissionDeniedError) as denied:
            await jane.create(_pod("mine"))
        assert denied.value.message == ('pods "mine" is forbidden: User "jane" cannot create resource "pods" in API '
                                        'group "" in the namespace "default"')
        with pytest.raises(PermissionDeniedError) as denied:
            await jane.exec("default", "web", ["id"])
        assert denied.value.message == ('pods "web" is forbidden: User "jane" cannot create resource "pods/exec" in '
                                        'API group "" in the namespace "default"')
        with pytest.raises(PermissionDeniedError):
            await jane.list("secrets", "default")
    async with Client(testpki.get().client(running.address, _user("bob", "manager"))) as bob:
        assert (await bob.list("secrets", "prod")).items == []
        assert (await bob.list("secrets")).items == []
        with pytest.raises(PermissionDeniedError, match='cannot delete resource "secrets"'):
            await bob.delete("secrets", "db", "prod")
    lines = read_lines(str(tmp_path / "audit" / "audit.log"))
    denied_lines = [(e["user"], e["verb"], e["resource"], e["namespace"]) for e in lines
                    if e["code"] == "PERMISSION_DENIED"]
    assert ("jane", "list", "pods", "prod") in denied_lines
    assert ("jane", "create", "pods/exec", "default") in denied_lines
    assert ("bob", "delete", "secrets", "prod") in denied_lines
    assert not [e for e in lines if e["verb"] in ("get", "list") and e["code"] == "OK"]  # reads are not audited
    assert (tmp_path / "audit" / "audit.log").stat().st_mode & 0o777 == 0o600


async def test_a_kubelet_is_kept_to_its_own_node(running: RunningApiserver) -> None:
    """With n1's kubelet credentials: n2's Node, the status of a pod on n2 and a pod bound to n2 are denied; its
    own Node, pods and Lease work; it cannot delete its Node or set node-restriction labels."""
    pki_ = testpki.get()
    async with running.client() as admin:
        n2 = await admin.create(core_pb2.Node(metadata={"name": "n2"}))
        await admin.create(_pod("on-n1", "n1"))
        on_n2 = await admin.create(_pod("on-n2", "n2"))
    n1_files = pki_.node("n1")
    from client.config import ClientConfig
    conn = ClientConfig(server=running.address, ca_file=pki_.ca_file, cert_file=n1_files["kubelet"],
                        key_file=n1_files["kubelet-key"])
    async with Client(conn) as n1:
        own = await n1.create(core_pb2.Node(metadata={"name": "n1"}))
        own.status.phase = "Running"
        own = await n1.update_status(own)
        n2.metadata.labels["stolen"] = "yes"
        with pytest.raises(PermissionDeniedError, match='User "system:node:n1" cannot update resource "nodes"'):
            await n1.update(n2)
        with pytest.raises(PermissionDeniedError, match='cannot update resource "nodes/status"'):
            await n1.update_status(n2)
        on_n2.status.pod_ip = "10.244.2.9"
        with pytest.raises(PermissionDeniedError, match='pods "on-n2" is forbidden: User "system:node:n1" cannot '
                                                        'update resource "pods/status"'):
            await n1.update_status(on_n2)
        mine = await n1.get("pods", "on-n1", "default")
        mine.status.phase = "Running"
        assert (await n1.update_status(mine)).status.phase == "Running"
        with pytest.raises(PermissionDeniedError):
            await n1.get("pods", "on-n2", "default")
        assert [p.metadata.name for p in (await n1.list("pods", field_selector="spec.nodeName=n1")).items] == ["on-n1"]
        with pytest.raises(PermissionDeniedError):
            await n1.list("pods")
        with pytest.raises(PermissionDeniedError):
            await n1.delete("pods", "on-n2", "default")
        # A pod that is gone, or a name now held by another incarnation: told so, so that it lets go.
        with pytest.raises(NotFoundError):
            await n1.delete("pods", "never-was", "default", grace_period_seconds=0)
        with pytest.raises(ConflictError):
            await n1.delete("pods", "on-n2", "default", grace_period_seconds=0, uid="an-older-incarnation")
        with pytest.raises(ForbiddenError, match="can only create mirror pods"):
            await n1.create(_pod("sneaky", "n2"))
        with pytest.raises(PermissionDeniedError, match='cannot delete resource "nodes"'):
            await n1.delete("nodes", "n1")
        own = await n1.get("nodes", "n1")
        own.metadata.labels["node-restriction.kubernetes.io/trusted"] = "true"
        with pytest.raises(ForbiddenError, match=r"not allowed to modify labels: node-restriction\.kubernetes\.io/"):
            await n1.update(own)
        lease = apps_pb2.Lease(metadata={"name": "n1", "namespace": "kube-node-lease"},
                               spec={"holder_identity": "n1", "lease_duration_seconds": 40})
        await n1.create(lease)
        with pytest.raises(PermissionDeniedError):
            await n1.create(apps_pb2.Lease(metadata={"name": "n2", "namespace": "kube-node-lease"},
                                           spec={"holder_identity": "n1", "lease_duration_seconds": 40}))
        # Its pods' status stream: the update of n2's pod is refused by name, its own applied.
        stream = n1.stub.StreamPodStatus(metadata=n1._meta)
        await stream.write(api_pb2.PodStatusUpdate(namespace="default", name="on-n2", uid=on_n2.metadata.uid,
                                                   sequence=1, status={"phase": "Running", "pod_ip": "10.244.2.9"}))
        ack = await stream.read()
        assert ack.code == "Forbidden" and 'cannot update resource "pods/status"' in ack.error
        await stream.done_writing()
    async with running.client() as admin:
        assert (await admin.get("pods", "on-n2", "default")).status.pod_ip == ""


async def test_cli_auth_and_create_commands(running: RunningApiserver, tmp_path: Path) -> None:
    """`auth can-i` says yes/no with exit 0/1, `auth whoami` names the user, `create role/rolebinding` grant what
    their flags say, and only an admin may --as another user."""
    alice = _user("alice", "devs")
    run = lambda ident, *a: _kubelite(running, ident, *a, tmp=tmp_path)  # noqa: E731
    code, out, _ = await run(alice, "auth", "whoami")
    assert code == 0 and "Username    alice" in out and "[devs system:authenticated]" in out
    code, out, _ = await run(alice, "auth", "can-i", "list", "pods", "-n", "dev")
    assert (code, out.strip()) == (1, "no")
    assert (await run("admin", "create", "namespace", "dev"))[0] == 0
    code, out, err = await run("admin", "create", "role", "pod-logs", "-n", "dev", "--verb=get,list",
                               "--resource=pods,pods/log")
    assert code == 0, err
    code, out, err = await run("admin", "create", "rolebinding", "alice-logs", "-n", "dev", "--role=pod-logs",
                               "--user=alice")
    assert code == 0 and "rolebinding.rbac.authorization.k8s.io/alice-logs created" in out, err
    code, out, _ = await run(alice, "auth", "can-i", "list", "pods", "-n", "dev")
    assert (code, out.strip()) == (0, "yes")
    code, out, _ = await run(alice, "auth", "can-i", "get", "pods/log", "-n", "dev")
    assert (code, out.strip()) == (0, "yes")
    code, out, _ = await run(alice, "auth", "can-i", "create", "pods/exec", "-n", "dev")
    assert (code, out.strip()) == (1, "no")
    code, out, _ = await run("admin", "auth", "can-i", "list", "pods", "-n", "dev", "--as", "alice")
    assert (code, out.strip()) == (0, "yes")
    code, out, _ = await run("admin", "auth", "can-i", "list", "pods", "-n", "prod", "--as", "alice")
    assert (code, out.strip()) == (1, "no")
    code, _, err = await run(alice, "get", "pods", "-n", "dev", "--as", "kubelite-admin",
                             "--as-group", "system:masters")
    assert code == 1 and 'User "alice" cannot impersonate resource "users"' in err
    code, out, err = await run("admin", "create", "clusterrolebinding", "devs-view", "--clusterrole=view",
                               "--group=devs")
    assert code == 0, err
    code, out, _ = await run(alice, "auth", "can-i", "list", "deployments", "-n", "prod")
    assert (code, out.strip()) == (0, "yes")
    code, _, err = await run("admin", "create", "rolebinding", "bad", "--role=x", "--serviceaccount=nocolon")
    assert code == 2 and "--serviceaccount nocolon: expected NAMESPACE:NAME" in err
    audit_lines = read_lines(str(tmp_path / "audit" / "audit.log"))
    assert {"user": "alice", "verb": "impersonate", "resource": "users", "name": "kubelite-admin",
            "code": "PERMISSION_DENIED"}.items() <= next(e for e in audit_lines if e["verb"] == "impersonate").items()


async def test_no_escalation_through_rbac(running: RunningApiserver) -> None:
    """A namespace admin grants within the namespace what it holds, and no more: a Role with rules it lacks or a
    binding to cluster-admin is refused; the controllers' identity cannot bind anything."""
    from api.pb import rbac_pb2

    group = "rbac.authorization.k8s.io"

    def role(name: str, resources: list[str], api_groups: list[str] | None = None) -> rbac_pb2.Role:
        return rbac_pb2.Role(metadata={"name": name, "namespace": "dev"}, rules=[rbac_pb2.PolicyRule(
            verbs=["get", "list"], api_groups=api_groups or [""], resources=resources)])

    def binding(name: str, kind: str, ref: str, user: str = "carol") -> rbac_pb2.RoleBinding:
        return rbac_pb2.RoleBinding(metadata={"name": name, "namespace": "dev"},
                                    subjects=[rbac_pb2.Subject(kind="User", name=user, api_group=group)],
                                    role_ref=rbac_pb2.RoleRef(api_group=group, kind=kind, name=ref))

    async with running.client() as admin:
        await admin.create(core_pb2.Namespace(metadata={"name": "dev"}))
        await admin.create(binding("dana-admin", "ClusterRole", "admin", user="dana"))
    async with Client(testpki.get().client(running.address, _user("dana"))) as dana:
        await dana.create(role("pod-reader", ["pods"]))
        await dana.create(binding("carol-reads", "Role", "pod-reader"))
        await dana.create(binding("carol-views", "ClusterRole", "view"))
        with pytest.raises(PermissionDeniedError, match='is attempting to grant RBAC permissions not currently held: '
                                                        r'\{APIGroups:\[""\], Resources:\["nodes"\]'):
            await dana.create(role("node-reader", ["nodes"]))
        with pytest.raises(PermissionDeniedError, match=r'rolebindings\.rbac\.authorization\.k8s\.io "carol-root" '
                                                        r'is forbidden: user "dana" is attempting to grant'):
            await dana.create(binding("carol-root", "ClusterRole", "cluster-admin"))
    async with Client(testpki.get().client(running.address, "controller-manager")) as cm:
        with pytest.raises(PermissionDeniedError, match='cannot create resource "clusterrolebindings"'):
            await cm.create(rbac_pb2.ClusterRoleBinding(
                metadata={"name": "cm-root"}, role_ref=rbac_pb2.RoleRef(api_group=group, kind="ClusterRole",
                                                                        name="cluster-admin"),
                subjects=[rbac_pb2.Subject(kind="User", name="system:kube-controller-manager", api_group=group)]))


async def test_a_kubelets_repeated_events_are_counted_without_reading_events(running: RunningApiserver,
                                                                             tmp_path: Path) -> None:
    """A kubelet may create and update Events but not read them: its recorder still folds a repeated event into
    one Event whose count rises, and nothing it did is in the audit log as denied."""
    testpki.get().node("n1")
    async with Client(testpki.get().client(running.address)) as admin, \
            Client(testpki.get().client(running.address, "nodes/n1/kubelet")) as kubelet:
        node = await admin.create(core_pb2.Node(metadata={"name": "n1"}))
        recorder = EventRecorder(kubelet, "kubelet", host="n1")
        for _ in range(3):
            await recorder._write([_event(recorder, node)])
        events = [e for e in await admin.list_all("events", "default") if e.involved_object.name == "n1"]
        assert [(e.reason, e.count) for e in events] == [("Rebooted", 3)]
        # Two repeats in one batch, updated together; a third whose Event was deleted meanwhile, written anew.
        await recorder._write([_event(recorder, node, "Restarted"), _event(recorder, node, "Drained")])
        gone = [e for e in await admin.list_all("events", "default") if e.reason == "Drained"]
        await admin.delete("events", gone[0].metadata.name, "default")
        await recorder._write([_event(recorder, node, reason) for reason in ("Rebooted", "Restarted", "Drained")])
        events = [e for e in await admin.list_all("events", "default") if e.involved_object.name == "n1"]
        assert sorted((e.reason, e.count) for e in events) == [("Drained", 1), ("Rebooted", 4), ("Restarted", 2)]
    denied = [e for e in read_lines(str(tmp_path / "audit" / "audit.log")) if e["code"] == "PERMISSION_DENIED"]
    assert denied == []


def _event(recorder: EventRecorder, node: core_pb2.Node, reason: str = "Rebooted") -> core_pb2.Event:
    recorder.event(node, "Warning", reason, f"node n1: {reason}")
    return recorder._queue.get_nowait()
