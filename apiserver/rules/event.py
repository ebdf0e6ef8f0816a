"""Events: they expire, as in Kubernetes, so they never fill etcd; they may record a namespace's deletion."""

from __future__ import annotations

from apiserver.rules.strategy import Strategy

EVENT_TTL = 3600


class Rules(Strategy):
    kind = "Event"
    ttl_seconds = EVENT_TTL
    create_in_terminating_namespace = True
