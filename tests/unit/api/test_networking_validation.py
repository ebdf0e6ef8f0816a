"""Validation of Ingress, IngressClass, EndpointSlice and the Service fields the proxy honours or refuses."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from api import convert, defaults, validation
from api.pb import core_pb2, discovery_pb2, networking_pb2

# The minimal Ingress of the Kubernetes documentation.
MINIMAL: dict[str, Any] = {
    "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
    "metadata": {"name": "minimal-ingress", "annotations": {"nginx.ingress.kubernetes.io/rewrite-target": "/"}},
    "spec": {"ingressClassName": "nginx-example", "rules": [{"http": {"paths": [
        {"path": "/testpath", "pathType": "Prefix",
         "backend": {"service": {"name": "test", "port": {"number": 80}}}}]}}]},
}


def _ingress(**patch: Any) -> networking_pb2.Ingress:
    data = copy.deepcopy(MINIMAL)
    data["spec"].update(patch)
    return convert.from_dict(networking_pb2.Ingress, data)  # type: ignore[return-value]


def _path(path: str = "/bar", path_type: str | None = "Prefix", **backend: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"path": path, "backend": backend or {"service": {"name": "bar", "port": {"number": 80}}}}
    if path_type is not None:
        out["pathType"] = path_type
    return out


def _rules(*paths: dict[str, Any], host: str = "") -> list[dict[str, Any]]:
    rule: dict[str, Any] = {"http": {"paths": list(paths)}}
    if host:
        rule["host"] = host
    return [rule]


@pytest.mark.parametrize(("patch", "errors"), [
    pytest.param({}, [], id="docs-minimal"),
    pytest.param({"rules": _rules(_path(), host="foo.example"), "tls": [{"hosts": ["foo.example"],
                                                                         "secretName": "foo-tls"}]},
                 [], id="host-and-tls"),
    pytest.param({"rules": _rules(_path(), host="*.foo.example")}, [], id="wildcard-host"),
    pytest.param({"rules": [], "defaultBackend": {"service": {"name": "web", "port": {"name": "http"}}}}, [],
                 id="default-backend-only"),
    pytest.param({"rules": []}, ["spec.rules: Invalid value: either `defaultBackend` or `rules` must be specified"],
                 id="nothing-to-route"),
    pytest.param({"rules": _rules(_path(), host="10.0.0.1")},
                 ["spec.rules[0].host: Invalid value: '10.0.0.1': must be a DNS name, not an IP address"],
                 id="ip-host"),
    pytest.param({"rules": _rules(_path(), host="*.*.foo")},
                 ["spec.rules[0].host: Invalid value: '*.*.foo': a wildcard DNS-1123 subdomain must start with '*.', "
                  "followed by a valid DNS subdomain"], id="double-wildcard"),
    pytest.param({"rules": _rules(_path(path_type=None))},
                 ["spec.rules[0].http.paths[0].pathType: Required value: pathType must be specified"],
                 id="path-type-required"),
    pytest.param({"rules": _rules(_path(path_type="Regex"))},
                 ["spec.rules[0].http.paths[0].pathType: Unsupported value: 'Regex': supported values: \"Exact\", "
                  "\"Prefix\", \"ImplementationSpecific\""], id="path-type-unknown"),
    pytest.param({"rules": _rules(_path("bar"))},
                 ["spec.rules[0].http.paths[0].path: Invalid value: 'bar': must be an absolute path"],
                 id="relative-path"),
    pytest.param({"rules": _rules(_path("/a//b", "Exact"))},
                 ["spec.rules[0].http.paths[0].path: Invalid value: '/a//b': must not contain '//'"],
                 id="double-slash"),
    pytest.param({"rules": _rules(_path("/a/..", "Prefix"))},
                 ["spec.rules[0].http.paths[0].path: Invalid value: '/a/..': cannot end with '/..'"],
                 id="dot-dot-end"),
    pytest.param({"rules": _rules(_path(service={"name": "bar", "port": {"name": "http", "number": 80}}))},
                 ["spec.rules[0].http.paths[0].backend.service.port: Invalid value: cannot set both port name & port "
                  "number"], id="port-name-and-number"),
    pytest.param({"rules": _rules(_path(service={"name": "bar"}))},
                 ["spec.rules[0].http.paths[0].backend.service.port: Invalid value: port name or number is required"],
                 id="port-required"),
    pytest.param({"rules": _rules(_path(service={"name": "Bar", "port": {"number": 80}}))},
                 ["spec.rules[0].http.paths[0].backend.service.name: Invalid value: 'Bar': a DNS-1035 label must "
                  "consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end "
                  "with an alphanumeric character"], id="service-name"),
    pytest.param({"rules": _rules(_path(resource={"apiGroup": "k8s.example.com", "kind": "StorageBucket",
                                                  "name": "static-assets"}))},
                 ["spec.rules[0].http.paths[0].backend.resource: Unsupported value: 'StorageBucket/static-assets': "
                  "kubelite's ingress controller routes to Services only: use `service`"], id="resource-backend"),
    pytest.param({"rules": [{"host": "foo.example"}]},
                 ["spec.rules[0].http: Required value: kubelite's ingress controller serves HTTP rules"],
                 id="rule-without-http"),
    pytest.param({"tls": [{"hosts": ["foo.example"], "secretName": "Foo_TLS"}]},
                 ["spec.tls[0].secretName: Invalid value: 'Foo_TLS': a lowercase RFC 1123 subdomain must consist of "
                  "lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
                  "character"], id="secret-name"),
])
def test_ingress_validation(patch: dict[str, Any], errors: list[str]) -> None:
    """Each Ingress gives exactly the expected field errors, named as Kubernetes names them."""
    assert [str(e) for e in validation.validate(_ingress(**patch))] == errors


def _class(**spec: Any) -> networking_pb2.IngressClass:
    data = {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
            "metadata": {"name": "nginx-example",
                         "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
            "spec": {"controller": "kubelite.dev/ingress-nginx", **spec}}
    return convert.from_dict(networking_pb2.IngressClass, data)  # type: ignore[return-value]


@pytest.mark.parametrize(("spec", "errors"), [
    pytest.param({}, [], id="docs-example"),
    pytest.param({"controller": ""}, ["spec.controller: Required value"], id="controller-required"),
    pytest.param({"controller": "nginx"},
                 ["spec.controller: Invalid value: 'nginx': must be a domain-prefixed path (such as \"acme.io/foo\")"],
                 id="controller-path"),
    pytest.param({"parameters": {"kind": "IngressParameters", "name": "p", "scope": "Namespace"}},
                 ["spec.parameters.namespace: Required value: `parameters.scope` is set to 'Namespace'"],
                 id="namespace-scope"),
])
def test_ingress_class_validation(spec: dict[str, Any], errors: list[str]) -> None:
    """IngressClass names a domain-prefixed controller; namespaced parameters name their namespace."""
    assert [str(e) for e in validation.validate(_class(**spec))] == errors


def test_ingress_class_controller_is_immutable() -> None:
    """An IngressClass's controller cannot change."""
    errs = validation.validate_update(_class(controller="other.io/x"), _class())
    assert [str(e) for e in errs] == ["spec.controller: Invalid value: 'other.io/x': field is immutable"]


def _slice(**fields: Any) -> discovery_pb2.EndpointSlice:
    data = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": "web-abc", "labels": {"kubernetes.io/service-name": "web"}},
            "addressType": "IPv4", "endpoints": [{"addresses": ["10.244.1.5"], "conditions": {"ready": True},
                                                  "nodeName": "n1"}],
            "ports": [{"name": "http", "port": 8080}], **fields}
    es = convert.from_dict(discovery_pb2.EndpointSlice, data)
    defaults.apply(es)
    return es  # type: ignore[return-value]


@pytest.mark.parametrize(("fields", "errors"), [
    pytest.param({}, [], id="valid"),
    pytest.param({"addressType": ""}, ["addressType: Required value"], id="address-type-required"),
    pytest.param({"endpoints": [{"addresses": []}]},
                 ["endpoints[0].addresses: Required value: must contain at least 1 address"], id="no-address"),
    pytest.param({"endpoints": [{"addresses": ["fd00::1"]}]},
                 ["endpoints[0].addresses[0]: Invalid value: 'fd00::1': must be an IPv4 address"], id="family"),
    pytest.param({"ports": [{"name": "http", "port": 80}, {"name": "http", "port": 81}]},
                 ["ports[1].name: Duplicate value: 'http'"], id="duplicate-port-name"),
    pytest.param({"ports": [{"port": 70000}]},
                 ["ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive"], id="port-range"),
])
def test_endpoint_slice_validation(fields: dict[str, Any], errors: list[str]) -> None:
    """Slices hold addresses of their type and distinct, valid ports."""
    assert [str(e) for e in validation.validate(_slice(**fields))] == errors


def test_endpoint_slice_port_defaults() -> None:
    """A slice port without name or protocol gets "" and TCP, as Kubernetes defaults them."""
    es = _slice(ports=[{"port": 80}])
    assert (es.ports[0].HasField("name"), es.ports[0].name, es.ports[0].protocol) == (True, "", "TCP")


def _service(**spec: Any) -> core_pb2.Service:
    data = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}], **spec}}
    svc = convert.from_dict(core_pb2.Service, data)
    defaults.apply(svc)
    return svc  # type: ignore[return-value]


@pytest.mark.parametrize(("spec", "errors"), [
    pytest.param({"type": "NodePort", "externalTrafficPolicy": "Local"}, [], id="local-node-port"),
    pytest.param({"type": "LoadBalancer", "externalTrafficPolicy": "Local", "healthCheckNodePort": 32000,
                  "loadBalancerSourceRanges": ["10.200.1.0/24"]}, [], id="local-load-balancer"),
    pytest.param({"externalIPs": ["10.250.0.99"], "externalTrafficPolicy": "Local"}, [], id="local-external-ip"),
    pytest.param({"internalTrafficPolicy": "Local"}, [], id="internal-local"),
    pytest.param({"externalTrafficPolicy": "Local"},
                 ["spec.externalTrafficPolicy: Invalid value: 'Local': may only be set for externally-accessible "
                  "services"], id="local-cluster-ip"),
    pytest.param({"type": "NodePort", "externalTrafficPolicy": "Local", "healthCheckNodePort": 32000},
                 ["spec.healthCheckNodePort: Invalid value: 32000: may only be set when `type` is 'LoadBalancer' and "
                  "`externalTrafficPolicy` is 'Local'"], id="health-check-needs-lb"),
    pytest.param({"loadBalancerSourceRanges": ["10.0.0.0/8"]},
                 ["spec.loadBalancerSourceRanges: Forbidden: may only be used when `type` is 'LoadBalancer'"],
                 id="source-ranges-need-lb"),
    pytest.param({"type": "LoadBalancer", "loadBalancerSourceRanges": ["10.0.0.0/33"]},
                 ["spec.loadBalancerSourceRanges[0]: Invalid value: '10.0.0.0/33': must be an IPv4 CIDR (kubelite's "
                  "service proxy is IPv4 only)"], id="bad-range"),
    pytest.param({"internalTrafficPolicy": "Nearby"},
                 ["spec.internalTrafficPolicy: Unsupported value: 'Nearby': supported values: \"Cluster\", "
                  "\"Local\""], id="internal-unknown"),
    pytest.param({"ipFamilies": ["IPv6"]},
                 ["spec.ipFamilies[0]: Unsupported value: 'IPv6': supported values: \"IPv4\""], id="ipv6"),
    pytest.param({"ipFamilyPolicy": "RequireDualStack"},
                 ["spec.ipFamilyPolicy: Unsupported value: 'RequireDualStack': this cluster is IPv4 only"],
                 id="dual-stack"),
])
def test_service_traffic_fields(spec: dict[str, Any], errors: list[str]) -> None:
    """Traffic policies, health-check ports, source ranges and families are valid only where the proxy honours them."""
    assert [str(e) for e in validation.validate(_service(**spec))] == errors
