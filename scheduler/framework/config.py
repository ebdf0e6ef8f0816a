"""The scheduler's configuration: a dataclass, read from a YAML file and overridden by flags.

Pure data and parsing (no daemon code), so `kubelite explain` reads the same
file. scheduler/default-config.yaml lists every key with its default.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

SCHEDULER_NAME = "default-scheduler"

LEAST_ALLOCATED = "LeastAllocated"
MOST_ALLOCATED = "MostAllocated"
STRATEGIES = (LEAST_ALLOCATED, MOST_ALLOCATED)

# kube-scheduler's default weights, where it has the plugin.
DEFAULT_SCORE_WEIGHTS = {
    "NodeResourcesFit": 1,
    "NodeResourcesBalancedAllocation": 1,
    "SelectorSpread": 1,
    "PodTopologySpread": 2,
    "NodeAffinity": 2,
    "TaintToleration": 3,
}


class ConfigError(ValueError):
    """The configuration file or a flag is wrong; the message names the key."""


@dataclass(frozen=True)
class SchedulerConfig:
    scheduler_name: str = SCHEDULER_NAME
    # Score nodes until this share of all nodes was found feasible; 0 = adaptive (see framework/runner.py).
    percentage_of_nodes_to_score: int = 0
    scoring_strategy: str = LEAST_ALLOCATED
    score_weights: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_SCORE_WEIGHTS))
    backoff_initial: float = 1.0
    backoff_max: float = 60.0
    # Pods in the unschedulable set are retried at the latest after this long, even if nothing happened.
    unschedulable_timeout: float = 300.0
    # Binds and status writes in flight at once: enough for the binder's two calls of 250 binds each. With 64,
    # a BindMany carried about 16 binds and binding lagged creation (bench/controllers.py).
    parallelism: int = 512
    leader_elect: bool = True
    lease_name: str = "kube-scheduler"
    lease_namespace: str = "kube-system"
    lease_duration: float = 4.0
    renew_interval: float = 1.0
    # Record a Scheduled event for every bound pod.
    record_scheduled_events: bool = True

    def __post_init__(self) -> None:
        if self.scoring_strategy not in STRATEGIES:
            raise ConfigError(f"scoringStrategy: unsupported value {self.scoring_strategy!r}; supported: "
                              f"{', '.join(STRATEGIES)}")
        if not 0 <= self.percentage_of_nodes_to_score <= 100:
            raise ConfigError("percentageOfNodesToScore: must be between 0 and 100")
        for name, w in self.score_weights.items():
            if name not in DEFAULT_SCORE_WEIGHTS:
                raise ConfigError(f"scoreWeights.{name}: unknown score plugin; known: "
                                  f"{', '.join(DEFAULT_SCORE_WEIGHTS)}")
            if not isinstance(w, int) or isinstance(w, bool) or w < 0 or w > 100:
                raise ConfigError(f"scoreWeights.{name}: weight must be an integer between 0 and 100")
        if self.backoff_initial <= 0 or self.backoff_max < self.backoff_initial:
            raise ConfigError("backoff: need 0 < backoffInitialSeconds <= backoffMaxSeconds")
        if self.parallelism < 1:
            raise ConfigError("parallelism: must be at least 1")

    def with_overrides(self, **changes: Any) -> SchedulerConfig:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


_KEYS = {
    "schedulerName": ("scheduler_name", str),
    "percentageOfNodesToScore": ("percentage_of_nodes_to_score", int),
    "scoringStrategy": ("scoring_strategy", str),
    "backoffInitialSeconds": ("backoff_initial", float),
    "backoffMaxSeconds": ("backoff_max", float),
    "unschedulableTimeoutSeconds": ("unschedulable_timeout", float),
    "parallelism": ("parallelism", int),
    "leaderElect": ("leader_elect", bool),
    "leaseName": ("lease_name", str),
    "leaseNamespace": ("lease_namespace", str),
    "leaseDurationSeconds": ("lease_duration", float),
    "renewIntervalSeconds": ("renew_interval", float),
    "recordScheduledEvents": ("record_scheduled_events", bool),
}


def parse(data: Any, *, where: str = "config") -> SchedulerConfig:
    """A config from the YAML mapping; unknown keys and wrong types are refused by name."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping at the top level")
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key == "scoreWeights":
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: scoreWeights: expected a mapping of plugin name to weight")
            weights = dict(DEFAULT_SCORE_WEIGHTS)
            weights.update(value)
            kwargs["score_weights"] = weights
            continue
        if key not in _KEYS:
            raise ConfigError(f"{where}: unknown key {key!r}; known: {', '.join([*_KEYS, 'scoreWeights'])}")
        attr, typ = _KEYS[key]
        if typ is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
            raise ConfigError(f"{where}: {key}: expected {typ.__name__}, got {value!r}")
        kwargs[attr] = value
    try:
        return SchedulerConfig(**kwargs)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None


def load(path: str | Path) -> SchedulerConfig:
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise ConfigError(f"{path}: {e.strerror or e}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {str(e).splitlines()[0]}") from None
    return parse(data, where=str(path))
