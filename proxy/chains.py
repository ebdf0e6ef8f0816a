"""Chain names: the fixed chains the proxy owns and stable hashed names per service port.

Names follow kube-proxy's iptables mode so that anyone who has read a kube-proxy
ruleset reads ours: `KUBE-SVC-` + the first 16 characters of the base32 of
sha256(service port name + lowercase protocol), `KUBE-SEP-` adds the endpoint
("ip:port") to the hashed string. 9 + 16 = 25 characters, under iptables' 28.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

# nat table
SERVICES = "KUBE-SERVICES"
NODEPORTS = "KUBE-NODEPORTS"
POSTROUTING = "KUBE-POSTROUTING"
MARK_MASQ = "KUBE-MARK-MASQ"
# filter table (KUBE-SERVICES again, for services without endpoints)
EXTERNAL_SERVICES = "KUBE-EXTERNAL-SERVICES"
FORWARD = "KUBE-FORWARD"

NAT = "nat"
FILTER = "filter"

# The chains every sync writes, per table, in the order they are declared.
FIXED: dict[str, tuple[str, ...]] = {
    FILTER: (SERVICES, EXTERNAL_SERVICES, FORWARD),
    NAT: (SERVICES, NODEPORTS, POSTROUTING, MARK_MASQ),
}

SVC_PREFIX = "KUBE-SVC-"
SVL_PREFIX = "KUBE-SVL-"
EXT_PREFIX = "KUBE-EXT-"
FW_PREFIX = "KUBE-FW-"
SEP_PREFIX = "KUBE-SEP-"
# Per-service chains are created and deleted as services come and go; anything with
# these prefixes that the desired state does not name is stale and removed.
PER_SERVICE_PREFIXES = (SVC_PREFIX, SVL_PREFIX, EXT_PREFIX, FW_PREFIX, SEP_PREFIX)

MAX_CHAIN_NAME = 28  # XT_EXTENSION_MAXNAMELEN - 1

# The packet mark that asks KUBE-POSTROUTING to masquerade (kube-proxy's default bit 14).
MASQ_MARK = "0x4000"


def port_name(namespace: str, name: str, port: str) -> str:
    """A service port's display name: `ns/svc:port`, or `ns/svc` for an unnamed port."""
    return f"{namespace}/{name}:{port}" if port else f"{namespace}/{name}"


_B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_B32_PAIRS = [a + b for a in _B32 for b in _B32]  # two digits per 10-bit group


def _hash(text: str) -> str:
    """base32(sha256(text))[:16]: the first 10 bytes of the digest are exactly 16 base32 digits.

    Done by hand because base64.b32encode is pure Python and hashing is most of rendering.
    """
    n = int.from_bytes(hashlib.sha256(text.encode()).digest()[:10], "big")
    p = _B32_PAIRS
    return (p[n >> 70] + p[(n >> 60) & 1023] + p[(n >> 50) & 1023] + p[(n >> 40) & 1023]
            + p[(n >> 30) & 1023] + p[(n >> 20) & 1023] + p[(n >> 10) & 1023] + p[n & 1023])


def service_chain(svc_port_name: str, protocol: str) -> str:
    """KUBE-SVC-*: picks one endpoint of a service port."""
    return SVC_PREFIX + _hash(svc_port_name + protocol.lower())


def local_chain(svc_port_name: str, protocol: str) -> str:
    """KUBE-SVL-*: picks one of this node's endpoints (a Local traffic policy)."""
    return SVL_PREFIX + _hash(svc_port_name + protocol.lower())


def firewall_chain(svc_port_name: str, protocol: str) -> str:
    """KUBE-FW-*: load-balancer IP traffic from the loadBalancerSourceRanges goes on to KUBE-EXT."""
    return FW_PREFIX + _hash(svc_port_name + protocol.lower())


def external_chain(svc_port_name: str, protocol: str) -> str:
    """KUBE-EXT-*: traffic arriving from outside (NodePort, externalIPs, LoadBalancer): masquerade, then KUBE-SVC."""
    return EXT_PREFIX + _hash(svc_port_name + protocol.lower())


def endpoint_chain(svc_port_name: str, protocol: str, endpoint: str) -> str:
    """KUBE-SEP-*: DNAT to one endpoint ("ip:port") of a service port."""
    return SEP_PREFIX + _hash(svc_port_name + protocol.lower() + endpoint)


def endpoint_chains(svc_port_name: str, protocol: str, endpoints: Iterable[str]) -> list[str]:
    """endpoint_chain for each endpoint of one service port."""
    prefix = svc_port_name + protocol.lower()
    return [SEP_PREFIX + _hash(prefix + ep) for ep in endpoints]


def is_per_service(chain: str) -> bool:
    return chain.startswith(PER_SERVICE_PREFIXES)


def is_owned(table: str, chain: str) -> bool:
    """Whether the proxy created `chain` in `table` (and so may flush or delete it)."""
    return chain in FIXED.get(table, ()) or (table == NAT and is_per_service(chain))
