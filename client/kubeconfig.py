"""A kubeconfig file (kubectl's format) for the REST port: the cluster CA and a user's client certificate."""

from __future__ import annotations

import base64
from typing import Any

import yaml


def _b64(pem: bytes) -> str:
    return base64.b64encode(pem).decode()


def render(server: str, ca_pem: bytes, cert_pem: bytes, key_pem: bytes, *, cluster: str = "kubelite",
           user: str = "admin", namespace: str = "") -> str:
    """kubeconfig YAML naming one cluster (`server`: https://host:port), one user and the context joining them;
    the credentials inline, so the file stands alone."""
    context: dict[str, Any] = {"cluster": cluster, "user": user}
    if namespace:
        context["namespace"] = namespace
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": {"server": server, "certificate-authority-data": _b64(ca_pem)}}],
        "users": [{"name": user, "user": {"client-certificate-data": _b64(cert_pem),
                                          "client-key-data": _b64(key_pem)}}],
        "contexts": [{"name": cluster, "context": context}],
        "current-context": cluster,
    }
    return yaml.safe_dump(doc, sort_keys=False)


def render_token(server: str, ca_pem: bytes, token: str, *, cluster: str = "kubelite", user: str = "user") -> str:
    """The same, for a user named by a bearer token instead of a certificate."""
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": {"server": server, "certificate-authority-data": _b64(ca_pem)}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": user}}],
        "current-context": cluster,
    }
    return yaml.safe_dump(doc, sort_keys=False)
