"""One error hierarchy for the whole system, and its mapping to gRPC codes.

The apiserver raises these; one interceptor turns them into gRPC statuses and
the client turns the statuses back into the same classes, so every component
and the CLI catch `NotFoundError`, never a grpc code.
"""

from __future__ import annotations

import reprlib
from dataclasses import dataclass

import grpc

# Values shown in field errors are cut short: a huge or deeply nested value must
# neither flood the one-line message nor overflow the stack while printing it.
_SHOW = reprlib.Repr()
_SHOW.maxstring = _SHOW.maxother = 100
_SHOW.maxlevel = 3
_SHOWS_VALUE = ("Invalid value", "Unsupported value", "Duplicate value", "Not found")


class ApiError(Exception):
    """Base class; `code` is the gRPC status it travels as."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN
    reason: str = "InternalError"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFoundError(ApiError):
    code = grpc.StatusCode.NOT_FOUND
    reason = "NotFound"


class AlreadyExistsError(ApiError):
    code = grpc.StatusCode.ALREADY_EXISTS
    reason = "AlreadyExists"


class ConflictError(ApiError):
    """A compare-and-swap lost: the object changed since it was read."""

    code = grpc.StatusCode.ABORTED
    reason = "Conflict"


@dataclass(frozen=True)
class FieldError:
    path: str
    kind: str  # Required value, Invalid value, Unsupported value, Duplicate value, Forbidden, ...
    detail: str = ""
    value: object = None

    def __str__(self) -> str:
        text = f"{self.path}: {self.kind}"
        if self.value is not None and self.kind in _SHOWS_VALUE:
            text += f": {_SHOW.repr(self.value)}"
        if self.detail:
            text += f": {self.detail}"
        return text


class InvalidError(ApiError):
    """Validation failed; the message lists every field error, one per line."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = "Invalid"

    def __init__(self, errors: list[FieldError] | str, *, prefix: str = "") -> None:
        if isinstance(errors, str):
            self.errors: list[FieldError] = []
            super().__init__(f"{prefix}{errors}")
            return
        self.errors = list(errors)
        super().__init__(prefix + "; ".join(str(e) for e in self.errors))


class UnsupportedError(ApiError):
    """An unknown kind, resource or verb."""

    code = grpc.StatusCode.INVALID_ARGUMENT
    reason = "Unsupported"


class ExpiredError(ApiError):
    """A watch or continue token from a version the server no longer has: relist."""

    code = grpc.StatusCode.OUT_OF_RANGE
    reason = "Expired"


class TooLargeError(ApiError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "RequestEntityTooLarge"


class TooManyRequestsError(ApiError):
    """The server refused the call for the load its caller already has open: retry later, or spread out."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED
    reason = "TooManyRequests"


class UnavailableError(ApiError):
    code = grpc.StatusCode.UNAVAILABLE
    reason = "ServiceUnavailable"


class CertificateError(UnavailableError):
    """A TLS handshake failed for a reason the client can name: a foreign, expired or missing certificate."""

    reason = "CertificateError"


class ForbiddenError(ApiError):
    code = grpc.StatusCode.FAILED_PRECONDITION
    reason = "Forbidden"


class PermissionDeniedError(ForbiddenError):
    """Authorization said no: the caller may not do this (RBAC, the node authorizer)."""

    code = grpc.StatusCode.PERMISSION_DENIED


class UnauthorizedError(ApiError):
    code = grpc.StatusCode.UNAUTHENTICATED
    reason = "Unauthorized"


class TimeoutError_(ApiError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED
    reason = "Timeout"


class UnimplementedError(ApiError):
    """The server does not serve the method (one older than it): fall back to what it does serve."""

    code = grpc.StatusCode.UNIMPLEMENTED
    reason = "NotImplemented"


class InternalError(ApiError):
    """The server failed in a way a retry of the same request will not mend."""

    code = grpc.StatusCode.INTERNAL
    reason = "InternalError"


_BY_CODE: dict[grpc.StatusCode, type[ApiError]] = {
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExistsError,
    grpc.StatusCode.ABORTED: ConflictError,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidError,
    grpc.StatusCode.OUT_OF_RANGE: ExpiredError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: TooLargeError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.FAILED_PRECONDITION: ForbiddenError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthorizedError,
    grpc.StatusCode.DEADLINE_EXCEEDED: TimeoutError_,
    grpc.StatusCode.INTERNAL: InternalError,
    grpc.StatusCode.UNIMPLEMENTED: UnimplementedError,
}
_STATUS_BY_VALUE = {c.value[0]: c for c in grpc.StatusCode}


def from_grpc(code: grpc.StatusCode, details: str) -> ApiError:
    """The error class a gRPC status stands for (ApiError for unknown codes)."""
    cls = _BY_CODE.get(code, ApiError)
    if cls is TooLargeError and details.startswith(("too many concurrent", "Cannot evict pod")):
        cls = TooManyRequestsError  # the RESOURCE_EXHAUSTED that are about load or a budget, not size
    if cls is InvalidError:
        return InvalidError(details)
    err = cls(details or code.name)
    if cls is ApiError:
        err.code = code
    return err


def from_status(code: int, details: str) -> ApiError:
    """The error a numeric gRPC status code (as carried inside a message) stands for."""
    return from_grpc(_STATUS_BY_VALUE.get(code, grpc.StatusCode.UNKNOWN), details)
