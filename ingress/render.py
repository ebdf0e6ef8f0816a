"""Ingresses + Services + EndpointSlices + Secrets -> one nginx configuration (pure).

Kubernetes' matching maps straight onto nginx's location rules, which is why
the controller is built on nginx:
  Exact /foo            location = /foo
  Prefix /foo (or /foo/) location = /foo and location /foo/ (element-wise: /foobar does not match)
  Prefix /              location /
  ImplementationSpecific /foo   location /foo (a plain string prefix, as ingress-nginx reads it)
nginx picks an exact location first, then the longest prefix: Kubernetes'
"longest path wins, Exact before Prefix". A host's server block holds the
paths of every Ingress for that host (the oldest Ingress wins a tie on the
same path); requests for a host no rule names go to the default server,
which holds the rules without a host and the oldest defaultBackend. A
wildcard host `*.foo.com` matches exactly one label, as in Kubernetes.

Requests go straight to the Service's ready endpoints (the pods), never
through the cluster IP; a connection error or 502/503/504 is retried on the
next endpoint, so an endpoint that just went away costs no request. TLS
hosts get the certificate of their kubernetes.io/tls Secret by SNI; an
unknown name is refused at the handshake.

What the controller cannot honour is reported, never ignored silently: a
missing Secret or Service, an ExternalName backend, a port that does not
exist, and every ingress-nginx annotation (each becomes a Warning event).
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from api.pb import core_pb2, discovery_pb2, networking_pb2

DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
CLASS_ANNOTATION = "kubernetes.io/ingress.class"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
TLS_SECRET = "kubernetes.io/tls"
# Annotations of other controllers: kubelite's nginx configuration has no knobs, so none of them takes effect.
FOREIGN_ANNOTATIONS = ("nginx.ingress.kubernetes.io/", "ingress.kubernetes.io/", "haproxy.org/",
                       "traefik.ingress.kubernetes.io/", "alb.ingress.kubernetes.io/")
PATH_ORDER = {"Exact": 0, "Prefix": 1, "ImplementationSpecific": 2}


@dataclass(frozen=True)
class Config:
    state_dir: str  # where the configuration, certificates, pid file and temp files live
    http_port: int = 80
    https_port: int = 443
    listen_address: str = "0.0.0.0"
    controller: str = "kubelite.dev/ingress-nginx"
    watch_without_class: bool = False  # also serve Ingresses that name no class


@dataclass(frozen=True)
class Warning:
    """Something about an Ingress the controller cannot do: becomes a Warning event on it."""

    ingress: str  # namespace/name
    reason: str
    message: str


@dataclass
class Rendered:
    config: str
    files: dict[str, bytes] = field(default_factory=dict)  # certificate files, relative to the state directory
    served: list[str] = field(default_factory=list)  # namespace/name of every Ingress in the configuration
    warnings: list[Warning] = field(default_factory=list)


def key(obj: object) -> str:
    meta = obj.metadata  # type: ignore[attr-defined]
    return f"{meta.namespace}/{meta.name}"


def _age(obj: object) -> tuple[int, int, str]:
    ts = obj.metadata.creation_timestamp  # type: ignore[attr-defined]
    return ts.seconds, ts.nanos, key(obj)


def served_ingresses(ingresses: Iterable[networking_pb2.Ingress], classes: Iterable[networking_pb2.IngressClass],
                     config: Config) -> list[networking_pb2.Ingress]:
    """The Ingresses of this controller's classes, oldest first (the order ties are broken in)."""
    mine = {c.metadata.name for c in classes if c.spec.controller == config.controller}
    out = []
    for ing in ingresses:
        if ing.metadata.HasField("deletion_timestamp"):
            continue
        if ing.spec.HasField("ingress_class_name"):
            chosen = ing.spec.ingress_class_name in mine
        elif CLASS_ANNOTATION in ing.metadata.annotations:  # the class as it was named before ingressClassName
            chosen = ing.metadata.annotations[CLASS_ANNOTATION] in mine
        else:
            chosen = config.watch_without_class
        if chosen:
            out.append(ing)
    return sorted(out, key=_age)


# ---------------------------------------------------------------- backends


@dataclass(frozen=True)
class Upstream:
    name: str  # ns_service_port
    servers: tuple[str, ...]  # "ip:port", sorted; empty: answer 503


def _ready(c: discovery_pb2.EndpointConditions) -> tuple[bool, bool]:
    ready = c.ready if c.HasField("ready") else True
    serving = c.serving if c.HasField("serving") else ready
    return ready, serving and (c.terminating if c.HasField("terminating") else False)


def endpoints_of(slices: Iterable[discovery_pb2.EndpointSlice], port_name: str,
                 protocol: str = "TCP") -> tuple[str, ...]:
    """Ready endpoints ("ip:port") of a Service port; if none is ready, those still serving while they terminate."""
    ready: set[tuple[bytes, int]] = set()
    terminating: set[tuple[bytes, int]] = set()
    for es in slices:
        if es.address_type != "IPv4":
            continue
        numbers = [p.port for p in es.ports if p.name == port_name and (p.protocol or "TCP") == protocol
                   and 0 < p.port < 65536]
        for ep in es.endpoints:
            if not ep.addresses:
                continue
            try:
                packed = socket.inet_aton(ep.addresses[0])
            except OSError:
                continue
            is_ready, is_terminating_serving = _ready(ep.conditions)
            for n in numbers:
                if is_ready:
                    ready.add((packed, n))
                elif is_terminating_serving:
                    terminating.add((packed, n))
    return tuple(f"{socket.inet_ntoa(ip)}:{n}" for ip, n in sorted(ready or terminating))


def resolve_backend(ing: networking_pb2.Ingress, backend: networking_pb2.IngressBackend,
                    services: Mapping[str, core_pb2.Service],
                    slices: Mapping[str, Sequence[discovery_pb2.EndpointSlice]],
                    warnings: list[Warning]) -> Upstream:
    """The upstream of a Service backend; an empty one (503) with a warning when it cannot be served."""
    ns = ing.metadata.namespace
    name = backend.service.name
    port = backend.service.port
    label = port.name or str(port.number)
    upstream = f"{ns}_{name}_{label}"
    svc = services.get(f"{ns}/{name}")
    if svc is None:
        warnings.append(Warning(key(ing), "ServiceNotFound", f'service "{ns}/{name}" not found'))
        return Upstream(upstream, ())
    if svc.spec.type == "ExternalName":
        warnings.append(Warning(key(ing), "ExternalNameUnsupported",
                                f'service "{ns}/{name}" is an ExternalName; kubelite routes to endpoints only'))
        return Upstream(upstream, ())
    match = [p for p in svc.spec.ports if (p.name == port.name if port.name else p.port == port.number)
             and (p.protocol or "TCP") == "TCP"]
    if not match:
        warnings.append(Warning(key(ing), "ServicePortNotFound", f'service "{ns}/{name}" has no TCP port {label}'))
        return Upstream(upstream, ())
    return Upstream(upstream, endpoints_of(slices.get(f"{ns}/{name}", ()), match[0].name))


# ---------------------------------------------------------------- routes


@dataclass(frozen=True)
class Route:
    modifier: str  # "=" (exact) or "" (prefix)
    path: str
    upstream: Upstream
    rank: tuple  # who wins a tie on the same location: Exact, Prefix, ImplementationSpecific, then the oldest


def _locations(path: str, path_type: str) -> list[tuple[str, str]]:
    path = path or "/"
    if path_type == "Exact":
        return [("=", path)]
    if path_type == "Prefix":
        trimmed = path.rstrip("/") or "/"
        return [("", "/")] if trimmed == "/" else [("=", trimmed), ("", trimmed + "/")]
    return [("", path)]


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _server_name(host: str) -> str:
    if host.startswith("*."):
        return "~^[^.]+" + re.escape(host[1:]).replace("\\-", "-") + "$"
    return host


@dataclass
class Server:
    host: str  # "" for the default server
    routes: dict[tuple[str, str], Route] = field(default_factory=dict)
    default: Upstream | None = None  # the catch-all when no route has location /
    cert: str = ""  # certificate file, relative to the state directory

    def add(self, route: Route) -> None:
        where = (route.modifier, route.path)
        current = self.routes.get(where)
        if current is None or route.rank < current.rank:
            self.routes[where] = route


def _tls_files(ing: networking_pb2.Ingress, secrets: Mapping[str, core_pb2.Secret], warnings: list[Warning],
               files: dict[str, bytes]) -> dict[str, str]:
    """host -> certificate file for the Ingress's TLS entries (its rule hosts when an entry names none)."""
    out: dict[str, str] = {}
    ns = ing.metadata.namespace
    for tls in ing.spec.tls:
        if not tls.secret_name:
            warnings.append(Warning(key(ing), "TLSSecretMissing", "a TLS entry without secretName is not served"))
            continue
        secret = secrets.get(f"{ns}/{tls.secret_name}")
        if secret is None:
            warnings.append(Warning(key(ing), "TLSSecretNotFound", f'secret "{ns}/{tls.secret_name}" not found'))
            continue
        cert, private = secret.data.get("tls.crt", b""), secret.data.get("tls.key", b"")
        if secret.type != TLS_SECRET or b"BEGIN CERTIFICATE" not in cert or b"PRIVATE KEY" not in private:
            warnings.append(Warning(key(ing), "TLSSecretInvalid", f'secret "{ns}/{tls.secret_name}" is not a '
                                    f"{TLS_SECRET} Secret with a PEM tls.crt and tls.key"))
            continue
        name = f"certs/{ns}_{tls.secret_name}.pem"
        files[name] = cert.rstrip(b"\n") + b"\n" + private.rstrip(b"\n") + b"\n"
        for host in tls.hosts or [r.host for r in ing.spec.rules if r.host]:
            out.setdefault(host, name)
    return out


def render(ingresses: Iterable[networking_pb2.Ingress], classes: Iterable[networking_pb2.IngressClass],
           services: Mapping[str, core_pb2.Service], slices: Mapping[str, Sequence[discovery_pb2.EndpointSlice]],
           secrets: Mapping[str, core_pb2.Secret], config: Config) -> Rendered:
    """The nginx configuration serving this controller's Ingresses, and the certificate files it names."""
    warnings: list[Warning] = []
    files: dict[str, bytes] = {}
    default = Server("")
    servers: dict[str, Server] = {}
    served = served_ingresses(ingresses, classes, config)
    for order, ing in enumerate(served):
        for name in sorted(ing.metadata.annotations):
            if name.startswith(FOREIGN_ANNOTATIONS):
                warnings.append(Warning(key(ing), "AnnotationUnsupported",
                                        f"annotation {name} is not supported by kubelite's ingress controller "
                                        "and has no effect"))
        certs = _tls_files(ing, secrets, warnings, files)
        own_default = resolve_backend(ing, ing.spec.default_backend, services, slices, warnings) \
            if ing.spec.HasField("default_backend") else None
        for rule in ing.spec.rules:
            server = servers.setdefault(rule.host, Server(rule.host)) if rule.host else default
            if rule.host and rule.host in certs and not server.cert:
                server.cert = certs[rule.host]
            for p in rule.http.paths:
                upstream = resolve_backend(ing, p.backend, services, slices, warnings)
                for modifier, path in _locations(p.path, p.path_type):
                    server.add(Route(modifier, path, upstream, (PATH_ORDER.get(p.path_type, 3), order)))
            if own_default is not None and server.default is None:
                server.default = own_default
        for host, cert in certs.items():  # TLS hosts without a rule still present their certificate
            server = servers.setdefault(host, Server(host))
            server.cert = server.cert or cert
        if own_default is not None and default.default is None:
            default.default = own_default
    upstreams = {r.upstream.name: r.upstream for s in (default, *servers.values()) for r in s.routes.values()}
    for s in (default, *servers.values()):
        if s.default is not None:
            upstreams[s.default.name] = s.default
    text = _config(config, default, [servers[h] for h in sorted(servers)], upstreams)
    # One warning per Ingress and reason+message, in a stable order.
    unique = sorted(set(warnings), key=lambda w: (w.ingress, w.reason, w.message))
    return Rendered(text, files, [key(i) for i in served], unique)


# ---------------------------------------------------------------- text


def _config(config: Config, default: Server, servers: list[Server], upstreams: Mapping[str, Upstream]) -> str:
    d = config.state_dir
    out = [
        "# Written by kubelite ingress; every change is overwritten.",
        "worker_processes 1;",
        f"pid {d}/nginx.pid;",
        "error_log stderr notice;",
        "events {",
        "    worker_connections 4096;",
        "}",
        "http {",
        "    access_log off;",
        "    server_tokens off;",
        "    server_names_hash_bucket_size 128;",
        f"    client_body_temp_path {d}/tmp/client_body;",
        f"    proxy_temp_path {d}/tmp/proxy;",
        f"    fastcgi_temp_path {d}/tmp/fastcgi;",
        f"    uwsgi_temp_path {d}/tmp/uwsgi;",
        f"    scgi_temp_path {d}/tmp/scgi;",
        "    proxy_http_version 1.1;",
        '    proxy_set_header Connection "";',
        "    proxy_set_header Host $host;",
        "    proxy_set_header X-Real-IP $remote_addr;",
        "    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;",
        "    proxy_set_header X-Forwarded-Host $host;",
        "    proxy_set_header X-Forwarded-Proto $scheme;",
        "    proxy_connect_timeout 5s;",
        "    proxy_next_upstream error timeout http_502 http_503 http_504;",
        "    proxy_next_upstream_tries 3;",
    ]
    for name in sorted(upstreams):
        up = upstreams[name]
        if not up.servers:
            continue
        out.append(f"    upstream {name} {{")
        out.extend(f"        server {s} max_fails=0;" for s in up.servers)
        out.append("        keepalive 32;")
        out.append("    }")
    listen = config.listen_address
    out += _server(default, f"{listen}:{config.http_port} default_server",
                   f"{listen}:{config.https_port} ssl default_server", d)
    for s in servers:
        out += _server(s, f"{listen}:{config.http_port}", f"{listen}:{config.https_port} ssl" if s.cert else "", d)
    out.append("}")
    return "\n".join(out) + "\n"


def _target(up: Upstream | None) -> str:
    if up is None:
        return "return 404;"
    if not up.servers:
        return "return 503;"
    return f"proxy_pass http://{up.name};"


def _server(s: Server, http: str, https: str, state_dir: str) -> list[str]:
    out = ["    server {", f"        listen {http};"]
    if https:
        out.append(f"        listen {https};")
    out.append(f"        server_name {_server_name(s.host) if s.host else '_'};")
    if s.cert:
        out.append(f"        ssl_certificate {state_dir}/{s.cert};")
        out.append(f"        ssl_certificate_key {state_dir}/{s.cert};")
    elif https:
        out.append("        ssl_reject_handshake on;")  # no certificate for an unknown name: refuse the handshake
    routes = sorted(s.routes.values(), key=lambda r: (r.path, r.modifier != "="))
    for r in routes:
        modifier = "= " if r.modifier else ""
        out.append(f"        location {modifier}{_quote(r.path)} {{ {_target(r.upstream)} }}")
    if ("", "/") not in s.routes:
        out.append(f"        location / {{ {_target(s.default)} }}")
    out.append("    }")
    return out
