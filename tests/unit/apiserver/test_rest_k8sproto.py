"""Kubernetes' protobuf bodies read as the JSON Go would write for the same object: zeros where JSON keeps them,
inlined structs, Kubernetes' special types; what Kubernetes 1.32 does not have is refused."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf.message import Message

from api.errors import InvalidError
from apiserver.rest import k8sproto


def _new(api_version: str, kind: str) -> Message:
    cls = k8sproto._message(k8sproto.schema(api_version, kind))
    assert cls is not None, kind
    return cls()


def _wrap(api_version: str, kind: str, obj: Message) -> bytes:
    unknown = k8sproto._message("k8s.io.apimachinery.pkg.runtime.Unknown")
    assert unknown is not None
    envelope = unknown(raw=obj.SerializeToString(), contentEncoding="", contentType="")
    envelope.typeMeta.apiVersion, envelope.typeMeta.kind = api_version, kind  # type: ignore[attr-defined]
    return k8sproto.MAGIC + envelope.SerializeToString()


def _deployment() -> Message:
    d: Any = _new("apps/v1", "Deployment")
    d.metadata.name, d.metadata.namespace = "web", ""  # Go writes the empty namespace too
    d.metadata.creationTimestamp.SetInParent()  # zero time
    d.spec.replicas = 0  # a pointer: zero is a value
    d.spec.minReadySeconds = 0  # plain, omitempty: dropped
    d.spec.paused = False
    d.spec.strategy.rollingUpdate.maxUnavailable.type = 0
    d.spec.strategy.rollingUpdate.maxUnavailable.intVal = 0
    d.spec.strategy.rollingUpdate.maxSurge.type = 1
    d.spec.strategy.rollingUpdate.maxSurge.strVal = "25%"
    c = d.spec.template.spec.containers.add(name="web", image="nginx")
    c.ports.add(containerPort=80, hostPort=0, protocol="TCP")
    c.resources.limits["memory"].string = "64Mi"
    c.env.add(name="PASSWORD").valueFrom.secretKeyRef.localObjectReference.name = "db"
    c.env[0].valueFrom.secretKeyRef.key = "password"
    v = d.spec.template.spec.volumes.add(name="scratch")
    v.volumeSource.emptyDir.SetInParent()
    probe = c.readinessProbe
    probe.handler.httpGet.path = "/"
    probe.handler.httpGet.port.intVal = 80
    d.status.SetInParent()
    return d


def test_a_deployment_reads_as_its_json() -> None:
    body = k8sproto.decode(_wrap("apps/v1", "Deployment", _deployment()))
    assert body == {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "creationTimestamp": None},
        "spec": {
            "replicas": 0,
            "strategy": {"rollingUpdate": {"maxUnavailable": 0, "maxSurge": "25%"}},
            "template": {"spec": {
                "containers": [{
                    "name": "web", "image": "nginx",
                    "ports": [{"containerPort": 80, "protocol": "TCP"}],
                    "resources": {"limits": {"memory": "64Mi"}},
                    "env": [{"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}],
                    "readinessProbe": {"httpGet": {"path": "/", "port": 80}},
                }],
                "volumes": [{"name": "scratch", "emptyDir": {}}],
            }},
        },
        "status": {},
    }


def test_bytes_times_and_kept_zeros() -> None:
    """A Secret's data is base64 as in JSON; a set time is RFC 3339; a plain field without omitempty keeps its
    zero (a ServicePort's port), a pointer keeps an empty string (a claim's storageClassName: no class)."""
    s: Any = _new("v1", "Secret")
    s.metadata.name = "db"
    s.metadata.creationTimestamp.seconds = 1_700_000_000
    s.data["password"] = b"s3cret\x00"
    s.type = "Opaque"
    assert k8sproto.decode(_wrap("v1", "Secret", s)) == {
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": "db", "creationTimestamp": "2023-11-14T22:13:20Z"},
        "data": {"password": "czNjcmV0AA=="}}
    svc: Any = _new("v1", "Service")
    svc.spec.ports.add(name="", port=0, targetPort={"type": 1, "strVal": "http"})
    assert k8sproto.decode(_wrap("v1", "Service", svc))["spec"] == {"ports": [{"port": 0, "targetPort": "http"}]}
    claim: Any = _new("v1", "PersistentVolumeClaim")
    claim.spec.storageClassName = ""
    claim.spec.volumeName = ""
    assert k8sproto.decode(_wrap("v1", "PersistentVolumeClaim", claim))["spec"] == {"storageClassName": ""}


def test_an_ingress_rules_value_is_inlined() -> None:
    ing: Any = _new("networking.k8s.io/v1", "Ingress")
    rule = ing.spec.rules.add(host="a.example")
    path = rule.ingressRuleValue.http.paths.add(path="/", pathType="Prefix")
    path.backend.service.name = "web"
    path.backend.service.port.number = 80
    assert k8sproto.decode(_wrap("networking.k8s.io/v1", "Ingress", ing))["spec"] == {"rules": [{
        "host": "a.example", "http": {"paths": [{"path": "/", "pathType": "Prefix",
                                                 "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}


@pytest.mark.parametrize(("body", "path", "message"), [
    pytest.param(b"\x0a\x00", None, "magic", id="no-magic"),
    pytest.param(_wrap("v1", "Widget", _new("v1", "Secret")), "kind", "no protobuf schema", id="unknown-kind"),
    pytest.param(_wrap("example.com/v1", "Widget", _new("v1", "Secret")), "kind", "no protobuf schema",
                 id="unknown-group"),
    pytest.param(k8sproto.MAGIC + b"\x0a\x05ab", None, "does not decode", id="truncated"),
])
def test_bodies_refused(body: bytes, path: str | None, message: str) -> None:
    with pytest.raises(InvalidError, match=message) as e:
        k8sproto.decode(body)
    if path is not None:
        assert e.value.errors[0].path == path


def test_a_field_newer_than_the_schema_is_refused_by_number() -> None:
    d: Any = _new("apps/v1", "Deployment")
    d.spec.replicas = 2
    raw = d.SerializeToString() + bytes.fromhex("f80601")  # field 111, a varint: not in Kubernetes 1.32
    unknown = k8sproto._message("k8s.io.apimachinery.pkg.runtime.Unknown")
    assert unknown is not None
    envelope: Any = unknown(raw=raw)
    envelope.typeMeta.apiVersion, envelope.typeMeta.kind = "apps/v1", "Deployment"
    with pytest.raises(InvalidError) as e:
        k8sproto.decode(k8sproto.MAGIC + envelope.SerializeToString())
    assert e.value.errors[0].path == "[field 111]"


def test_fields_whose_json_name_differs() -> None:
    """A few protobuf names are not the JSON ones: a bound object reference's uID is uid."""
    req: Any = _new("authentication.k8s.io/v1", "TokenRequest")
    req.spec.boundObjectRef.kind, req.spec.boundObjectRef.uID = "Pod", "u-1"
    assert k8sproto.decode(_wrap("authentication.k8s.io/v1", "TokenRequest", req))["spec"] == {
        "boundObjectRef": {"kind": "Pod", "uid": "u-1"}}


@pytest.mark.parametrize(("nanoseconds", "text"), [
    (3_600_000_000_000, "3600s"), (1_500_000_000, "1.5s"), (2_000_000_000_000_000, "2000000s"),
    (1, "0.000000001s"), (0, "0s"), (-1_500_000_000, "-1.5s"),
])
def test_a_duration_is_decimal_seconds(nanoseconds: int, text: str) -> None:
    """A metav1.Duration reads as decimal seconds, which Go's ParseDuration takes (never an exponent)."""
    cls = k8sproto._message("k8s.io.apimachinery.pkg.apis.meta.v1.Duration")
    assert cls is not None
    assert k8sproto._special(cls(duration=nanoseconds), cls.DESCRIPTOR.full_name) == (True, text)


def test_same_named_structs_of_two_groups_keep_their_own_zeros() -> None:
    """discovery's EndpointPort and EndpointConditions are pointers (`ready: false` and `name: ""` are values);
    core's EndpointPort name is not (an empty one is dropped)."""
    s: Any = _new("discovery.k8s.io/v1", "EndpointSlice")
    s.metadata.name, s.addressType = "web-1", "IPv4"
    e = s.endpoints.add(addresses=["10.0.0.1"])
    e.conditions.ready, e.conditions.serving, e.conditions.terminating = False, True, False
    s.ports.add(name="", port=80, protocol="TCP")
    body = k8sproto.decode(_wrap("discovery.k8s.io/v1", "EndpointSlice", s))
    assert body["endpoints"] == [{"addresses": ["10.0.0.1"],
                                  "conditions": {"ready": False, "serving": True, "terminating": False}}]
    assert body["ports"] == [{"name": "", "port": 80, "protocol": "TCP"}]
    ep: Any = _new("v1", "Endpoints")
    ep.metadata.name = "web"
    ep.subsets.add().ports.add(name="", port=80, protocol="TCP")
    assert k8sproto.decode(_wrap("v1", "Endpoints", ep))["subsets"] == [{"ports": [{"port": 80, "protocol": "TCP"}]}]
