"""Discovery documents: the groups, versions and resources this server serves, legacy and aggregated (v2).

Everything is derived from api/kinds.py, so `kubectl api-resources` lists exactly what `kubelite api-resources`
"""

from __future__ import annotations

from typing import Any

from api import kinds

VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
# Kinds `kubectl get all` shows, as in Kubernetes.
ALL = frozenset({"pods", "services", "deployments", "replicasets", "daemonsets", "statefulsets", "jobs",
                 "cronjobs"})
# Subresources: (resource, subresource) -> (response group, version, kind, verbs).
SUBRESOURCES: dict[tuple[str, str], tuple[str, str, str, list[str]]] = {
    ("pods", "binding"): ("", "v1", "Binding", ["create"]),
    ("pods", "log"): ("", "v1", "Pod", ["get"]),
    ("pods", "exec"): ("", "v1", "PodExecOptions", ["create", "get"]),
    ("pods", "eviction"): ("policy", "v1", "Eviction", ["create"]),
    ("serviceaccounts", "token"): ("authentication.k8s.io", "v1", "TokenRequest", ["create"]),
}
for _k in kinds.KINDS:
    if _k.has_status:
        SUBRESOURCES[(_k.resource, "status")] = (_k.group, _k.api_version.rpartition("/")[2], _k.kind,
                                                  ["get", "patch", "update"])
for _r in ("deployments", "replicasets", "statefulsets"):
    SUBRESOURCES[(_r, "scale")] = ("autoscaling", "v1", "Scale", ["get", "patch", "update"])

AGGREGATED = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"


def group_versions() -> dict[str, list[str]]:
    """Each served group (\"\" is core) and its versions, in the order kinds.py first names them."""
    out: dict[str, list[str]] = {}
    for k in kinds.KINDS:
        versions = out.setdefault(k.group, [])
        version = k.api_version.rpartition("/")[2]
        if version not in versions:
            versions.append(version)
    return out


def kinds_in(group: str, version: str) -> list[kinds.Kind]:
    return [k for k in kinds.KINDS if k.group == group and k.api_version.rpartition("/")[2] == version]


def singular(kind: kinds.Kind) -> str:
    return kind.kind.lower()


def categories(kind: kinds.Kind) -> list[str]:
    return ["all"] if kind.resource in ALL else []


def api_versions() -> dict[str, Any]:
    return {"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}]}


def api_group(group: str) -> dict[str, Any]:
    versions = [{"groupVersion": f"{group}/{v}", "version": v} for v in group_versions()[group]]
    return {"name": group, "versions": versions, "preferredVersion": versions[0]}


def api_group_list() -> dict[str, Any]:
    return {"kind": "APIGroupList", "apiVersion": "v1",
            "groups": [api_group(g) for g in group_versions() if g]}


def resource_list(group: str, version: str) -> dict[str, Any]:
    """The legacy APIResourceList of one group version (subresources listed as `pods/status`)."""
    resources: list[dict[str, Any]] = []
    for k in kinds_in(group, version):
        entry: dict[str, Any] = {"name": k.resource, "singularName": singular(k), "namespaced": k.namespaced,
                                 "kind": k.kind, "verbs": VERBS}
        if k.short_names:
            entry["shortNames"] = list(k.short_names)
        if categories(k):
            entry["categories"] = categories(k)
        resources.append(entry)
        for (resource, sub), (g, v, kind, verbs) in SUBRESOURCES.items():
            if resource == k.resource:
                item: dict[str, Any] = {"name": f"{resource}/{sub}", "singularName": "", "namespaced": k.namespaced,
                                        "kind": kind, "verbs": verbs}
                if g:
                    item["group"], item["version"] = g, v
                resources.append(item)
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": f"{group}/{version}" if group else version,
            "resources": resources}


def _aggregated_resource(k: kinds.Kind) -> dict[str, Any]:
    version = k.api_version.rpartition("/")[2]
    out: dict[str, Any] = {
        "resource": k.resource,
        "responseKind": {"group": k.group, "version": version, "kind": k.kind},
        "scope": "Namespaced" if k.namespaced else "Cluster",
        "singularResource": singular(k),
        "verbs": VERBS,
    }
    if k.short_names:
        out["shortNames"] = list(k.short_names)
    if categories(k):
        out["categories"] = categories(k)
    subs = [{"subresource": sub, "responseKind": {"group": g, "version": v, "kind": kind}, "verbs": verbs}
            for (resource, sub), (g, v, kind, verbs) in SUBRESOURCES.items() if resource == k.resource]
    if subs:
        out["subresources"] = subs
    return out


def aggregated(*, legacy: bool) -> dict[str, Any]:
    """The APIGroupDiscoveryList (apidiscovery.k8s.io/v2) for /api (legacy: the core group) or /apis."""
    items = []
    for group, versions in group_versions().items():
        if bool(group) == legacy:
            continue
        item: dict[str, Any] = {"metadata": {"creationTimestamp": None}, "versions": [
            {"version": v, "resources": [_aggregated_resource(k) for k in kinds_in(group, v)], "freshness": "Current"}
            for v in versions]}
        if group:
            item["metadata"]["name"] = group
        items.append(item)
    return {"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items}


def wants_aggregated(accept: str) -> bool:
    """Whether the client asked for aggregated discovery v2 before anything it would take instead."""
    for part in accept.split(","):
        params = {p.split("=", 1)[0].strip(): p.split("=", 1)[1].strip() for p in part.split(";")[1:] if "=" in p}
        if params.get("g") == "apidiscovery.k8s.io" and params.get("v") == "v2" and \
                params.get("as") == "APIGroupDiscoveryList":
            return True
        if part.split(";")[0].strip() in ("application/json", "*/*") and not params:
            return False
    return False
