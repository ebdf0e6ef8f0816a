"""serviceaccounts/token over REST: an authentication.k8s.io/v1 TokenRequest as the gRPC CreateToken request, and
its answer back as a TokenRequest with `status.token` and `status.expirationTimestamp`."""

from __future__ import annotations

import base64
import json
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from api import convert
from api.errors import FieldError, InvalidError
from api.pb import api_pb2

API_VERSION = "authentication.k8s.io/v1"
KIND = "TokenRequest"
_TOP = ("apiVersion", "kind", "metadata", "spec", "status")
_META = ("name", "namespace", "creationTimestamp")
_SPEC = ("audiences", "expirationSeconds", "boundObjectRef")
_REF = ("kind", "apiVersion", "name", "uid")
_BOUND = ("Pod",)  # what a token may be bound to here


def _object(value: Any, path: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidError([FieldError(path, "Invalid value", "must be an object", str(value))])
    return value


def _unknown(data: dict[str, Any], known: tuple[str, ...], prefix: str) -> list[str]:
    return [f"{prefix}{key}" for key in data if key not in known]


def token_request(body: Any, namespace: str, name: str, *, strict: bool) -> tuple[api_pb2.TokenRequest, list[str]]:
    """The CreateToken request a TokenRequest body asks for, and warnings for the unknown fields dropped (refused
    by name when `strict`)."""
    data = _object(body, "")
    if data.get("apiVersion", API_VERSION) != API_VERSION or data.get("kind", KIND) != KIND:
        raise InvalidError([FieldError("kind", "Invalid value", f"this path takes a {API_VERSION} {KIND}",
                                       f'{data.get("apiVersion")} {data.get("kind")}')])
    meta = _object(data.get("metadata"), "metadata")
    spec = _object(data.get("spec"), "spec")
    ref = _object(spec.get("boundObjectRef"), "spec.boundObjectRef")
    unknown = (_unknown(data, _TOP, "") + _unknown(meta, _META, "metadata.") + _unknown(spec, _SPEC, "spec.")
               + _unknown(ref, _REF, "spec.boundObjectRef."))
    if unknown and strict:
        raise InvalidError([FieldError(path, "unknown field", f'unknown field "{path}"') for path in unknown])
    errors: list[FieldError] = []
    if meta.get("name") not in (None, "", name):
        errors.append(FieldError("metadata.name", "Invalid value", f"must be the service account's name, {name}",
                                 str(meta["name"])))
    if meta.get("namespace") not in (None, "", namespace):
        errors.append(FieldError("metadata.namespace", "Invalid value", f"must be the request's namespace, "
                                 f"{namespace}", str(meta["namespace"])))
    req = api_pb2.TokenRequest(namespace=namespace, service_account=name)
    audiences = spec.get("audiences") or []
    if not isinstance(audiences, list) or not all(isinstance(a, str) and a for a in audiences):
        errors.append(FieldError("spec.audiences", "Invalid value", "must be a list of non-empty strings",
                                 str(audiences)))
    else:
        req.audiences.extend(audiences)
    seconds = spec.get("expirationSeconds")
    if seconds is not None:
        if not isinstance(seconds, int) or isinstance(seconds, bool):
            errors.append(FieldError("spec.expirationSeconds", "Invalid value", "must be an integer", str(seconds)))
        else:
            req.expiration_seconds = seconds
    if ref:
        bound, version = ref.get("kind", ""), ref.get("apiVersion", "v1")
        if bound not in _BOUND:
            errors.append(FieldError("spec.boundObjectRef.kind", "Unsupported value",
                                     'supported values: "Pod" (a token bound to a Secret or a Node is not served)',
                                     str(bound)))
        elif version not in ("", "v1"):
            errors.append(FieldError("spec.boundObjectRef.apiVersion", "Unsupported value",
                                     'supported values: "v1"', str(version)))
        elif not ref.get("name"):
            errors.append(FieldError("spec.boundObjectRef.name", "Required value", "the pod's name"))
        else:
            req.pod_name, req.pod_uid = str(ref["name"]), str(ref.get("uid") or "")
    if errors:
        raise InvalidError(errors)
    return req, [f'unknown field "{path}"' for path in unknown]


def token_response(req: api_pb2.TokenRequest, resp: api_pb2.TokenResponse) -> dict[str, Any]:
    """The TokenRequest answered: the spec as issued (its audiences, lifetime and bound pod, read from the token
    just signed, where the defaults are filled in) and the token."""
    body = resp.token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    spec: dict[str, Any] = {"audiences": claims["aud"], "expirationSeconds": claims["exp"] - claims["iat"]}
    pod = claims["kubernetes.io"].get("pod")
    if pod:
        spec["boundObjectRef"] = {"kind": "Pod", "apiVersion": "v1", "name": pod["name"], "uid": pod["uid"]}
    return {"kind": KIND, "apiVersion": API_VERSION,
            "metadata": {"name": req.service_account, "namespace": req.namespace, "creationTimestamp": None},
            "spec": spec,
            "status": {"token": resp.token, "expirationTimestamp": convert.format_time(
                Timestamp(seconds=resp.expiration_timestamp.seconds))}}
