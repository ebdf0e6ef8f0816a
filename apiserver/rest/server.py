"""The REST face: Kubernetes' HTTP API (kubectl, client libraries) served by aiohttp in the apiserver's process.

Every request is authenticated by the same Authenticator as a gRPC call (client certificate: CN user, O groups;
else a bearer token), impersonates (`Impersonate-User`/`-Group`, as `kubectl --as`) and is authorized by the
same Authorizer (RBAC and the node authorizer, with Kubernetes' attributes; an RBAC object written is checked
for escalation), then calls the same registry entry points as the gRPC handlers, so validation, defaulting and
admission are the same. Watches are served from the same watch cache. Writes, execs, logs and denials go to
the same audit log.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import json
import time
from typing import Any

import structlog
import yaml
from aiohttp import web
from cryptography import x509
from google.protobuf.message import Message

from api import convert, kinds, text
from api.errors import (
    ApiError,
    ConflictError,
    ExpiredError,
    FieldError,
    ForbiddenError,
    InvalidError,
    NotFoundError,
    TimeoutError_,
    UnauthorizedError,
)
from api.pb import api_pb2, policy_pb2
from apiserver import audit, authn, authz, eviction
from apiserver.cache import WatchCache
from apiserver.kubelet_proxy import KubeletProxy
from apiserver.overload import REQUEST, STREAM, WATCH, Admission
from apiserver.registry import Registry
from apiserver.rest import (
    accessreviews,
    discovery,
    k8sproto,
    openapi,
    openapi_pb,
    patch,
    status,
    streams,
    table,
    tokens,
)
from apiserver.rest.request import RequestInfo, parse
from apiserver.rest.status import HttpError
from apiserver.rules import pod as pod_rules
from apiserver.serviceaccounts import ServiceAccountTokens

log = structlog.get_logger(component="apiserver")

_ATTRS = web.RequestKey("attrs", authz.Attributes)  # the request's authorization attributes, for a write's object
MAX_BODY = 3 * 1024 * 1024
WATCH_CHUNK = 1024 * 1024
MAX_WATCH_SECONDS = 1800
EVENT_LINES = 8192
JSON = "application/json"
VERSION = {"major": "1", "minor": "32", "gitVersion": "v1.32.0-kubelite", "gitCommit": "", "gitTreeState": "clean",
           "buildDate": "", "goVersion": "", "compiler": "", "platform": "linux/amd64"}
_STRICT, _WARN, _IGNORE = "Strict", "Warn", "Ignore"
WHOAMI = "/apis/authentication.k8s.io/v1/selfsubjectreviews"  # `kubectl auth whoami`
# Reviews about the caller, which every authenticated user may create (system:basic-user): path -> (group, resource).
REVIEWS = {WHOAMI: ("authentication.k8s.io", "selfsubjectreviews"),
           accessreviews.ACCESS: ("authorization.k8s.io", "selfsubjectaccessreviews"),
           accessreviews.RULES: ("authorization.k8s.io", "selfsubjectrulesreviews")}
UNKNOWN_FIELD = "unknown field"  # the FieldError kind api/convert.py gives a field no message has


def _dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"))


def _respond(data: Any, code: int = 200, *, content_type: str = JSON, warnings: list[str] | None = None) -> \
        web.Response:
    headers = {"Content-Type": content_type}
    if warnings:
        headers["Warning"] = ", ".join(f'299 - "{w}"' for w in warnings)
    return web.Response(body=_dumps(data).encode(), status=code, headers=headers)


def manifest(item: bytes) -> dict[str, Any]:
    """An encoded Object envelope (the registry's and cache's answer) as Kubernetes JSON."""
    return convert.object_to_manifest(api_pb2.Object.FromString(item))


def _bool(value: str | None) -> bool:
    return value in ("1", "true", "True")


def _int(query: Any, key: str) -> int | None:
    value = query.get(key)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise InvalidError([FieldError(key, "Invalid value", "must be an integer", value)]) from None


def _drop(data: Any, path: str) -> None:
    """Remove the field at an error's path (`spec.containers[0].foo`) from a manifest."""
    tokens: list[str | int] = []
    for part in path.replace("]", "").replace("[", ".").split("."):
        if part:
            tokens.append(int(part) if part.isdigit() else part)
    node = data
    for token in tokens[:-1]:
        try:
            node = node[token]
        except (KeyError, IndexError, TypeError):
            return
    if isinstance(node, dict):
        node.pop(tokens[-1], None)


def decode(kind: kinds.Kind, data: Any, validation: str) -> tuple[api_pb2.Object, list[str]]:
    """A request body as an Object of `kind`; unknown fields refused (Strict), warned of and dropped (Warn), or
    dropped (Ignore)."""
    if not isinstance(data, dict):
        raise InvalidError("the request body must be a JSON object")
    data.setdefault("apiVersion", kind.api_version)
    data.setdefault("kind", kind.kind)
    if data["kind"] != kind.kind:
        raise HttpError(400, "BadRequest", f'the body is a {data["kind"]}; this path serves {kind.kind}')
    warnings: list[str] = []
    for _ in range(3):
        try:
            return convert.manifest_to_object(data), warnings
        except InvalidError as e:
            unknown = [err for err in e.errors if err.kind == UNKNOWN_FIELD]
            if validation == _STRICT or not unknown or len(unknown) != len(e.errors):
                raise
            for err in unknown:
                warnings.append(f'unknown field "{err.path}"')
                _drop(data, err.path)
    raise InvalidError("the request body could not be decoded")


class RestApi:
    """The HTTP handlers over one apiserver's registry, watch cache, kubelet proxy and authenticator."""

    def __init__(self, registry: Registry, cache: WatchCache, proxy: KubeletProxy,
                 authenticator: authn.Authenticator, admission: Admission | None = None,
                 authorizer: authz.Authorizer | None = None, audit_log: audit.AuditLog | None = None,
                 sa_tokens: ServiceAccountTokens | None = None) -> None:
        self.registry = registry
        self.sa_tokens = sa_tokens
        self.cache = cache
        self.proxy = proxy
        self.authenticator = authenticator
        self.admission = admission or Admission()
        self.authorizer = authorizer or authz.Authorizer(cache)  # deny by default, as the gRPC face
        self.audit = audit_log or audit.AuditLog(audit.AuditConfig())
        self._lines: dict[tuple[str, ...], str] = {}  # recent watch events as JSON lines, oldest first

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    # ------------------------------------------------------------ entry

    async def _user(self, request: web.Request) -> authn.UserInfo:
        transport = request.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
        subject = None
        if ssl_object is not None:
            der = ssl_object.getpeercert(binary_form=True)
            if der:
                subject = x509.load_der_x509_certificate(der).subject.rfc4514_string().encode()
        user = await self.authenticator.authenticate_credentials(
            subject, request.headers.get("Authorization", ""), plaintext_link=ssl_object is None)
        if not authn.permitted(user, ""):
            raise ForbiddenError(f"{user.name} (a join token) may only ask for node certificates")
        return user

    @staticmethod
    def _peer(request: web.Request) -> str:
        peer = request.transport.get_extra_info("peername") if request.transport is not None else None
        if isinstance(peer, tuple) and len(peer) >= 2:
            return f"ipv4:{peer[0]}:{peer[1]}"
        return "unix:"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        start = time.perf_counter()
        info: RequestInfo | None = None
        attrs: authz.Attributes | None = None
        code = "INTERNAL"
        try:
            user = await self._user(request)
            try:
                user = authz.impersonate(self.authorizer, user, [(k.lower(), v) for k, v in request.headers.items()
                                                                 if k.lower().startswith("impersonate-")])
            except authz.DeniedError as e:
                self.audit.record(e.attrs, "PERMISSION_DENIED", 0.0)
                raise
            authn.set_user(user)
            review = REVIEWS.get(request.path.rstrip("/"))
            if review is not None:
                group, resource = review
                attrs = authz.Attributes(user, "create", resource, api_group=group)
                self._check(attrs)
                with self.admission.admit(REQUEST, self._peer(request)):
                    response = await self._review(request, user, resource)
                code = "OK"
                return response
            info = parse(request.method, request.path, _bool(request.query.get("watch")))
            if info is None:
                self._check(authz.Attributes(user, "get", path=request.path.rstrip("/") or "/"))
                code = "OK"
                return await self._non_resource(request)
            attrs = authz.Attributes(user, info.verb, info.resource, info.subresource, info.namespace, info.name,
                                     info.kind.group, field_selector=request.query.get("fieldSelector", ""))
            request[_ATTRS] = attrs
            if not _checked_with_body(info):
                self._check(attrs)
            streamed = info.subresource in ("log", "exec", "attach")
            kind = WATCH if info.verb == "watch" else STREAM if streamed else REQUEST
            with self.admission.admit(kind, self._peer(request)):
                response = await self._resource(request, info)
            code = "OK"
            return response
        except ApiError as e:
            code = e.code.name
            http, _ = status.code_of(e)
            if isinstance(e, UnauthorizedError | ForbiddenError):
                log.info("rest_request_refused", method=request.method, path=request.path, error=e.message)
            body = status.status(e, kind=info.resource if info else "", group=info.kind.group if info else "",
                                 name=info.name if info else "")
            message = text.escape(body["message"])
            if info is not None and info.kind.group and info.name:
                # Kubernetes names a resource of a group with it: deployments.apps "web".
                message = message.replace(f'{info.resource} "{info.name}"',
                                          f'{info.resource}.{info.kind.group} "{info.name}"')
            body["message"] = message
            return _respond(body, http)
        except (json.JSONDecodeError, yaml.YAMLError, UnicodeDecodeError) as e:
            code = "INVALID_ARGUMENT"
            return _respond(status.status(HttpError(400, "BadRequest", f"the request body does not decode: {e}")),
                            400)
        except (ConnectionResetError, web.HTTPException):
            code = "CANCELLED"
            raise
        except Exception as e:
            log.exception("rest_request_crashed", method=request.method, path=request.path)
            crash = HttpError(500, "InternalError", f"internal error: {type(e).__name__}: {e}")
            return _respond(status.status(crash), 500)
        finally:
            if attrs is not None:
                self.audit.record(attrs, code, time.perf_counter() - start)

    def _check(self, attrs: authz.Attributes) -> None:
        """Authorize; a denial without resource attributes (a path) is audited here, the rest in `handle`."""
        try:
            self.authorizer.check(attrs)
        except authz.DeniedError:
            if not attrs.is_resource:
                self.audit.record(attrs, "PERMISSION_DENIED", 0.0)
            raise

    def _check_object(self, request: web.Request, obj: Message) -> None:
        """A write checked again with its object: an RBAC object may grant only what its author holds."""
        attrs = request.get(_ATTRS)
        if attrs is not None:
            self.authorizer.check(dataclasses.replace(attrs, obj=obj))

    async def _non_resource(self, request: web.Request) -> web.Response:
        path = request.path.rstrip("/") or "/"
        accept = request.headers.get("Accept", "")
        aggregated = discovery.wants_aggregated(accept)
        if path == "/version":
            return _respond(VERSION)
        if path == "/api":
            if aggregated:
                return _respond(discovery.aggregated(legacy=True), content_type=discovery.AGGREGATED)
            return _respond(discovery.api_versions())
        if path == "/apis":
            if aggregated:
                return _respond(discovery.aggregated(legacy=False), content_type=discovery.AGGREGATED)
            return _respond(discovery.api_group_list())
        parts = path.strip("/").split("/")
        if parts == ["api", "v1"]:
            return _respond(discovery.resource_list("", "v1"))
        groups = discovery.group_versions()
        if len(parts) == 2 and parts[0] == "apis" and parts[1] in groups and parts[1]:
            return _respond({"kind": "APIGroup", "apiVersion": "v1", **discovery.api_group(parts[1])})
        if len(parts) == 3 and parts[0] == "apis" and parts[2] in groups.get(parts[1], []) and parts[1]:
            return _respond(discovery.resource_list(parts[1], parts[2]))
        if path in ("/healthz", "/livez", "/readyz"):
            return web.Response(text="ok")
        if path == "/openapi/v2":
            if openapi_pb.wanted(accept):  # kubectl's only choice for v2
                return web.Response(body=openapi_pb.document(), content_type=openapi_pb.RETURNED)
            if not openapi.accepts_json(accept):
                raise HttpError(406, "NotAcceptable", f"/openapi/v2 is served as application/json or "
                                                      f"{openapi_pb.MEDIA_TYPES[0]}, not {accept!r}")
            return _respond(openapi.document_v2())
        if path == "/openapi/v3":
            return _respond(openapi.root())
        if path.startswith("/openapi/v3/") and (gv := openapi.lookup(path)) is not None:
            return _respond(openapi.document(*gv))
        raise HttpError(404, "NotFound", f"the server could not find the requested resource ({path})")

    # ------------------------------------------------------------ resources

    async def _resource(self, request: web.Request, info: RequestInfo) -> web.StreamResponse:
        sub = info.subresource
        if sub == "":
            handler = {"get": self._get, "list": self._list, "watch": self._watch, "create": self._create,
                       "update": self._update, "patch": self._patch, "delete": self._delete,
                       "deletecollection": self._delete_collection}[info.verb]
            return await handler(request, info)
        if sub == "status" and info.kind.has_status:
            if request.method == "GET":
                return await self._get(request, info)
            if request.method == "PUT":
                return await self._update(request, info, status_=True)
            if request.method == "PATCH":
                return await self._patch(request, info, status_=True)
        if sub == "scale" and info.resource in ("deployments", "replicasets", "statefulsets"):
            return await self._scale(request, info)
        if info.resource == "serviceaccounts" and sub == "token" and request.method == "POST":
            return await self._token(request, info)
        if info.resource == "pods":
            if sub == "binding" and request.method == "POST":
                return await self._binding(request, info)
            if sub == "eviction" and request.method == "POST":
                return await self._eviction(request, info)
            if sub == "log" and request.method == "GET":
                return await self._logs(request, info)
            if sub == "exec":
                return await self._exec(request, info)
            if sub == "attach":
                return await self._exec(request, info, attach=True)
        raise HttpError(404, "NotFound", f"{info.resource} have no {sub} subresource served for {request.method}")

    async def _body(self, request: web.Request) -> Any:
        raw = await request.read()
        if not raw:
            raise InvalidError("the request has no body")
        if request.content_type in ("application/yaml", "application/apply-patch+yaml"):
            return yaml.safe_load(raw.decode())
        if request.content_type == k8sproto.MEDIA_TYPE:  # what kubectl's typed clients send
            return k8sproto.decode(raw)
        if "protobuf" in request.content_type:
            raise HttpError(415, "UnsupportedMediaType", f"the media type {request.content_type!r} is not served: "
                                                         f"send application/json, application/yaml or "
                                                         f"{k8sproto.MEDIA_TYPE}")
        return json.loads(raw)

    def _namespace(self, info: RequestInfo) -> str:
        return (info.namespace or "default") if info.kind.namespaced else ""

    def _render(self, request: web.Request, items: list[bytes], info: RequestInfo, *,
                meta: dict[str, Any] | None = None, single: bool = False) -> web.Response:
        accept = request.headers.get("Accept", "")
        if table.wants_table(accept):
            objs = [kinds.unwrap(api_pb2.Object.FromString(i)) for i in items]
            return _respond(table.table(info.kind, objs, meta or {}, include=request.query.get("includeObject",
                                                                                                 "Metadata")))
        if single:
            return _respond(manifest(items[0]))
        return _respond({"kind": f"{info.kind.kind}List", "apiVersion": info.kind.api_version,
                         "metadata": meta or {}, "items": [manifest(i) for i in items]})

    async def _get(self, request: web.Request, info: RequestInfo) -> web.Response:
        item = await self.registry.get(info.resource, self._namespace(info), info.name)
        return self._render(request, [item], info, single=True)

    def _list_request(self, request: web.Request, info: RequestInfo) -> api_pb2.ListRequest:
        q = request.query
        return api_pb2.ListRequest(resource=info.resource, namespace=info.namespace,
                                   label_selector=q.get("labelSelector", ""),
                                   field_selector=q.get("fieldSelector", ""), limit=_int(q, "limit") or 0,
                                   **{"continue": q.get("continue", "")})

    async def _list(self, request: web.Request, info: RequestInfo) -> web.Response:
        result = await self.registry.list(self._list_request(request, info))
        meta: dict[str, Any] = {"resourceVersion": str(result.revision)}
        if result.continue_token:
            meta["continue"] = result.continue_token
        if result.remaining:
            meta["remainingItemCount"] = result.remaining
        return self._render(request, result.items, info, meta=meta)

    async def _create(self, request: web.Request, info: RequestInfo) -> web.Response:
        envelope, warnings = decode(info.kind, await self._body(request), self._validation(request))
        obj = kinds.unwrap(envelope)
        meta = obj.metadata  # type: ignore[attr-defined]
        self._check_namespace(meta, info)
        self._check_object(request, obj)
        item = await self.registry.create(envelope, dry_run=self._dry_run(request))
        return _respond(manifest(item), 201, warnings=warnings)

    def _check_namespace(self, meta: Any, info: RequestInfo) -> None:
        if not info.kind.namespaced:
            return
        if meta.namespace and info.namespace and meta.namespace != info.namespace:
            raise HttpError(400, "BadRequest", "the namespace of the provided object does not match the namespace "
                                               "sent on the request")
        meta.namespace = meta.namespace or info.namespace or "default"

    @staticmethod
    def _validation(request: web.Request) -> str:
        mode = request.query.get("fieldValidation", _STRICT)
        if mode not in (_STRICT, _WARN, _IGNORE):
            raise InvalidError([FieldError("fieldValidation", "Unsupported value",
                                           'supported values: "Strict", "Warn", "Ignore"', mode)])
        return mode

    @staticmethod
    def _dry_run(request: web.Request) -> bool:
        values = request.query.getall("dryRun", [])
        if any(v != "All" for v in values):
            raise InvalidError([FieldError("dryRun", "Unsupported value", 'supported values: "All"', values)])
        return bool(values)

    async def _update(self, request: web.Request, info: RequestInfo, *, status_: bool = False) -> web.Response:
        envelope, warnings = decode(info.kind, await self._body(request), self._validation(request))
        return await self._write(request, info, envelope, status_=status_, warnings=warnings)

    async def _write(self, request: web.Request, info: RequestInfo, envelope: api_pb2.Object, *, status_: bool,
                     warnings: list[str] | None = None) -> web.Response:
        meta = kinds.unwrap(envelope).metadata  # type: ignore[attr-defined]
        if meta.name and meta.name != info.name:
            raise HttpError(400, "BadRequest", f'the name of the object ({meta.name}) does not match the name on '
                                               f'the URL ({info.name})')
        meta.name = info.name
        self._check_namespace(meta, info)
        self._check_object(request, kinds.unwrap(envelope))
        item = await self.registry.update(envelope, status=status_, dry_run=self._dry_run(request))
        return _respond(manifest(item), warnings=warnings)

    async def _patch(self, request: web.Request, info: RequestInfo, *, status_: bool = False) -> web.Response:
        content_type = request.content_type
        if content_type == patch.APPLY_PATCH:
            raise HttpError(415, "UnsupportedMediaType",
                            "server-side apply (application/apply-patch+yaml) is not served: kubelite keeps no "
                            "managedFields to find an apply's conflicts; use client-side `kubectl apply` (without "
                            "--server-side)")
        if content_type not in (patch.JSON_PATCH, patch.MERGE_PATCH, patch.STRATEGIC_MERGE_PATCH):
            raise HttpError(415, "UnsupportedMediaType", f"the patch type {content_type!r} is not served: "
                                                         f"{patch.JSON_PATCH}, {patch.MERGE_PATCH}, "
                                                         f"{patch.STRATEGIC_MERGE_PATCH}")
        body = await self._body(request)
        validation = self._validation(request)
        namespace = self._namespace(info)
        for _ in range(8):
            entry = await self.registry.current(info.kind, namespace, info.name)
            doc = convert.object_to_manifest(entry.obj)
            if content_type == patch.JSON_PATCH:
                new = patch.json_patch(doc, body)
            elif content_type == patch.MERGE_PATCH:
                new = patch.merge_patch(doc, body)
            else:
                new = patch.strategic_merge_patch(doc, body, info.kind.cls.DESCRIPTOR)
            pinned = _patched_version(body, content_type)
            new.setdefault("metadata", {})["resourceVersion"] = pinned or str(entry.rev)
            envelope, warnings = decode(info.kind, new, validation)
            try:
                return await self._write(request, info, envelope, status_=status_, warnings=warnings)
            except ConflictError:
                if pinned:
                    raise
        raise ConflictError(f'Operation cannot be fulfilled on {info.resource} "{info.name}": the object kept '
                            f'changing while the patch was applied; try again')

    async def _delete(self, request: web.Request, info: RequestInfo) -> web.Response:
        req = await self._delete_request(request, info)
        req.name = info.name
        item = await self.registry.delete(req)
        return _respond(manifest(item))

    async def _delete_request(self, request: web.Request, info: RequestInfo) -> api_pb2.DeleteRequest:
        q = request.query
        opts: dict[str, Any] = {}
        if request.can_read_body:
            raw = await request.read()
            if raw.strip():
                opts = json.loads(raw)
        if not isinstance(opts, dict):
            raise InvalidError("DeleteOptions must be a JSON object")
        req = api_pb2.DeleteRequest(resource=info.resource, namespace=self._namespace(info),
                                    propagation_policy=q.get("propagationPolicy") or opts.get("propagationPolicy")
                                    or "")
        grace = _int(q, "gracePeriodSeconds")
        if grace is None and opts.get("gracePeriodSeconds") is not None:
            grace = int(opts["gracePeriodSeconds"])
        if grace is not None:
            req.grace_period_seconds = grace
        pre = opts.get("preconditions") or {}
        req.preconditions.uid = pre.get("uid") or ""
        req.preconditions.resource_version = pre.get("resourceVersion") or ""
        if self._dry_run(request) or opts.get("dryRun"):
            raise InvalidError([FieldError("dryRun", "Unsupported value", "a dry-run delete is not served")])
        return req

    async def _delete_collection(self, request: web.Request, info: RequestInfo) -> web.Response:
        template = await self._delete_request(request, info)
        result = await self.registry.list(self._list_request(request, info))
        deleted = []
        for item in result.items:
            obj = kinds.unwrap(api_pb2.Object.FromString(item))
            req = api_pb2.DeleteRequest()
            req.CopyFrom(template)
            req.namespace, req.name = obj.metadata.namespace, obj.metadata.name  # type: ignore[attr-defined]
            with contextlib.suppress(NotFoundError):  # gone meanwhile
                deleted.append(manifest(await self.registry.delete(req)))
        return _respond({"kind": f"{info.kind.kind}List", "apiVersion": info.kind.api_version,
                         "metadata": {"resourceVersion": str(result.revision)}, "items": deleted})

    # ------------------------------------------------------------ subresources

    def _scale_of(self, obj: Message) -> dict[str, Any]:
        meta = obj.metadata  # type: ignore[attr-defined]
        spec = obj.spec  # type: ignore[attr-defined]
        selector = ",".join(f"{k}={v}" for k, v in sorted(spec.selector.match_labels.items()))
        return {"kind": "Scale", "apiVersion": "autoscaling/v1",
                "metadata": {"name": meta.name, "namespace": meta.namespace, "uid": meta.uid,
                             "resourceVersion": meta.resource_version,
                             "creationTimestamp": convert.format_time(meta.creation_timestamp)},
                "spec": {"replicas": spec.replicas},
                "status": {"replicas": obj.status.replicas, "selector": selector}}  # type: ignore[attr-defined]

    async def _scale(self, request: web.Request, info: RequestInfo) -> web.Response:
        namespace = self._namespace(info)
        entry = await self.registry.current(info.kind, namespace, info.name)
        current = self._scale_of(entry.obj)
        if request.method == "GET":
            return _respond(current)
        body = await self._body(request)
        if request.method == "PUT":
            new = body
        elif request.method == "PATCH":
            if request.content_type == patch.JSON_PATCH:
                new = patch.json_patch(current, body)
            else:
                new = patch.merge_patch(current, body)
        else:
            raise HttpError(405, "MethodNotAllowed", f"{request.method} on a scale subresource")
        replicas = (new.get("spec") or {}).get("replicas") if isinstance(new, dict) else None
        if not isinstance(replicas, int) or isinstance(replicas, bool):
            raise InvalidError([FieldError("spec.replicas", "Invalid value", "must be an integer", replicas)])
        pinned = ((body.get("metadata") or {}).get("resourceVersion") if isinstance(body, dict) else None)
        if pinned and pinned != str(entry.rev):
            raise ConflictError(f'Operation cannot be fulfilled on {info.resource} "{info.name}": the object has '
                                f'been modified; please apply your changes to the latest version and try again')
        item = await self.registry.scale(api_pb2.ScaleRequest(resource=info.resource, namespace=namespace,
                                                              name=info.name, replicas=replicas))
        return _respond(self._scale_of(kinds.unwrap(api_pb2.Object.FromString(item))))

    async def _binding(self, request: web.Request, info: RequestInfo) -> web.Response:
        body = await self._body(request)
        target = body.get("target") if isinstance(body, dict) else None
        node = target.get("name", "") if isinstance(target, dict) else ""
        uid = ((body.get("metadata") or {}).get("uid") or "") if isinstance(body, dict) else ""
        req = api_pb2.BindRequest(namespace=self._namespace(info), name=info.name, node_name=node, uid=uid)
        await self.registry.update_subresource(info.kind, req.namespace, req.name, pod_rules.binding(req))
        return _respond(status.success(name=info.name, kind="pods"), 201)

    async def _eviction(self, request: web.Request, info: RequestInfo) -> web.Response:
        body = await self._body(request)
        if not isinstance(body, dict):
            raise InvalidError("an Eviction must be a JSON object")
        body = {k: v for k, v in body.items() if k not in ("apiVersion", "kind")}
        req: policy_pb2.Eviction = convert.from_dict(policy_pb2.Eviction, body)  # type: ignore[assignment]
        req.metadata.name = info.name
        req.metadata.namespace = self._namespace(info)
        await eviction.evict(self.registry, req)
        return _respond(status.success(name=info.name, kind="pods"), 201)

    async def _review(self, request: web.Request, user: authn.UserInfo, resource: str) -> web.Response:
        """A review about the caller, after impersonation: who it is (SelfSubjectReview, the gRPC WhoAmI), whether
        it may do something (SelfSubjectAccessReview, the gRPC AccessReview), which rules it holds
        (SelfSubjectRulesReview)."""
        if request.method != "POST":
            raise HttpError(405, "MethodNotAllowed", f"{resource} are created (POST), never read")
        body = await self._body(request)
        if resource == "selfsubjectaccessreviews":
            decision = self.authorizer.authorize(accessreviews.access_attributes(body, user))
            return _respond(accessreviews.access_response(body, decision), 201)
        if resource == "selfsubjectrulesreviews":
            namespace = accessreviews.rules_namespace(body)
            rules, incomplete = self.authorizer.rules(user, namespace)
            return _respond(accessreviews.rules_response(namespace, rules, incomplete=incomplete), 201)
        return _respond(accessreviews.whoami_response(body, user), 201)

    async def _token(self, request: web.Request, info: RequestInfo) -> web.Response:
        """A TokenRequest, as the gRPC CreateToken: authorized with its request (a kubelet may have tokens only for
        its own pods), then issued."""
        if self._dry_run(request):
            raise InvalidError([FieldError("dryRun", "Unsupported value", "a dry-run TokenRequest is not served")])
        body = await self._body(request)
        req, warnings = tokens.token_request(body, self._namespace(info), info.name,
                                             strict=self._validation(request) == _STRICT)
        attrs = request[_ATTRS]
        self.authorizer.check(dataclasses.replace(attrs, obj=req))
        if self.sa_tokens is None:
            raise HttpError(503, "ServiceUnavailable", "this apiserver issues no service account tokens")
        resp = await self.sa_tokens.issue(req, datetime.datetime.now(datetime.UTC))
        return _respond(tokens.token_response(req, resp), 201, warnings=warnings)

    async def _logs(self, request: web.Request, info: RequestInfo) -> web.StreamResponse:
        q = request.query
        req = api_pb2.LogsRequest(namespace=self._namespace(info), name=info.name, container=q.get("container", ""),
                                  follow=_bool(q.get("follow")), previous=_bool(q.get("previous")),
                                  timestamps=_bool(q.get("timestamps")))
        tail = _int(q, "tailLines")
        if tail is not None:
            req.tail_lines = tail
        since = _int(q, "sinceSeconds")
        if since is not None:
            req.since_seconds = since
        for unsupported in ("sinceTime", "limitBytes", "insecureSkipTLSVerifyBackend"):
            if q.get(unsupported):
                raise InvalidError([FieldError(unsupported, "Forbidden", "not served by kubelite")])
        await self.registry.sync()
        chunks = self.proxy.logs(req).__aiter__()
        first = await anext(chunks, None)  # errors (no such pod, container) become a Status before any output
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        deadline = time.monotonic() + self.admission.limits.max_follow_seconds
        try:
            while first is not None:
                await response.write(first.data)
                try:
                    async with asyncio.timeout(max(0.0, deadline - time.monotonic()) if req.follow else None):
                        first = await anext(chunks, None)
                except TimeoutError:
                    break
        finally:
            await chunks.aclose()  # type: ignore[attr-defined]
        await response.write_eof()
        return response

    async def _exec(self, request: web.Request, info: RequestInfo, *, attach: bool = False) -> web.StreamResponse:
        if request.headers.get("Upgrade", "").lower() != "websocket":
            raise HttpError(400, "BadRequest", f"pods/{info.subresource} is served over WebSocket ({streams.V5} or "
                                               f"{streams.V4}); SPDY is not")
        namespace = self._namespace(info)
        start = streams.stream_start(request.query, namespace, info.name, attach=attach)
        if start is not None:
            await self.registry.sync()
            return await streams.serve_stream(request, start, self.proxy.stream, self.admission.limits.max_exec_seconds)

        async def run(req: api_pb2.ExecRequest) -> api_pb2.ExecResponse:
            await self.registry.sync()
            return await self.proxy.exec(req)

        return await streams.serve(request, namespace, info.name, run, self.admission.limits.max_exec_seconds)

    # ------------------------------------------------------------ watch

    def _event_line(self, ev: api_pb2.WatchEvent) -> str:
        """One watch event as a JSON line, encoded once for every watcher it goes to (a change, its type and
        its revision name one line)."""
        meta = kinds.unwrap(ev.object).metadata  # type: ignore[attr-defined]
        key = (ev.type, ev.resource_version, ev.object.WhichOneof("kind"), meta.namespace, meta.name)
        line = self._lines.get(key)
        if line is None:
            line = _dumps({"type": ev.type, "object": convert.object_to_manifest(ev.object)})
            if len(self._lines) >= EVENT_LINES:
                self._lines.pop(next(iter(self._lines)))
            self._lines[key] = line
        return line

    async def _watch(self, request: web.Request, info: RequestInfo) -> web.StreamResponse:
        q = request.query
        req = api_pb2.WatchRequest(resource=info.resource, namespace=info.namespace,
                                   label_selector=q.get("labelSelector", ""),
                                   field_selector=q.get("fieldSelector", ""),
                                   resource_version=q.get("resourceVersion", ""),
                                   allow_bookmarks=_bool(q.get("allowWatchBookmarks")))
        timeout = min(_int(q, "timeoutSeconds") or MAX_WATCH_SECONDS, MAX_WATCH_SECONDS)
        as_table = table.wants_table(request.headers.get("Accept", ""))
        response = web.StreamResponse(headers={"Content-Type": JSON, "Transfer-Encoding": "chunked"})
        try:
            watcher = await self.registry.watch(req)
        except ExpiredError as e:
            # As Kubernetes: the stream opens, and its one event says the version is gone (410).
            await response.prepare(request)
            await response.write((_dumps({"type": "ERROR", "object": status.status(e)}) + "\n").encode())
            await response.write_eof()
            return response
        await response.prepare(request)
        deadline = time.monotonic() + timeout
        headers_sent = False
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                try:
                    async with asyncio.timeout(left):
                        await watcher.ready.wait()
                except TimeoutError:
                    break
                if watcher.error is not None and not watcher.pending:
                    err = watcher.error
                    api_err = err if isinstance(err, ApiError) else TimeoutError_(str(err))
                    await response.write((_dumps({"type": "ERROR", "object": status.status(api_err)}) + "\n").encode())
                    break
                data = watcher.take(WATCH_CHUNK)
                if not data:
                    continue
                lines = []
                for ev in api_pb2.WatchEvents.FromString(data).events:
                    if not as_table and ev.type != "BOOKMARK":
                        lines.append(self._event_line(ev))
                        continue
                    obj: Any
                    if ev.type == "BOOKMARK":
                        obj = {"kind": info.kind.kind, "apiVersion": info.kind.api_version,
                               "metadata": {"resourceVersion": ev.resource_version}}
                    else:
                        obj = table.table(info.kind, [kinds.unwrap(ev.object)],
                                          {"resourceVersion": ev.resource_version},
                                          include=q.get("includeObject", "Metadata"), headers=not headers_sent)
                        headers_sent = True
                    lines.append(_dumps({"type": ev.type, "object": obj}))
                await response.write(("\n".join(lines) + "\n").encode())
        except ConnectionResetError:
            return response  # the client went away
        finally:
            self.cache.unwatch(watcher)
        with contextlib.suppress(ConnectionResetError):
            await response.write_eof()
        return response


def _checked_with_body(info: RequestInfo) -> bool:
    """A TokenRequest is authorized with its body, as the gRPC call is: the node authorizer reads the pod it
    binds the token to."""
    return info.resource == "serviceaccounts" and info.subresource == "token" and info.verb == "create"


def _patched_version(body: Any, content_type: str) -> str:
    """The resourceVersion a patch itself sets (then it is a precondition, as in Kubernetes)."""
    if content_type == patch.JSON_PATCH:
        for op in body if isinstance(body, list) else []:
            if isinstance(op, dict) and op.get("path") == "/metadata/resourceVersion" and op.get("op") in (
                    "add", "replace"):
                return str(op.get("value") or "")
        return ""
    meta = body.get("metadata") if isinstance(body, dict) else None
    value = meta.get("resourceVersion") if isinstance(meta, dict) else None
    return str(value) if value else ""
