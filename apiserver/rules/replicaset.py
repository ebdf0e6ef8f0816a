"""ReplicaSets: scalable; an Orphan delete leaves their pods behind."""

from __future__ import annotations

from apiserver.rules.strategy import Strategy


class Rules(Strategy):
    kind = "ReplicaSet"
    scalable = True
    orphans_dependents = True
