"""Leases: renewed every half second or so; a renewal is not a new generation (as Kubernetes' lease strategy)."""

from __future__ import annotations

from apiserver.rules.strategy import Strategy


class Rules(Strategy):
    kind = "Lease"
    tracks_generation = False
