"""Shared controller helpers: expectations and the event spam filter."""

from __future__ import annotations

import pytest

from controllers.events import Recorder
from controllers.expectations import Expectations
from controllers.manager import CONTROLLERS, select_controllers


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_expectations_creations() -> None:
    """A key waits until every expected creation is observed; failures lower the count."""
    clock = Clock()
    e = Expectations(ttl=30, clock=clock)
    assert e.satisfied("rs")
    e.expect_creations("rs", 3)
    e.creation_observed("rs")
    assert not e.satisfied("rs") and e.pending("rs") == (2, 0)
    e.lower_creations("rs", 1)
    e.creation_observed("rs")
    assert e.satisfied("rs")
    e.creation_observed("rs")  # late or foreign pods never push the count below zero
    e.expect_creations("rs", 1)
    assert not e.satisfied("rs")


def test_expectations_deletions_by_key() -> None:
    """Deletions are tracked by pod key, so observing one twice (graceful then final) counts once."""
    e = Expectations()
    e.expect_deletions("rs", ["ns/a", "ns/b"])
    e.deletion_observed("rs", "ns/a")
    e.deletion_observed("rs", "ns/a")
    assert not e.satisfied("rs")
    e.deletion_observed("rs", "ns/b")
    assert e.satisfied("rs")


def test_expectations_expire() -> None:
    """Expectations never met (a lost watch event) stop blocking after the TTL."""
    clock = Clock()
    e = Expectations(ttl=30, clock=clock)
    e.expect_creations("rs", 1)
    clock.t = 29
    assert not e.satisfied("rs")
    clock.t = 31
    assert e.satisfied("rs")
    e.forget("rs")
    assert e.pending("rs") == (0, 0)


def test_spam_filter() -> None:
    """Each (object, type, reason) gets a burst, then refills slowly; other reasons are not affected."""
    clock = Clock()
    r = Recorder(client=None, component="test", burst=3, refill_seconds=10, clock=clock)  # type: ignore[arg-type]
    assert [r.allow("uid", "Normal", "SuccessfulCreate") for _ in range(5)] == [True, True, True, False, False]
    assert r.allow("uid", "Normal", "SuccessfulDelete")
    assert r.allow("other", "Normal", "SuccessfulCreate")
    clock.t = 10
    assert r.allow("uid", "Normal", "SuccessfulCreate")
    assert not r.allow("uid", "Normal", "SuccessfulCreate")


def test_select_controllers() -> None:
    """--controllers takes Kubernetes' syntax: `*` for all, `-name` to leave one out, names to pick."""
    assert select_controllers("*") == CONTROLLERS
    assert select_controllers("") == CONTROLLERS
    assert select_controllers("*,-nodelifecycle") == tuple(c for c in CONTROLLERS if c != "nodelifecycle")
    assert select_controllers("deployment,replicaset") == ("replicaset", "deployment")
    with pytest.raises(ValueError, match="unknown controller 'nope'"):
        select_controllers("*,nope")
