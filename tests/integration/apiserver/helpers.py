"""Small valid objects of every kind, for the apiserver's integration tests."""

from __future__ import annotations

import random
import socket
from pathlib import Path
from typing import Any

from google.protobuf.message import Message

from api import convert, kinds

TEMPLATE = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]}}

MANIFESTS: dict[str, dict[str, Any]] = {
    "Namespace": {"metadata": {"name": "team-a"}},
    "Node": {"metadata": {"name": "node-1"}, "spec": {"podCIDR": "10.244.1.0/24"}},
    "Pod": {"metadata": {"name": "web-1"}, "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}]}},
    "Service": {"metadata": {"name": "web"}, "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}},
    "Endpoints": {"metadata": {"name": "web"}, "subsets": [{"addresses": [{"ip": "10.244.1.5"}],
                                                            "ports": [{"port": 80}]}]},
    "Event": {"metadata": {"name": "web-1.1"}, "involvedObject": {"kind": "Pod", "name": "web-1"},
              "reason": "Scheduled", "message": "assigned"},
    "ReplicaSet": {"metadata": {"name": "web-rs"}, "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                                                            "template": TEMPLATE}},
    "Deployment": {"metadata": {"name": "web"}, "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                                                         "template": TEMPLATE}},
    "Lease": {"metadata": {"name": "node-1", "namespace": "kube-node-lease"},
              "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40}},
    "PriorityClass": {"metadata": {"name": "high-priority"}, "value": 1000000},
    "BootstrapToken": {"metadata": {"name": "abc123"},
                       "spec": {"secretHash": "0" * 64, "expiration": "2100-01-01T00:00:00Z",
                                "description": "test"}},
    "ConfigMap": {"metadata": {"name": "web-config"}, "data": {"index.html": "<h1>hi</h1>\n"}},
    "Secret": {"metadata": {"name": "web-secret"}, "data": {"password": "czNjcjN0"}},
    "ServiceAccount": {"metadata": {"name": "robot"}, "automountServiceAccountToken": False},
    "PersistentVolume": {"metadata": {"name": "pv-1"}, "spec": {"capacity": {"storage": "1Gi"},
                                                                "accessModes": ["ReadWriteOnce"],
                                                                "hostPath": {"path": "/srv/pv-1"}}},
    "PersistentVolumeClaim": {"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"],
                                                                     "resources": {"requests": {"storage": "1Gi"}}}},
    "StorageClass": {"metadata": {"name": "fast"}, "provisioner": "kubelite.io/local-path"},
    "Ingress": {"metadata": {"name": "web"}, "spec": {"rules": [{"host": "foo.example", "http": {"paths": [
        {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}},
    "IngressClass": {"metadata": {"name": "kubelite"}, "spec": {"controller": "kubelite.dev/ingress-nginx"}},
    "EndpointSlice": {"metadata": {"name": "web-abcde", "labels": {"kubernetes.io/service-name": "web"}},
                      "addressType": "IPv4",
                      "endpoints": [{"addresses": ["10.244.1.5"], "conditions": {"ready": True}}],
                      "ports": [{"name": "", "port": 80, "protocol": "TCP"}]},
    "Job": {"metadata": {"name": "pi"}, "spec": {"template": {"spec": {
        "restartPolicy": "Never", "containers": [{"name": "c", "image": "perl:5.34.0", "command": ["perl"]}]}}}},
    "CronJob": {"metadata": {"name": "hello"}, "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {
        "template": {"spec": {"restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "busybox"}]}}}}}},
    "DaemonSet": {"metadata": {"name": "agent"}, "spec": {"selector": {"matchLabels": {"app": "web"}},
                                                          "template": TEMPLATE}},
    "StatefulSet": {"metadata": {"name": "web"}, "spec": {"serviceName": "nginx", "replicas": 2,
                                                          "selector": {"matchLabels": {"app": "web"}},
                                                          "template": TEMPLATE}},
    "PodDisruptionBudget": {"metadata": {"name": "web"}, "spec": {"minAvailable": 2,
                                                                  "selector": {"matchLabels": {"app": "web"}}}},
    "ControllerRevision": {"metadata": {"name": "web-1"}, "revision": 1, "data": {"spec": {"template": TEMPLATE}}},
    "Role": {"metadata": {"name": "pod-reader"}, "rules": [{"apiGroups": [""], "resources": ["pods"],
                                                            "verbs": ["get", "list"]}]},
    "ClusterRole": {"metadata": {"name": "secret-reader"}, "rules": [{"apiGroups": [""], "resources": ["secrets"],
                                                                      "verbs": ["get"]}]},
    "RoleBinding": {"metadata": {"name": "read-pods"}, "roleRef": {
        "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "pod-reader"},
        "subjects": [{"kind": "User", "name": "jane", "apiGroup": "rbac.authorization.k8s.io"}]},
    "ClusterRoleBinding": {"metadata": {"name": "read-secrets"}, "roleRef": {
        "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "secret-reader"},
        "subjects": [{"kind": "Group", "name": "manager", "apiGroup": "rbac.authorization.k8s.io"}]},
}


def make(kind: str, name: str | None = None, **meta: Any) -> Any:
    """A valid object of `kind`; `name` and metadata fields override the defaults."""
    k = kinds.lookup(kind)
    data: dict[str, Any] = {"apiVersion": k.api_version, "kind": k.kind, **MANIFESTS[k.kind]}
    data["metadata"] = {**data["metadata"], **meta}
    if name is not None:
        data["metadata"]["name"] = name
    return kinds.unwrap(convert.manifest_to_object(data))


def pod(name: str, *, labels: dict[str, str] | None = None, namespace: str = "default", node: str = "",
        **spec: Any) -> Message:
    """A one-container pod."""
    data = {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
            "spec": {"containers": [{"name": "c", "image": "nginx:1.25"}], **spec}}
    if node:
        data["spec"]["nodeName"] = node
    return kinds.unwrap(convert.manifest_to_object(data))


def service(name: str, *, type_: str = "ClusterIP", namespace: str = "default", **spec: Any) -> Message:
    data = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": namespace},
            "spec": {"type": type_, "selector": {"app": name}, "ports": [{"port": 80}], **spec}}
    return kinds.unwrap(convert.manifest_to_object(data))


def restart_port() -> int:
    """A free loopback port outside the kernel's ephemeral range, for a server that must come back on the same port.

    Ports from `bind(0)` come from the ephemeral range, so while such a server is down another test's server or
    client could be handed its port; below the range nothing is handed out automatically.
    """
    low, _ = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, max(20001, low))
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port below the ephemeral range")
