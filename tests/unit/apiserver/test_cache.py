"""The watch cache's stores and watchers: what each watcher sees, lists, paging and history."""

from __future__ import annotations

import pytest

from api import kinds, labels
from api.errors import ExpiredError, InvalidError
from api.pb import api_pb2, core_pb2
from apiserver import cache
from apiserver.cache import Filter, Store, WatchCache, Watcher
from apiserver.storage.interface import Event

POD = kinds.lookup("Pod")


def _pod(name: str, ns: str = "default", node: str = "", phase: str = "", **labels_: str) -> core_pb2.Pod:
    return core_pb2.Pod(metadata={"name": name, "namespace": ns, "labels": labels_},
                        spec={"node_name": node}, status={"phase": phase})


def _put(pod: core_pb2.Pod, rev: int) -> Event:
    key = cache.object_key(POD, pod.metadata.namespace, pod.metadata.name)
    return Event("PUT", key, pod.SerializeToString(), rev, rev)


def _delete(pod: core_pb2.Pod, rev: int) -> Event:
    key = cache.object_key(POD, pod.metadata.namespace, pod.metadata.name)
    return Event("DELETE", key, pod.SerializeToString(), rev, 0)


def _events(w: Watcher) -> list[tuple[str, str, str]]:
    """(type, name, resourceVersion) of every pending frame."""
    batch = api_pb2.WatchEvents.FromString(w.take(1 << 30))
    return [(e.type, kinds.unwrap(e.object).metadata.name, e.resource_version) for e in batch.events]


def _watcher(store: Store, selector: str = "", fields: str = "", namespace: str = "") -> Watcher:
    flt = Filter(namespace=namespace, label=labels.parse(selector),
                 fields=labels.parse_fields(fields, labels.supported_fields("Pod")))
    w = Watcher(store, flt, bookmarks=False)
    store.add_watcher(w)
    return w


def test_node_watchers_see_their_node_only() -> None:
    """A kubelet's watch (spec.nodeName=n1) sees a pod bound to its node, not the others; others see all."""
    store = Store(POD)
    kubelet = _watcher(store, fields="spec.nodeName=n1")
    other = _watcher(store, fields="spec.nodeName=n2")
    everyone = _watcher(store)
    unbound = _watcher(store, fields="spec.nodeName=")
    store.apply(_put(_pod("a"), 2))
    store.apply(_put(_pod("a", node="n1"), 3))  # bound
    store.apply(_put(_pod("b", node="n2"), 4))
    store.apply(_delete(_pod("a", node="n1"), 5))
    assert _events(kubelet) == [("ADDED", "a", "3"), ("DELETED", "a", "5")]
    assert _events(other) == [("ADDED", "b", "4")]
    assert _events(unbound) == [("ADDED", "a", "2"), ("DELETED", "a", "3")]
    assert len(_events(everyone)) == 4
    store.remove_watcher(kubelet)
    store.apply(_put(_pod("c", node="n1"), 6))
    assert kubelet.pending == [] and store.watchers == {other, everyone, unbound}


def test_keys() -> None:
    """Objects live under /registry/<resource>/<namespace>/<name>; cluster kinds have no namespace part."""
    assert cache.object_key(POD, "default", "p") == "/registry/pods/default/p"
    assert cache.object_key(kinds.lookup("Node"), "", "n1") == "/registry/nodes/n1"
    assert cache.kind_prefix(POD, "kube-system") == "/registry/pods/kube-system/"
    assert cache.kind_prefix(POD) == "/registry/pods/"


def test_decode_sets_resource_version() -> None:
    """A stored object read back carries its etcd revision as resourceVersion, in the object and its envelope."""
    store = Store(POD)
    entry = store.decode(_pod("p").SerializeToString(), 17)
    assert entry.obj.metadata.resource_version == "17"
    assert api_pb2.Object.FromString(entry.item).pod.metadata.resource_version == "17"


def test_watcher_sees_added_modified_deleted() -> None:
    """A watcher with no filter sees every change with its type and revision."""
    store = Store(POD)
    w = _watcher(store)
    store.apply(_put(_pod("a"), 2))
    store.apply(_put(_pod("a", phase="Running"), 3))
    store.apply(_delete(_pod("a", phase="Running"), 4))
    assert _events(w) == [("ADDED", "a", "2"), ("MODIFIED", "a", "3"), ("DELETED", "a", "4")]


def test_selector_that_stops_matching_sees_deleted() -> None:
    """When an object's labels stop matching a watcher's selector, that watcher sees it DELETED."""
    store = Store(POD)
    w = _watcher(store, "app=web")
    store.apply(_put(_pod("a", app="web"), 2))
    store.apply(_put(_pod("a", app="db"), 3))
    store.apply(_put(_pod("a", app="db", tier="x"), 4))
    store.apply(_delete(_pod("a", app="db", tier="x"), 5))
    assert _events(w) == [("ADDED", "a", "2"), ("DELETED", "a", "3")]


def test_selector_that_starts_matching_sees_added() -> None:
    """When an object's labels start matching a watcher's selector, that watcher sees it ADDED."""
    store = Store(POD)
    w = _watcher(store, "app=web,tier in (a,b),!canary")
    store.apply(_put(_pod("a", app="web", tier="c"), 2))
    store.apply(_put(_pod("a", app="web", tier="a"), 3))
    store.apply(_put(_pod("a", app="web", tier="b"), 4))
    store.apply(_put(_pod("a", app="web", tier="b", canary="1"), 5))
    assert _events(w) == [("ADDED", "a", "3"), ("MODIFIED", "a", "4"), ("DELETED", "a", "5")]


@pytest.mark.parametrize(("fields", "seen"), [
    pytest.param("spec.nodeName=n1", [("ADDED", "a", "3"), ("MODIFIED", "a", "4"), ("MODIFIED", "a", "5")],
                 id="node-name"),
    pytest.param("spec.nodeName=", [("ADDED", "a", "2"), ("DELETED", "a", "3")], id="unscheduled"),
    pytest.param("status.phase=Running", [("ADDED", "a", "4"), ("DELETED", "a", "5")], id="phase"),
    pytest.param("metadata.name=b", [], id="other-name"),
])
def test_field_selectors_filter_watch(fields: str, seen: list[tuple[str, str, str]]) -> None:
    """Field selectors on watch follow the object in and out of the selection, like label selectors."""
    store = Store(POD)
    w = _watcher(store, fields=fields)
    store.apply(_put(_pod("a"), 2))
    store.apply(_put(_pod("a", node="n1"), 3))
    store.apply(_put(_pod("a", node="n1", phase="Running"), 4))
    store.apply(_put(_pod("a", node="n1", phase="Succeeded"), 5))
    assert _events(w) == seen


def test_namespace_filter() -> None:
    """A namespaced watcher sees only its namespace."""
    store = Store(POD)
    w = _watcher(store, namespace="team")
    store.apply(_put(_pod("a", "default"), 2))
    store.apply(_put(_pod("b", "team"), 3))
    assert _events(w) == [("ADDED", "b", "3")]


def test_delete_of_unknown_key_is_ignored() -> None:
    """A DELETE for something the cache never held changes nothing and notifies no one."""
    store = Store(POD)
    w = _watcher(store)
    assert store.apply(_delete(_pod("ghost"), 2)) is None
    assert w.pending == [] and not w.ready.is_set()


def test_take_splits_large_batches() -> None:
    """take() hands out at most about max_bytes at a time and keeps the rest pending, in order."""
    store = Store(POD)
    w = _watcher(store)
    for i in range(10):
        store.apply(_put(_pod(f"p{i}"), i + 2))
    first = api_pb2.WatchEvents.FromString(w.take(1))
    assert [e.resource_version for e in first.events] == ["2"]
    assert w.ready.is_set()
    rest = _events(w)
    assert [rv for _, _, rv in rest] == [str(i) for i in range(3, 12)]
    assert not w.ready.is_set()


def test_slow_watcher_is_cut_off(monkeypatch: pytest.MonkeyPatch) -> None:
    """A watcher that falls too far behind gets an ExpiredError instead of unbounded memory."""
    monkeypatch.setattr(cache, "MAX_PENDING", 3)
    store = Store(POD)
    w = _watcher(store)
    for i in range(5):
        store.apply(_put(_pod(f"p{i}"), i + 2))
    assert isinstance(w.error, ExpiredError)
    assert w.pending == []


def test_history_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the last HISTORY changes are kept; history_start moves past the dropped ones."""
    monkeypatch.setattr(cache, "HISTORY", 3)
    store = Store(POD)
    for i in range(6):
        store.apply(_put(_pod("a", phase=str(i)), i + 2))
    assert [c.rev for c in store.history] == [5, 6, 7]
    assert store.history_start == 4


def test_pods_are_indexed_by_node() -> None:
    """Pods are indexed by spec.nodeName, and the index follows binds and deletes."""
    store = Store(POD)
    store.apply(_put(_pod("a"), 2))
    store.apply(_put(_pod("a", node="n1"), 3))
    store.apply(_put(_pod("b", node="n1"), 4))
    assert store.by_index == {"n1": {"/registry/pods/default/a", "/registry/pods/default/b"}}
    store.apply(_delete(_pod("a", node="n1"), 5))
    store.apply(_delete(_pod("b", node="n1"), 6))
    assert store.by_index == {}


# ---------------------------------------------------------------- the cache's list and watch


def _cache_with(pods: list[core_pb2.Pod]) -> WatchCache:
    """A watch cache that has applied one PUT per pod (revisions 2, 3, ...); it needs no storage for this."""
    wc = WatchCache(storage=None)  # type: ignore[arg-type]
    for i, pod in enumerate(pods):
        wc._apply([_put(pod, i + 2)], i + 2)
    return wc


def _names(result: cache.ListResult) -> list[str]:
    return [kinds.unwrap(api_pb2.Object.FromString(item)).metadata.name for item in result.items]


def test_list_filters_and_orders_by_key() -> None:
    """List returns matching objects in namespace/name order at the cache's revision."""
    wc = _cache_with([_pod("b", app="web"), _pod("a", app="web"), _pod("c", "team", app="web"), _pod("d")])
    everything = wc.list(POD, Filter())
    assert _names(everything) == ["a", "b", "d", "c"]
    assert everything.revision == 5
    assert _names(wc.list(POD, Filter(label=labels.parse("app=web")))) == ["a", "b", "c"]
    assert _names(wc.list(POD, Filter(namespace="team"))) == ["c"]


@pytest.mark.parametrize("limit", [1, 2, 3, 7, 50])
def test_list_pages_cover_everything_once(limit: int) -> None:
    """Paging with limit and continue visits every matching object exactly once, in order."""
    pods = [_pod(f"p{i:02d}", "ns-b" if i % 3 else "ns-a", app="web" if i % 5 else "db") for i in range(40)]
    wc = _cache_with(pods)
    flt = Filter(label=labels.parse("app=web"))
    seen: list[str] = []
    token = ""
    while True:
        page = wc.list(POD, flt, limit=limit, continue_token=token)
        assert len(page.items) <= limit
        seen += _names(page)
        token = page.continue_token
        if not token:
            assert page.remaining == 0
            break
        assert page.remaining == len(_names(wc.list(POD, flt))) - len(seen)
    assert seen == _names(wc.list(POD, flt))
    assert len(seen) == len(set(seen)) == 32


def test_list_continue_by_node_index() -> None:
    """Paging through a spec.nodeName selection uses the node index and still sees each pod once."""
    wc = _cache_with([_pod(f"p{i}", node="n1" if i % 2 else "n2") for i in range(9)])
    flt = Filter(fields=labels.parse_fields("spec.nodeName=n1", labels.supported_fields("Pod")))
    first = wc.list(POD, flt, limit=2)
    second = wc.list(POD, flt, limit=10, continue_token=first.continue_token)
    assert _names(first) + _names(second) == ["p1", "p3", "p5", "p7"]


def test_unbound_pods_are_selectable() -> None:
    """`spec.nodeName=` selects the pods bound to no node, on list and on the initial events of a watch."""
    wc = _cache_with([_pod("bound", node="n1"), _pod("free-1"), _pod("free-2")])
    flt = Filter(fields=labels.parse_fields("spec.nodeName=", labels.supported_fields("Pod")))
    assert _names(wc.list(POD, flt)) == ["free-1", "free-2"]
    w = wc.watch(POD, flt, since=0, bookmarks=False)
    assert [name for _, name, _ in _events(w)] == ["free-1", "free-2"]


def test_bad_continue_token() -> None:
    """A continue token the server did not issue is an invalid request."""
    with pytest.raises(InvalidError, match="continue: Invalid value"):
        _cache_with([]).list(POD, Filter(), limit=1, continue_token="garbage!")


def test_watch_from_zero_lists_then_follows() -> None:
    """A watch from no version starts with ADDED for every current object, then follows changes."""
    wc = _cache_with([_pod("a"), _pod("b")])
    w = wc.watch(POD, Filter(), since=0, bookmarks=False)
    wc._apply([_put(_pod("c"), 4)], 4)
    assert _events(w) == [("ADDED", "a", "2"), ("ADDED", "b", "3"), ("ADDED", "c", "4")]


def test_watch_resumes_from_history() -> None:
    """A watch from a version replays exactly the changes after it, filtered, in order."""
    wc = _cache_with([_pod("a", app="web"), _pod("b", app="db"), _pod("a", app="db"), _pod("b", app="web")])
    w = wc.watch(POD, Filter(label=labels.parse("app=web")), since=2, bookmarks=False)
    assert _events(w) == [("DELETED", "a", "4"), ("ADDED", "b", "5")]


def test_watch_from_before_history_is_expired() -> None:
    """Resuming from a version older than the kept history is refused with ExpiredError (relist)."""
    wc = WatchCache(storage=None)  # type: ignore[arg-type]
    wc.store(POD).reset({}, 10)
    wc.revision = 10
    with pytest.raises(ExpiredError, match="too old resource version: 9"):
        wc.watch(POD, Filter(), since=9, bookmarks=False)
    wc.watch(POD, Filter(), since=10, bookmarks=False)


@pytest.mark.parametrize(("watchers", "pause"), [
    (1, 0.002),              # a lone watcher waits the least pause after a message
    (100, 0.01),             # the pause grows with the watches open ...
    (1000, 0.1),
    (50000, 0.1),            # ... and never passes the most an event may wait
])
def test_watch_pause(watchers: int, pause: float) -> None:
    assert cache.watch_pause(watchers) == pytest.approx(pause)


def test_open_watches_are_counted_once() -> None:
    """The count that sets the pace: a watch counts from watch() to its first unwatch()."""
    wc = _cache_with([_pod("a")])
    a = wc.watch(POD, Filter(), since=0, bookmarks=False)
    b = wc.watch(POD, Filter(), since=0, bookmarks=False)
    assert wc.watchers == 2
    wc.unwatch(a)
    wc.unwatch(a)
    assert wc.watchers == 1
    wc.unwatch(b)
    assert wc.watchers == 0


def test_bookmarks_go_to_idle_watchers_only() -> None:
    """Bookmarks tell idle, bookmark-asking watchers the current revision, once."""
    wc = _cache_with([_pod("a")])
    idle = wc.watch(POD, Filter(), since=2, bookmarks=True)
    quiet = wc.watch(POD, Filter(), since=2, bookmarks=False)
    wc.stores["Node"].reset({}, 0)
    wc.revision = 9
    wc.bookmark()
    wc.bookmark()
    batch = api_pb2.WatchEvents.FromString(idle.take(1 << 20))
    assert [(e.type, e.resource_version) for e in batch.events] == [("BOOKMARK", "9")]
    assert batch.events[0].object.pod.metadata.resource_version == "9"
    assert quiet.pending == []


async def test_wait_for_returns_once_applied() -> None:
    """wait_for returns when the cache reaches the revision, and times out naming both versions otherwise."""
    from api.errors import TimeoutError_

    class Etcd:  # how far etcd is, which a timed-out wait asks (at 2: nobody wrote 5, so no watch restart)
        async def revision(self) -> int:
            return 2

    wc = _cache_with([_pod("a")])
    wc.storage = Etcd()  # type: ignore[assignment]
    await wc.wait_for(2)
    with pytest.raises(TimeoutError_, match="too large resource version: 5, current: 2"):
        await wc.wait_for(5, timeout=0.05)
    assert wc.watch_restarts == 0
