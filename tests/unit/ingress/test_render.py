"""nginx configuration from Ingresses (golden text): Kubernetes' path matching, hosts, TLS, defaults, warnings."""

from __future__ import annotations

from typing import Any

import pytest

from api import convert
from api.pb import core_pb2, discovery_pb2, networking_pb2
from ingress.render import Config, Warning, endpoints_of, render, served_ingresses

CONFIG = Config(state_dir="/var/lib/ing")
CLASS = convert.from_dict(networking_pb2.IngressClass, {
    "metadata": {"name": "nginx-example"}, "spec": {"controller": "kubelite.dev/ingress-nginx"}})
OTHER = convert.from_dict(networking_pb2.IngressClass, {
    "metadata": {"name": "other"}, "spec": {"controller": "example.com/other"}})

HEAD = """\
# Written by kubelite ingress; every change is overwritten.
worker_processes 1;
pid /var/lib/ing/nginx.pid;
error_log stderr notice;
events {
    worker_connections 4096;
}
http {
    access_log off;
    server_tokens off;
    server_names_hash_bucket_size 128;
    client_body_temp_path /var/lib/ing/tmp/client_body;
    proxy_temp_path /var/lib/ing/tmp/proxy;
    fastcgi_temp_path /var/lib/ing/tmp/fastcgi;
    uwsgi_temp_path /var/lib/ing/tmp/uwsgi;
    scgi_temp_path /var/lib/ing/tmp/scgi;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host $host;
    proxy_set_header X-Real-IP $remote_addr;
    proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header X-Forwarded-Host $host;
    proxy_set_header X-Forwarded-Proto $scheme;
    proxy_connect_timeout 5s;
    proxy_next_upstream error timeout http_502 http_503 http_504;
    proxy_next_upstream_tries 3;
"""
DEFAULT_SERVER_HEAD = """\
    server {
        listen 0.0.0.0:80 default_server;
        listen 0.0.0.0:443 ssl default_server;
        server_name _;
        ssl_reject_handshake on;
"""


def ingress(name: str, spec: dict[str, Any], *, created: int = 100, annotations: dict[str, str] | None = None,
            ns: str = "default") -> networking_pb2.Ingress:
    spec = {"ingressClassName": "nginx-example", **spec}
    return convert.from_dict(networking_pb2.Ingress, {  # type: ignore[return-value]
        "metadata": {"name": name, "namespace": ns, "annotations": annotations or {},
                     "creationTimestamp": f"2026-01-01T00:{created // 60:02d}:{created % 60:02d}Z"},
        "spec": spec})


def path(p: str, kind: str, service: str, port: int | str = 80) -> dict[str, Any]:
    ref = {"number": port} if isinstance(port, int) else {"name": port}
    return {"path": p, "pathType": kind, "backend": {"service": {"name": service, "port": ref}}}


def rule(*paths: dict[str, Any], host: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {"http": {"paths": list(paths)}}
    if host:
        out["host"] = host
    return out


def service(name: str, *, port: int = 80, port_name: str = "http", kind: str = "ClusterIP") -> core_pb2.Service:
    return core_pb2.Service(metadata={"name": name, "namespace": "default"},
                            spec={"type": kind, "ports": [{"name": port_name, "port": port, "protocol": "TCP"}]})


def endpoints(name: str, ips: list[str], *, port_name: str = "http", ready: bool = True,
              terminating: bool = False) -> discovery_pb2.EndpointSlice:
    return discovery_pb2.EndpointSlice(
        metadata={"name": f"{name}-x", "namespace": "default", "labels": {"kubernetes.io/service-name": name}},
        address_type="IPv4", ports=[{"name": port_name, "port": 8080, "protocol": "TCP"}],
        endpoints=[{"addresses": [ip], "conditions": {"ready": ready, "serving": True, "terminating": terminating}}
                   for ip in ips])


def world(*names: str) -> tuple[dict, dict]:
    services = {f"default/{n}": service(n) for n in names}
    slices = {f"default/{n}": [endpoints(n, [f"10.244.{i + 1}.5", f"10.244.{i + 1}.6"])] for i, n in enumerate(names)}
    return services, slices


def upstream(name: str, *servers: str) -> str:
    lines = [f"    upstream {name} {{", *(f"        server {s} max_fails=0;" for s in servers),
             "        keepalive 32;", "    }"]
    return "\n".join(lines) + "\n"


def test_the_documentations_minimal_ingress() -> None:
    """The documentation's minimal Ingress: a hostless Prefix path in the default server, element-wise (an exact
    location and a prefix one); its rewrite-target annotation is reported as having no effect."""
    ing = ingress("minimal-ingress", {"rules": [rule(path("/testpath", "Prefix", "test"))]},
                  annotations={"nginx.ingress.kubernetes.io/rewrite-target": "/"})
    services, slices = world("test")
    out = render([ing], [CLASS], services, slices, {}, CONFIG)
    test = upstream("default_test_80", "10.244.1.5:8080", "10.244.1.6:8080")
    assert out.config == HEAD + test + DEFAULT_SERVER_HEAD + """\
        location = "/testpath" { proxy_pass http://default_test_80; }
        location "/testpath/" { proxy_pass http://default_test_80; }
        location / { return 404; }
    }
}
"""
    assert out.served == ["default/minimal-ingress"]
    assert out.warnings == [Warning("default/minimal-ingress", "AnnotationUnsupported",
                                    "annotation nginx.ingress.kubernetes.io/rewrite-target is not supported by "
                                    "kubelite's ingress controller and has no effect")]


def test_host_rules_path_types_and_default_backend() -> None:
    """A host gets its own server: Exact, Prefix and ImplementationSpecific paths, the Ingress's defaultBackend as
    its catch-all; a wildcard host matches one label; the default server keeps the defaultBackend too."""
    ing = ingress("fanout", {
        "defaultBackend": {"service": {"name": "web", "port": {"name": "http"}}},
        "rules": [rule(path("/bar", "Prefix", "bar"), path("/foo", "Exact", "foo"),
                       path("/static", "ImplementationSpecific", "web"), host="foo.example"),
                  rule(path("/", "Prefix", "web"), host="*.wild.example")]})
    services, slices = world("bar", "foo", "web")
    out = render([ing], [CLASS], services, slices, {}, CONFIG)
    assert out.config == HEAD + upstream("default_bar_80", "10.244.1.5:8080", "10.244.1.6:8080") + upstream(
        "default_foo_80", "10.244.2.5:8080", "10.244.2.6:8080") + upstream(
        "default_web_80", "10.244.3.5:8080", "10.244.3.6:8080") + upstream(
        "default_web_http", "10.244.3.5:8080", "10.244.3.6:8080") + DEFAULT_SERVER_HEAD + """\
        location / { proxy_pass http://default_web_http; }
    }
    server {
        listen 0.0.0.0:80;
        server_name ~^[^.]+\\.wild\\.example$;
        location "/" { proxy_pass http://default_web_80; }
    }
    server {
        listen 0.0.0.0:80;
        server_name foo.example;
        location = "/bar" { proxy_pass http://default_bar_80; }
        location "/bar/" { proxy_pass http://default_bar_80; }
        location = "/foo" { proxy_pass http://default_foo_80; }
        location "/static" { proxy_pass http://default_web_80; }
        location / { proxy_pass http://default_web_http; }
    }
}
"""
    assert out.warnings == []


def test_exact_beats_prefix_and_the_oldest_ingress_wins_a_tie() -> None:
    """On the same location, Exact wins over Prefix; between two Ingresses with the same path and type, the older."""
    older = ingress("older", {"rules": [rule(path("/a", "Prefix", "bar"), host="x.example")]}, created=1)
    newer = ingress("newer", {"rules": [rule(path("/a", "Exact", "foo"), path("/a/", "Prefix", "web"),
                                             host="x.example")]}, created=2)
    services, slices = world("bar", "foo", "web")
    out = render([newer, older], [CLASS], services, slices, {}, CONFIG)
    server = out.config.split("server_name x.example;\n")[1]
    assert server.splitlines()[:2] == ['        location = "/a" { proxy_pass http://default_foo_80; }',
                                       '        location "/a/" { proxy_pass http://default_bar_80; }']
    assert out.served == ["default/older", "default/newer"]


def test_tls_host_presents_its_secret() -> None:
    """A TLS entry's hosts listen on 443 with the Secret's certificate and key (one 0600 file); other names are
    refused at the handshake by the default server."""
    secret = core_pb2.Secret(metadata={"name": "foo-tls", "namespace": "default"}, type="kubernetes.io/tls",
                             data={"tls.crt": b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
                                   "tls.key": b"-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"})
    ing = ingress("tls", {"tls": [{"hosts": ["foo.example"], "secretName": "foo-tls"}],
                          "rules": [rule(path("/", "Prefix", "web"), host="foo.example")]})
    services, slices = world("web")
    out = render([ing], [CLASS], services, slices, {"default/foo-tls": secret}, CONFIG)
    assert """\
    server {
        listen 0.0.0.0:80;
        listen 0.0.0.0:443 ssl;
        server_name foo.example;
        ssl_certificate /var/lib/ing/certs/default_foo-tls.pem;
        ssl_certificate_key /var/lib/ing/certs/default_foo-tls.pem;
        location "/" { proxy_pass http://default_web_80; }
    }
""" in out.config
    assert out.files == {"certs/default_foo-tls.pem": secret.data["tls.crt"] + secret.data["tls.key"]}


@pytest.mark.parametrize(("secrets", "reason"), [
    pytest.param({}, "TLSSecretNotFound", id="missing"),
    pytest.param({"default/foo-tls": core_pb2.Secret(metadata={"name": "foo-tls"}, type="Opaque",
                                                     data={"password": b"x"})}, "TLSSecretInvalid", id="not-tls"),
])
def test_bad_tls_secret_is_reported_and_serves_plain_http(secrets: dict, reason: str) -> None:
    """A missing or non-TLS Secret: a warning, and the host is served on port 80 only."""
    ing = ingress("tls", {"tls": [{"hosts": ["foo.example"], "secretName": "foo-tls"}],
                          "rules": [rule(path("/", "Prefix", "web"), host="foo.example")]})
    services, slices = world("web")
    out = render([ing], [CLASS], services, slices, secrets, CONFIG)
    assert [w.reason for w in out.warnings] == [reason]
    assert "listen 0.0.0.0:443 ssl;" not in out.config and out.files == {}


@pytest.mark.parametrize(("services", "slices", "reason"), [
    pytest.param({}, {}, "ServiceNotFound", id="no-service"),
    pytest.param({"default/web": service("web", port=8000)}, {}, "ServicePortNotFound", id="no-port"),
    pytest.param({"default/web": service("web", kind="ExternalName")}, {}, "ExternalNameUnsupported",
                 id="external-name"),
    pytest.param({"default/web": service("web")}, {}, None, id="no-endpoints"),
])
def test_unservable_backends_answer_503(services: dict, slices: dict, reason: str | None) -> None:
    """A backend without ready endpoints answers 503; a missing Service or port, or an ExternalName, also warns."""
    ing = ingress("web", {"rules": [rule(path("/", "Prefix", "web"), host="w.example")]})
    out = render([ing], [CLASS], services, slices, {}, CONFIG)
    assert '        location "/" { return 503; }' in out.config
    assert [w.reason for w in out.warnings] == ([reason] if reason else [])


def test_only_this_controllers_classes_are_served() -> None:
    """Ingresses of another controller's class, or of none, are left alone (unless asked to take class-less
    ones); the old kubernetes.io/ingress.class annotation names a class too."""
    mine = ingress("mine", {"rules": [rule(path("/", "Prefix", "web"))]})
    theirs = ingress("theirs", {"ingressClassName": "other", "rules": [rule(path("/", "Prefix", "web"))]})
    legacy = ingress("legacy", {"rules": [rule(path("/", "Prefix", "web"))]},
                     annotations={"kubernetes.io/ingress.class": "nginx-example"})
    legacy.spec.ClearField("ingress_class_name")
    classless = ingress("classless", {"rules": [rule(path("/", "Prefix", "web"))]})
    classless.spec.ClearField("ingress_class_name")
    all_ = [mine, theirs, legacy, classless]
    # Equally old: ordered by namespace/name.
    assert [i.metadata.name for i in served_ingresses(all_, [CLASS, OTHER], CONFIG)] == ["legacy", "mine"]
    taking = Config(state_dir="/x", watch_without_class=True)
    assert [i.metadata.name for i in served_ingresses(all_, [CLASS, OTHER], taking)] == ["classless", "legacy",
                                                                                         "mine"]


def test_terminating_endpoints_serve_only_when_nothing_is_ready() -> None:
    """Ready endpoints first; a rollout's last terminating pods (still serving) only when none is ready."""
    both = [endpoints("web", ["10.244.1.5"]), endpoints("web", ["10.244.2.5"], ready=False, terminating=True)]
    assert endpoints_of(both, "http") == ("10.244.1.5:8080",)
    assert endpoints_of(both[1:], "http") == ("10.244.2.5:8080",)


def test_paths_are_quoted() -> None:
    """A path with a quote or a brace is written inside a quoted nginx string, never as configuration."""
    ing = ingress("odd", {"rules": [rule(path('/a"b{c}', "Exact", "web"), host="o.example")]})
    services, slices = world("web")
    out = render([ing], [CLASS], services, slices, {}, CONFIG)
    assert '        location = "/a\\"b{c}" { proxy_pass http://default_web_80; }' in out.config


def test_status_lists_this_node_once() -> None:
    """plan_status adds this node's address once, keeps other nodes', removes it when no longer serving, and
    writes nothing when the status is already right."""
    from ingress.status import plan_status

    ing = ingress("web", {"rules": [rule(path("/", "Prefix", "web"))]})
    ing.status.load_balancer.ingress.add(ip="10.250.0.12")
    added = plan_status(ing, "10.250.0.11", True)
    assert added is not None and [i.ip for i in added.status.load_balancer.ingress] == ["10.250.0.11", "10.250.0.12"]
    assert plan_status(added, "10.250.0.11", True) is None
    removed = plan_status(added, "10.250.0.11", False)
    assert removed is not None and [i.ip for i in removed.status.load_balancer.ingress] == ["10.250.0.12"]
    assert plan_status(None, "10.250.0.11", True) is None
