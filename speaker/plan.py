"""Who announces each LoadBalancer address, computed the same way by every speaker.

A node is eligible for a Service when it is Ready and the Service has a ready
endpoint (with externalTrafficPolicy Local: a ready endpoint on that node). The
current holder keeps the address while it stays eligible, so a node joining moves
nothing; otherwise the eligible node ranked first by a hash of (Service, node) takes
it, so the Services spread over the nodes and every speaker picks the same one.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class LbService:
    key: str  # namespace/name
    ip: str
    local: bool  # externalTrafficPolicy: Local
    endpoint_nodes: frozenset[str]  # nodes running a ready endpoint


class Step(enum.Enum):
    ANNOUNCE = "announce"  # this node holds the address and keeps answering for it
    TAKE = "take"  # take the Lease (compare-and-swap), then answer
    RELEASE = "release"  # stop answering, then give the Lease up
    NONE = "none"  # not this node's address


def eligible_nodes(svc: LbService, ready_nodes: Iterable[str]) -> frozenset[str]:
    ready = frozenset(ready_nodes)
    if not svc.endpoint_nodes:
        return frozenset()
    return ready & svc.endpoint_nodes if svc.local else ready


def _rank(key: str, node: str) -> bytes:
    return hashlib.sha256(f"{key}#{node}".encode()).digest()


def plan_announcer(svc: LbService, ready_nodes: Iterable[str], holder: str) -> str:
    """The node that should announce `svc` ("" when none is eligible)."""
    eligible = eligible_nodes(svc, ready_nodes)
    if not eligible:
        return ""
    if holder in eligible:
        return holder
    return min(eligible, key=lambda n: (_rank(svc.key, n), n))


def plan_step(me: str, chosen: str, holder: str, *, holder_ready: bool) -> Step:
    """What node `me` does, given the chosen node and the Lease's holder.

    A holder that is still Ready gives the address up itself (RELEASE) before anyone
    takes it, so two live nodes never answer at once; a holder whose node is no
    longer Ready is taken over at once.
    """
    if chosen == me:
        if holder == me:
            return Step.ANNOUNCE
        if not holder or not holder_ready:
            return Step.TAKE
        return Step.NONE  # the live holder releases first
    if holder == me:
        return Step.RELEASE
    return Step.NONE
