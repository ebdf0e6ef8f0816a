"""The REST face, driven by the official Kubernetes Python client against a real apiserver over real etcd."""

from __future__ import annotations

import asyncio
import http.client
import json
import ssl
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import testpki
from conftest import RunningApiserver, start_apiserver
from kubernetes import client as k8s
from kubernetes import watch as k8s_watch
from kubernetes.client.rest import ApiException


@pytest.fixture
async def rest(etcd: str) -> AsyncIterator[RunningApiserver]:
    running = await start_apiserver(etcd, rest_listen=["127.0.0.1:0"])
    try:
        yield running
    finally:
        await running.stop()


def api_client(server: RunningApiserver, identity: str = "admin") -> k8s.ApiClient:
    """A Kubernetes ApiClient presenting `identity`'s certificate to the REST port."""
    pki = testpki.get()
    config = k8s.Configuration()
    config.host = f"https://127.0.0.1:{server.server.rest_ports[0]}"
    config.ssl_ca_cert = pki.ca_file
    config.cert_file = pki.path(identity)
    config.key_file = pki.path(identity, "key")
    return k8s.ApiClient(config)


async def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """The client is synchronous: run it beside the apiserver's event loop."""
    return await asyncio.to_thread(fn, *args, **kwargs)


def raw(server: RunningApiserver, method: str, path: str, body: Any = None,
        headers: dict[str, str] | None = None, identity: str = "admin") -> tuple[int, Any]:
    """One HTTPS request to the REST port as `identity`: the status code and the decoded JSON answer."""
    pki = testpki.get()
    context = ssl.create_default_context(cafile=pki.ca_file)
    context.load_cert_chain(pki.path(identity), pki.path(identity, "key"))
    conn = http.client.HTTPSConnection("127.0.0.1", server.server.rest_ports[0], context=context, timeout=20)
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        text = resp.read()
        return resp.status, json.loads(text) if text.strip() else None
    finally:
        conn.close()


def deployment(name: str = "web", replicas: int = 2) -> k8s.V1Deployment:
    labels = {"app": name}
    return k8s.V1Deployment(
        api_version="apps/v1", kind="Deployment", metadata=k8s.V1ObjectMeta(name=name),
        spec=k8s.V1DeploymentSpec(
            replicas=replicas, selector=k8s.V1LabelSelector(match_labels=labels),
            template=k8s.V1PodTemplateSpec(
                metadata=k8s.V1ObjectMeta(labels=labels),
                spec=k8s.V1PodSpec(containers=[k8s.V1Container(name=name, image="busybox:1.36",
                                                               ports=[k8s.V1ContainerPort(container_port=80)])]))))


def pod(name: str, labels: dict[str, str] | None = None) -> k8s.V1Pod:
    return k8s.V1Pod(api_version="v1", kind="Pod", metadata=k8s.V1ObjectMeta(name=name, labels=labels or {}),
                     spec=k8s.V1PodSpec(containers=[k8s.V1Container(name="c", image="busybox:1.36")]))


async def test_deployment_create_get_patch_delete(rest: RunningApiserver) -> None:
    """Create a Deployment, read it back, patch its replicas (merge and strategic), scale it, delete it."""
    apps = k8s.AppsV1Api(api_client(rest))
    created = await call(apps.create_namespaced_deployment, "default", deployment())
    assert created.metadata.uid and created.metadata.resource_version
    assert created.spec.template.spec.containers[0].ports[0].container_port == 80
    got = await call(apps.read_namespaced_deployment, "web", "default")
    assert got.spec.replicas == 2
    patched = await call(apps.patch_namespaced_deployment, "web", "default", {"spec": {"replicas": 4}})
    assert patched.spec.replicas == 4
    assert patched.metadata.generation == 2
    scaled = await call(apps.patch_namespaced_deployment_scale, "web", "default", {"spec": {"replicas": 5}})
    assert scaled.spec.replicas == 5
    assert (await call(apps.read_namespaced_deployment_scale, "web", "default")).status.selector == "app=web"
    await call(apps.delete_namespaced_deployment, "web", "default")
    with pytest.raises(ApiException) as err:
        await call(apps.read_namespaced_deployment, "web", "default")
    assert err.value.status == 404
    assert json.loads(err.value.body)["reason"] == "NotFound"


async def test_strategic_merge_keeps_containers_by_name(rest: RunningApiserver) -> None:
    """A strategic merge patch of one container's image (as `kubectl set image`) keeps the other containers."""
    apps = k8s.AppsV1Api(api_client(rest))
    dep = deployment()
    dep.spec.template.spec.containers.append(k8s.V1Container(name="side", image="busybox:1.35"))
    await call(apps.create_namespaced_deployment, "default", dep)
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "busybox:1.37"}]}}}}
    out = await call(apps.patch_namespaced_deployment, "web", "default", patch)
    images = {c.name: c.image for c in out.spec.template.spec.containers}
    assert images == {"web": "busybox:1.37", "side": "busybox:1.35"}


async def test_list_with_selectors_and_pages(rest: RunningApiserver) -> None:
    """List pods by label and field selector, and page through them with limit and continue."""
    core = k8s.CoreV1Api(api_client(rest))
    for i in range(5):
        await call(core.create_namespaced_pod, "default", pod(f"p{i}", {"app": "web" if i % 2 else "db"}))
    web = await call(core.list_namespaced_pod, "default", label_selector="app=web")
    assert sorted(p.metadata.name for p in web.items) == ["p1", "p3"]
    one = await call(core.list_namespaced_pod, "default", field_selector="metadata.name=p4")
    assert [p.metadata.name for p in one.items] == ["p4"]
    first = await call(core.list_namespaced_pod, "default", limit=2)
    assert len(first.items) == 2 and first.metadata._continue
    rest_ = await call(core.list_namespaced_pod, "default", limit=10, _continue=first.metadata._continue)
    names = [p.metadata.name for p in first.items + rest_.items]
    assert sorted(names) == [f"p{i}" for i in range(5)]
    everywhere = await call(core.list_pod_for_all_namespaces)
    assert len(everywhere.items) == 5


async def test_errors_are_kubernetes_statuses(rest: RunningApiserver) -> None:
    """A conflict is 409, an unknown field and an invalid object 422 (naming the field), a missing object 404,
    a duplicate 409 AlreadyExists."""
    client = api_client(rest)
    core = k8s.CoreV1Api(client)
    created = await call(core.create_namespaced_pod, "default", pod("a"))
    with pytest.raises(ApiException) as err:
        await call(core.create_namespaced_pod, "default", pod("a"))
    assert (err.value.status, json.loads(err.value.body)["reason"]) == (409, "AlreadyExists")
    stale = created.metadata.resource_version
    await call(core.patch_namespaced_pod, "a", "default", {"metadata": {"labels": {"x": "1"}}})
    created.metadata.resource_version = stale
    with pytest.raises(ApiException) as err:
        await call(core.replace_namespaced_pod, "a", "default", created)
    assert (err.value.status, json.loads(err.value.body)["reason"]) == (409, "Conflict")
    # The client's models refuse unknown fields themselves; a raw request carries one.
    body = client.sanitize_for_serialization(pod("b"))
    body["spec"]["containers"][0]["imagePolicy"] = "x"
    code, status = await call(raw, rest, "POST", "/api/v1/namespaces/default/pods", body)
    assert (code, status["reason"]) == (422, "Invalid")
    assert status["details"]["causes"][0]["field"] == "spec.containers[0].imagePolicy"
    bad = pod("c")
    bad.spec.containers[0].name = "Not_A_Name"
    with pytest.raises(ApiException) as err:
        await call(core.create_namespaced_pod, "default", bad)
    status = json.loads(err.value.body)
    assert (err.value.status, status["reason"]) == (422, "Invalid")
    assert any(c["field"] == "spec.containers[0].name" for c in status["details"]["causes"])
    with pytest.raises(ApiException) as err:
        await call(core.read_namespaced_pod, "missing", "default")
    assert err.value.status == 404


async def test_watch_pods(rest: RunningApiserver) -> None:
    """A watch sees pods added, modified and deleted, as newline-delimited JSON events."""
    core = k8s.CoreV1Api(api_client(rest))
    await call(core.create_namespaced_pod, "default", pod("w0"))
    seen: list[tuple[str, str]] = []
    done = threading.Event()

    def watch() -> None:
        w = k8s_watch.Watch()
        for event in w.stream(core.list_namespaced_pod, "default", timeout_seconds=20):
            seen.append((event["type"], event["object"].metadata.name))
            if event["type"] == "DELETED":
                w.stop()
        done.set()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    await call(core.create_namespaced_pod, "default", pod("w1"))
    await call(core.patch_namespaced_pod, "w1", "default", {"metadata": {"labels": {"a": "b"}}})
    await call(core.delete_namespaced_pod, "w1", "default", grace_period_seconds=0)
    assert await call(done.wait, 20)
    assert ("ADDED", "w0") in seen
    assert seen[-3:] == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")] or \
        [s for s in seen if s[1] == "w1"][-1] == ("DELETED", "w1")


async def test_watch_from_a_version_too_old_is_gone(rest: RunningApiserver) -> None:
    """Resuming a watch from a compacted resourceVersion ends with a 410 Expired ERROR event."""
    core = k8s.CoreV1Api(api_client(rest))
    await call(core.create_namespaced_pod, "default", pod("x"))
    resp = await call(core.list_namespaced_pod, "default", watch=True, resource_version="1",
                      _preload_content=False, timeout_seconds=5)
    line = json.loads(resp.readline() if hasattr(resp, "readline") else resp.data.splitlines()[0])
    assert line["type"] == "ERROR"
    assert (line["object"]["code"], line["object"]["reason"]) == (410, "Expired")


async def test_watch_resumes_from_a_version_with_bookmarks(rest: RunningApiserver) -> None:
    """A watch from a list's resourceVersion sees only later changes, and bookmarks (when it asks for them) as
    the cluster moves on."""
    core = k8s.CoreV1Api(api_client(rest))
    await call(core.create_namespaced_pod, "default", pod("before"))
    listed = await call(core.list_namespaced_pod, "default")
    await call(core.create_namespaced_pod, "default", pod("after"))

    def watch() -> list[dict[str, Any]]:
        pki = testpki.get()
        context = ssl.create_default_context(cafile=pki.ca_file)
        context.load_cert_chain(pki.path("admin"), pki.path("admin", "key"))
        conn = http.client.HTTPSConnection("127.0.0.1", rest.server.rest_ports[0], context=context, timeout=20)
        conn.request("GET", f"/api/v1/namespaces/default/pods?watch=1&allowWatchBookmarks=true&timeoutSeconds=3"
                            f"&resourceVersion={listed.metadata.resource_version}")
        resp = conn.getresponse()
        assert resp.status == 200
        events = [json.loads(line) for line in resp.read().splitlines() if line.strip()]
        conn.close()
        return events

    watching = asyncio.ensure_future(call(watch))
    await asyncio.sleep(1.0)
    # Another kind's write moves the cluster on: an idle pod watch learns of it by a bookmark.
    await call(core.create_namespaced_config_map, "default",
               k8s.V1ConfigMap(metadata=k8s.V1ObjectMeta(name="elsewhere"), data={"a": "b"}))
    events = await watching
    changes = [(e["type"], e["object"]["metadata"].get("name")) for e in events if e["type"] != "BOOKMARK"]
    assert changes == [("ADDED", "after")]
    bookmarks = [e for e in events if e["type"] == "BOOKMARK"]
    assert bookmarks, "a watch of 3 seconds that asked for bookmarks got none"
    assert bookmarks[-1]["object"]["kind"] == "Pod"
    assert int(bookmarks[-1]["object"]["metadata"]["resourceVersion"]) >= int(listed.metadata.resource_version)


async def test_subresources_options_and_refusals(rest: RunningApiserver) -> None:
    """status and binding subresources, fieldValidation Warn/Ignore, delete preconditions, deletecollection by
    label, the Table format, and server-side apply's clear 415."""
    pods = "/api/v1/namespaces/default/pods"

    def req(method: str, path: str, body: Any = None, **headers: str) -> tuple[int, Any]:
        return raw(rest, method, path, body, headers)

    body = {"metadata": {"name": "s", "labels": {"app": "x"}}, "spec": {"containers": [
        {"name": "c", "image": "busybox:1.36", "imagePolicy": "x"}]}}
    code, created = await call(req, "POST", f"{pods}?fieldValidation=Ignore", body)
    assert code == 201 and "imagePolicy" not in created["spec"]["containers"][0]
    code, status = await call(req, "POST", f"{pods}?fieldValidation=Sometimes", body)
    assert (code, status["reason"]) == (422, "Invalid")

    code, bound = await call(req, "POST", f"{pods}/s/binding", {"target": {"kind": "Node", "name": "n1"}})
    assert (code, bound["status"]) == (201, "Success")
    code, got = await call(req, "GET", f"{pods}/s/status")
    assert got["spec"]["nodeName"] == "n1"
    got["status"]["phase"] = "Running"
    code, updated = await call(req, "PUT", f"{pods}/s/status", got)
    assert (code, updated["status"]["phase"]) == (200, "Running")
    code, status = await call(req, "POST", f"{pods}/s/binding", {"target": {"name": "n2"}})
    assert (code, status["reason"]) == (409, "Conflict")

    code, table = await call(req, "GET", f"{pods}?labelSelector=app%3Dx",
                             Accept="application/json;as=Table;v=v1;g=meta.k8s.io")
    assert table["kind"] == "Table" and table["rows"][0]["cells"][:3] == ["s", "0/1", "Running"]

    code, status = await call(req, "PATCH", f"{pods}/s", {"metadata": {"labels": {"b": "c"}}},
                              **{"Content-Type": "application/apply-patch+yaml"})
    assert (code, status["reason"]) == (415, "UnsupportedMediaType")
    assert "server-side apply" in status["message"]

    code, status = await call(req, "DELETE", f"{pods}/s", {"preconditions": {"uid": "not-its-uid"}})
    assert (code, status["reason"]) == (409, "Conflict")
    await call(req, "POST", pods, {"metadata": {"name": "t", "labels": {"app": "x"}},
                                   "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}})
    await call(req, "POST", pods, {"metadata": {"name": "u", "labels": {"app": "y"}},
                                   "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}})
    code, deleted = await call(req, "DELETE", f"{pods}?labelSelector=app%3Dx&gracePeriodSeconds=0")
    assert code == 200 and sorted(i["metadata"]["name"] for i in deleted["items"]) == ["s", "t"]
    code, left = await call(req, "GET", pods)
    names = [i["metadata"]["name"] for i in left["items"] if "deletionTimestamp" not in i["metadata"]]
    assert names == ["u"]


@pytest.mark.parametrize(("method", "path", "body", "code"), [
    pytest.param("POST", "/api/v1/namespaces/default/pods", [1, 2], 422, id="array-body"),
    pytest.param("POST", "/api/v1/namespaces/default/pods", {"kind": "Service"}, 400, id="wrong-kind"),
    pytest.param("POST", "/api/v1/namespaces/default/pods", {"metadata": "x"}, 422, id="metadata-not-object"),
    pytest.param("PATCH", "/api/v1/namespaces/default/pods/none", {"a": 1}, 415, id="patch-without-type"),
    pytest.param("GET", "/api/v1/namespaces/default/pods?limit=x", None, 422, id="bad-limit"),
    pytest.param("GET", "/api/v1/namespaces/default/pods?labelSelector=a%20in", None, 422, id="bad-selector"),
    pytest.param("GET", "/api/v1/widgets", None, 404, id="unknown-resource"),
    pytest.param("DELETE", "/api/v1/namespaces/default/pods/none", None, 404, id="delete-missing"),
    pytest.param("GET", "/api/v1/namespaces/default/pods?watch=1&resourceVersion=abc", None, 422, id="bad-version"),
])
async def test_bad_requests_get_statuses_not_crashes(rest: RunningApiserver, method: str, path: str, body: Any,
                                                     code: int) -> None:
    """Malformed requests are answered with a Kubernetes Status and a 4xx code, never a server error."""
    got, status = await call(raw, rest, method, path, body)
    assert got == code, status
    assert status["kind"] == "Status" and status["code"] == code


async def test_openapi_v2_json_and_not_acceptable(rest: RunningApiserver) -> None:
    """/openapi/v2 as JSON is a Swagger 2.0 document whose references resolve and whose kinds carry their
    group-version-kind; an Accept it cannot answer is 406 naming what it serves."""
    code, doc = await call(raw, rest, "GET", "/openapi/v2", headers={"Accept": "application/json"})
    assert code == 200 and doc["swagger"] == "2.0"
    definitions = doc["definitions"]
    deployment = next(d for d in definitions.values()
                      if {"group": "apps", "version": "v1", "kind": "Deployment"} in d.get(
                          "x-kubernetes-group-version-kind", []))
    spec = deployment["properties"]["spec"]["$ref"]
    assert spec.startswith("#/definitions/") and spec.removeprefix("#/definitions/") in definitions
    containers = definitions["kubelite.v1.PodSpec"]["properties"]["containers"]
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    params = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments"]["post"]["parameters"]
    assert {"name": "fieldValidation", "in": "query", "type": "string", "uniqueItems": True} in params
    code, status = await call(raw, rest, "GET", "/openapi/v2", headers={"Accept": "text/html"})
    assert code == 406 and status["reason"] == "NotAcceptable"
    assert "application/json" in status["message"]


async def test_token_request_with_the_official_client(rest: RunningApiserver) -> None:
    """The official client's create_namespaced_service_account_token gets a TokenRequest back with the spec as
    issued and a token; a lifetime out of bounds or a Secret to bind to is a 422 naming the field."""
    core = k8s.CoreV1Api(api_client(rest))
    body = k8s.AuthenticationV1TokenRequest(spec=k8s.V1TokenRequestSpec(audiences=["vault"],
                                                                        expiration_seconds=600))
    got = await call(core.create_namespaced_service_account_token, "default", "default", body)
    assert got.spec.audiences == ["vault"] and got.spec.expiration_seconds == 600
    assert got.status.token.count(".") == 2 and got.status.expiration_timestamp is not None
    long = k8s.AuthenticationV1TokenRequest(spec=k8s.V1TokenRequestSpec(audiences=[], expiration_seconds=10**6))
    with pytest.raises(ApiException) as e:
        await call(core.create_namespaced_service_account_token, "default", "default", long)
    assert e.value.status == 422 and "spec.expirationSeconds" in e.value.body
    secret = k8s.AuthenticationV1TokenRequest(spec=k8s.V1TokenRequestSpec(
        audiences=[], bound_object_ref=k8s.V1BoundObjectReference(kind="Secret", api_version="v1", name="s")))
    with pytest.raises(ApiException) as e:
        await call(core.create_namespaced_service_account_token, "default", "default", secret)
    assert e.value.status == 422 and "spec.boundObjectRef.kind" in e.value.body
    code, resources = await call(raw, rest, "GET", "/api/v1")
    assert code == 200
    token = next(r for r in resources["resources"] if r["name"] == "serviceaccounts/token")
    assert (token["group"], token["kind"], token["verbs"]) == ("authentication.k8s.io", "TokenRequest", ["create"])
