"""Scheduler configuration files: defaults, overrides, and one clear error per mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from scheduler.framework.config import DEFAULT_SCORE_WEIGHTS, ConfigError, SchedulerConfig, load, parse


def test_shipped_default_config_equals_the_defaults() -> None:
    """scheduler/default-config.yaml spells out exactly the built-in defaults."""
    shipped = load(Path(__file__).resolve().parents[3] / "scheduler" / "default-config.yaml")
    assert shipped == SchedulerConfig()


def test_weights_merge_over_defaults() -> None:
    """A file naming one weight keeps the others at their defaults."""
    cfg = parse({"scoringStrategy": "MostAllocated", "scoreWeights": {"SelectorSpread": 0}})
    assert cfg.scoring_strategy == "MostAllocated"
    assert cfg.score_weights == {**DEFAULT_SCORE_WEIGHTS, "SelectorSpread": 0}


@pytest.mark.parametrize(("data", "message"), [
    pytest.param({"bogus": 1}, "unknown key 'bogus'", id="unknown-key"),
    pytest.param({"scoringStrategy": "Random"}, "scoringStrategy: unsupported value 'Random'", id="strategy"),
    pytest.param({"scoreWeights": {"Nope": 1}}, "scoreWeights.Nope: unknown score plugin", id="plugin"),
    pytest.param({"scoreWeights": {"SelectorSpread": -1}}, "weight must be an integer", id="negative-weight"),
    pytest.param({"percentageOfNodesToScore": 150}, "between 0 and 100", id="percentage"),
    pytest.param({"backoffInitialSeconds": 10, "backoffMaxSeconds": 1}, "backoff", id="backoff-order"),
    pytest.param({"parallelism": "many"}, "parallelism: expected int", id="type"),
    pytest.param([1, 2], "expected a mapping", id="not-a-mapping"),
])
def test_mistakes_are_named(data: object, message: str) -> None:
    """Each mistake raises ConfigError naming the key."""
    with pytest.raises(ConfigError, match=message):
        parse(data, where="f.yaml")


def test_flags_override_the_file() -> None:
    """Overrides given as None leave the file's value; others replace it."""
    cfg = parse({"parallelism": 8}).with_overrides(parallelism=None, backoff_max=5.0)
    assert cfg.parallelism == 8 and cfg.backoff_max == 5.0
