"""The OpenAPI v2 document in the protobuf encoding kubectl asks for (`application/com.github.proto-openapi.spec.v2@v1.0
+protobuf`, gnostic's openapi.v2 messages; it takes no JSON for v2): the JSON document of openapi.document_v2
re-encoded with the field numbers of gnostic's OpenAPIv2.proto. Vendor extensions and defaults travel as YAML
text, as gnostic carries them."""

from __future__ import annotations

import functools
from typing import Any

import yaml
from google.protobuf.message import Message

from apiserver.rest import openapi
from apiserver.rest.k8sproto import BOOL, MESSAGE, STRING, Fields, declare

MEDIA_TYPES = ("application/com.github.proto-openapi.spec.v2@v1.0+protobuf",
               "application/com.github.proto-openapi.spec.v2.v1.0+protobuf")
RETURNED = MEDIA_TYPES[1]  # as Kubernetes answers: Go's media type parser refuses the "@"

_MESSAGES: dict[str, Fields] = {
    "Document": [("swagger", 1, STRING, False, ""), ("info", 2, MESSAGE, False, "Info"),
                 ("consumes", 6, STRING, True, ""), ("produces", 7, STRING, True, ""),
                 ("paths", 8, MESSAGE, False, "Paths"), ("definitions", 9, MESSAGE, False, "Definitions")],
    "Info": [("title", 1, STRING, False, ""), ("version", 2, STRING, False, "")],
    "Paths": [("path", 2, MESSAGE, True, "NamedPathItem")],
    "NamedPathItem": [("name", 1, STRING, False, ""), ("value", 2, MESSAGE, False, "PathItem")],
    "PathItem": [("get", 2, MESSAGE, False, "Operation"), ("put", 3, MESSAGE, False, "Operation"),
                 ("post", 4, MESSAGE, False, "Operation"), ("delete", 5, MESSAGE, False, "Operation"),
                 ("patch", 8, MESSAGE, False, "Operation")],
    "Operation": [("operation_id", 5, STRING, False, ""), ("parameters", 8, MESSAGE, True, "ParametersItem"),
                  ("responses", 9, MESSAGE, False, "Responses"),
                  ("vendor_extension", 13, MESSAGE, True, "NamedAny")],
    "ParametersItem": [("parameter", 1, MESSAGE, False, "Parameter")],
    "Parameter": [("non_body_parameter", 2, MESSAGE, False, "NonBodyParameter")],
    "NonBodyParameter": [("query_parameter_sub_schema", 3, MESSAGE, False, "QueryParameterSubSchema")],
    "QueryParameterSubSchema": [("in", 2, STRING, False, ""), ("name", 4, STRING, False, ""),
                                ("type", 6, STRING, False, ""), ("unique_items", 20, BOOL, False, "")],
    "Responses": [("response_code", 1, MESSAGE, True, "NamedResponseValue")],
    "NamedResponseValue": [("name", 1, STRING, False, ""), ("value", 2, MESSAGE, False, "ResponseValue")],
    "ResponseValue": [("response", 1, MESSAGE, False, "Response")],
    "Response": [("description", 1, STRING, False, "")],
    "NamedAny": [("name", 1, STRING, False, ""), ("value", 2, MESSAGE, False, "Any")],
    "Any": [("yaml", 2, STRING, False, "")],
    "Definitions": [("additional_properties", 1, MESSAGE, True, "NamedSchema")],
    "Properties": [("additional_properties", 1, MESSAGE, True, "NamedSchema")],
    "NamedSchema": [("name", 1, STRING, False, ""), ("value", 2, MESSAGE, False, "Schema")],
    "AdditionalPropertiesItem": [("schema", 1, MESSAGE, False, "Schema"), ("boolean", 2, BOOL, False, "")],
    "TypeItem": [("value", 1, STRING, True, "")],
    "ItemsItem": [("schema", 1, MESSAGE, True, "Schema")],
    "Schema": [("_ref", 1, STRING, False, ""), ("format", 2, STRING, False, ""),
               ("description", 4, STRING, False, ""), ("default", 5, MESSAGE, False, "Any"),
               ("additional_properties", 21, MESSAGE, False, "AdditionalPropertiesItem"),
               ("type", 22, MESSAGE, False, "TypeItem"), ("items", 23, MESSAGE, False, "ItemsItem"),
               ("all_of", 24, MESSAGE, True, "Schema"), ("properties", 25, MESSAGE, False, "Properties"),
               ("vendor_extension", 31, MESSAGE, True, "NamedAny")],
}
_VERBS = ("get", "put", "post", "delete", "patch")


@functools.cache
def _classes() -> dict[str, type[Message]]:
    return declare("openapi.v2", _MESSAGES)


def _yaml(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=False, sort_keys=False)


def _extension(out: Any, name: str, value: Any) -> None:
    named = out.vendor_extension.add()
    named.name = name
    named.value.yaml = _yaml(value)


def _schema(js: dict[str, Any], out: Any) -> None:
    """One JSON schema into a Schema message; a key the encoder does not know is an error, not dropped."""
    for key, value in js.items():
        if key == "$ref":
            out._ref = value
        elif key in ("format", "description"):
            setattr(out, key, value)
        elif key == "type":
            out.type.value.append(value)
        elif key == "default":
            out.default.yaml = _yaml(value)
        elif key == "items":
            _schema(value, out.items.schema.add())
        elif key == "allOf":
            for item in value:
                _schema(item, out.all_of.add())
        elif key == "additionalProperties":
            if isinstance(value, bool):
                out.additional_properties.boolean = value
            else:
                _schema(value, out.additional_properties.schema)
        elif key == "properties":
            out.properties.SetInParent()
            for name, prop in value.items():
                named = out.properties.additional_properties.add()
                named.name = name
                _schema(prop, named.value)
        elif key.startswith("x-"):
            _extension(out, key, value)
        else:
            raise ValueError(f"OpenAPI v2 schema key {key!r} has no protobuf encoding here")


def _operation(js: dict[str, Any], out: Any) -> None:
    out.operation_id = js["operationId"]
    for p in js["parameters"]:
        query = out.parameters.add().parameter.non_body_parameter.query_parameter_sub_schema
        setattr(query, "in", p["in"])
        query.name, query.type, query.unique_items = p["name"], p["type"], p["uniqueItems"]
    for code, response in js["responses"].items():
        named = out.responses.response_code.add()
        named.name = code
        named.value.response.description = response["description"]
    for key, value in js.items():
        if key.startswith("x-"):
            _extension(out, key, value)


def encode(doc: dict[str, Any]) -> bytes:
    """openapi.document_v2() as gnostic's openapi.v2.Document."""
    out: Any = _classes()["Document"]()
    out.swagger = doc["swagger"]
    out.info.title, out.info.version = doc["info"]["title"], doc["info"]["version"]
    out.consumes.extend(doc["consumes"])
    out.produces.extend(doc["produces"])
    for path, item in doc["paths"].items():
        named = out.paths.path.add()
        named.name = path
        for verb in _VERBS:
            if verb in item:
                _operation(item[verb], getattr(named.value, verb))
    for name, schema in doc["definitions"].items():
        named = out.definitions.additional_properties.add()
        named.name = name
        _schema(schema, named.value)
    return out.SerializeToString()


@functools.cache
def document() -> bytes:
    """The served document, encoded once."""
    return encode(openapi.document_v2())


def wanted(accept: str) -> bool:
    """Whether an Accept header asks for this encoding."""
    return any(part.split(";")[0].strip() in MEDIA_TYPES for part in accept.split(","))
