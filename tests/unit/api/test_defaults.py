"""Defaults the apiserver fills in, as Kubernetes' defaulting does."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf.message import Message

from api import convert, defaults
from api.pb import apps_pb2, core_pb2


def _defaulted(cls: type[Message], data: dict[str, Any], **kw: Any) -> dict[str, Any]:
    obj = convert.from_dict(cls, data)
    defaults.apply(obj, **kw)
    return convert.to_dict(obj)


def _pod(container: dict[str, Any] | None = None, **spec: Any) -> dict[str, Any]:
    c = {"name": "c", "image": "nginx:1.25", **(container or {})}
    return _defaulted(core_pb2.Pod, {"metadata": {"name": "p"}, "spec": {"containers": [c], **spec}})


def test_pod_spec_defaults() -> None:
    """A bare pod gets Kubernetes' pod-level defaults."""
    spec = _pod()["spec"]
    assert spec["restartPolicy"] == "Always"
    assert spec["terminationGracePeriodSeconds"] == 30
    assert spec["dnsPolicy"] == "ClusterFirst"
    assert spec["schedulerName"] == "default-scheduler"
    assert spec["enableServiceLinks"] is True
    # Not a default: Priority admission sets it from the pod's class, and a template never carries it.
    assert "priority" not in spec and "preemptionPolicy" not in spec


def test_pod_status_defaults() -> None:
    """A new pod is Pending with its QoS class computed."""
    assert _pod()["status"] == {"phase": "Pending", "qosClass": "BestEffort"}


def test_container_defaults() -> None:
    """Containers get a termination message path and policy, and ports get TCP."""
    c = _pod({"ports": [{"containerPort": 80}, {"containerPort": 53, "protocol": "UDP"}]})["spec"]["containers"][0]
    assert c["terminationMessagePath"] == "/dev/termination-log"
    assert c["terminationMessagePolicy"] == "File"
    assert [p["protocol"] for p in c["ports"]] == ["TCP", "UDP"]


@pytest.mark.parametrize(("image", "policy"), [
    pytest.param("nginx", "Always", id="no-tag-is-latest"),
    pytest.param("nginx:latest", "Always", id="latest"),
    pytest.param("nginx:1.25", "IfNotPresent", id="tag"),
    pytest.param("localhost:5000/app", "Always", id="registry-port-is-not-a-tag"),
    pytest.param("localhost:5000/app:v1", "IfNotPresent", id="registry-port-and-tag"),
    pytest.param("nginx@sha256:" + "a" * 64, "IfNotPresent", id="digest"),
])
def test_image_pull_policy(image: str, policy: str) -> None:
    """imagePullPolicy defaults to Always for :latest (or no tag) and IfNotPresent otherwise."""
    assert _pod({"image": image})["spec"]["containers"][0]["imagePullPolicy"] == policy


def test_explicit_values_are_kept() -> None:
    """Defaults never overwrite what the manifest says."""
    spec = _pod({"imagePullPolicy": "Never"}, restartPolicy="OnFailure", terminationGracePeriodSeconds=0)["spec"]
    assert spec["restartPolicy"] == "OnFailure"
    assert spec["terminationGracePeriodSeconds"] == 0
    assert spec["containers"][0]["imagePullPolicy"] == "Never"


def test_probe_defaults() -> None:
    """Probes get Kubernetes' timing defaults and HTTP probes a path and scheme."""
    c = _pod({"livenessProbe": {"httpGet": {"port": 8080}}})["spec"]["containers"][0]
    assert c["livenessProbe"] == {"httpGet": {"path": "/", "port": 8080, "scheme": "HTTP"}, "timeoutSeconds": 1,
                                  "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3}


def test_requests_default_to_limits() -> None:
    """A container with only limits requests the same amounts, and its pod is Guaranteed."""
    pod = _pod({"resources": {"limits": {"cpu": "500m", "memory": "128Mi"}}})
    assert pod["spec"]["containers"][0]["resources"]["requests"] == {"cpu": "500m", "memory": "128Mi"}
    assert pod["status"]["qosClass"] == "Guaranteed"


@pytest.mark.parametrize(("resources", "qos"), [
    pytest.param({}, "BestEffort", id="none"),
    pytest.param({"requests": {"cpu": "100m"}}, "Burstable", id="requests-only"),
    pytest.param({"limits": {"cpu": "1", "memory": "1Gi"}, "requests": {"cpu": "500m"}}, "Burstable",
                 id="request-below-limit"),
    pytest.param({"limits": {"cpu": "1", "memory": "1Gi"}}, "Guaranteed", id="limits-only"),
])
def test_qos_class(resources: dict[str, Any], qos: str) -> None:
    """The QoS class follows from requests and limits as in Kubernetes."""
    assert _pod({"resources": resources})["status"]["qosClass"] == qos


def test_default_tolerations() -> None:
    """Pods tolerate not-ready and unreachable nodes for the configured time, unless they already do."""
    tols = _pod()["spec"]["tolerations"]
    assert tols == [
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 1},
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 1},
    ]
    own = {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
           "tolerationSeconds": 60}
    tols = _pod(tolerations=[own])["spec"]["tolerations"]
    assert own in tols and len(tols) == 2
    assert _pod(tolerations=[{"operator": "Exists"}])["spec"]["tolerations"] == [{"operator": "Exists"}]


def test_volume_without_source_is_empty_dir() -> None:
    """A volume that names no source is an emptyDir."""
    spec = _pod(volumes=[{"name": "v"}])["spec"]
    assert spec["volumes"] == [{"name": "v", "emptyDir": {}}]


def test_service_defaults() -> None:
    """A Service defaults to ClusterIP, no affinity, TCP and targetPort = port."""
    svc = _defaulted(core_pb2.Service, {"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}})
    assert svc["spec"] == {"ports": [{"protocol": "TCP", "port": 80, "targetPort": 80}], "type": "ClusterIP",
                           "sessionAffinity": "None", "internalTrafficPolicy": "Cluster"}


def test_node_port_service_defaults() -> None:
    """NodePort services get externalTrafficPolicy Cluster; ClientIP affinity gets its 3-hour timeout."""
    svc = _defaulted(core_pb2.Service, {"metadata": {"name": "s"}, "spec": {
        "type": "NodePort", "sessionAffinity": "ClientIP", "ports": [{"port": 80, "targetPort": "http"}]}})
    assert svc["spec"]["externalTrafficPolicy"] == "Cluster"
    assert svc["spec"]["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}
    assert svc["spec"]["ports"][0]["targetPort"] == "http"


def test_deployment_defaults() -> None:
    """A Deployment gets one replica, a 25%/25% rolling update, history 10 and a 600 s progress deadline."""
    dep = _defaulted(apps_pb2.Deployment, {"metadata": {"name": "d"}, "spec": {
        "template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}}})
    spec = dep["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%",
                                                                           "maxSurge": "25%"}}
    assert spec["revisionHistoryLimit"] == 10
    assert spec["progressDeadlineSeconds"] == 600
    assert spec["template"]["spec"]["restartPolicy"] == "Always"
    assert "tolerations" not in spec["template"]["spec"], "templates stay as written; pods get tolerations"


def test_recreate_deployment_has_no_rolling_update() -> None:
    """A Recreate Deployment gets no rollingUpdate parameters."""
    dep = _defaulted(apps_pb2.Deployment, {"metadata": {"name": "d"}, "spec": {"strategy": {"type": "Recreate"}}})
    assert dep["spec"]["strategy"] == {"type": "Recreate"}


def test_replicaset_defaults() -> None:
    """A ReplicaSet defaults to one replica and keeps an explicit zero."""
    assert _defaulted(apps_pb2.ReplicaSet, {"metadata": {"name": "r"}})["spec"]["replicas"] == 1
    zero = _defaulted(apps_pb2.ReplicaSet, {"metadata": {"name": "r"}, "spec": {"replicas": 0}})
    assert zero["spec"]["replicas"] == 0


def test_namespace_node_and_event_defaults() -> None:
    """Namespaces are Active (finalizers are the apiserver's job); nodes get hostname/os labels; events count 1."""
    ns = _defaulted(core_pb2.Namespace, {"metadata": {"name": "a"}})
    assert ns["spec"] == {} and ns["status"] == {"phase": "Active"}
    node = _defaulted(core_pb2.Node, {"metadata": {"name": "n1"}})
    assert node["metadata"]["labels"] == {"kubernetes.io/hostname": "n1", "kubernetes.io/os": "linux"}
    ev = _defaulted(core_pb2.Event, {"metadata": {"name": "e"}})
    assert (ev["type"], ev["count"]) == ("Normal", 1)


@pytest.mark.parametrize(("cls", "data"), [
    pytest.param(core_pb2.Pod, {"metadata": {"name": "p"}, "spec": {"containers": [
        {"name": "c", "image": "x", "livenessProbe": {"httpGet": {"port": 80}},
         "resources": {"limits": {"cpu": "1"}}}], "volumes": [{"name": "v"}]}}, id="pod"),
    pytest.param(core_pb2.Service, {"metadata": {"name": "s"}, "spec": {"type": "NodePort",
                                                                        "ports": [{"port": 80}]}}, id="service"),
    pytest.param(apps_pb2.Deployment, {"metadata": {"name": "d"}}, id="deployment"),
    pytest.param(core_pb2.Namespace, {"metadata": {"name": "n"}}, id="namespace"),
])
def test_defaults_are_idempotent(cls: type[Message], data: dict[str, Any]) -> None:
    """Defaulting an already defaulted object changes nothing, so re-applying a manifest is stable."""
    once = convert.from_dict(cls, data)
    defaults.apply(once)
    twice = type(once)()
    twice.CopyFrom(once)
    defaults.apply(twice)
    assert twice == once
