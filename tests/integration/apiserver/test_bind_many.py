"""BindMany over real etcd: each binding applied, refused, authorized and audited as its own Bind; the batch bound;
and a server without it (the test-only switch) answers UNIMPLEMENTED."""

from __future__ import annotations

from pathlib import Path

import pytest
import testpki
from conftest import RunningApiserver, start_apiserver

from api import convert
from api.errors import (
    ConflictError,
    InvalidError,
    NotFoundError,
    PermissionDeniedError,
    TooLargeError,
    UnimplementedError,
)
from api.limits import MAX_BIND_MANY_BINDINGS
from api.pb import api_pb2, core_pb2, rbac_pb2
from apiserver.audit import read_lines
from client import pki
from client.api import Client


def _pod(name: str, namespace: str = "default") -> core_pb2.Pod:
    return convert.from_dict(core_pb2.Pod, {"metadata": {"name": name, "namespace": namespace},
                                            "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]}})


def _bind(name: str, node: str = "n1", namespace: str = "default", uid: str = "") -> api_pb2.BindRequest:
    return api_pb2.BindRequest(namespace=namespace, name=name, node_name=node, uid=uid)



async def test_each_binding_gets_the_answer_a_bind_would(client: Client) -> None:
    """In one call: a pod is bound, a missing pod, a recreated one (stale uid), an already bound one and a binding
    without a node are answered one by one as Bind answers them, and only the first pod moves."""
    for name in ("a", "stale", "taken"):
        await client.create(_pod(name))
    await client.bind("default", "taken", "n0")
    answers = await client.bind_many([_bind("a"), _bind("ghost"), _bind("stale", uid="old-uid"), _bind("taken"),
                                      _bind("a", node="")])
    assert answers[0] is None
    assert isinstance(answers[1], NotFoundError) and answers[1].message == 'pods "ghost" not found'
    assert isinstance(answers[2], ConflictError) and "binding for old-uid" in answers[2].message
    assert isinstance(answers[3], ConflictError) and answers[3].message == 'pod taken is already assigned to node "n0"'
    assert isinstance(answers[4], InvalidError) and "target.name" in answers[4].message
    nodes = {p.metadata.name: p.spec.node_name for p in await client.list_all("pods", "default")}
    assert nodes == {"a": "n1", "stale": "", "taken": "n0"}
    a = await client.get("pods", "a", "default")
    assert any(c.type == "PodScheduled" and c.status == "True" for c in a.status.conditions)


async def test_per_binding_authorization_and_audit(audited: RunningApiserver, tmp_path: Path) -> None:
    """A user who may bind pods in one namespace only is refused the other namespace's binding, its allowed
    ones apply, and every binding has its own audit line."""
    async with audited.client() as admin:
        for ns in ("team-a", "team-b"):
            await admin.create(core_pb2.Namespace(metadata={"name": ns}))
            for name in ("p1", "p2"):
                await admin.create(_pod(name, ns))
        await admin.create(convert.from_dict(rbac_pb2.Role, {
            "metadata": {"name": "binder", "namespace": "team-a"},
            "rules": [{"apiGroups": [""], "resources": ["pods/binding"], "verbs": ["create"]}]}))
        await admin.create(convert.from_dict(rbac_pb2.RoleBinding, {
            "metadata": {"name": "jane-binds", "namespace": "team-a"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "binder"},
            "subjects": [{"kind": "User", "name": "jane", "apiGroup": "rbac.authorization.k8s.io"}]}))
    if not (testpki.get().dir / "users/jane.crt").exists():
        testpki.get().issue("users/jane", pki.Request(pki.Identity("jane", ())))
    async with Client(testpki.get().client(audited.address, "users/jane")) as jane:
        answers = await jane.bind_many([_bind("p1", namespace="team-a"), _bind("p1", namespace="team-b"),
                                        _bind("p2", namespace="team-a")])
    assert answers[0] is None and answers[2] is None
    assert isinstance(answers[1], PermissionDeniedError)
    assert answers[1].message.startswith('pods "p1" is forbidden: User "jane" cannot create resource "pods/binding" '
                                         'in API group "" in the namespace "team-b"')
    async with audited.client() as admin:
        assert {p.spec.node_name for p in await admin.list_all("pods", "team-b")} == {""}
    lines = [(e["namespace"], e["name"], e["code"]) for e in read_lines(str(tmp_path / "audit.log"))
             if e["user"] == "jane" and e["resource"] == "pods/binding"]
    assert sorted(lines) == [("team-a", "p1", "OK"), ("team-a", "p2", "OK"), ("team-b", "p1", "PERMISSION_DENIED")]


async def test_too_many_bindings_are_refused_whole(client: Client) -> None:
    """A call over the count limit is refused with RESOURCE_EXHAUSTED naming the limit, and binds nothing."""
    await client.create(_pod("p"))
    with pytest.raises(TooLargeError, match=f"bindings: {MAX_BIND_MANY_BINDINGS + 1} bindings in one BindMany; "
                                            f"at most {MAX_BIND_MANY_BINDINGS} are accepted"):
        await client.bind_many([_bind("p")] * (MAX_BIND_MANY_BINDINGS + 1))
    assert (await client.get("pods", "p", "default")).spec.node_name == ""


async def test_a_server_without_it_answers_unimplemented(etcd: str) -> None:
    """With the test-only switch off the server answers BindMany UNIMPLEMENTED, as servers before it did."""
    server = await start_apiserver(etcd, batch_calls=False)
    try:
        async with server.client() as c:
            await c.create(_pod("old"))
            with pytest.raises(UnimplementedError):
                await c.bind_many([_bind("old")])
            assert (await c.get("pods", "old", "default")).spec.node_name == ""
    finally:
        await server.stop()
