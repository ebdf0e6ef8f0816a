"""CreateMany over real etcd: each object created, refused, authorized, audited and watched as its own Create;
the batch bounds; and a server without it (the test-only switch) answers UNIMPLEMENTED."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import testpki
from conftest import RunningApiserver, start_apiserver

from api import convert, kinds
from api.errors import (
    AlreadyExistsError,
    ApiError,
    InvalidError,
    NotFoundError,
    PermissionDeniedError,
    TooLargeError,
    UnimplementedError,
)
from api.limits import MAX_CREATE_MANY_OBJECTS
from api.pb import api_pb2, core_pb2, rbac_pb2
from apiserver.audit import read_lines
from client import pki
from client.api import Client


def _pod(name: str, namespace: str = "default", port: int = 80) -> api_pb2.Object:
    return kinds.wrap(convert.from_dict(core_pb2.Pod, {
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"containers": [{"name": "c", "image": "nginx:1.25", "ports": [{"containerPort": port}]}]}}))



async def test_one_invalid_object_fails_alone(client: Client) -> None:
    """A batch with one invalid pod creates the others; the bad one's answer names its field, in its place."""
    answers = await client.create_many([_pod("a"), _pod("b", port=70000), _pod("c")])
    assert [type(a) for a in answers] == [api_pb2.Object, InvalidError, api_pb2.Object]
    assert answers[1].message == ('Pod "b" is invalid: spec.containers[0].ports[0].containerPort: Invalid value: '
                                  "70000: must be between 1 and 65535, inclusive")
    created = kinds.unwrap(answers[0])
    assert created.metadata.uid and created.metadata.resource_version  # type: ignore[attr-defined]
    assert created.spec.containers[0].image_pull_policy == "IfNotPresent"  # type: ignore[attr-defined]  # defaulted
    assert {p.metadata.name for p in await client.list_all("pods", "default")} == {"a", "c"}


async def test_each_object_gets_the_answer_a_create_would(client: Client) -> None:
    """An existing name, a missing namespace and a kindless object are answered one by one as Create answers them,
    and the others are created."""
    await client.create_object(_pod("taken"))
    answers = await client.create_many([_pod("taken"), _pod("x", "nowhere"), api_pb2.Object(), _pod("fine")])
    assert isinstance(answers[0], AlreadyExistsError) and answers[0].message == 'pods "taken" already exists'
    assert isinstance(answers[1], NotFoundError) and answers[1].message == 'namespaces "nowhere" not found'
    assert isinstance(answers[2], InvalidError) and answers[2].message == "object: Required value: no kind set"
    assert isinstance(answers[3], api_pb2.Object)
    with pytest.raises(NotFoundError):
        await client.get("pods", "x", "nowhere")


async def test_each_object_carries_its_own_warnings(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pod Security's warnings for each object of a batch reach the caller's warning handler, as a Create's do."""
    import client.api as client_api

    await client.create(core_pb2.Namespace(metadata={"name": "watched", "labels": {
        "pod-security.kubernetes.io/warn": "restricted"}}))
    warned: list[str] = []
    monkeypatch.setattr(client_api, "warning_handler", warned.append)
    answers = await client.create_many([_pod("w1", "watched"), _pod("w2", "watched")])
    assert all(isinstance(a, api_pb2.Object) for a in answers)
    assert len(warned) == 2
    assert all(w.startswith('would violate PodSecurity "restricted:latest": allowPrivilegeEscalation') for w in warned)


async def test_dry_run_writes_nothing(client: Client) -> None:
    """A dry-run batch answers the objects as they would be created and stores none."""
    answers = await client.create_many([_pod("d1"), _pod("d2")], dry_run=True)
    assert [kinds.unwrap(a).metadata.name for a in answers] == ["d1", "d2"]  # type: ignore[union-attr]
    assert await client.list_all("pods", "default") == []


async def test_per_object_authorization_and_audit(audited: RunningApiserver, tmp_path: Path) -> None:
    """A user who may create pods in one namespace only gets forbidden answers for the others' objects, its
    allowed ones are created, and every object has its own audit line."""
    async with audited.client() as admin:
        for ns in ("team-a", "team-b"):
            await admin.create(core_pb2.Namespace(metadata={"name": ns}))
        await admin.create(convert.from_dict(rbac_pb2.Role, {
            "metadata": {"name": "pod-maker", "namespace": "team-a"},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["create"]}]}))
        await admin.create(convert.from_dict(rbac_pb2.RoleBinding, {
            "metadata": {"name": "jane-makes-pods", "namespace": "team-a"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-maker"},
            "subjects": [{"kind": "User", "name": "jane", "apiGroup": "rbac.authorization.k8s.io"}]}))
    if not (testpki.get().dir / "users/jane.crt").exists():
        testpki.get().issue("users/jane", pki.Request(pki.Identity("jane", ())))
    async with Client(testpki.get().client(audited.address, "users/jane")) as jane:
        answers = await jane.create_many([_pod("p1", "team-a"), _pod("p2", "team-b"), _pod("p3", "team-a")])
    assert isinstance(answers[0], api_pb2.Object) and isinstance(answers[2], api_pb2.Object)
    assert isinstance(answers[1], PermissionDeniedError)
    assert answers[1].message.startswith('pods "p2" is forbidden: User "jane" cannot create resource "pods" in '
                                         'API group "" in the namespace "team-b"')
    async with audited.client() as admin:
        assert [p.metadata.name for p in await admin.list_all("pods", "team-b")] == []
    lines = [(e["namespace"], e["name"], e["code"]) for e in read_lines(str(tmp_path / "audit.log"))
             if e["user"] == "jane" and e["resource"] == "pods"]
    assert sorted(lines) == [("team-a", "p1", "OK"), ("team-a", "p3", "OK"), ("team-b", "p2", "PERMISSION_DENIED")]


async def test_the_watch_sees_every_created_object(client: Client) -> None:
    """A watch started before a batch of 300 pods gets an ADDED event for each of them."""
    start = await client.list("pods", "default")
    names = {f"w{i:03d}" for i in range(300)}
    seen: set[str] = set()

    async def watch() -> None:
        async for ev in client.watch("pods", "default", resource_version=start.resource_version):
            if ev.type == "ADDED":
                seen.add(ev.object.metadata.name)  # type: ignore[attr-defined]
                if seen == names:
                    return

    watching = asyncio.create_task(watch())
    answers = await client.create_many([_pod(n) for n in sorted(names)])
    assert not [a for a in answers if isinstance(a, ApiError)]
    await asyncio.wait_for(watching, 30)
    assert seen == names


async def test_too_many_objects_are_refused_whole(client: Client) -> None:
    """A batch over the count limit is refused with RESOURCE_EXHAUSTED naming the limit, and writes nothing."""
    with pytest.raises(TooLargeError, match=f"objects: {MAX_CREATE_MANY_OBJECTS + 1} objects in one CreateMany; "
                                            f"at most {MAX_CREATE_MANY_OBJECTS} are accepted"):
        await client.create_many([_pod(f"n{i}") for i in range(MAX_CREATE_MANY_OBJECTS + 1)])
    assert await client.list_all("pods", "default") == []


async def test_too_many_bytes_are_refused_whole(client: Client) -> None:
    """A batch over the byte limit (two large ConfigMaps) is refused naming the limit, and writes nothing."""
    big = [kinds.wrap(core_pb2.ConfigMap(metadata={"name": f"big{i}", "namespace": "default"},
                                         data={"blob": "x" * (1200 * 1024)})) for i in range(2)]
    with pytest.raises(TooLargeError, match=r"objects: a CreateMany request of \d+ bytes; at most 2097152 are "
                                            r"accepted"):
        await client.create_many(big)
    assert await client.list_all("configmaps", "default") == []


async def test_a_server_without_it_answers_unimplemented(etcd: str) -> None:
    """With the test-only switch off the server answers CreateMany UNIMPLEMENTED, as servers before it did."""
    server = await start_apiserver(etcd, batch_calls=False)
    try:
        async with server.client() as c:
            with pytest.raises(UnimplementedError):
                await c.create_many([_pod("old")])
            assert await c.list_all("pods", "default") == []
    finally:
        await server.stop()


async def test_concurrent_creates_on_one_client_go_together(client: Client) -> None:
    """Creates made at once on one client travel in a few CreateMany calls (client/coalesce.py), and each caller
    still gets its own object or its own error, as from a Create of its own."""
    pods = [kinds.unwrap(_pod(f"c{i}")) for i in range(40)]
    pods[7] = kinds.unwrap(_pod("c7", port=70000))
    calls = client._creates.calls
    answers = await asyncio.gather(*(client.create(p) for p in pods), return_exceptions=True)
    assert isinstance(answers[7], InvalidError) and "containerPort: Invalid value: 70000" in answers[7].message
    assert [a.metadata.name for i, a in enumerate(answers) if i != 7] == [  # type: ignore[union-attr]
        f"c{i}" for i in range(40) if i != 7]
    assert all(a.metadata.uid for i, a in enumerate(answers) if i != 7)  # type: ignore[union-attr]
    assert client._creates.calls - calls <= 4, "40 creates at once should take a few calls, not one each"
    assert len(await client.list_all("pods", "default")) == 39


async def test_concurrent_creates_against_a_server_without_it_go_one_by_one(etcd: str) -> None:
    """Against a server without CreateMany the client falls back to a Create per object, and loses none."""
    server = await start_apiserver(etcd, batch_calls=False)
    try:
        async with server.client() as c:
            pods = [kinds.unwrap(_pod(f"old{i}")) for i in range(20)]
            answers = await asyncio.gather(*(c.create(p) for p in pods))
            assert sorted(a.metadata.name for a in answers) == sorted(f"old{i}" for i in range(20))
            assert not c._creates.batching
            assert len(await c.list_all("pods", "default")) == 20
    finally:
        await server.stop()
