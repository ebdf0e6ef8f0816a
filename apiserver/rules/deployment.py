"""Deployments: scalable; an Orphan delete leaves their ReplicaSets behind."""

from __future__ import annotations

from apiserver.rules.strategy import Strategy


class Rules(Strategy):
    kind = "Deployment"
    scalable = True
    orphans_dependents = True
