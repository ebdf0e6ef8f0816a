"""Errors as Kubernetes' `Status` objects, with the HTTP code each reason travels as."""

from __future__ import annotations

from typing import Any

from api.errors import (
    AlreadyExistsError,
    ApiError,
    ConflictError,
    ExpiredError,
    FieldError,
    ForbiddenError,
    InternalError,
    InvalidError,
    NotFoundError,
    TimeoutError_,
    TooLargeError,
    TooManyRequestsError,
    UnauthorizedError,
    UnavailableError,
    UnsupportedError,
)

# (HTTP code, Kubernetes reason) per error class; the first match in order wins (subclasses first).
_CODES: tuple[tuple[type[ApiError], int, str], ...] = (
    (NotFoundError, 404, "NotFound"),
    (AlreadyExistsError, 409, "AlreadyExists"),
    (ConflictError, 409, "Conflict"),
    (InvalidError, 422, "Invalid"),
    (UnsupportedError, 400, "BadRequest"),
    (ExpiredError, 410, "Expired"),
    (TooManyRequestsError, 429, "TooManyRequests"),
    (TooLargeError, 413, "RequestEntityTooLarge"),
    (UnavailableError, 503, "ServiceUnavailable"),
    (ForbiddenError, 403, "Forbidden"),
    (UnauthorizedError, 401, "Unauthorized"),
    (TimeoutError_, 504, "Timeout"),
    (InternalError, 500, "InternalError"),
)

# Field error kinds (api/errors.py FieldError.kind) as Kubernetes' cause types.
_CAUSES = {
    "Required value": "FieldValueRequired",
    "Invalid value": "FieldValueInvalid",
    "Unsupported value": "FieldValueNotSupported",
    "Duplicate value": "FieldValueDuplicate",
    "Forbidden": "FieldValueForbidden",
    "Too long": "FieldValueTooLong",
    "Too many": "FieldValueTooMany",
    "Not found": "FieldValueNotFound",
    "unknown field": "FieldValueInvalid",
}


class HttpError(ApiError):
    """An error only the REST face has (a method not allowed, a media type not served); `status` is its code."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


def code_of(e: ApiError) -> tuple[int, str]:
    """The HTTP status and Kubernetes reason of an error."""
    if isinstance(e, HttpError):
        return e.status, e.reason
    for cls, status, reason in _CODES:
        if isinstance(e, cls):
            return status, reason
    return 500, "InternalError"


def cause(err: FieldError) -> dict[str, Any]:
    message = str(err).removeprefix(f"{err.path}: ")
    return {"reason": _CAUSES.get(err.kind, "FieldValueInvalid"), "message": message, "field": err.path}


def status(e: ApiError, *, kind: str = "", group: str = "", name: str = "") -> dict[str, Any]:
    """The Status object Kubernetes answers a failed request with."""
    code, reason = code_of(e)
    details: dict[str, Any] = {}
    if name:
        details["name"] = name
    if group:
        details["group"] = group
    if kind:
        details["kind"] = kind
    if isinstance(e, InvalidError) and e.errors:
        details["causes"] = [cause(err) for err in e.errors]
    out: dict[str, Any] = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                           "message": e.message, "reason": reason}
    if details:
        out["details"] = details
    out["code"] = code
    return out


def success(*, kind: str = "", group: str = "", name: str = "", uid: str = "") -> dict[str, Any]:
    details = {k: v for k, v in (("name", name), ("group", group), ("kind", kind), ("uid", uid)) if v}
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}
