"""Both faces refuse the same bad inputs: what gRPC refuses (validation, admission, conflicts), REST refuses too,
with the Kubernetes reason that matches the gRPC error."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import pytest
from conftest import RunningApiserver, start_apiserver

from api import convert, kinds
from api.errors import ApiError

from .test_rest import raw

POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
       "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}
DEPLOYMENT = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "default"},
              "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "d"}},
                       "template": {"metadata": {"labels": {"app": "d"}},
                                    "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]}}}}
SERVICE = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "default"},
           "spec": {"selector": {"app": "d"}, "ports": [{"port": 80}]}}


def changed(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    node = out
    keys = path.split(".")
    for key in keys[:-1]:
        node = node[int(key)] if key.isdigit() else node[key]
    node[keys[-1]] = value
    return out


CASES = [
    pytest.param(changed(POD, "spec.containers.0.name", "Bad_Name"), "Invalid", id="invalid-container-name"),
    pytest.param(changed(POD, "spec.containers.0.image", ""), "Invalid", id="missing-image"),
    pytest.param(changed(POD, "spec.containers.0.imagePolicy", "x"), "Invalid", id="unknown-field"),
    pytest.param(changed(POD, "metadata.name", "Not a name"), "Invalid", id="invalid-name"),
    pytest.param(changed(POD, "spec.restartPolicy", "Sometimes"), "Invalid", id="unsupported-restart-policy"),
    pytest.param(changed(DEPLOYMENT, "spec.replicas", -1), "Invalid", id="negative-replicas"),
    pytest.param(changed(DEPLOYMENT, "spec.selector", {"matchLabels": {"app": "other"}}), "Invalid",
                 id="selector-not-matching-template"),
    pytest.param(changed(SERVICE, "spec.type", "Magic"), "Invalid", id="unsupported-service-type"),
    pytest.param(changed(SERVICE, "spec.ports", [{"port": 70000}]), "Invalid", id="port-out-of-range"),
    pytest.param(changed(POD, "metadata.namespace", "nowhere"), "NotFound", id="namespace-missing"),
]


@pytest.fixture
async def rest(etcd: str) -> AsyncIterator[RunningApiserver]:
    running = await start_apiserver(etcd, rest_listen=["127.0.0.1:0"])
    try:
        yield running
    finally:
        await running.stop()


async def grpc_create(server: RunningApiserver, doc: dict[str, Any]) -> ApiError | None:
    """Create as the CLI does: the manifest converted (unknown fields refused), then the gRPC Create."""
    async with server.client() as client:
        try:
            await client.create(kinds.unwrap(convert.manifest_to_object(copy.deepcopy(doc))))
        except ApiError as e:
            return e
    return None


def rest_path(doc: dict[str, Any]) -> str:
    kind = kinds.lookup(doc["kind"])
    base = "/api/v1" if not kind.group else f"/apis/{kind.api_version}"
    return f"{base}/namespaces/{doc['metadata']['namespace']}/{kind.resource}"


@pytest.mark.parametrize(("doc", "reason"), CASES)
async def test_both_faces_refuse(rest: RunningApiserver, doc: dict[str, Any], reason: str) -> None:
    """The same bad object is refused by gRPC and by REST, for the same reason, and nothing is stored."""
    grpc_error = await grpc_create(rest, doc)
    assert grpc_error is not None and grpc_error.reason == reason, grpc_error
    code, status = await asyncio.to_thread(raw, rest, "POST", rest_path(doc), doc)
    assert status["kind"] == "Status" and status["reason"] == reason, status
    assert code == {"Invalid": 422, "NotFound": 404}[reason]
    code, _ = await asyncio.to_thread(raw, rest, "GET", f"{rest_path(doc)}/{quote(doc['metadata']['name'])}")
    assert code == 404


async def test_both_faces_refuse_a_stale_update(rest: RunningApiserver) -> None:
    """An update pinned to an old resourceVersion is a conflict on both faces."""
    code, created = await asyncio.to_thread(raw, rest, "POST", rest_path(POD), POD)
    assert code == 201
    stale = created["metadata"]["resourceVersion"]
    labelled = changed(created, "metadata.labels", {"a": "b"})
    code, _ = await asyncio.to_thread(raw, rest, "PUT", f"{rest_path(POD)}/p", labelled)
    assert code == 200
    again = changed(created, "metadata.labels", {"a": "c"})
    again["metadata"]["resourceVersion"] = stale
    code, status = await asyncio.to_thread(raw, rest, "PUT", f"{rest_path(POD)}/p", again)
    assert (code, status["reason"]) == (409, "Conflict")
    async with rest.client() as client:
        obj = kinds.unwrap(convert.manifest_to_object(again))
        with pytest.raises(ApiError) as err:
            await client.update(obj)
    assert err.value.reason == "Conflict"
