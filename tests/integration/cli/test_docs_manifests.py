"""Manifests from the Kubernetes documentation apply unchanged and read back with the same content."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from api import kinds

from .conftest import DOCS, Kubelite

FILES = sorted(DOCS.glob("*.yaml"))


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def assert_contains(got: Any, want: Any, path: str = "") -> None:
    """Every field of `want` is in `got` with the same value; `got` may have more (server defaults)."""
    if isinstance(want, dict):
        assert isinstance(got, dict), f"{path}: expected an object, got {got!r}"
        for key, value in want.items():
            assert key in got, f"{path}.{key}: missing in {sorted(got)}"
            assert_contains(got[key], value, f"{path}.{key}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), f"{path}: {got!r} != {want!r}"
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            assert_contains(g, w, f"{path}[{i}]")
    else:
        assert got == want, f"{path}: {got!r} != {want!r}"


def _ref(doc: dict[str, Any]) -> tuple[str, str]:
    return kinds.lookup(doc["kind"]).resource, doc["metadata"]["name"]


def test_the_manifests_are_here() -> None:
    """The documentation manifests cover pods (single and multi-container), a Deployment and the Service kinds."""
    names = {p.stem for p in FILES}
    assert {"nginx-pod", "two-container-pod", "nginx-deployment", "my-service", "nodeport-service",
            "multi-port-service"} <= names
    two = _docs(DOCS / "two-container-pod.yaml")[0]
    assert len(two["spec"]["containers"]) == 2 and two["spec"]["volumes"][0]["emptyDir"] == {}
    assert _docs(DOCS / "my-service.yaml")[0]["spec"]["ports"][0]["targetPort"] == 9376


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
async def test_apply_and_read_back(kubelite: Kubelite, path: Path) -> None:
    """`kubelite apply -f` creates every object of the file, and `get -o yaml` and `-o json` show every field the
    manifest sets with the same value."""
    docs = _docs(path)
    result = await kubelite("apply", "-f", str(path))
    assert result.code == 0, result.err
    expected = []
    for doc in docs:
        kind = kinds.lookup(doc["kind"])
        prefix = f"{kind.kind.lower()}.{kind.group}" if kind.group else kind.kind.lower()
        expected.append(f"{prefix}/{doc['metadata']['name']} created")
    assert sorted(result.out.splitlines()) == sorted(expected)
    assert result.err == ""
    for doc in docs:
        resource, name = _ref(doc)
        as_yaml = await kubelite("get", resource, name, "-o", "yaml")
        assert as_yaml.code == 0, as_yaml.err
        assert_contains(yaml.safe_load(as_yaml.out), doc)
        as_json = await kubelite("get", resource, name, "-o", "json")
        got = json.loads(as_json.out)
        assert_contains(got, doc)
        assert got["metadata"]["namespace"] == "default"
        assert got["metadata"]["uid"] and got["metadata"]["creationTimestamp"]


async def test_read_back_applies_again(kubelite: Kubelite, tmp_path: Path) -> None:
    """What `get -o yaml` prints for several kinds is one List that applies again without changing any spec."""
    await kubelite("apply", "-f", str(DOCS))
    listing = await kubelite("get", "po,svc,deploy", "-o", "yaml")
    items = yaml.safe_load(listing.out)
    assert items["kind"] == "List"
    assert len(items["items"]) == sum(len(_docs(p)) for p in FILES)
    out = tmp_path / "all.yaml"
    out.write_text(listing.out)
    again = await kubelite("apply", "-f", str(out))
    assert again.code == 0, again.err
    assert len(again.out.splitlines()) == len(items["items"])
    after = yaml.safe_load((await kubelite("get", "po,svc,deploy", "-o", "yaml")).out)["items"]
    for before, now in zip(items["items"], after, strict=True):
        assert now["metadata"]["name"] == before["metadata"]["name"]
        assert now["spec"] == before["spec"]
        assert now["metadata"]["generation"] == before["metadata"]["generation"]


async def test_apply_directory_and_server_defaults(kubelite: Kubelite) -> None:
    """A directory applies in one go; the server adds its defaults and allocations beside the user's fields."""
    result = await kubelite("apply", "-f", str(DOCS))
    assert result.code == 0, result.err
    pod = json.loads((await kubelite("get", "pod", "nginx", "-o", "json")).out)
    container = pod["spec"]["containers"][0]
    assert pod["spec"]["restartPolicy"] == "Always"
    assert pod["spec"]["terminationGracePeriodSeconds"] == 30
    assert container["ports"][0]["protocol"] == "TCP"
    assert container["imagePullPolicy"] == "IfNotPresent"
    svc = json.loads((await kubelite("get", "svc", "my-nodeport-service", "-o", "json")).out)
    assert svc["spec"]["ports"][0]["nodePort"] == 30007
    assert svc["spec"]["clusterIP"].startswith("10.96.")
    multi = json.loads((await kubelite("get", "svc", "my-multiport-service", "-o", "json")).out)
    assert [(p["name"], p["targetPort"]) for p in multi["spec"]["ports"]] == [("http", 9376), ("https", 9377)]
    named = json.loads((await kubelite("get", "svc", "nginx-service", "-o", "json")).out)
    assert named["spec"]["ports"][0]["targetPort"] == "http-web-svc"
    dep = json.loads((await kubelite("get", "deploy", "nginx-deployment", "-o", "json")).out)
    assert dep["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": "25%", "maxSurge": "25%"}
