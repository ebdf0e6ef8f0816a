"""The TokenRequest over REST: its JSON and protobuf bodies as the gRPC CreateToken request, its errors by field."""

from __future__ import annotations

from typing import Any

import pytest

from api.errors import InvalidError
from apiserver.rest import k8sproto, tokens

# What kubectl 1.32 sends for `kubectl create token default` (its -v=8 dump): every field empty.
ENVELOPE = bytes.fromhex("6b3873000a280a18") + b"authentication.k8s.io/v1" + bytes.fromhex("120c") + b"TokenRequest"
META = bytes.fromhex("0a0012001a00220 02a0032003800 4200".replace(" ", ""))
REST = bytes.fromhex("12001a040a001200")  # spec, status
TAIL = bytes.fromhex("1a002200")  # contentEncoding, contentType


def _body(meta: bytes) -> bytes:
    raw = bytes([0x0A, len(meta)]) + meta + REST
    return ENVELOPE + bytes([0x12, len(raw)]) + raw + TAIL


KUBECTL_BODY = _body(META)


def _spec(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}


@pytest.mark.parametrize("body, want", [
    pytest.param({}, {}, id="empty"),
    pytest.param(_spec(audiences=["vault"], expirationSeconds=900), {"audiences": ["vault"],
                                                                     "expiration_seconds": 900}, id="audience"),
    pytest.param(_spec(boundObjectRef={"kind": "Pod", "apiVersion": "v1", "name": "web", "uid": "u1"}),
                 {"pod_name": "web", "pod_uid": "u1"}, id="bound-pod"),
    pytest.param({"metadata": {"name": "default", "namespace": "ns"}}, {}, id="metadata-matching"),
])
def test_token_request_maps_to_create_token(body: dict[str, Any], want: dict[str, Any]) -> None:
    """A TokenRequest body becomes the CreateToken request for the path's service account."""
    req, warnings = tokens.token_request(body, "ns", "default", strict=True)
    assert (req.namespace, req.service_account, warnings) == ("ns", "default", [])
    assert list(req.audiences) == want.get("audiences", [])
    assert req.expiration_seconds == want.get("expiration_seconds", 0)
    assert (req.pod_name, req.pod_uid) == (want.get("pod_name", ""), want.get("pod_uid", ""))


@pytest.mark.parametrize("body, field", [
    pytest.param(_spec(boundObjectRef={"kind": "Secret", "name": "s"}), "spec.boundObjectRef.kind", id="secret"),
    pytest.param(_spec(boundObjectRef={"kind": "Pod"}), "spec.boundObjectRef.name", id="pod-no-name"),
    pytest.param(_spec(boundObjectRef={"kind": "Pod", "apiVersion": "v2", "name": "p"}),
                 "spec.boundObjectRef.apiVersion", id="pod-bad-version"),
    pytest.param(_spec(expirationSeconds="1h"), "spec.expirationSeconds", id="seconds-not-int"),
    pytest.param(_spec(audiences="vault"), "spec.audiences", id="audiences-not-list"),
    pytest.param(_spec(extra=1), "spec.extra", id="unknown-spec-field"),
    pytest.param({"metadata": {"name": "other"}}, "metadata.name", id="other-name"),
    pytest.param({"kind": "Pod"}, "kind", id="other-kind"),
])
def test_token_request_errors_name_the_field(body: dict[str, Any], field: str) -> None:
    """A TokenRequest the server cannot honour is refused with the field at fault, never half-used."""
    with pytest.raises(InvalidError) as e:
        tokens.token_request(body, "ns", "default", strict=True)
    assert [err.path for err in e.value.errors] == [field]


def test_unknown_fields_warn_when_not_strict() -> None:
    """fieldValidation=Warn drops an unknown field with a warning naming it."""
    req, warnings = tokens.token_request(_spec(extra=1, expirationSeconds=600), "ns", "d", strict=False)
    assert (req.expiration_seconds, warnings) == (600, ['unknown field "spec.extra"'])


def test_kubectls_protobuf_body_decodes() -> None:
    """The protobuf body kubectl sends (Go writes its empty fields too) reads as the JSON kubectl would send: an
    empty TokenRequest, which asks for the defaults."""
    body = k8sproto.decode(KUBECTL_BODY)
    assert body == {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                    "metadata": {"creationTimestamp": None}, "spec": {},
                    "status": {"token": "", "expirationTimestamp": None}}
    req, warnings = tokens.token_request(body, "ns", "default", strict=True)
    assert (req.service_account, list(req.audiences), req.expiration_seconds, warnings) == ("default", [], 0, [])


def test_protobuf_bodies_refused() -> None:
    """Another kind, a missing magic, or a field the TokenRequest does not take is refused, not skipped."""
    with pytest.raises(InvalidError, match="magic"):
        k8sproto.decode(b"\x0a\x00")
    other = KUBECTL_BODY.replace(b"TokenRequest", b"TokenRequesX")
    with pytest.raises(InvalidError) as e:
        k8sproto.decode(other)
    assert e.value.errors[0].path == "kind"
    # A field Kubernetes 1.32's ObjectMeta does not have (number 99, a varint): refused by number.
    with pytest.raises(InvalidError) as e:
        k8sproto.decode(_body(META + bytes.fromhex("980601")))
    assert e.value.errors[0].path == "metadata[field 99]"
    # metadata.generateName set: declared, not a TokenRequest's, refused by name.
    req = k8sproto.decode(_body(META + bytes.fromhex("1201") + b"x"))
    with pytest.raises(InvalidError) as e:
        tokens.token_request(req, "ns", "default", strict=True)
    assert e.value.errors[0].path == "metadata.generateName"


def test_kubectls_self_subject_review_decodes() -> None:
    """`kubectl auth whoami`'s protobuf SelfSubjectReview (empty userInfo) decodes to an empty review; a
    TokenRequest sent to its path is refused by kind."""
    review = (bytes.fromhex("6b3873000a2d0a18") + b"authentication.k8s.io/v1" + bytes.fromhex("1211")
              + b"SelfSubjectReview" + bytes.fromhex("121a") + bytes([0x0A, len(META)]) + META
              + bytes.fromhex("12060a040a001200") + TAIL)
    want = ("authentication.k8s.io/v1", "SelfSubjectReview")
    assert k8sproto.decode(review, want) == {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview",
                                             "metadata": {"creationTimestamp": None}, "status": {"userInfo": {}}}
    with pytest.raises(InvalidError) as e:
        k8sproto.decode(KUBECTL_BODY, want)
    assert e.value.errors[0].path == "kind"
