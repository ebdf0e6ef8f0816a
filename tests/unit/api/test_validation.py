"""Validation: every invalid object is refused with the exact field error Kubernetes would name."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from google.protobuf.message import Message

from api import convert, validation
from api.pb import apps_pb2, core_pb2

CONTAINER = {"name": "c", "image": "nginx:1.25"}
TEMPLATE = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [CONTAINER]}}
VALID: dict[str, tuple[type[Message], dict[str, Any]]] = {
    "Pod": (core_pb2.Pod, {"metadata": {"name": "p", "namespace": "default"}, "spec": {"containers": [CONTAINER]}}),
    "Service": (core_pb2.Service, {"metadata": {"name": "s", "namespace": "default"},
                                   "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}),
    "Deployment": (apps_pb2.Deployment, {"metadata": {"name": "d", "namespace": "default"},
                                         "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": TEMPLATE}}),
    "ReplicaSet": (apps_pb2.ReplicaSet, {"metadata": {"name": "r", "namespace": "default"},
                                         "spec": {"selector": {"matchLabels": {"app": "web"}}, "template": TEMPLATE}}),
    "Namespace": (core_pb2.Namespace, {"metadata": {"name": "team-a"}}),
    "Node": (core_pb2.Node, {"metadata": {"name": "node-1"}}),
    "Endpoints": (core_pb2.Endpoints, {"metadata": {"name": "s", "namespace": "default"}}),
    "Event": (core_pb2.Event, {"metadata": {"name": "e", "namespace": "default"},
                               "involvedObject": {"kind": "Pod", "name": "p"}}),
    "Lease": (apps_pb2.Lease, {"metadata": {"name": "l", "namespace": "default"}}),
}


def _set(data: dict[str, Any], path: str, value: Any) -> None:
    """Set `a.b[0].c` in a nested dict (creating maps on the way)."""
    parts = path.replace("]", "").replace("[", ".").split(".")
    target: Any = data
    for part in parts[:-1]:
        target = target[int(part)] if isinstance(target, list) else target.setdefault(part, {})
    last = parts[-1]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value


def _build(kind: str, changes: dict[str, Any]) -> Message:
    cls, base = VALID[kind]
    data = copy.deepcopy(base)
    for path, value in changes.items():
        _set(data, path, value)
    return convert.from_dict(cls, data)


@pytest.mark.parametrize("kind", sorted(VALID))
def test_valid_objects_pass(kind: str) -> None:
    """The minimal valid object of every kind has no errors."""
    assert validation.validate(_build(kind, {})) == []


PORT_RANGE = "must be between 1 and 65535, inclusive"
LABEL_RULE = ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and "
              "must start and end with an alphanumeric character (at most 63 characters)")
RFC1123_LABEL = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start "
                 "and end with an alphanumeric character")
RFC1123_SUBDOMAIN = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
                     "and must start and end with an alphanumeric character")


@pytest.mark.parametrize(("kind", "changes", "errors"), [
    # ---- metadata
    pytest.param("Pod", {"metadata.name": ""}, ["metadata.name: Required value: name or generateName is required"],
                 id="name-required"),
    pytest.param("Pod", {"metadata.name": "Web_1"}, [f"metadata.name: Invalid value: 'Web_1': {RFC1123_SUBDOMAIN}"],
                 id="pod-name-not-subdomain"),
    pytest.param("Pod", {"metadata.name": "", "metadata.generateName": "Web-"},
                 [f"metadata.generateName: Invalid value: 'Web-': {RFC1123_SUBDOMAIN}"], id="bad-generate-name"),
    pytest.param("Pod", {"metadata.namespace": "Team.A"},
                 [f"metadata.namespace: Invalid value: 'Team.A': {RFC1123_LABEL}"], id="bad-namespace"),
    pytest.param("Node", {"metadata.namespace": "default"}, ["metadata.namespace: Forbidden: not allowed on this type"],
                 id="namespace-on-cluster-kind"),
    pytest.param("Pod", {"metadata.labels": {"app": "-web"}}, [f"metadata.labels[app]: Invalid value: '-web': "
                                                               f"{LABEL_RULE}"], id="bad-label-value"),
    pytest.param("Pod", {"metadata.labels": {"-app": "web"}},
                 ["metadata.labels: Invalid value: '-app': name part must consist of alphanumeric characters, '-', "
                  "'_' or '.', and must start and end with an alphanumeric character (at most 63 characters)"],
                 id="bad-label-key"),
    pytest.param("Pod", {"metadata.ownerReferences": [{"kind": "ReplicaSet", "name": "r", "apiVersion": "apps/v1"}]},
                 ["metadata.ownerReferences[0].uid: Required value"], id="owner-without-uid"),
    pytest.param("Pod", {"metadata.ownerReferences": [
        {"kind": "ReplicaSet", "name": "a", "apiVersion": "apps/v1", "uid": "1", "controller": True},
        {"kind": "ReplicaSet", "name": "b", "apiVersion": "apps/v1", "uid": "2", "controller": True}]},
        ["metadata.ownerReferences: Invalid value: only one reference can have Controller set to true"],
        id="two-controllers"),
    pytest.param("Pod", {"metadata.finalizers": ["-bad"]}, ["metadata.finalizers[0]: Invalid value: '-bad': must be a "
                                                             "qualified name"], id="bad-finalizer"),
    # ---- pods
    pytest.param("Pod", {"spec.containers[0].image": ""}, ["spec.containers[0].image: Required value"],
                 id="image-required"),
    pytest.param("Pod", {"spec.containers": []}, ["spec.containers: Required value"], id="containers-required"),
    pytest.param("Pod", {"spec.containers[0].name": "C_1"},
                 [f"spec.containers[0].name: Invalid value: 'C_1': {RFC1123_LABEL}"], id="bad-container-name"),
    pytest.param("Pod", {"spec.containers": [CONTAINER, CONTAINER]}, ["spec.containers[1].name: Duplicate value: 'c'"],
                 id="duplicate-container"),
    pytest.param("Pod", {"spec.containers[0].ports": [{"containerPort": 0}]},
                 ["spec.containers[0].ports[0].containerPort: Required value"], id="container-port-required"),
    pytest.param("Pod", {"spec.containers[0].ports": [{"containerPort": 70000}]},
                 [f"spec.containers[0].ports[0].containerPort: Invalid value: 70000: {PORT_RANGE}"],
                 id="container-port-range"),
    pytest.param("Pod", {"spec.containers[0].ports": [{"containerPort": 80, "protocol": "HTTP"}]},
                 ["spec.containers[0].ports[0].protocol: Unsupported value: 'HTTP': supported values: \"TCP\", "
                  "\"UDP\", \"SCTP\""], id="bad-protocol"),
    pytest.param("Pod", {"spec.containers[0].ports": [{"containerPort": 80}, {"containerPort": 80}]},
                 ["spec.containers[0].ports[1].containerPort: Duplicate value: 80"], id="duplicate-port"),
    pytest.param("Pod", {"spec.containers[0].imagePullPolicy": "Sometimes"},
                 ["spec.containers[0].imagePullPolicy: Unsupported value: 'Sometimes': supported values: \"Always\", "
                  "\"IfNotPresent\", \"Never\""], id="bad-pull-policy"),
    pytest.param("Pod", {"spec.containers[0].volumeMounts": [{"name": "data", "mountPath": "/data"}]},
                 ["spec.containers[0].volumeMounts[0].name: Not found: 'data'"], id="mount-of-missing-volume"),
    pytest.param("Pod", {"spec.volumes": [{"name": "v", "emptyDir": {}}],
                         "spec.containers[0].volumeMounts": [{"name": "v", "mountPath": "data"}]},
                 ["spec.containers[0].volumeMounts[0].mountPath: Invalid value: 'data': must be an absolute path"],
                 id="relative-mount-path"),
    pytest.param("Pod", {"spec.volumes": [{"name": "v", "emptyDir": {}}, {"name": "v", "emptyDir": {}}]},
                 ["spec.volumes[1].name: Duplicate value: 'v'"], id="duplicate-volume"),
    pytest.param("Pod", {"spec.volumes": [{"name": "v", "emptyDir": {}, "hostPath": {"path": "/x"}}]},
                 ["spec.volumes[0]: Forbidden: may not specify more than 1 volume type"], id="two-volume-sources"),
    pytest.param("Pod", {"spec.volumes": [{"name": "v", "hostPath": {"path": "../etc"}}]},
                 ["spec.volumes[0].hostPath.path: Invalid value: '../etc': must be an absolute path without '..'"],
                 id="relative-host-path"),
    pytest.param("Pod", {"spec.containers[0].resources": {"limits": {"cpu": "lots"}}},
                 ["spec.containers[0].resources.limits[cpu]: Invalid value: 'lots': quantities must match the regular "
                  "expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"], id="bad-quantity"),
    pytest.param("Pod", {"spec.containers[0].resources": {"limits": {"memory": "-1Mi"}}},
                 ["spec.containers[0].resources.limits[memory]: Invalid value: '-1Mi': must be greater than or equal "
                  "to 0"], id="negative-quantity"),
    pytest.param("Pod", {"spec.containers[0].resources": {"limits": {"cpu": "1"}, "requests": {"cpu": "2"}}},
                 ["spec.containers[0].resources.requests: Invalid value: '2': must be less than or equal to cpu limit "
                  "of 1"], id="request-above-limit"),
    pytest.param("Pod", {"spec.containers[0].env": [{"name": "1X", "value": "v"}]},
                 ["spec.containers[0].env[0].name: Invalid value: '1X': a valid environment variable name must "
                  "consist of alphabetic characters, digits, '_', '-', or '.', and must not start with a digit"],
                 id="bad-env-name"),
    pytest.param("Pod", {"spec.containers[0].env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "c"}}}]},
                 ["spec.containers[0].env[0].valueFrom.configMapKeyRef.key: Required value"], id="configmap-env-key"),
    pytest.param("Pod", {"spec.containers[0].livenessProbe": {}},
                 ["spec.containers[0].livenessProbe: Required value: must specify a handler type"],
                 id="probe-without-handler"),
    pytest.param("Pod", {"spec.containers[0].livenessProbe": {"httpGet": {"port": 0}}},
                 [f"spec.containers[0].livenessProbe.httpGet.port: Invalid value: 0: {PORT_RANGE}"],
                 id="probe-port-range"),
    pytest.param("Pod", {"spec.containers[0].livenessProbe": {"exec": {"command": ["true"]}, "successThreshold": 2}},
                 ["spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1"],
                 id="liveness-success-threshold"),
    pytest.param("Pod", {"spec.initContainers": [{"name": "i", "image": "x", "readinessProbe": {
        "exec": {"command": ["true"]}}}]},
        ["spec.initContainers[0].readinessProbe: Forbidden: may not be set for init containers"],
        id="probe-on-init-container"),
    pytest.param("Pod", {"spec.restartPolicy": "Sometimes"},
                 ["spec.restartPolicy: Unsupported value: 'Sometimes': supported values: \"Always\", \"OnFailure\", "
                  "\"Never\""], id="bad-restart-policy"),
    pytest.param("Pod", {"spec.terminationGracePeriodSeconds": -1},
                 ["spec.terminationGracePeriodSeconds: Invalid value: -1: must be greater than or equal to 0"],
                 id="negative-grace"),
    pytest.param("Pod", {"spec.activeDeadlineSeconds": 0},
                 ["spec.activeDeadlineSeconds: Invalid value: 0: must be greater than 0"], id="zero-deadline"),
    pytest.param("Pod", {"spec.tolerations": [{"key": "k", "operator": "Exists", "value": "v"}]},
                 ["spec.tolerations[0].operator: Invalid value: 'v': value must be empty when `operator` is 'Exists'"],
                 id="toleration-exists-with-value"),
    pytest.param("Pod", {"spec.tolerations": [{"key": "k", "effect": "NoSchedule", "tolerationSeconds": 5}]},
                 ["spec.tolerations[0].effect: Invalid value: 'NoSchedule': effect must be 'NoExecute' when "
                  "`tolerationSeconds` is set"], id="toleration-seconds-not-noexecute"),
    pytest.param("Pod", {"spec.nodeName": "Node_1"}, [f"spec.nodeName: Invalid value: 'Node_1': {RFC1123_SUBDOMAIN}"],
                 id="bad-node-name"),
    pytest.param("Pod", {"spec.affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In"}]}]}}}},
        ["spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0]"
         ".matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'"],
        id="affinity-in-without-values"),
    pytest.param("Pod", {"spec.topologySpreadConstraints": [{"maxSkew": 0, "topologyKey": "zone",
                                                              "whenUnsatisfiable": "DoNotSchedule"}]},
                 ["spec.topologySpreadConstraints[0].maxSkew: Invalid value: 0: must be greater than zero"],
                 id="zero-max-skew"),
    # ---- services
    pytest.param("Service", {"spec.ports": []}, ["spec.ports: Required value"], id="service-ports-required"),
    pytest.param("Service", {"metadata.name": "1svc"},
                 ["metadata.name: Invalid value: '1svc': a DNS-1035 label must consist of lower case alphanumeric "
                  "characters or '-', start with an alphabetic character, and end with an alphanumeric character"],
                 id="service-name-dns1035"),
    pytest.param("Service", {"spec.ports": [{"port": 80}, {"port": 81}]},
                 ["spec.ports[0].name: Required value", "spec.ports[1].name: Required value"],
                 id="multi-port-needs-names"),
    pytest.param("Service", {"spec.ports": [{"name": "a", "port": 80}, {"name": "a", "port": 81}]},
                 ["spec.ports[1].name: Duplicate value: 'a'"], id="duplicate-port-name"),
    pytest.param("Service", {"spec.ports": [{"name": "a", "port": 80}, {"name": "b", "port": 80}]},
                 ["spec.ports[1]: Duplicate value: {'port': 80, 'protocol': 'TCP'}"], id="duplicate-port"),
    pytest.param("Service", {"spec.ports[0].port": 0}, ["spec.ports[0].port: Required value"], id="port-required"),
    pytest.param("Service", {"spec.ports[0].targetPort": 70000},
                 [f"spec.ports[0].targetPort: Invalid value: 70000: {PORT_RANGE}"], id="target-port-range"),
    pytest.param("Service", {"spec.ports[0].targetPort": "Bad_Name"},
                 ["spec.ports[0].targetPort: Invalid value: 'Bad_Name': must contain only lowercase alphanumeric "
                  "characters or '-' and no '--'"], id="bad-target-port-name"),
    pytest.param("Service", {"spec.ports[0].nodePort": 30000},
                 ["spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"],
                 id="node-port-on-cluster-ip"),
    pytest.param("Service", {"spec.type": "Weird"},
                 ["spec.type: Unsupported value: 'Weird': supported values: \"ClusterIP\", \"NodePort\", "
                  "\"LoadBalancer\", \"ExternalName\""], id="bad-type"),
    pytest.param("Service", {"spec.type": "ExternalName"}, ["spec.externalName: Required value"],
                 id="external-name-required"),
    pytest.param("Service", {"spec.clusterIP": "10.96.0.300"},
                 ["spec.clusterIP: Invalid value: '10.96.0.300': must be a valid IP address"], id="bad-cluster-ip"),
    pytest.param("Service", {"spec.type": "NodePort", "spec.clusterIP": "None"},
                 ["spec.clusterIP: Invalid value: 'None': may not be set to 'None' for NodePort services"],
                 id="headless-node-port"),
    pytest.param("Service", {"spec.sessionAffinity": "Cookie"},
                 ["spec.sessionAffinity: Unsupported value: 'Cookie': supported values: \"ClientIP\", \"None\""],
                 id="bad-session-affinity"),
    pytest.param("Service", {"spec.selector": {"app": "-web"}},
                 [f"spec.selector[app]: Invalid value: '-web': {LABEL_RULE}"], id="bad-selector-value"),
    # ---- workloads
    pytest.param("Deployment", {"spec.selector": None}, ["spec.selector: Required value"], id="selector-required"),
    pytest.param("Deployment", {"spec.selector": {"matchLabels": {"app": "db"}}},
                 ["spec.template.metadata.labels: Invalid value: {'app': 'web'}: `selector` does not match template "
                  "`labels`"], id="selector-does-not-match"),
    pytest.param("Deployment", {"spec.replicas": -1},
                 ["spec.replicas: Invalid value: -1: must be greater than or equal to 0"], id="negative-replicas"),
    pytest.param("Deployment", {"spec.strategy": {"type": "BlueGreen"}},
                 ["spec.strategy.type: Unsupported value: 'BlueGreen': supported values: \"Recreate\", "
                  "\"RollingUpdate\""], id="bad-strategy"),
    pytest.param("Deployment", {"spec.strategy": {"type": "Recreate", "rollingUpdate": {"maxSurge": 1}}},
                 ["spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` is 'Recreate'"],
                 id="recreate-with-rolling-update"),
    pytest.param("Deployment", {"spec.strategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}},
                 ["spec.strategy.rollingUpdate.maxUnavailable: Invalid value: '0': may not be 0 when `maxSurge` is 0"],
                 id="surge-and-unavailable-zero"),
    pytest.param("Deployment", {"spec.strategy": {"rollingUpdate": {"maxSurge": "x%"}}},
                 ["spec.strategy.rollingUpdate.maxSurge: Invalid value: 'x%': must be an integer or percentage "
                  "(e.g '5%')"], id="bad-max-surge"),
    pytest.param("Deployment", {"spec.strategy": {"rollingUpdate": {"maxUnavailable": "150%"}}},
                 ["spec.strategy.rollingUpdate.maxUnavailable: Invalid value: '150%': must not be greater than 100%"],
                 id="max-unavailable-over-100"),
    pytest.param("Deployment", {"spec.template.spec.restartPolicy": "Never"},
                 ["spec.template.spec.restartPolicy: Unsupported value: 'Never': supported values: \"Always\""],
                 id="template-restart-policy"),
    pytest.param("Deployment", {"spec.template.spec.containers[0].image": ""},
                 ["spec.template.spec.containers[0].image: Required value"], id="template-image-required"),
    pytest.param("Deployment", {"spec.progressDeadlineSeconds": 5, "spec.minReadySeconds": 10},
                 ["spec.progressDeadlineSeconds: Invalid value: 5: must be greater than minReadySeconds"],
                 id="deadline-below-min-ready"),
    pytest.param("ReplicaSet", {"spec.minReadySeconds": -1},
                 ["spec.minReadySeconds: Invalid value: -1: must be greater than or equal to 0"],
                 id="negative-min-ready"),
    pytest.param("ReplicaSet", {"spec.selector": {"matchExpressions": [{"key": "app", "operator": "Near"}]}},
                 ["spec.selector.matchExpressions[0].operator: Unsupported value: 'Near': supported values: \"In\", "
                  "\"NotIn\", \"Exists\", \"DoesNotExist\""], id="bad-selector-operator"),
    # ---- the rest
    pytest.param("Namespace", {"metadata.name": "Team.A"}, [f"metadata.name: Invalid value: 'Team.A': {RFC1123_LABEL}"],
                 id="namespace-name-is-a-label"),
    pytest.param("Node", {"spec.taints": [{"key": "k", "effect": "Never"}]},
                 ["spec.taints[0].effect: Unsupported value: 'Never': supported values: \"NoSchedule\", "
                  "\"PreferNoSchedule\", \"NoExecute\""], id="bad-taint-effect"),
    pytest.param("Node", {"spec.taints": [{"key": "k", "effect": "NoSchedule"}, {"key": "k", "effect": "NoSchedule"}]},
                 ["spec.taints[1]: Duplicate value: 'k:NoSchedule': taints must be unique by key and effect"],
                 id="duplicate-taint"),
    pytest.param("Node", {"spec.podCIDR": "10.244.0.0/33"},
                 ["spec.podCIDR: Invalid value: '10.244.0.0/33': must be a valid CIDR"], id="bad-pod-cidr"),
    pytest.param("Endpoints", {"subsets": [{"addresses": [{"ip": "10.0.0.x"}], "ports": [{"port": 0}]}]},
                 ["subsets[0].addresses[0].ip: Invalid value: '10.0.0.x': must be a valid IP address",
                  f"subsets[0].ports[0].port: Invalid value: 0: {PORT_RANGE}"], id="bad-endpoints"),
    pytest.param("Event", {"involvedObject": None}, ["involvedObject: Required value"], id="event-without-object"),
    pytest.param("Event", {"type": "Fatal"}, ["type: Unsupported value: 'Fatal': supported values: \"Normal\", "
                                              "\"Warning\""], id="bad-event-type"),
    pytest.param("Lease", {"spec.leaseDurationSeconds": 0},
                 ["spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0"], id="zero-lease-duration"),
])
def test_invalid_objects_name_the_field(kind: str, changes: dict[str, Any], errors: list[str]) -> None:
    """Each invalid object gives exactly the expected field errors, in order."""
    assert [str(e) for e in validation.validate(_build(kind, changes))] == errors


def _pod_update(changes: dict[str, Any]) -> list[str]:
    old = _build("Pod", {"spec.tolerations": [{"key": "a", "operator": "Exists"}]})
    new = _build("Pod", {"spec.tolerations": [{"key": "a", "operator": "Exists"}], **changes})
    return [str(e) for e in validation.validate_update(new, old)]


POD_IMMUTABLE = ("spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`, "
                 "`spec.initContainers[*].image`, `spec.activeDeadlineSeconds` or `spec.tolerations` (only additions "
                 "to existing tolerations)")


@pytest.mark.parametrize(("changes", "errors"), [
    pytest.param({"spec.containers[0].image": "nginx:1.26"}, [], id="image-may-change"),
    pytest.param({"spec.activeDeadlineSeconds": 30}, [], id="deadline-may-change"),
    pytest.param({"spec.tolerations": [{"key": "a", "operator": "Exists"}, {"key": "b", "operator": "Exists"}]}, [],
                 id="toleration-may-be-added"),
    pytest.param({"spec.tolerations": []}, [POD_IMMUTABLE], id="toleration-may-not-be-removed"),
    pytest.param({"spec.containers[0].command": ["sh"]}, [POD_IMMUTABLE], id="command-is-immutable"),
    pytest.param({"spec.restartPolicy": "Never"}, [POD_IMMUTABLE], id="restart-policy-is-immutable"),
    pytest.param({"metadata.name": "q"}, ["metadata.name: Invalid value: 'q': field is immutable"],
                 id="name-is-immutable"),
    pytest.param({"metadata.labels": {"new": "label"}}, [], id="labels-may-change"),
])
def test_pod_update_rules(changes: dict[str, Any], errors: list[str]) -> None:
    """A pod's spec is immutable except images, activeDeadlineSeconds and added tolerations."""
    assert _pod_update(changes) == errors


@pytest.mark.parametrize(("kind", "old", "new", "errors"), [
    pytest.param("Service", {"spec.clusterIP": "10.96.0.10"}, {"spec.clusterIP": "10.96.0.11"},
                 ["spec.clusterIP: Invalid value: '10.96.0.11': field is immutable"], id="cluster-ip-immutable"),
    pytest.param("Deployment", {}, {"spec.selector": {"matchLabels": {"app": "web", "x": "y"}},
                                    "spec.template.metadata.labels": {"app": "web", "x": "y"}},
                 ["spec.selector: Invalid value: field is immutable"], id="deployment-selector-immutable"),
    pytest.param("Deployment", {}, {"spec.replicas": 5}, [], id="deployment-replicas-may-change"),
    pytest.param("Node", {"spec.podCIDR": "10.244.1.0/24"}, {"spec.podCIDR": "10.244.2.0/24"},
                 ["spec.podCIDR: Forbidden: may not be changed once set"], id="pod-cidr-immutable"),
    pytest.param("Pod", {}, {"metadata.namespace": "other"},
                 ["metadata.namespace: Invalid value: 'other': field is immutable"], id="namespace-immutable"),
])
def test_update_rules(kind: str, old: dict[str, Any], new: dict[str, Any], errors: list[str]) -> None:
    """Fields Kubernetes makes immutable are refused on update, naming the field."""
    assert [str(e) for e in validation.validate_update(_build(kind, new), _build(kind, old))] == errors
