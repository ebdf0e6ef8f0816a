"""The node authorizer: what a kubelet (`system:node:<name>` in `system:nodes`) may do, decided from the
objects bound to its node, as Kubernetes' Node authorizer.

A kubelet reads the pods bound to its node (a list or watch must select `spec.nodeName=<node>`) and the
ConfigMaps, Secrets and PersistentVolumeClaims those pods name; it writes the status of its pods, deletes and
evicts them, asks for their service accounts' tokens (bound to the pod), writes its own Node (never deletes
it) and its own Lease in kube-node-lease; it reads the
Services, Endpoints, EndpointSlices, Nodes and PersistentVolumes every node needs and creates Events.

Two node daemons speak with the kubelet's certificate and are allowed here, narrowly: the LoadBalancer
speaker (the `kubelite-lb-*` Leases it elects with, Services' status) and the ingress controller (Ingresses,
IngressClasses, TLS Secrets listed by `type=kubernetes.io/tls`, Ingresses' status). Anything else is left to
RBAC, which grants nodes nothing by default. What a kubelet may write *into* those objects is
NodeRestriction's (admission.py) business.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from api.pb import core_pb2
from api.volumes import LOCAL_PATH_NODE
from apiserver.authn import UserInfo
from apiserver.authz.attributes import Attributes

NODES_GROUP = "system:nodes"
NODE_PREFIX = "system:node:"
NODE_LEASE_NAMESPACE = "kube-node-lease"
LB_LEASE_PREFIX = "kubelite-lb-"
TLS_SECRETS = "type=kubernetes.io/tls"

READ = frozenset({"get", "list", "watch"})
# Objects every node reads whole: a pod's environment names Services, the proxy and speaker follow endpoints.
_READ_ALL = frozenset({("", "services"), ("", "endpoints"), ("discovery.k8s.io", "endpointslices"),
                       ("", "nodes"), ("", "persistentvolumes"), ("coordination.k8s.io", "leases"),
                       ("networking.k8s.io", "ingresses"), ("networking.k8s.io", "ingressclasses")})
_REFERENCED = frozenset({"configmaps", "secrets", "persistentvolumeclaims"})


class Graph(Protocol):
    """The objects the decisions read: the pods bound to a node, a stored PersistentVolume."""

    def pods_on(self, node: str) -> Iterable[core_pb2.Pod]: ...

    def pod(self, namespace: str, name: str) -> core_pb2.Pod | None: ...

    def volume(self, name: str) -> core_pb2.PersistentVolume | None: ...


def node_of(user: UserInfo) -> str | None:
    """The node a kubelet's user speaks for, or None for anyone else."""
    if user.name.startswith(NODE_PREFIX) and NODES_GROUP in user.groups:
        return user.name.removeprefix(NODE_PREFIX)
    return None


def references(pod: core_pb2.Pod) -> set[tuple[str, str]]:
    """(resource, name) of every ConfigMap, Secret and claim a pod names (volumes, env, envFrom, pull secrets)."""
    out: set[tuple[str, str]] = set()
    for v in pod.spec.volumes:
        if v.HasField("config_map"):
            out.add(("configmaps", v.config_map.name))
        if v.HasField("secret"):
            out.add(("secrets", v.secret.secret_name))
        if v.HasField("persistent_volume_claim"):
            out.add(("persistentvolumeclaims", v.persistent_volume_claim.claim_name))
        for src in v.projected.sources:
            if src.HasField("config_map"):
                out.add(("configmaps", src.config_map.name))
            if src.HasField("secret"):
                out.add(("secrets", src.secret.name))
    for c in (*pod.spec.init_containers, *pod.spec.containers):
        for e in c.env:
            if e.value_from.HasField("config_map_key_ref"):
                out.add(("configmaps", e.value_from.config_map_key_ref.name))
            if e.value_from.HasField("secret_key_ref"):
                out.add(("secrets", e.value_from.secret_key_ref.name))
        for ef in c.env_from:
            if ef.HasField("config_map_ref"):
                out.add(("configmaps", ef.config_map_ref.name))
            if ef.HasField("secret_ref"):
                out.add(("secrets", ef.secret_ref.name))
    for ref in pod.spec.image_pull_secrets:
        out.add(("secrets", ref.name))
    return {(r, n) for r, n in out if n}


def _selected_name(field_selector: str) -> str:
    """The name a `metadata.name=<name>` field selector pins ("" if it pins none)."""
    for term in field_selector.split(","):
        key, _, value = term.partition("=")
        if key.strip() == "metadata.name" and value and not value.startswith("="):
            return value.strip()
    return ""


def _selects(field_selector: str, wanted: str) -> bool:
    return any(term.strip().replace("==", "=") == wanted for term in field_selector.split(","))


def _own_pod(graph: Graph, node: str, namespace: str, name: str, uid: str = "") -> bool:
    """Whether the pod is bound to the node; also when it is gone, or is another incarnation than the request's
    precondition names: the request then fails (NotFound, Conflict) without touching anything, and the kubelet
    learns its pod is gone, as it must to let go of it."""
    pod = graph.pod(namespace, name)
    if pod is None or (uid and pod.metadata.uid != uid):
        return True
    return pod.spec.node_name == node


def _token_for_own_pod(graph: Graph, node: str, a: Attributes) -> bool:
    """A token bound to a pod that is bound to the node and runs as the service account asked for."""
    pod_name = getattr(a.obj, "pod_name", "")
    pod = graph.pod(a.namespace, pod_name) if pod_name else None
    return (pod is not None and pod.spec.node_name == node and pod.metadata.uid == getattr(a.obj, "pod_uid", "")
            and (pod.spec.service_account_name or "default") == a.name)


def _referenced(graph: Graph, node: str, resource: str, namespace: str, name: str) -> bool:
    return any(p.metadata.namespace == namespace and (resource, name) in references(p) for p in graph.pods_on(node))


def authorize(a: Attributes, node: str, graph: Graph) -> str | None:
    """Why the node may do this (a short reason), or None: the node authorizer does not allow it."""
    if not a.is_resource:
        return None
    group_resource = (a.api_group, a.resource)
    sub = a.subresource
    if a.verb in READ and not sub and group_resource in _READ_ALL:
        return "every node reads these"
    if a.resource == "pods" and a.api_group == "":
        if sub == "status" and a.verb in ("update", "patch"):
            if not a.name:  # the status stream; each update on it is checked by name
                return "a kubelet streams its pods' status"
            return "its own pod" if _own_pod(graph, node, a.namespace, a.name, a.uid) else None
        if (sub == "eviction" and a.verb == "create") or (not sub and a.verb in ("get", "delete")):
            return "its own pod" if _own_pod(graph, node, a.namespace, a.name, a.uid) else None
        if not sub and a.verb in ("list", "watch"):
            return "the pods bound to it" if _selects(a.field_selector, f"spec.nodeName={node}") else None
        if not sub and a.verb == "create":
            return "a mirror pod (NodeRestriction checks it)"
        return None
    if group_resource == ("", "serviceaccounts") and sub == "token" and a.verb == "create":
        return "a token for its own pod" if _token_for_own_pod(graph, node, a) else None
    if a.resource in _REFERENCED and a.api_group == "" and not sub and a.verb in READ:
        if a.resource == "secrets" and a.verb in ("list", "watch") and _selects(a.field_selector, TLS_SECRETS):
            return "the ingress controller's TLS secrets"
        name = a.name if a.verb == "get" else _selected_name(a.field_selector)
        if name and a.namespace and _referenced(graph, node, a.resource, a.namespace, name):
            return "named by a pod bound to it"
        return None
    if group_resource == ("", "persistentvolumes") and a.verb == "update" and not sub:
        # The kubelet lifts the local-path finalizer of its node's volumes once their directory is gone.
        stored = graph.volume(a.name)
        new_node = a.obj.metadata.labels.get(LOCAL_PATH_NODE) if a.obj is not None else None  # type: ignore[attr-defined]
        if stored is not None and stored.metadata.labels.get(LOCAL_PATH_NODE) == node and new_node == node:
            return "a local-path volume of its node"
        return None
    if group_resource == ("", "nodes") and a.verb in ("create", "update", "patch") and sub in ("", "status"):
        return "its own Node" if a.name == node else None
    if group_resource == ("coordination.k8s.io", "leases") and a.verb in ("create", "update", "patch", "delete"):
        if a.namespace == NODE_LEASE_NAMESPACE and a.name == node and a.verb != "delete":
            return "its own Lease"
        if a.name.startswith(LB_LEASE_PREFIX):
            return "the LoadBalancer speaker's Leases"
        return None
    if a.api_group == "" and a.resource == "events" and a.verb in ("create", "update", "patch"):
        return "events"
    if sub == "status" and a.verb in ("update", "patch") and group_resource in (
            ("", "services"), ("networking.k8s.io", "ingresses")):
        return "the speaker's and ingress controller's status"
    return None
