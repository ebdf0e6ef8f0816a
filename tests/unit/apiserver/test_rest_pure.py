"""The REST face's pure parts: paths to requests, patches, discovery documents, Status objects, Tables."""

from __future__ import annotations

from typing import Any

import pytest

from api import kinds
from api.errors import ConflictError, FieldError, InvalidError, NotFoundError, UnauthorizedError
from api.pb import apps_pb2, core_pb2, meta_pb2
from apiserver.rest import discovery, patch, request, status, table
from apiserver.rest.status import HttpError

DEPLOYMENT = apps_pb2.Deployment.DESCRIPTOR


@pytest.mark.parametrize(("method", "path", "watch", "want"), [
    pytest.param("GET", "/api/v1/namespaces/default/pods/web", False, ("get", "pods", "default", "web", ""),
                 id="get-pod"),
    pytest.param("GET", "/api/v1/pods", False, ("list", "pods", "", "", ""), id="list-all-namespaces"),
    pytest.param("GET", "/api/v1/namespaces/default/pods", True, ("watch", "pods", "default", "", ""), id="watch"),
    pytest.param("GET", "/api/v1/namespaces/kube-system", False, ("get", "namespaces", "", "kube-system", ""),
                 id="get-namespace-itself"),
    pytest.param("POST", "/apis/apps/v1/namespaces/a/deployments", False, ("create", "deployments", "a", "", ""),
                 id="create-deployment"),
    pytest.param("PATCH", "/apis/apps/v1/namespaces/a/deployments/web/scale", False,
                 ("patch", "deployments", "a", "web", "scale"), id="patch-scale"),
    pytest.param("DELETE", "/api/v1/namespaces/a/pods", False, ("deletecollection", "pods", "a", "", ""),
                 id="deletecollection"),
    pytest.param("GET", "/api/v1/namespaces/a/pods/web/log", False, ("get", "pods", "a", "web", "log"), id="log"),
    pytest.param("GET", "/api/v1/nodes/n1/status", False, ("get", "nodes", "", "n1", "status"), id="node-status"),
    pytest.param("POST", "/api/v1/namespaces/a/pods/web/binding", False, ("create", "pods", "a", "web", "binding"),
                 id="binding"),
    pytest.param("GET", "/api/v1/namespaces/a/pods/web/exec", False, ("create", "pods", "a", "web", "exec"),
                 id="exec-is-create"),
])
def test_paths_name_verb_kind_namespace_name(method: str, path: str, watch: bool, want: tuple[str, ...]) -> None:
    """Each Kubernetes path and method is the request authorization will see."""
    info = request.parse(method, path, watch)
    assert info is not None
    assert (info.verb, info.resource, info.namespace, info.name, info.subresource) == want


@pytest.mark.parametrize(("method", "path", "error"), [
    pytest.param("GET", "/api/v1/widgets", NotFoundError, id="unknown-resource"),
    pytest.param("GET", "/apis/apps/v2/deployments", NotFoundError, id="unknown-version"),
    pytest.param("GET", "/apis/apps/v1/pods", NotFoundError, id="wrong-group"),
    pytest.param("GET", "/api/v1/namespaces/a/nodes", NotFoundError, id="cluster-scoped-in-namespace"),
    pytest.param("PUT", "/api/v1/namespaces/a/pods", HttpError, id="put-without-name"),
    pytest.param("POST", "/api/v1/namespaces/a/pods/web", HttpError, id="post-with-name"),
])
def test_bad_paths_are_refused(method: str, path: str, error: type[Exception]) -> None:
    """A path that names no served resource, or a method a path does not take, is refused."""
    with pytest.raises(error):
        request.parse(method, path, False)


def test_discovery_paths_are_not_resources() -> None:
    """/api, /apis and group paths are left to discovery."""
    assert request.parse("GET", "/apis/apps/v1", False) is None
    assert request.parse("GET", "/version", False) is None


def container(name: str, image: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": image, **extra}


def deployment(*containers: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "web", "labels": {"a": "1"}, "finalizers": ["x"]},
            "spec": {"replicas": 1, "template": {"spec": {"containers": list(containers)}}}}


@pytest.mark.parametrize(("doc", "body", "want"), [
    pytest.param(deployment(container("web", "a:1"), container("side", "b:1")),
                 {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": "a:2"}]}}}},
                 [container("web", "a:2"), container("side", "b:1")], id="containers-merge-by-name"),
    pytest.param(deployment(container("web", "a:1", env=[{"name": "A", "value": "1"}])),
                 {"spec": {"template": {"spec": {"containers": [
                     {"name": "web", "env": [{"name": "B", "value": "2"}]}]}}}},
                 [container("web", "a:1", env=[{"name": "A", "value": "1"}, {"name": "B", "value": "2"}])],
                 id="env-merges-by-name"),
    pytest.param(deployment(container("web", "a:1"), container("side", "b:1")),
                 {"spec": {"template": {"spec": {"containers": [{"name": "side", "$patch": "delete"}]}}}},
                 [container("web", "a:1")], id="patch-delete-removes-one"),
    pytest.param(deployment(container("web", "a:1", ports=[{"containerPort": 80}, {"containerPort": 81}])),
                 {"spec": {"template": {"spec": {"containers": [
                     {"name": "web", "ports": [{"containerPort": 81, "name": "alt"}]}]}}}},
                 [container("web", "a:1", ports=[{"containerPort": 80}, {"containerPort": 81, "name": "alt"}])],
                 id="ports-merge-by-container-port"),
    pytest.param(deployment(container("web", "a:1"), container("side", "b:1")),
                 {"$setElementOrder/containers": [{"name": "side"}, {"name": "web"}],
                  "spec": {"template": {"spec": {"$setElementOrder/containers": [{"name": "side"}, {"name": "web"}],
                                                 "containers": [{"name": "web", "image": "a:3"}]}}}},
                 [container("side", "b:1"), container("web", "a:3")], id="set-element-order"),
])
def test_strategic_merge_patch(doc: dict[str, Any], body: dict[str, Any], want: list[dict[str, Any]]) -> None:
    """Lists with merge keys merge item by item; directives are honoured and never stored."""
    out = patch.strategic_merge_patch(doc, body, DEPLOYMENT)
    assert out["spec"]["template"]["spec"]["containers"] == want


def test_strategic_merge_null_deletes_and_sets_merge() -> None:
    """null removes a field; finalizers merge as a set; lists without a merge key are replaced."""
    doc = deployment(container("web", "a:1", args=["x", "y"]))
    body = {"metadata": {"labels": {"a": None, "b": "2"}, "finalizers": ["x", "y"]},
            "spec": {"template": {"spec": {"containers": [{"name": "web", "args": ["z"]}]}}}}
    out = patch.strategic_merge_patch(doc, body, DEPLOYMENT)
    assert out["metadata"]["labels"] == {"b": "2"}
    assert out["metadata"]["finalizers"] == ["x", "y"]
    assert out["spec"]["template"]["spec"]["containers"][0]["args"] == ["z"]


def test_merge_patch_replaces_lists_and_json_patch_applies_ops() -> None:
    """A JSON merge patch replaces a list whole; a JSON patch applies RFC 6902 operations and refuses bad ones."""
    doc = deployment(container("web", "a:1"), container("side", "b:1"))
    out = patch.merge_patch(doc, {"spec": {"template": {"spec": {"containers": [container("only", "c:1")]}}}})
    assert out["spec"]["template"]["spec"]["containers"] == [container("only", "c:1")]
    out = patch.json_patch(doc, [{"op": "replace", "path": "/spec/replicas", "value": 4}])
    assert out["spec"]["replicas"] == 4 and doc["spec"]["replicas"] == 1
    with pytest.raises(InvalidError):
        patch.json_patch(doc, [{"op": "test", "path": "/spec/replicas", "value": 9}])
    with pytest.raises(InvalidError):
        patch.json_patch(doc, {"op": "replace"})


def test_discovery_lists_exactly_the_served_kinds() -> None:
    """Legacy and aggregated discovery name every kind of api/kinds.py once, with short names and verbs."""
    served = {(k.group, k.resource) for k in kinds.KINDS}
    legacy = set()
    for group, versions in discovery.group_versions().items():
        for version in versions:
            for r in discovery.resource_list(group, version)["resources"]:
                if "/" not in r["name"]:
                    legacy.add((group, r["name"]))
    assert legacy == served
    aggregated = set()
    for doc in (discovery.aggregated(legacy=True), discovery.aggregated(legacy=False)):
        for item in doc["items"]:
            for version in item["versions"]:
                for r in version["resources"]:
                    aggregated.add((item["metadata"].get("name", ""), r["resource"]))
                    if r["resource"] == "deployments":
                        assert r["shortNames"] == ["deploy"] and "patch" in r["verbs"]
                        assert {s["subresource"] for s in r["subresources"]} == {"status", "scale"}
    assert aggregated == served


@pytest.mark.parametrize(("accept", "want"), [
    pytest.param("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
                 "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json", True,
                 id="kubectl-1.32"),
    pytest.param("application/json, */*", False, id="plain-json"),
    pytest.param("", False, id="none"),
])
def test_aggregated_discovery_only_when_asked(accept: str, want: bool) -> None:
    """The aggregated format goes to clients that ask for it first."""
    assert discovery.wants_aggregated(accept) is want


@pytest.mark.parametrize(("error", "code", "reason"), [
    pytest.param(NotFoundError('pods "x" not found'), 404, "NotFound", id="not-found"),
    pytest.param(ConflictError("changed"), 409, "Conflict", id="conflict"),
    pytest.param(InvalidError([FieldError("spec.replicas", "Invalid value", "must be >= 0", -1)]), 422, "Invalid",
                 id="invalid"),
    pytest.param(UnauthorizedError("no"), 401, "Unauthorized", id="unauthorized"),
    pytest.param(HttpError(415, "UnsupportedMediaType", "no"), 415, "UnsupportedMediaType", id="media-type"),
])
def test_errors_become_statuses(error: Exception, code: int, reason: str) -> None:
    """Each error is a Status with Kubernetes' reason and HTTP code; field errors are its causes."""
    out = status.status(error, kind="pods", name="x")  # type: ignore[arg-type]
    assert (out["code"], out["reason"], out["status"]) == (code, reason, "Failure")
    if isinstance(error, InvalidError):
        assert out["details"]["causes"] == [{"reason": "FieldValueInvalid", "field": "spec.replicas",
                                             "message": "Invalid value: -1: must be >= 0"}]


def test_table_has_get_columns_with_wide_ones_at_priority_one() -> None:
    """A Table of pods carries `kubelite get`'s columns; -o wide's extra ones have priority 1."""
    pod = core_pb2.Pod(metadata=meta_pb2.ObjectMeta(name="web-1", namespace="a"),
                       spec=core_pb2.PodSpec(node_name="n1", containers=[core_pb2.Container(name="c")]))
    out = table.table(kinds.lookup("pods"), [pod], {"resourceVersion": "7"})
    names = [(c["name"], c["priority"]) for c in out["columnDefinitions"]]
    assert names[:2] == [("Name", 0), ("READY", 0)] and ("NODE", 1) in names
    row = out["rows"][0]
    assert row["cells"][0] == "web-1" and row["cells"][1] == "0/1"
    assert row["object"]["metadata"]["namespace"] == "a"
    assert table.wants_table("application/json;as=Table;v=v1;g=meta.k8s.io,application/json")
    assert not table.wants_table("application/json")


@pytest.mark.parametrize(("query", "error"), [
    pytest.param("stdout=true", "command: Required value", id="no-command"),
])
def test_exec_refuses_what_it_cannot_serve(query: str, error: str) -> None:
    """No command is refused naming the parameter."""
    from multidict import MultiDict

    from apiserver.rest import streams

    parsed = MultiDict(p.split("=", 1) for p in query.split("&"))
    with pytest.raises(InvalidError, match=error):
        streams.exec_request(parsed, "a", "web", 60)


def test_exit_codes_become_kubectls_status() -> None:
    """A non-zero exit is the NonZeroExitCode Status whose cause kubectl turns into its own exit code."""
    from apiserver.rest import streams

    assert streams.exit_status(0, ["true"]) == {"metadata": {}, "status": "Success"}
    failed = streams.exit_status(3, ["x"])
    assert failed["reason"] == "NonZeroExitCode"
    assert failed["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]


@pytest.mark.parametrize(("query", "attach", "want"), [
    pytest.param("command=ls&stdout=true", False, None, id="exec-plain-runs-to-its-end"),
    pytest.param("command=sh&stdin=true&tty=true", False, (["sh"], True, True), id="exec-terminal"),
    pytest.param("container=c&stdout=true", True, ([], False, False), id="attach-output"),
    pytest.param("stdin=true&tty=true", True, ([], True, True), id="attach-terminal"),
])
def test_interactive_streams(query: str, attach: bool, want: tuple[list[str], bool, bool] | None) -> None:
    """An exec with a terminal and every attach are streamed; an exec without a terminal runs to its end."""
    from multidict import MultiDict

    from apiserver.rest import streams

    start = streams.stream_start(MultiDict(p.split("=", 1) for p in query.split("&")), "a", "web", attach=attach)
    if want is None:
        assert start is None
    else:
        assert start is not None and (list(start.command), start.tty, start.stdin) == want
        assert (start.namespace, start.name) == ("a", "web")


@pytest.mark.parametrize(("query", "attach", "error"), [
    pytest.param("command=ls", True, "command: Forbidden", id="attach-with-command"),
    pytest.param("tty=true", False, "command: Required value", id="exec-without-command"),
])
def test_interactive_streams_refused(query: str, attach: bool, error: str) -> None:
    """An attach naming a command, or an exec naming none, is refused by parameter."""
    from multidict import MultiDict

    from apiserver.rest import streams

    with pytest.raises(InvalidError, match=error):
        streams.stream_start(MultiDict(p.split("=", 1) for p in query.split("&")), "a", "web", attach=attach)


def test_resize_frames() -> None:
    """kubectl's resize frame is a terminal size; anything else is refused as the resize."""
    from apiserver.rest import streams

    size = streams.resize_of(b'{"Width":100,"Height":30}')
    assert (size.width, size.height) == (100, 30)
    with pytest.raises(InvalidError, match="resize"):
        streams.resize_of(b"not json")
