"""An Ingress's status.loadBalancer: the addresses of the nodes whose controller serves it (pure)."""

from __future__ import annotations

from api.pb import networking_pb2


def plan_status(current: networking_pb2.Ingress | None, address: str,
                serving: bool) -> networking_pb2.Ingress | None:
    """The Ingress with `address` listed (serving) or not listed; None if it already is as wanted (or gone)."""
    if current is None:
        return None
    listed = [i.ip for i in current.status.load_balancer.ingress]
    if (address in listed) == serving:
        return None
    new = networking_pb2.Ingress()
    new.CopyFrom(current)
    keep = [i for i in new.status.load_balancer.ingress if i.ip != address]
    del new.status.load_balancer.ingress[:]
    new.status.load_balancer.ingress.extend(keep)
    if serving:
        new.status.load_balancer.ingress.add(ip=address)
    entries = sorted(new.status.load_balancer.ingress, key=lambda i: (i.ip, i.hostname))
    del new.status.load_balancer.ingress[:]
    new.status.load_balancer.ingress.extend(entries)
    return new
