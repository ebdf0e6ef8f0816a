"""Selectors, namespaces and paging through a real apiserver."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from api.errors import ForbiddenError, InvalidError, NotFoundError
from client.api import Client, WatchEvent

from .helpers import make, pod

LABELED = {
    "web-a": {"app": "web", "tier": "a"},
    "web-b": {"app": "web", "tier": "b"},
    "web-c": {"app": "web", "tier": "c"},
    "web-canary": {"app": "web", "tier": "a", "canary": "true"},
    "db": {"app": "db", "tier": "a"},
    "bare": {},
}


@pytest.fixture
async def labeled(client: Client) -> None:
    await asyncio.gather(*(client.create(pod(name, labels=lbls)) for name, lbls in LABELED.items()))


async def _names(client: Client, **kw: str) -> list[str]:
    return sorted(p.metadata.name for p in await client.list_all("pods", "default", **kw))


@pytest.mark.parametrize(("selector", "names"), [
    pytest.param("app=web", ["web-a", "web-b", "web-c", "web-canary"], id="equality"),
    pytest.param("app!=web", ["bare", "db"], id="inequality"),
    pytest.param("app=web,tier in (a,b),!canary", ["web-a", "web-b"], id="set-based"),
    pytest.param("tier notin (a)", ["bare", "web-b", "web-c"], id="notin"),
    pytest.param("canary", ["web-canary"], id="exists"),
    pytest.param("!app", ["bare"], id="does-not-exist"),
])
async def test_label_selectors_on_list(client: Client, labeled: None, selector: str, names: list[str]) -> None:
    """List returns exactly the objects the label selector matches."""
    assert await _names(client, label_selector=selector) == names


async def test_bad_label_selector_is_invalid(client: Client) -> None:
    """A malformed selector is refused naming it."""
    with pytest.raises(InvalidError, match=r"labelSelector: Invalid value: 'app in web'"):
        await client.list("pods", "default", label_selector="app in web")


async def test_field_selectors_on_list(client: Client) -> None:
    """metadata.name, spec.nodeName and status.phase select pods on List."""
    for i in range(4):
        await client.create(pod(f"p{i}"))
    await client.bind("default", "p1", "node-1")
    await client.bind("default", "p2", "node-1")
    await client.bind("default", "p3", "node-2")
    p2 = await client.get("pods", "p2", "default")
    p2.status.phase = "Running"
    await client.update_status(p2)
    assert await _names(client, field_selector="metadata.name=p3") == ["p3"]
    assert await _names(client, field_selector="spec.nodeName=node-1") == ["p1", "p2"]
    assert await _names(client, field_selector="spec.nodeName=") == ["p0"]
    assert await _names(client, field_selector="status.phase=Running") == ["p2"]
    assert await _names(client, field_selector="spec.nodeName=node-1,status.phase!=Running") == ["p1"]
    with pytest.raises(InvalidError, match=r"field label not supported: spec\.hostname"):
        await client.list("pods", "default", field_selector="spec.hostname=x")


async def _collect(events: AsyncIterator[WatchEvent], out: list[tuple[str, str]], until: int) -> None:
    async for ev in events:
        if ev.type != "BOOKMARK":
            out.append((ev.type, ev.object.metadata.name))
        if len(out) >= until:
            return


async def test_selectors_on_watch(client: Client) -> None:
    """A watch with label and field selectors sees objects enter (ADDED) and leave (DELETED) its selection."""
    start = (await client.list("pods", "default")).resource_version
    seen: list[tuple[str, str]] = []
    watch = client.watch("pods", "default", resource_version=start, label_selector="app=web,!canary",
                         field_selector="spec.nodeName=node-1")
    task = asyncio.create_task(_collect(watch, seen, until=4))
    await client.create(pod("a", labels={"app": "web"}))  # not bound yet: unseen
    await client.create(pod("b", labels={"app": "db"}))
    await client.bind("default", "a", "node-1")  # enters: ADDED
    await client.bind("default", "b", "node-1")  # wrong label: unseen
    a = await client.get("pods", "a", "default")
    a.metadata.labels["canary"] = "true"
    await client.update(a)  # leaves: DELETED
    del a.metadata.labels["canary"]
    a.metadata.resource_version = ""
    await client.update(a)  # back: ADDED
    await client.delete("pods", "a", "default", grace_period_seconds=0)  # DELETED
    await asyncio.wait_for(task, 10)
    assert seen == [("ADDED", "a"), ("DELETED", "a"), ("ADDED", "a"), ("DELETED", "a")]


async def test_watch_status_phase(client: Client) -> None:
    """A status.phase field selector on watch follows phase changes made through UpdateStatus."""
    start = (await client.list("pods", "default")).resource_version
    seen: list[tuple[str, str]] = []
    task = asyncio.create_task(_collect(client.watch("pods", "default", resource_version=start,
                                                     field_selector="status.phase=Running"), seen, until=2))
    p = await client.create(pod("p"))
    p.status.phase = "Running"
    p = await client.update_status(p)
    p.status.phase = "Succeeded"
    await client.update_status(p)
    await asyncio.wait_for(task, 10)
    assert seen == [("ADDED", "p"), ("DELETED", "p")]


# ---------------------------------------------------------------- namespaces


async def test_system_namespaces_exist(client: Client) -> None:
    """default, kube-system, kube-public and kube-node-lease exist on a fresh cluster."""
    names = {ns.metadata.name for ns in await client.list_all("namespaces")}
    assert {"default", "kube-system", "kube-public", "kube-node-lease"} <= names


async def test_missing_namespace_is_refused(client: Client) -> None:
    """A namespaced object in a namespace that does not exist is refused, and nothing is stored."""
    with pytest.raises(NotFoundError, match='namespaces "nowhere" not found'):
        await client.create(pod("p", namespace="nowhere"))
    assert await client.list_all("pods") == []


async def test_namespaces_separate_objects(client: Client) -> None:
    """The same name can live in two namespaces; lists are per namespace, or across all with ''."""
    await client.create(make("Namespace", "team-b"))
    await client.create(pod("p"))
    await client.create(pod("p", namespace="team-b"))
    await client.create(pod("q", namespace="kube-system"))
    assert [p.metadata.namespace for p in await client.list_all("pods", "team-b")] == ["team-b"]
    everywhere = [(p.metadata.namespace, p.metadata.name) for p in await client.list_all("pods", "")]
    assert everywhere == [("default", "p"), ("kube-system", "q"), ("team-b", "p")]
    await client.delete("pods", "p", "team-b")
    assert (await client.get("pods", "p", "default")).metadata.namespace == "default"


async def test_terminating_namespace_refuses_new_content(client: Client) -> None:
    """A namespace being deleted is Terminating, refuses new objects, and goes once its finalizers are emptied."""
    await client.create(make("Namespace", "doomed"))
    await client.create(pod("p", namespace="doomed"))
    await client.delete("namespaces", "doomed")
    ns = await client.get("namespaces", "doomed")
    assert ns.status.phase == "Terminating" and ns.metadata.HasField("deletion_timestamp")
    with pytest.raises(ForbiddenError, match="unable to create new content in namespace doomed because it is being "
                                             "terminated"):
        await client.create(pod("q", namespace="doomed"))
    assert [p.metadata.name for p in await client.list_all("pods", "doomed")] == ["p"]
    await client.delete("pods", "p", "doomed")
    del ns.spec.finalizers[:]
    await client.update(ns)
    with pytest.raises(NotFoundError):
        await client.get("namespaces", "doomed")


@pytest.mark.parametrize("name", ["default", "kube-system", "kube-public"])
async def test_system_namespaces_cannot_be_deleted(client: Client, name: str) -> None:
    """The system namespaces refuse deletion."""
    with pytest.raises(ForbiddenError, match=f'namespace "{name}" is a system namespace'):
        await client.delete("namespaces", name)


async def test_cluster_scoped_kinds_ignore_namespace(client: Client) -> None:
    """Nodes and namespaces have no namespace: one sent by a client is dropped (as Kubernetes does), reads ignore it."""
    node = make("Node")
    node.metadata.namespace = "default"
    created = await client.create(node)
    assert created.metadata.namespace == ""
    assert (await client.get("nodes", "node-1", "default")).metadata.namespace == ""
    assert [n.metadata.name for n in await client.list_all("nodes", "kube-system")] == ["node-1"]


# ---------------------------------------------------------------- paging


@pytest.mark.parametrize("limit", [1, 7, 50, 200])
async def test_list_pages_through_everything_once(client: Client, limit: int) -> None:
    """List with limit and continue visits every matching object exactly once."""
    await client.create(make("Namespace", "other"))
    await asyncio.gather(*(client.create(pod(f"p{i:03d}", labels={"even": str(i % 2 == 0).lower()},
                                             namespace="other" if i % 4 == 0 else "default"))
                           for i in range(120)))
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = await client.list("pods", "", label_selector="even=true", limit=limit, continue_token=token)
        pages += 1
        assert len(page.items) <= limit
        seen += [f"{p.metadata.namespace}/{p.metadata.name}" for p in page.items]
        token = page.continue_token
        if not token:
            break
        assert page.remaining == 60 - len(seen)
    assert len(seen) == len(set(seen)) == 60
    assert pages == -(-60 // limit) if limit < 60 else pages == 1


async def test_paging_is_not_fooled_by_deletes(client: Client) -> None:
    """Objects deleted between pages are simply gone; nothing is skipped or repeated."""
    await asyncio.gather(*(client.create(pod(f"p{i:02d}")) for i in range(20)))
    first = await client.list("pods", "default", limit=5)
    for p in first.items:
        await client.delete("pods", p.metadata.name, "default")
    await client.delete("pods", "p10", "default")
    rest = await client.list("pods", "default", limit=100, continue_token=first.continue_token)
    names = [p.metadata.name for p in first.items + rest.items]
    assert names == [f"p{i:02d}" for i in range(20) if i != 10]


async def test_bad_continue_token(client: Client) -> None:
    """A forged continue token is an invalid request."""
    with pytest.raises(InvalidError, match="continue: Invalid value"):
        await client.list("pods", "default", limit=1, continue_token="AAAA")
