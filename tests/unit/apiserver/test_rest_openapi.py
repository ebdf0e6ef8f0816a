"""OpenAPI v2: the JSON document and its protobuf encoding (gnostic's openapi.v2 field numbers) agree."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from apiserver.rest import openapi, openapi_pb


def _decoded() -> Any:
    doc: Any = openapi_pb._classes()["Document"]()
    doc.ParseFromString(openapi_pb.document())
    return doc


def test_protobuf_carries_every_path_and_definition() -> None:
    """Each path and definition of the JSON document is in the protobuf one, by name."""
    js, pb = openapi.document_v2(), _decoded()
    assert pb.swagger == "2.0"
    assert [p.name for p in pb.paths.path] == list(js["paths"])
    assert [d.name for d in pb.definitions.additional_properties] == list(js["definitions"])


def test_protobuf_schema_fields_and_extensions() -> None:
    """A kind's schema keeps its references, types, list merge keys and group-version-kind (as YAML)."""
    schemas = {d.name: d.value for d in _decoded().definitions.additional_properties}
    pod = schemas["kubelite.v1.Pod"]
    props = {p.name: p.value for p in pod.properties.additional_properties}
    assert props["spec"]._ref == "#/definitions/kubelite.v1.PodSpec"
    ext = {e.name: yaml.safe_load(e.value.yaml) for e in pod.vendor_extension}
    assert ext["x-kubernetes-group-version-kind"] == [{"group": "", "version": "v1", "kind": "Pod"}]
    spec = {p.name: p.value for p in schemas["kubelite.v1.PodSpec"].properties.additional_properties}
    containers = spec["containers"]
    assert list(containers.type.value) == ["array"]
    assert containers.items.schema[0]._ref == "#/definitions/kubelite.v1.Container"
    assert {e.name: yaml.safe_load(e.value.yaml) for e in containers.vendor_extension}[
        "x-kubernetes-patch-merge-key"] == "name"
    selector = spec["nodeSelector"]
    assert list(selector.additional_properties.schema.type.value) == ["string"]


@pytest.mark.parametrize("accept, wanted, json_ok", [
    pytest.param("application/com.github.proto-openapi.spec.v2@v1.0+protobuf", True, False, id="kubectl"),
    pytest.param("application/json", False, True, id="json"),
    pytest.param("", False, True, id="none"),
    pytest.param("*/*", False, True, id="any"),
    pytest.param("text/html", False, False, id="html"),
])
def test_accept_negotiation(accept: str, wanted: bool, json_ok: bool) -> None:
    """The protobuf encoding when asked for by name; JSON for JSON, anything, or no Accept."""
    assert (openapi_pb.wanted(accept), openapi.accepts_json(accept)) == (wanted, json_ok)


def test_an_unknown_schema_key_is_an_error() -> None:
    """A schema key the encoder does not know fails loudly instead of vanishing from the document."""
    out: Any = openapi_pb._classes()["Schema"]()
    with pytest.raises(ValueError, match="enum"):
        openapi_pb._schema({"enum": ["a"]}, out)
