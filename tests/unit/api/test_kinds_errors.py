"""Kind lookup by every name a user types, the Object envelope, and the error <-> gRPC code mapping."""

from __future__ import annotations

import functools

import grpc
import pytest

from api import errors, kinds
from api.pb import api_pb2, apps_pb2, core_pb2


@pytest.mark.parametrize(("name", "kind"), [
    pytest.param("po", "Pod", id="po"),
    pytest.param("pod", "Pod", id="pod"),
    pytest.param("pods", "Pod", id="pods"),
    pytest.param("Pod", "Pod", id="Pod"),
    pytest.param("svc", "Service", id="svc"),
    pytest.param("deploy", "Deployment", id="deploy"),
    pytest.param("rs", "ReplicaSet", id="rs"),
    pytest.param("no", "Node", id="no"),
    pytest.param("ns", "Namespace", id="ns"),
    pytest.param("ep", "Endpoints", id="ep"),
    pytest.param("endpoints", "Endpoints", id="endpoints"),
    pytest.param("ev", "Event", id="ev"),
    pytest.param("leases", "Lease", id="leases"),
    pytest.param("DEPLOYMENTS", "Deployment", id="upper-case"),
])
def test_lookup(name: str, kind: str) -> None:
    """Kinds are found by kind, resource, singular and short names, as kubectl finds them."""
    assert kinds.lookup(name).kind == kind


def test_lookup_unknown_names_the_supported_kinds() -> None:
    """An unknown resource type is refused with the list of supported kinds."""
    with pytest.raises(errors.UnsupportedError) as err:
        kinds.lookup("horizontalpodautoscalers")
    assert err.value.message.startswith('the server doesn\'t have a resource type "horizontalpodautoscalers"; '
                                         "supported: Namespace, Node, Pod, Service")
    assert err.value.message.endswith(kinds.SUPPORTED_TEXT)
    assert all(k.kind in kinds.SUPPORTED_TEXT for k in kinds.KINDS)


@pytest.mark.parametrize("obj", [
    pytest.param(core_pb2.Pod(metadata={"name": "p"}), id="pod"),
    pytest.param(apps_pb2.Deployment(metadata={"name": "d"}), id="deployment"),
    pytest.param(apps_pb2.Lease(metadata={"name": "l"}), id="lease"),
])
def test_wrap_unwrap(obj: object) -> None:
    """wrap and unwrap are inverse, and the envelope knows its kind."""
    env = kinds.wrap(obj)  # type: ignore[arg-type]
    assert kinds.unwrap(env) == obj
    assert kinds.kind_of_envelope(env) is kinds.of(obj)  # type: ignore[arg-type]


def test_empty_envelope_is_invalid() -> None:
    """An Object with no kind set is an invalid request, not a crash."""
    with pytest.raises(errors.InvalidError, match="object: Required value"):
        kinds.unwrap(api_pb2.Object())
    with pytest.raises(errors.InvalidError, match="object: Required value"):
        kinds.kind_of_envelope(api_pb2.Object())


@pytest.mark.parametrize(("cls", "code"), [
    pytest.param(errors.NotFoundError, grpc.StatusCode.NOT_FOUND, id="not-found"),
    pytest.param(errors.AlreadyExistsError, grpc.StatusCode.ALREADY_EXISTS, id="already-exists"),
    pytest.param(errors.ConflictError, grpc.StatusCode.ABORTED, id="conflict"),
    pytest.param(errors.InvalidError, grpc.StatusCode.INVALID_ARGUMENT, id="invalid"),
    pytest.param(errors.ExpiredError, grpc.StatusCode.OUT_OF_RANGE, id="expired"),
    pytest.param(errors.TooLargeError, grpc.StatusCode.RESOURCE_EXHAUSTED, id="too-large"),
    pytest.param(errors.UnavailableError, grpc.StatusCode.UNAVAILABLE, id="unavailable"),
    pytest.param(errors.ForbiddenError, grpc.StatusCode.FAILED_PRECONDITION, id="forbidden"),
    pytest.param(errors.UnauthorizedError, grpc.StatusCode.UNAUTHENTICATED, id="unauthorized"),
    pytest.param(errors.TimeoutError_, grpc.StatusCode.DEADLINE_EXCEEDED, id="timeout"),
    pytest.param(errors.InternalError, grpc.StatusCode.INTERNAL, id="internal"),
])
def test_error_codes_round_trip(cls: type[errors.ApiError], code: grpc.StatusCode) -> None:
    """Each error travels as its gRPC code and comes back as the same class with the same message."""
    assert cls.code == code
    back = errors.from_grpc(code, "the message")
    assert type(back) is cls
    assert back.message == "the message"


def test_unknown_code_keeps_the_code() -> None:
    """A status with no class of its own comes back as ApiError carrying that code."""
    err = errors.from_grpc(grpc.StatusCode.DATA_LOSS, "")
    assert type(err) is errors.ApiError
    assert err.code == grpc.StatusCode.DATA_LOSS
    assert err.message == "DATA_LOSS"


@pytest.mark.parametrize(("details", "cls"), [
    pytest.param("too many concurrent watches from this client (limit 3)", errors.TooManyRequestsError, id="load"),
    pytest.param("Cannot evict pod as it would violate the pod's disruption budget.", errors.TooManyRequestsError,
                 id="disruption-budget"),
    pytest.param("object is larger than 1572864 bytes", errors.TooLargeError, id="size"),
])
def test_resource_exhausted_says_which(details: str, cls: type[errors.ApiError]) -> None:
    """RESOURCE_EXHAUSTED comes back as TooManyRequests for load and disruption budgets, TooLarge for sizes."""
    assert type(errors.from_grpc(grpc.StatusCode.RESOURCE_EXHAUSTED, details)) is cls


@pytest.mark.parametrize(("error", "text"), [
    pytest.param(errors.FieldError("spec.x", "Required value"), "spec.x: Required value", id="required"),
    pytest.param(errors.FieldError("spec.x", "Invalid value", "too big", 7), "spec.x: Invalid value: 7: too big",
                 id="invalid-with-value"),
    pytest.param(errors.FieldError("spec.x", "Forbidden", "no", 7), "spec.x: Forbidden: no",
                 id="forbidden-hides-value"),
    pytest.param(errors.FieldError("spec.x", "Not found", "", "data"), "spec.x: Not found: 'data'", id="not-found"),
])
def test_field_error_text(error: errors.FieldError, text: str) -> None:
    """Field errors print as `path: kind[: value][: detail]`."""
    assert str(error) == text


@pytest.mark.parametrize("value", [
    pytest.param("v" * 100_000, id="long-string"),
    pytest.param(list(range(100_000)), id="long-list"),
    pytest.param(functools.reduce(lambda inner, _: {"a": inner}, range(10_000), "x"), id="deep-dict"),
])
def test_field_error_cuts_huge_values(value: object) -> None:
    """A huge or deeply nested value is shown cut short, so the message stays one short line."""
    text = str(errors.FieldError("spec.x", "Invalid value", "bad", value))
    assert text.startswith("spec.x: Invalid value: ") and text.endswith(": bad")
    assert "..." in text and len(text) < 200


def test_invalid_error_joins_field_errors() -> None:
    """An InvalidError lists every field error on one line, after its prefix."""
    err = errors.InvalidError([errors.FieldError("a", "Required value"), errors.FieldError("b", "Required value")],
                              prefix='Pod "p" is invalid: ')
    assert err.message == 'Pod "p" is invalid: a: Required value; b: Required value'
    assert len(err.errors) == 2
