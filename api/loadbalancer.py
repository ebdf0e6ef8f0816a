"""LoadBalancer Services: the names the apiserver, the proxy, the speaker and the CLI share.

The apiserver allocates a LoadBalancer Service's address from its pool and records it in
the `ALLOCATED_IP` annotation (server-owned); status.loadBalancer.ingress is written only
by the node that announces the address, so EXTERNAL-IP shows an address that answers.
"""

from __future__ import annotations

from api.pb import core_pb2

ALLOCATED_IP = "kubelite.io/load-balancer-ip"
# The class kubelite's own speaker serves; a Service with no class is served too, any other is left alone.
CLASS = "kubelite.io/layer2"
LEASE_PREFIX = "kubelite-lb-"  # the Lease (in the Service's namespace) held by the announcing node


def is_ours(svc: core_pb2.Service) -> bool:
    """A LoadBalancer Service this cluster allocates and announces an address for."""
    spec = svc.spec
    return spec.type == "LoadBalancer" and (not spec.HasField("load_balancer_class") or
                                            spec.load_balancer_class == CLASS)


def allocated_ip(svc: core_pb2.Service) -> str:
    """The address the apiserver allocated (empty when none)."""
    return svc.metadata.annotations.get(ALLOCATED_IP, "") if is_ours(svc) else ""


def lease_name(service_name: str) -> str:
    return f"{LEASE_PREFIX}{service_name}"
